"""The pipeline benchmark runs end to end on a small load: every phase, every event counted.

Not a timed test: it checks that `make bench` still works and measures what it says
(phase b's events all accepted, phase d's Faust agents counted every record, phase e's
backlog drained), never how fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.infra, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_the_pipeline_benchmark_runs_every_phase(tmp_path):
    results = tmp_path / "pipeline.json"
    completed = subprocess.run(
        [
            sys.executable, "-m", "bench.pipeline",
            "--events", "4000", "--gpus", "40", "--backlog", "6000", "--results", str(results),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = json.loads(results.read_text())
    phases = figures["phases"]
    assert set(phases) == {"a_ingest", "b_single_records", "c_raw_consumer", "d_faust_ceiling", "e_backlog"}
    for name in ("a_ingest", "b_single_records"):
        assert phases[name]["counts"] == {"received": 4000, "accepted": 4000, "duplicate": 0, "rejected": {}}
    assert phases["c_raw_consumer"]["records"] == 4000
    assert phases["d_faust_ceiling"]["records"] == 4000
    assert phases["e_backlog"]["events"] == 6000
    assert figures["ratios"]["b_over_d"] > 0
    for worker in figures["memory"]["workers"].values():
        assert worker["peak_rss_sampled_mib"] > 0
    assert "d. stock Faust agents" in completed.stdout and "e. backlog" in completed.stdout
