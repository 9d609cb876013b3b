"""The simulate loop on the in-memory store, with a clock that only moves when it sleeps.

Given a catalog with a GPU registry, when `ledger.service.simulate.run` publishes a
simulated fleet's reports through the loopback publisher and a worker's `Intake` decides
them, then nothing is rejected, every report of the first collector bills its seconds and
every re-send and second-collector report is counted as a duplicate, under the run's
ingest id.
"""

from __future__ import annotations

import pytest

from ledger.domain.errors import InputError
from ledger.domain.simulation import SimulationConfig
from ledger.service import ingest as ingest_service
from ledger.service import simulate
from ledger.service.intake import Intake
from tests.domain.test_registry import gpu, registry_catalog
from tests.factories import instant
from tests.service.conftest import LoopbackPublisher, deliver, load_catalog

START = instant("2026-12-01T10:00:00+09:00")
CATALOG = registry_catalog(*(gpu(f"GPU-{n}", provider=("sakura", "kddi")[n % 2]) for n in range(6)))
CONFIG = SimulationConfig(late_share=0.1, resend_share=0.1, second_collector_share=0.5)


class FakeClock:
    """Wall-clock time that passes only when the loop sleeps."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds


async def run(store, clock: FakeClock, publisher, *, duration=None, stopped=lambda: False, progress=None):
    fleet, simulation = await simulate.prepare(store, START, gpus=None, rate=None, seed=3, config=CONFIG)

    async def on_progress(counts, elapsed):
        if progress is not None:
            progress.append((counts.sent, round(elapsed)))

    counts, end = await simulate.run(
        publisher, simulation, "sim-test", start=START, duration=duration, clock=clock, sleep=clock.sleep,
        stopped=stopped, on_progress=on_progress, progress_seconds=60,
    )
    return fleet, counts, end


async def test_a_run_is_billed_once_with_every_copy_a_duplicate(store):
    await load_catalog(store, CATALOG)
    clock = FakeClock(START + 0.3)
    publisher = LoopbackPublisher(clock_ms=lambda: int(clock() * 1000))
    progress: list = []
    fleet, counts, end = await run(store, clock, publisher, duration=1200, progress=progress)
    assert (len(fleet.gpus), fleet.synthesised, end) == (6, 0, START + 1200)
    assert counts.late > 10 and counts.resent > 10 and counts.second_collector > 100
    assert [elapsed for _, elapsed in progress][:3] == [60, 120, 180]  # a line each interval
    await deliver(publisher, Intake(store, clock_ms=lambda: int(clock() * 1000)))
    tally = await ingest_service.tally(store, "sim-test")
    assert tally == {
        "received": counts.sent, "accepted": counts.reports,
        "duplicate": counts.resent + counts.second_collector, "rejected": {},
    }


async def test_a_stopped_run_sends_what_it_held_back(store):
    await load_catalog(store, CATALOG)
    clock = FakeClock(START)
    publisher = LoopbackPublisher(clock_ms=lambda: int(clock() * 1000))
    fleet, counts, end = await run(store, clock, publisher, stopped=lambda: clock() >= START + 30)
    assert end == START + 30 and counts.late > 0  # held for minutes, sent when the run stopped
    await deliver(publisher, Intake(store, clock_ms=lambda: int(clock() * 1000)))
    tally = await ingest_service.tally(store, "sim-test")
    assert (tally["received"], tally["accepted"], tally["rejected"]) == (counts.sent, counts.reports, {})


async def test_a_registry_too_small_is_refused_before_anything_is_sent(store):
    await load_catalog(store, CATALOG)
    with pytest.raises(InputError, match="only 6 registered GPUs"):
        await simulate.prepare(store, START, gpus=7, rate=None, seed=3, config=CONFIG)
