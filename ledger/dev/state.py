"""stack.json: what runs under a home folder, and the connection settings it implies.

The file lists the components (one record each: name, role, pid, port, log, argv,
started_at, start_ticks), the last port of every component, and the Kafka bootstrap and
database URL derived from the broker's and PostgreSQL's records. Every change is made
under a lock file and written atomically, so that concurrent CLI invocations neither
lose each other's changes nor read a half-written file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ledger.dev.broker import BROKER, bootstrap_address
from ledger.dev.errors import DevStackError
from ledger.dev.postgres import POSTGRES, database_url
from ledger.dev.processes import now, proc_start_ticks

STATE_VERSION = 1


class StateFile:
    """home/stack.json, read and edited under home/.stack.lock."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / "stack.json"

    def empty(self) -> dict[str, Any]:
        """The state of a home where nothing was ever started."""
        return {
            "version": STATE_VERSION,
            "home": str(self.home),
            "kafka_bootstrap": None,
            "database_url": None,
            "components": [],
            # Last port of each component, kept after it stops so that it comes back there.
            "ports": {},
        }

    def read(self) -> dict[str, Any]:
        """The current state (the empty state if the file does not exist)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return self.empty()
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as error:
            raise DevStackError(
                f"{self.path} is not valid JSON ({error}); fix it or delete it "
                "after stopping the processes it lists"
            ) from None
        state = self.empty()
        state.update(loaded)
        return state

    @contextlib.contextmanager
    def editing(self) -> Iterator[dict[str, Any]]:
        """The state to change in place; written back, settings derived, on exit."""
        self.home.mkdir(parents=True, exist_ok=True)
        # A lock file, so that two CLI invocations cannot lose each other's changes.
        with open(self.home / ".stack.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self.read()
            yield state
            _derive_settings(state)
            temporary = self.path.with_name(self.path.name + ".tmp")
            temporary.write_text(json.dumps(state, indent=2) + "\n")
            os.replace(temporary, self.path)

    def save_record(
        self, name: str, role: str, pid: int, port: int | None, log_path: Path, argv: list[str]
    ) -> dict[str, Any]:
        """Record a started component (replacing any record of the same name); return it."""
        record = {
            "name": name,
            "role": role,
            "pid": pid,
            "port": port,
            "log": str(log_path),
            "argv": [str(part) for part in argv],
            "started_at": now(),
            # With the pid, identifies the process: a recycled pid has another start time.
            "start_ticks": proc_start_ticks(pid),
        }
        with self.editing() as state:
            state["components"] = [item for item in state["components"] if item["name"] != name]
            state["components"].append(record)
            if port is not None:
                state["ports"][name] = port
        return dict(record)

    def forget(self, name: str) -> None:
        """Remove a component's record (its last port stays known)."""
        with self.editing() as state:
            state["components"] = [item for item in state["components"] if item["name"] != name]


def _derive_settings(state: dict[str, Any]) -> None:
    by_name = {record["name"]: record for record in state["components"]}
    broker = by_name.get(BROKER)
    postgres = by_name.get(POSTGRES)
    state["kafka_bootstrap"] = bootstrap_address(broker["port"]) if broker else None
    state["database_url"] = database_url(postgres["port"]) if postgres else None
