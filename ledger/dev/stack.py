"""The Stack: the components recorded under one home folder, started, queried and stopped.

A component is the broker, PostgreSQL, or any other detached process the CLI asks for
(stream workers, the HTTP API). This module decides what to start and in which order to
stop, and keeps stack.json in step; `broker`, `postgres` and `processes` do the running.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ledger.dev.broker import (
    BROKER,
    BROKER_STOP_GRACE_SECONDS,
    broker_command,
    tansu_binary,
    wait_for_broker,
)
from ledger.dev.errors import DevStackError, log_tail, with_tail
from ledger.dev.postgres import DATABASE_NAME, POSTGRES, EmbeddedPostgres
from ledger.dev.processes import LOCAL_HOST, Processes, free_port, port_is_free
from ledger.dev.state import StateFile

INFRASTRUCTURE = (BROKER, POSTGRES)

# Faust workers get this long to commit offsets and leave their consumer group cleanly.
PROCESS_STOP_GRACE_SECONDS = 15.0

COMPONENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


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
        self._state = StateFile(self.home)
        self._processes = Processes(self.logs_dir, self._notify)
        self._postgres = EmbeddedPostgres(
            self.home, self.logs_dir, self.pg_dir, self._processes, self._notify
        )

    # ----------------------------------------------------------------- public queries

    def status(self) -> list[dict[str, Any]]:
        """One entry per recorded component: name, role, pid, port, log, running, and the
        supervisor's restarts of it (count, last exit)."""
        state = self._state.read()
        restarts = state.get("restarts", {})
        return [
            {
                "name": record["name"],
                "role": record["role"],
                "pid": record["pid"],
                "port": record.get("port"),
                "log": record.get("log"),
                "running": self._processes.record_alive(record),
                "restarts": restarts.get(record["name"], {}).get("count", 0),
                "last_exit": restarts.get(record["name"], {}).get("last_exit"),
            }
            for record in state["components"]
        ]

    def records(self) -> list[dict[str, Any]]:
        """The recorded components, as stack.json holds them."""
        return [dict(record) for record in self._state.read()["components"]]

    def child(self, pid: int):
        """The process object of a component this Stack object started (None otherwise)."""
        return self._processes.child(pid)

    def count_restart(self, name: str, last_exit: str) -> None:
        with self._state.editing() as state:
            entry = state.setdefault("restarts", {}).setdefault(name, {"count": 0})
            entry["count"] += 1
            entry["last_exit"] = last_exit

    def options(self) -> dict[str, Any]:
        """What `dev up` was last started with (durable, partitions, workers)."""
        return dict(self._state.read().get("options", {}))

    def save_options(self, options: dict[str, Any]) -> None:
        with self._state.editing() as state:
            state["options"] = dict(options)

    @contextlib.contextmanager
    def starting(self):
        """Held while components are started: `dev up` and the supervisor take turns, so
        a component that died is not started by both at once."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / ".start.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def component(self, name: str) -> dict[str, Any] | None:
        """The stack.json record of a component, or None if it is not recorded."""
        for record in self._state.read()["components"]:
            if record["name"] == name:
                return dict(record)
        return None

    def is_running(self, name: str) -> bool:
        """Whether the recorded component is alive (and is still the process we started)."""
        record = self.component(name)
        return record is not None and self._processes.record_alive(record)

    def settings(self) -> dict[str, str | None]:
        """Connection settings of the recorded broker and database (None if not started)."""
        state = self._state.read()
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
        argv, environment = broker_command(binary, chosen_port)
        self._notify(f"starting the Kafka broker (Tansu) on {LOCAL_HOST}:{chosen_port}")
        process, log_path, offset = self._processes.spawn(BROKER, argv, environment)
        record = self._state.save_record(BROKER, BROKER, process.pid, chosen_port, log_path, argv)
        try:
            wait_for_broker(process, chosen_port, log_path, offset, timeout)
        except BaseException:
            self._processes.kill_quietly(record)
            self._state.forget(BROKER)
            raise
        return record

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
        bin_dir = self._postgres.prepare(durable)
        adopted = self._adopt_postmaster(port)
        if adopted is not None:
            return adopted

        chosen_port = self._choose_port(POSTGRES, port)
        log_path = self._postgres.log_path
        pid, argv, offset = self._postgres.start_server(bin_dir, chosen_port, durable, timeout)
        record = self._state.save_record(POSTGRES, POSTGRES, pid, chosen_port, log_path, argv)
        try:
            self._postgres.create_database(chosen_port, timeout=min(timeout, 30.0))
        except Exception as error:
            self._postgres.stop_server(record)
            self._state.forget(POSTGRES)
            raise with_tail(
                f"PostgreSQL started but database {DATABASE_NAME!r} could not be created "
                f"({type(error).__name__}: {error}); see {log_path}",
                log_tail(log_path, offset),
            ) from error
        return record

    def _adopt_postmaster(self, requested_port: int | None) -> dict[str, Any] | None:
        # A server left running for our data folder but missing from stack.json.
        found = self._postgres.running_postmaster(requested_port)
        if found is None:
            return None
        pid, port = found
        self._notify(f"adopting PostgreSQL (pid {pid}, port {port}), running but not recorded")
        return self._state.save_record(
            POSTGRES, POSTGRES, pid, port, self._postgres.log_path, [str(self.data_dir)]
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
        self._check_new_process(name, role, argv)
        ready_path = Path(ready_file).absolute() if ready_file is not None else None
        if ready_path is not None:
            # A file left by a previous run would make the new process look ready at once.
            with contextlib.suppress(FileNotFoundError):
                ready_path.unlink()
        environment = {**os.environ, **(env or {})}
        command = [os.fspath(part) for part in argv]
        self._notify(f"starting {name} ({role}): {shlex.join(command)}")
        process, log_path, offset = self._processes.spawn(name, command, environment, cwd)
        record = self._state.save_record(name, role, process.pid, port, log_path, command)
        if ready_path is None:
            return record
        try:
            _wait_for_ready_file(name, process, ready_path, log_path, offset, timeout)
        except BaseException:
            self._processes.kill_quietly(record)
            self._state.forget(name)
            raise
        return record

    def restart_process(self, record: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        """Start a recorded process again with its recorded command (and ready file)."""
        argv = list(record["argv"])
        ready = argv[argv.index("--ready-file") + 1] if "--ready-file" in argv[:-1] else None
        return self.start_process(
            record["name"], record["role"], argv, ready_file=ready, timeout=timeout, port=record.get("port")
        )

    def _check_new_process(self, name: str, role: str, argv: Sequence[Any]) -> None:
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

    # ----------------------------------------------------------------- stopping

    def stop(self, name: str) -> None:
        """Stop one recorded component and remove it from stack.json.

        Under the start lock: between the process's exit and its record's removal the
        supervisor would otherwise see a dead component and start it again.
        """
        with self.starting():
            record = self.component(name)
            if record is None:
                raise DevStackError(f"no component named {name!r} is recorded in {self.state_file}")
            if record["role"] == POSTGRES:
                self._postgres.stop_server(record)
            else:
                grace = PROCESS_STOP_GRACE_SECONDS
                if record["role"] == BROKER:
                    grace = BROKER_STOP_GRACE_SECONDS
                self._processes.stop(record, grace)
            self._state.forget(name)

    def down(self) -> None:
        """Stop everything this stack started: workers and API, then PostgreSQL, then the broker.

        Workers stop one at a time, newest first: two Faust members leaving the same
        consumer group at once break that group for good on Tansu. PostgreSQL's data
        folder is kept; the broker's topics and records are lost (memory storage).
        """
        records = self._state.read()["components"]
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

    # ----------------------------------------------------------------- records and ports

    def _running_record(self, name: str) -> dict[str, Any] | None:
        record = self.component(name)
        if record is not None and self._processes.record_alive(record):
            return record
        return None

    def _choose_port(self, name: str, requested: int | None) -> int:
        if requested is not None:
            if not port_is_free(requested):
                raise DevStackError(
                    f"cannot start {name}: port {requested} on {LOCAL_HOST} is already in use; "
                    "choose another port or stop the program that holds it"
                )
            return requested
        previous = self._state.read()["ports"].get(name)
        if previous is not None:
            if port_is_free(previous):
                return previous
            self._notify(
                f"{name}: its previous port {previous} is now used by another program; "
                "picking a new port (its connection setting changes)"
            )
        return free_port()


def _wait_for_ready_file(
    name: str, process: subprocess.Popen[bytes], ready_path: Path, log_path: Path, offset: int,
    timeout: float,
) -> None:
    """Return once the started process has created ready_path; DevStackError otherwise."""
    deadline = time.monotonic() + timeout
    while not ready_path.exists():
        exit_code = process.poll()
        if exit_code is not None:
            raise with_tail(
                f"{name} exited (code {exit_code}) before it was ready; see {log_path}",
                log_tail(log_path, offset),
            )
        if time.monotonic() > deadline:
            raise with_tail(
                f"{name} did not become ready within {timeout:.0f} s "
                f"(no {ready_path}); see {log_path}",
                log_tail(log_path, offset),
            )
        time.sleep(0.1)
