"""Phase d of the pipeline benchmark: Faust's own ceiling, in the same run on the same machine.

Owns: starting stock Faust agents (`python -m bench.faust_ceiling`, INFRA.md's
configuration, one process per stack worker, a topic and consumer group of their own
that the stack's workers do not see), sending them phase b's records again, and the
time from the first send until they have counted N, with the CPU they used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench.events import EventSet
from bench.harness import ROOT, notice
from bench.phases import PLAIN_PRODUCER
from bench.phases.single_records import produce_single_records
from bench.sampling import process_cpu_seconds
from schemas.wire import SINGLE_CONTENT_TYPE
from streams.publish import new_producer
from streams.topics import ensure_topic


def _read_status(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _start_agents(
    bootstrap: str,
    topic: str,
    group: str,
    status_files: list[Path],
    logs: contextlib.ExitStack,
    children: list[subprocess.Popen],
) -> None:
    """One agent process per status file, appended to `children` as each starts (so that
    the caller stops those started even if a later one fails to start)."""
    for path in status_files:
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "bench.faust_ceiling", bootstrap, topic, group, str(path)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=logs.enter_context(path.with_suffix(".log").open("wb")),
            )
        )


def _wait_assigned(status_files: list[Path], children: list[subprocess.Popen], partitions: int) -> None:
    """Until the agents hold every partition between them (at most 120 s)."""
    deadline = time.monotonic() + 120
    while True:
        statuses = [_read_status(path) for path in status_files]
        if all(statuses) and sum(st["assigned"] for st in statuses) == partitions:
            return
        dead = [child.pid for child in children if child.poll() is not None]
        if dead or time.monotonic() > deadline:
            raise RuntimeError(f"phase d: the Faust agents did not get their partitions (exited: {dead})")
        time.sleep(0.1)


async def _produce(bootstrap: str, topic: str, events: EventSet) -> tuple[float, float]:
    """Send the records; wall-clock times of the first send and of the last delivery."""
    producer = new_producer(bootstrap, PLAIN_PRODUCER)
    await producer.start()
    try:
        started = time.time()
        headers = [("content-type", SINGLE_CONTENT_TYPE)]
        await produce_single_records(producer, topic, events.keyed, headers)
        return started, time.time()
    finally:
        await producer.stop()


def _wait_counted(status_files: list[Path], expected: int, timeout: float) -> tuple[list[dict], int]:
    """Until the agents have counted `expected` records or the timeout: their statuses and count."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = [_read_status(path) or {"count": 0, "last": None} for path in status_files]
        counted = sum(st["count"] for st in statuses)
        if counted >= expected or time.monotonic() > deadline:
            return statuses, counted
        time.sleep(0.1)


def faust_ceiling_phase(
    bootstrap: str, folder: Path, events: EventSet, processes: int, partitions: int, timeout: float
) -> dict:
    """Phase d: phase b's records again, to stock Faust agents that only count them.

    A topic and a consumer group of their own (the stack's workers do not see them), as
    many processes as the stack has workers, started and assigned before the first send:
    first send -> the agents have counted N, as phase b measures the ledger.
    """
    run_tag = uuid.uuid4().hex[:8]
    topic, group = f"bench-faust-ceiling-{run_tag}", f"bench-faust-ceiling-{run_tag}"
    asyncio.run(ensure_topic(bootstrap, topic, partitions))
    status_files = [folder / f"faust-ceiling-{i}.json" for i in range(processes)]
    children: list[subprocess.Popen] = []
    logs = contextlib.ExitStack()
    try:
        _start_agents(bootstrap, topic, group, status_files, logs, children)
        notice(f"phase d: {processes} stock Faust agent process(es) joining group {group}")
        _wait_assigned(status_files, children, partitions)
        time.sleep(1.0)  # let a late rebalance, if any, settle before the clock starts
        cpu_before = {child.pid: process_cpu_seconds(child.pid) or 0.0 for child in children}
        notice(f"phase d: {events.count:,} single-event records to {topic}")
        started, produced = asyncio.run(_produce(bootstrap, topic, events))
        statuses, counted = _wait_counted(status_files, events.count, timeout)
        cpu = sum((process_cpu_seconds(child.pid) or 0.0) - cpu_before[child.pid] for child in children)
    finally:
        for child in children:
            child.kill()
        for child in children:
            child.wait(timeout=30)
        logs.close()
    finished = max((st["last"] for st in statuses if st.get("last")), default=None)
    if counted < events.count or finished is None:
        raise RuntimeError(f"phase d: the Faust agents counted {counted:,} of {events.count:,} records")
    return _figures(processes, counted, finished - started, produced - started, cpu)


def _figures(processes: int, counted: int, elapsed: float, produce_seconds: float, cpu: float) -> dict:
    return {
        "what": "stock Faust agents (faust.App, Faust's own consumer, INFRA.md's configuration: raw values, "
                "uvloop, stream_buffer_maxsize=262144, take_events(10000, within=0.5)) that only count "
                "phase b's records, one process per stack worker; first send -> N counted",
        "processes": processes,
        "records": counted,
        "seconds": round(elapsed, 3),
        "records_per_second": round(counted / elapsed),
        "produce_seconds": round(produce_seconds, 3),
        "cpu_seconds": round(cpu, 2),
        "cpu_microseconds_per_record": round(1e6 * cpu / counted, 1),
    }
