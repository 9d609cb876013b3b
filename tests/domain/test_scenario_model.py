"""Given the public scenario, when the pure domain runs its steps, then every output equals expected.json."""

import time

import pytest

from tests.model import InMemoryLedger
from tests.scenario import batch_lines, comparable, expected_base, normalized, scenario_dirs

# A whole public scenario in this process: seconds each, left to make test (not test-fast).
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("directory", scenario_dirs(), ids=lambda p: p.name)
def test_scenario_through_the_pure_domain(directory):
    want = expected_base(directory)
    ledger = InMemoryLedger()
    ledger.load_catalog((directory / "catalog.toml").read_bytes())
    now_ms = int(time.time() * 1000)
    got = {
        "ingest1": ledger.ingest(batch_lines(directory, "batch1"), now_ms),
        "settle_sep": ledger.settle("2026-09", close=True),
        "ingest2": ledger.ingest(batch_lines(directory, "batch2"), now_ms),
        "settle_sep_again": ledger.settle("2026-09"),
        "settle_oct": ledger.settle("2026-10", close=True),
        "capacity_sep": ledger.capacity("2026-09"),
        "capacity_oct": ledger.capacity("2026-10"),
    }
    for step in want:
        assert comparable(got[step], want[step]) == normalized(want[step]), step
