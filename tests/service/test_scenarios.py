"""Given each public scenario, when its steps run through the services on the in-memory
store, then every output equals expected.json: the whole ledger's logic, no stack.

The same steps run through the real broker, workers and PostgreSQL in
tests/e2e/test_scenario_pipeline.py; the two must agree.
"""

from __future__ import annotations

import orjson
import pytest

from ledger.memory.store import MemoryStore
from ledger.service import books, reports
from ledger.service import ingest as ingest_service
from ledger.service.intake import Intake
from tests.scenario import SCENARIOS, batch_lines, expected, normalized, scenario_dirs
from tests.service.conftest import LoopbackPublisher, deliver, load_catalog


async def ingest(store, publisher, intake, lines, name) -> dict:
    await ingest_service.publish(store, publisher, lines, name, batch_max_events=200)
    await deliver(publisher, intake)
    return await ingest_service.tally(store, name)


async def settle(store, period, close=False) -> dict:
    return orjson.loads(await books.statement(store, period, close=close))


@pytest.mark.parametrize("directory", scenario_dirs(), ids=lambda p: p.name)
async def test_scenario_through_the_services(directory):
    store, publisher = MemoryStore(), LoopbackPublisher()
    intake = Intake(store)
    await load_catalog(store, (directory / "catalog.toml").read_bytes())
    got = {
        "ingest1": await ingest(store, publisher, intake, batch_lines(directory, "batch1"), "one"),
        "settle_sep": await settle(store, "2026-09", close=True),
        "ingest2": await ingest(store, publisher, intake, batch_lines(directory, "batch2"), "two"),
        "settle_sep_again": await settle(store, "2026-09"),
        "settle_oct": await settle(store, "2026-10", close=True),
    }
    want = expected(directory)
    for step in got:
        assert normalized(got[step]) == normalized(want[step]), step


async def test_registry_scenario_counts_and_capacity_through_the_services():
    """alliance-2026-q4's steps that need no credits: its two ingests and its two capacity
    reports (after step 6, so late September usage counts in September)."""
    directory = SCENARIOS / "alliance-2026-q4"
    store, publisher = MemoryStore(), LoopbackPublisher()
    intake = Intake(store)
    await load_catalog(store, (directory / "catalog.toml").read_bytes())
    got = {"ingest1": await ingest(store, publisher, intake, batch_lines(directory, "batch1"), "one")}
    await books.statement(store, "2026-09", close=True)
    got["ingest2"] = await ingest(store, publisher, intake, batch_lines(directory, "batch2"), "two")
    await books.statement(store, "2026-10", close=True)
    got["capacity_sep"] = await reports.capacity(store, "2026-09")
    got["capacity_oct"] = await reports.capacity(store, "2026-10")
    want = expected(directory)
    for step, value in got.items():
        assert normalized(value) == normalized(want[step]), step
