"""The short chaos run (`python -m bench.chaos --short`): the public scenario under each
fault once, on a stack of its own, with every difference against the expected outputs 0.

`make chaos` runs both scenarios, each fault several times.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.chaos import DUPLICATE_FLOOD
from bench.faults import FAULTS, WHOLE_AGAIN_TIMEOUT

pytestmark = [pytest.mark.infra, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_every_fault_once_loses_nothing(tmp_path):
    results = tmp_path / "chaos.md"
    completed = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--short", "--results", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=1500,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    rows = [line.split(" | ") for line in results.read_text().splitlines()[2:]]
    assert len(rows) == len(FAULTS) + 1  # and the duplicate flood
    for scenario, fault, times, events, seconds, yen, recovered in rows:
        assert (scenario, times) == ("alliance-2026-q3", "1")
        assert (events, seconds, yen) == ("0", "0", "0"), fault
        if fault == DUPLICATE_FLOOD:
            assert float(recovered) == 0, "nothing was injected: nothing to recover from"
        else:  # each fault takes the stack down for a while (a kill: the supervisor's second)
            assert 0 < float(recovered) <= WHOLE_AGAIN_TIMEOUT, fault
