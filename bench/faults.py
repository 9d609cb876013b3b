"""Faults injected into a running local stack, each timed until the stack is whole again.

Each fault is what happens in real life: a worker or the API killed (SIGKILL), PostgreSQL
stopped immediately (SIGQUIT, what `pg_ctl stop -m immediate` sends; then `dev up`), the broker frozen
(SIGSTOP, then SIGCONT), workers joining and leaving (a rebalance storm). The stack's
supervisor brings back what died; `recovered` is how long the stack took to have every
component running again.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from bench.harness import LocalStack
from ledger.dev import Stack

WHOLE_AGAIN_TIMEOUT = 180.0
BROKER_PAUSE_SECONDS = 5.0


@dataclass
class Injection:
    fault: str
    recovered_seconds: float


def _pid(stack: LocalStack, name: str) -> int:
    return int(stack.components()[name]["pid"])


def wait_whole(stack: LocalStack, since: float, timeout: float = WHOLE_AGAIN_TIMEOUT) -> float:
    """Seconds from `since` until every component runs again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(c["running"] for c in stack.components().values()):
            return time.monotonic() - since
        time.sleep(0.2)
    raise RuntimeError(f"the stack was not whole again within {timeout:.0f} s: {stack.components()}")


def _kill(stack: LocalStack, name: str, number: int) -> float:
    started = time.monotonic()
    os.kill(_pid(stack, name), number)
    time.sleep(1.5)  # the supervisor looks once a second
    return wait_whole(stack, started)


def kill_worker(stack: LocalStack) -> float:
    return _kill(stack, "worker-1", signal.SIGKILL)


def kill_api(stack: LocalStack) -> float:
    return _kill(stack, "api", signal.SIGKILL)


def stop_postgres_immediately(stack: LocalStack) -> float:
    """SIGQUIT, then `gpuledger dev up` as an operator would (racing the supervisor)."""
    started = time.monotonic()
    os.kill(_pid(stack, "postgres"), signal.SIGQUIT)
    time.sleep(0.5)
    stack.up(workers=2)
    return wait_whole(stack, started)


def pause_broker(stack: LocalStack) -> float:
    started = time.monotonic()
    pid = _pid(stack, "broker")
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(BROKER_PAUSE_SECONDS)
    finally:
        os.kill(pid, signal.SIGCONT)
    return wait_whole(stack, started)


def rebalance_storm(stack: LocalStack, rounds: int = 3) -> float:
    """Workers join and leave, one at a time (two leaving at once break a group on Tansu)."""
    started = time.monotonic()
    local = Stack(stack.home)
    record = local.component("worker-1")
    for round_number in range(rounds):
        name = f"worker-storm-{round_number}"
        argv = [part.replace("worker-1", name) for part in record["argv"]]
        if "--metrics-port" in argv:  # worker-1's port is taken: any free one
            argv[argv.index("--metrics-port") + 1] = "0"
        ready = argv[argv.index("--ready-file") + 1]
        local.start_process(name, "storm", argv, ready_file=ready, timeout=120)
        time.sleep(2)
        local.stop(name)
    return wait_whole(stack, started)


FAULTS = {
    "worker SIGKILL": kill_worker,
    "PostgreSQL immediate stop": stop_postgres_immediately,
    "broker pause (SIGSTOP 5 s)": pause_broker,
    "rebalance storm (3 workers join and leave)": rebalance_storm,
    "API SIGKILL during HTTP ingest": kill_api,
}
