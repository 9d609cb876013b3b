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
from tests.scenario import batch_lines, comparable, expected_base, normalized, scenario_dirs
from tests.service.conftest import LoopbackPublisher, deliver, load_catalog

# A whole public scenario in this process: seconds each, left to make test (not test-fast).
pytestmark = pytest.mark.slow


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
        "capacity_sep": await reports.capacity(store, "2026-09"),
        "capacity_oct": await reports.capacity(store, "2026-10"),
    }
    want = expected_base(directory)
    assert set(want) <= set(got)
    for step in want:
        assert comparable(got[step], want[step]) == normalized(want[step]), step

