"""Phase e of the pipeline benchmark: a backlog drained by workers that were stopped.

Owns: stopping the workers (SIGSTOP) while `gpuledger ingest` publishes the events as
batch records, resuming them (SIGCONT, whatever happens), and the time from the resume
until the ledger holds them all. Its point is the workers' peak memory meanwhile, which
`bench.pipeline` samples: it must be bounded by bytes, not by the backlog's events.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

from bench.events import EventSet
from bench.harness import LocalStack, notice
from bench.sampling import Watched
from bench.tallies import TOTAL_RECEIVED


async def _drained(database_url: str, before: int, expected: int, timeout: float) -> int:
    """Events received by the ledger since `before` (total of the tallies), polled every
    0.2 s over one connection until `expected` or the timeout."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.perf_counter() + timeout
        while True:
            done = await conn.fetchval(TOTAL_RECEIVED) - before
            if done >= expected or time.perf_counter() > deadline:
                return done
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def _publish_while_stopped(stack: LocalStack, workers: list[Watched], events: EventSet, timeout: float) -> float:
    """`gpuledger ingest` of the events while the workers are stopped; the seconds it took."""
    for worker in workers:
        os.kill(worker.pid, signal.SIGSTOP)
    try:
        notice(f"phase e: workers stopped; gpuledger ingest {events.path.name} ({events.count:,} events)")
        started = time.perf_counter()
        stack.run("ingest", str(events.path), timeout=timeout)
        return time.perf_counter() - started
    finally:
        for worker in workers:
            os.kill(worker.pid, signal.SIGCONT)


def backlog_phase(
    stack: LocalStack, database_url: str, workers: list[Watched], events: EventSet, timeout: float
) -> dict:
    """Phase e: a backlog. The workers are stopped (SIGSTOP) while `ingest` publishes the
    events as batch records, then resumed: how fast they drain it, and in how much memory."""
    before = asyncio.run(_drained(database_url, 0, 0, 0))
    published = _publish_while_stopped(stack, workers, events, timeout)
    notice(f"phase e: published in {published:.2f} s; workers resumed")
    resumed = time.perf_counter()
    done = asyncio.run(_drained(database_url, before, events.count, timeout))
    elapsed = time.perf_counter() - resumed
    if done < events.count:
        raise RuntimeError(f"phase e: the workers drained {done:,} of {events.count:,} events")
    return {
        "what": "backlog: workers stopped (SIGSTOP) while gpuledger ingest publishes batch records, "
                "then resumed; resume -> the ledger holds them all (polled every 0.2 s; when the "
                "stop outlasts the session timeout this includes the group's rebalance, counted "
                "under rebalances)",
        "events": events.count,
        "backlog_bytes": events.path.stat().st_size,
        "publish_seconds": round(published, 3),
        "seconds": round(elapsed, 3),
        "events_per_second": round(events.count / elapsed),
    }
