"""The local stack heals itself: a component that died is started again.

What compose's `restart: unless-stopped` does in production, for `gpuledger dev up`: the
supervisor (`gpuledger dev supervise`, started by `dev up`, stopped first by `dev down`)
looks at every recorded component once a second and starts again whatever is not
running, counting restarts and the last exit in stack.json (`gpuledger dev status`).

A restarted broker is an empty one (the embedded broker keeps nothing on disk): its
usage topic is created again and the ledger forgets the positions of the old one, as
`dev up` does with a fresh broker. What the old broker held and no worker had applied
is lost with it; `ingest --wait` says so (it never prints counts that are wrong).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from ledger.dev.broker import BROKER
from ledger.dev.postgres import POSTGRES
from ledger.dev.stack import Stack

log = logging.getLogger(__name__)

SUPERVISOR = "supervisor"
CHECK_EVERY_SECONDS = 1.0
WORKER_READY_SECONDS = 120


def describe_exit(code: int | None) -> str:
    if code is None:
        return "exit not known (not started by the supervisor)"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"


class Supervisor:
    """Restarts the stack's dead components; `after_broker_restart` re-creates the topic."""

    def __init__(self, stack: Stack, options: dict[str, Any], after_broker_restart: Callable[[], None]) -> None:
        self.stack = stack
        self.options = options  # what dev up was started with: durable, partitions
        self.after_broker_restart = after_broker_restart

    def _exit_code(self, record: dict[str, Any]) -> int | None:
        child = self.stack.child(record["pid"])
        return None if child is None else child.poll()

    def check_once(self) -> list[str]:
        """Start again every recorded component that is not running; return their names."""
        restarted = []
        for listed in self.stack.records():
            if listed["role"] == SUPERVISOR or self.stack.is_running(listed["name"]):
                continue
            with self.stack.starting():
                # `dev up` may have started it meanwhile: decide again under the lock.
                record = self.stack.component(listed["name"])
                if record is None or self.stack.is_running(record["name"]):
                    continue
                restarted.append(self._restart_dead(record))
        return restarted

    def _restart_dead(self, record: dict[str, Any]) -> str:
        last_exit = describe_exit(self._exit_code(record))
        log.warning("%s (%s) is not running (%s): starting it again", record["name"], record["role"], last_exit)
        try:
            self._restart(record)
        except Exception as error:  # noqa: BLE001 - it is tried again in a second
            log.error("could not restart %s: %s", record["name"], error)
            last_exit += f"; restart failed: {error}"
        self.stack.count_restart(record["name"], last_exit)
        return record["name"]

    def _restart(self, record: dict[str, Any]) -> None:
        if record["role"] == POSTGRES:
            self.stack.start_postgres(port=record.get("port"), durable=self.options.get("durable", True))
        elif record["role"] == BROKER:
            self.stack.start_broker(port=record.get("port"))
            self.after_broker_restart()
        else:
            self.stack.restart_process(record, timeout=WORKER_READY_SECONDS)

    def run(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Check once a second until `stop()` (or a signal) ends the process."""
        log.info("supervising the stack in %s (pid %d)", self.stack.home, os.getpid())
        while not stop():
            self.check_once()
            time.sleep(CHECK_EVERY_SECONDS)
