"""Detached processes on this machine: starting them, telling whether they run, stopping them.

Knows nothing of what the processes are. A process is identified by its pid together with
its start time in clock ticks since boot (from /proc), so that a pid recycled by an
unrelated program is never mistaken for ours, nor signalled. Also here: the local ports
the processes listen on, where an installed wheel keeps its programs, and running the
drivers' coroutines from the stack's synchronous code.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import importlib.util
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from ledger.dev.errors import DevStackError

LOCAL_HOST = "127.0.0.1"

T = TypeVar("T")


def installed_package_dir(package: str, distribution: str) -> Path:
    """Folder of an installed package, found without importing it."""
    # find_spec locates the package without importing it (neither wheel needs importing).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DevStackError(
            f"the Python package {distribution!r} is not installed; "
            f"install it with: pip install {distribution}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def now() -> str:
    """The current UTC time, to the second, as ISO 8601 (log markers, stack.json)."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- ports


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCAL_HOST, 0))
        return probe.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server could listen on port of 127.0.0.1 now."""
    # SO_REUSEADDR as the servers themselves use it: a port whose previous owner was just
    # killed (sockets in TIME_WAIT) counts as free, one with a live listener does not.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOCAL_HOST, port))
        except OSError:
            return False
    return True


def accepts_connections(port: int) -> bool:
    """Whether something accepts TCP connections on port of 127.0.0.1."""
    try:
        with socket.create_connection((LOCAL_HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- /proc


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) from /proc, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces.
    fields = raw.rpartition(")")[2].split()
    return fields[0], int(fields[19])


def proc_start_ticks(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot, or None if unknown."""
    info = proc_stat(pid)
    return info[1] if info else None


def threads_still_exiting(pid: int) -> bool:
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


# --------------------------------------------------------------------------- coroutines


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
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


# --------------------------------------------------------------------------- processes


class Processes:
    """Starts detached processes logging under logs_dir; checks, signals and stops them.

    A process is given as a stack.json record: a dict with at least "name" and "pid",
    and "start_ticks" when it was known at start.
    """

    def __init__(self, logs_dir: Path, notify: Callable[[str], None]) -> None:
        self.logs_dir = logs_dir
        self._notify = notify
        # Children started through this very object: polled so that they do not stay zombies.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(
        self, name: str, argv: list[str], environment: dict[str, str], cwd: Path | str | None = None
    ) -> tuple[subprocess.Popen[bytes], Path, int]:
        """Start argv detached, output appended to logs/NAME.log.

        Returns the process, its log and the log's offset where this run's output begins.
        """
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{name}.log"
        # Appended, not truncated: the previous run's last words explain why it died.
        with open(log_path, "ab") as log_file:
            log_file.write(f"--- {now()} gpuledger dev: starting {shlex.join(argv)}\n".encode())
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

    def child(self, pid: int) -> subprocess.Popen[bytes] | None:
        return self._children.get(pid)

    def pid_alive(self, pid: int, start_ticks: int | None) -> bool:
        """Whether pid runs, and is the process that started at start_ticks (if given)."""
        child = self._children.get(pid)
        if child is not None and child.poll() is not None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by another user
        info = proc_stat(pid)
        if info is None:
            # No /proc entry: gone, unless this system has no /proc at all.
            return not Path("/proc/self").exists()
        state, ticks = info
        if state in ("Z", "X"):
            # Exited but not reaped yet (our child, or an orphan of an init that reaps
            # lazily). The main thread of a multi-threaded process (Tansu) turns zombie
            # while its other threads are still exiting and still hold its sockets.
            return threads_still_exiting(pid)
        if start_ticks is not None and ticks != start_ticks:
            return False  # the pid now belongs to another process
        return True

    def record_alive(self, record: dict[str, Any]) -> bool:
        """Whether the recorded process is alive (and is still the process we started)."""
        pid = record.get("pid")
        return bool(pid) and self.pid_alive(int(pid), record.get("start_ticks"))

    def signal(
        self, record: dict[str, Any], signal_number: int, whole_group: bool = False
    ) -> None:
        """Send a signal to the recorded process (or its process group), if it still runs."""
        # Checked right before signalling so that a recycled pid is never hit.
        if not self.record_alive(record):
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

    def wait_until_gone(self, record: dict[str, Any], seconds: float) -> bool:
        """Whether the recorded process is gone within seconds."""
        deadline = time.monotonic() + seconds
        while self.record_alive(record):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self, record: dict[str, Any], grace: float) -> None:
        """SIGTERM, then after grace seconds SIGKILL to the process and what it forked."""
        if not self.record_alive(record):
            return
        self._notify(f"stopping {record['name']} (pid {record['pid']})")
        self.signal(record, signal.SIGTERM)
        if self.wait_until_gone(record, grace):
            return
        self._notify(f"{record['name']} did not stop within {grace:.0f} s; killing it")
        self.signal(record, signal.SIGKILL, whole_group=True)
        if not self.wait_until_gone(record, 5.0):
            raise DevStackError(
                f"{record['name']} (pid {record['pid']}) does not stop, even after SIGKILL"
            )

    def kill_quietly(self, record: dict[str, Any]) -> None:
        """Stop a process that failed to start, without waiting for a graceful exit."""
        with contextlib.suppress(DevStackError):
            self.stop(record, grace=2.0)
