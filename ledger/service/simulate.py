"""`gpuledger simulate`: a simulated fleet's usage onto the usage topic, in real time.

The fleet and its reports are `ledger.domain.fleet` and `ledger.domain.simulation`
(pure, seeded); this is the loop around them, written against the ports so that it runs
on the in-memory store with a fake clock (`tests/service/test_simulate.py`):

1. `prepare` reads the catalog and the GPU registry from the store and chooses the
   fleet (an `InputError` says why it cannot: no catalog, too few registered GPUs).
2. `run` wakes just after each whole second, asks the simulation for the reports due
   and publishes them like `gpuledger ingest` does (`Publisher.publish`: records keyed
   by GPU, one GPU's events of a tick in one batch record, under one ingest id, so the
   ledger's verdicts on this run can be counted by that id). If the broker cannot be
   reached, `ServiceUnavailable` ends the run: what was published stays published.
3. When stopped (`stopped()`, or the duration is over), it reports every rented second
   up to then and sends every report still held back (late ones, re-sends), so each
   simulated GPU-second is reported at least once before the command ends.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from ledger.domain.fleet import Fleet, choose_fleet
from ledger.domain.ports import Publisher, Store
from ledger.domain.simulation import Counts, Report, Simulation, SimulationConfig

BATCH_MAX_EVENTS = 200  # as `gpuledger ingest`: one GPU's events per batch record, at most
TICK_LAG_SECONDS = 0.05  # wake this long after a second ends: its reports are then due


async def prepare(
    store: Store, start: int, *, gpus: int | None, rate: float | None, seed: int, config: SimulationConfig,
) -> tuple[Fleet, Simulation]:
    """The fleet the catalog allows, and its simulation from `start` (Unix seconds)."""
    catalog, _ = await store.catalog()
    fleet = choose_fleet(catalog, start, gpus, seed)
    return fleet, Simulation(fleet.gpus, catalog, start, seed, rate, config)


async def publish(publisher: Publisher, reports: list[Report], ingest_id: str, counts: Counts) -> None:
    """Send reports in their order; count them once the broker has them all."""
    if not reports:
        return
    await publisher.publish((report.raw for report in reports), ingest_id, batch_max_events=BATCH_MAX_EVENTS)
    counts.add(reports)


async def run(
    publisher: Publisher, simulation: Simulation, ingest_id: str, *, start: int, duration: float | None,
    clock: Callable[[], float], sleep: Callable[[float], Awaitable[None]], stopped: Callable[[], bool],
    on_progress: Callable[[Counts, float], Awaitable[None]], progress_seconds: float,
) -> tuple[Counts, int]:
    """Send the simulation's reports as they fall due, until `stopped()` or `start +
    duration`; then finish it. Returns the counts and the end (Unix seconds, exclusive)."""
    counts = Counts()
    end = None if duration is None else start + duration
    next_progress = start + progress_seconds
    while not stopped():
        now = clock()
        if end is not None and now >= end:
            break
        await publish(publisher, simulation.advance(int(now)), ingest_id, counts)
        if now >= next_progress:
            await on_progress(counts, now - start)
            next_progress = max(next_progress + progress_seconds, now)
        wake = math.floor(clock()) + 1 + TICK_LAG_SECONDS
        if end is not None:
            wake = min(wake, end)
        await sleep(max(0.0, wake - clock()))
    finished = int(clock())
    if end is not None:
        finished = min(finished, math.floor(end))
    finished = max(finished, start)
    await publish(publisher, simulation.finish(finished), ingest_id, counts)
    return counts, finished
