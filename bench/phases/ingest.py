"""Phase a of the pipeline benchmark: `gpuledger ingest FILE --wait`, as a user runs it.

Owns: the wall time of the command from its start to its exit (it exits once the
intake tallies count every event), the time of an empty ingest (start-up and
connections), and a timeline polled from the intake tallies by a thread of its own.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from pathlib import Path

from bench.events import EventSet
from bench.harness import ROOT, LocalStack, notice
from bench.phases import rounded
from bench.tallies import RECEIVED_UNDER_INGEST_IDS


class LedgerWatcher(threading.Thread):
    """Polls the intake tallies every 0.1 s from its own thread: when did events reach the ledger?

    Counts every tally row with a non-empty ingest id; on a fresh stack during phase a
    those are phase a's alone. Only for the timeline: the phase's figure is the command's
    own wall time.
    """

    def __init__(self, database_url: str, expected: int, started: float) -> None:
        super().__init__(name="ledger-watcher", daemon=True)
        self.database_url = database_url
        self.expected = expected
        self.started = started
        self.first_seconds: float | None = None
        self.all_seconds: float | None = None
        self.last_poll: tuple[float, int] | None = None  # (seconds, events seen)
        self.error: str | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            asyncio.run(self._watch())
        except Exception as error:  # the timeline is optional: never fail the run for it
            self.error = repr(error)

    async def _watch(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.database_url)
        try:
            while not self._stop_event.is_set():
                done = await conn.fetchval(RECEIVED_UNDER_INGEST_IDS)
                now = time.perf_counter() - self.started
                self.last_poll = (now, done)
                if done and self.first_seconds is None:
                    self.first_seconds = now
                if done >= self.expected:
                    self.all_seconds = now
                    return
                await asyncio.sleep(0.1)
        finally:
            await conn.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


def measure_cli_overhead(stack: LocalStack, folder: Path) -> float:
    """Wall time of `gpuledger ingest EMPTY --wait`: start-up, connections, exit."""
    empty = folder / "empty.ndjson"
    empty.write_bytes(b"")
    started = time.perf_counter()
    stack.run("ingest", str(empty), "--wait")
    return time.perf_counter() - started


def run_ingest_phase(stack: LocalStack, database_url: str, events: EventSet, timeout: float) -> dict:
    argv = stack.argv("ingest", str(events.path), "--wait")
    notice(f"phase a: gpuledger ingest {events.path.name} --wait ({events.count:,} events)")
    started = time.perf_counter()
    watcher = LedgerWatcher(database_url, events.count, started)
    watcher.start()
    try:
        completed = subprocess.run(argv, capture_output=True, env=stack.env, cwd=ROOT, timeout=timeout)
        elapsed = time.perf_counter() - started
    finally:
        watcher.stop()
    if completed.returncode != 0:
        raise RuntimeError(
            f"gpuledger ingest exited {completed.returncode}:\n"
            + completed.stderr.decode(errors="replace")[-3000:]
        )
    counts = json.loads(completed.stdout)
    all_accepted = counts.get("received") == events.count and counts.get("accepted") == events.count
    if not all_accepted:
        notice(f"phase a: NOT all accepted: {counts}")
    return {
        "what": "gpuledger ingest FILE --wait (default --batch-events 200), wall time of the command",
        "events": events.count,
        "seconds": round(elapsed, 3),
        "events_per_second": round(events.count / elapsed),
        "counts": counts,
        "all_accepted": all_accepted,
        "timeline_seconds": _timeline(watcher, elapsed),
    }


def _timeline(watcher: LedgerWatcher, elapsed: float) -> dict:
    return {
        "note": "from starting the command; ledger times polled every 0.1 s by the bench",
        "first_events_in_ledger": rounded(watcher.first_seconds),
        # None when the command saw them first and exited before the next poll.
        "all_events_in_ledger": rounded(watcher.all_seconds),
        "last_poll": [rounded(watcher.last_poll[0]), watcher.last_poll[1]] if watcher.last_poll else None,
        "command_exited": round(elapsed, 3),
        "watcher_error": watcher.error,
    }
