"""The supervisor against real child processes: what dies is started again and counted."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from ledger.dev import Stack
from ledger.dev.supervisor import Supervisor, describe_exit

READY_THEN_SLEEP = "import pathlib, sys, time; pathlib.Path(sys.argv[2]).touch(); time.sleep(120)"


@pytest.fixture
def stack():
    folder = Path(tempfile.mkdtemp(prefix="gpuledger-supervisor-", dir="/tmp"))
    stack = Stack(folder / "home")
    try:
        yield stack
    finally:
        stack.down()
        shutil.rmtree(folder, ignore_errors=True)


def _start(stack: Stack, name: str) -> dict:
    ready = stack.home / f"{name}.ready"
    # The ready file follows --ready-file as on a worker's command line, where
    # restart_process finds it.
    argv = [sys.executable, "-c", READY_THEN_SLEEP, "--ready-file", str(ready)]
    return stack.start_process(name, "worker", argv, ready_file=ready)


def _wait_dead(pid: int) -> None:
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


@pytest.mark.heavy  # starts processes
def test_a_killed_worker_is_started_again_with_its_command_and_counted(stack: Stack) -> None:
    first = _start(stack, "worker-1")
    _start(stack, "worker-2")
    supervisor = Supervisor(stack, {}, after_broker_restart=lambda: None)
    assert supervisor.check_once() == []

    os.kill(first["pid"], signal.SIGKILL)
    stack.child(first["pid"]).wait()

    assert supervisor.check_once() == ["worker-1"]
    again = stack.component("worker-1")
    assert again["pid"] != first["pid"] and again["argv"] == first["argv"]
    status = {entry["name"]: entry for entry in stack.status()}
    assert status["worker-1"]["running"] and status["worker-1"]["restarts"] == 1
    assert status["worker-1"]["last_exit"] == "killed by signal 9"
    assert status["worker-2"]["restarts"] == 0 and status["worker-2"]["last_exit"] is None
    assert supervisor.check_once() == []


@pytest.mark.heavy  # starts processes
def test_a_restart_that_fails_is_counted_and_tried_again(stack: Stack) -> None:
    first = _start(stack, "worker-1")
    os.kill(first["pid"], signal.SIGKILL)
    _wait_dead(first["pid"])
    supervisor = Supervisor(stack, {}, after_broker_restart=lambda: None)
    original = stack.restart_process

    def failing(record, timeout=60.0):  # as a worker whose broker is gone
        raise RuntimeError("worker-1 exited (code 3) before it was ready")

    stack.restart_process = failing
    assert supervisor.check_once() == ["worker-1"]
    assert "restart failed: worker-1 exited (code 3)" in stack.status()[0]["last_exit"]
    stack.restart_process = original
    assert supervisor.check_once() == ["worker-1"]
    assert stack.status()[0]["running"] and stack.status()[0]["restarts"] == 2


def test_exits_are_described_for_the_status() -> None:
    assert describe_exit(-9) == "killed by signal 9"
    assert describe_exit(70) == "exit code 70"
    assert describe_exit(None).startswith("exit not known")


SLOW_TO_STOP = (
    "import pathlib, signal, sys, time; "
    "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(1.0), sys.exit(0))); "
    "pathlib.Path(sys.argv[2]).touch(); time.sleep(120)"
)


@pytest.mark.heavy  # starts processes
def test_a_component_being_stopped_is_not_started_again(stack: Stack) -> None:
    """Between a stopped worker's exit and the removal of its record, a supervisor
    checking without pause must not take it for dead and start it again."""
    ready = stack.home / "worker-2.ready"
    stack.start_process(
        "worker-2", "worker", [sys.executable, "-c", SLOW_TO_STOP, "--ready-file", str(ready)], ready_file=ready
    )
    supervisor = Supervisor(stack, {}, after_broker_restart=lambda: None)
    restarted: list[str] = []
    done = threading.Event()

    def supervise() -> None:
        while not done.is_set():
            restarted.extend(supervisor.check_once())

    watcher = threading.Thread(target=supervise)
    watcher.start()
    try:
        stack.stop("worker-2")
    finally:
        done.set()
        watcher.join()
    assert restarted == []
    assert stack.component("worker-2") is None
