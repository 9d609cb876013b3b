"""The month benchmark runs every monthly step on a tiny alliance and prints every figure.

Not a timed test: it checks that `make bench-month` still works through the real stack
(every event of its files counted, the bundle verified, documents written) and that
its table names every step with a figure, never how fast anything was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.infra, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ROWS = (
    "ingest month.ndjson --wait", "ingest late.ndjson --wait", "GET /v1/usage over the month, 1 client",
    "GET /v1/usage over the month, cached", "GET /v1/usage over the month, uncached", "settle (open statement)",
    "settle --close", "report capacity", "export (auditor bundle)", "verify BUNDLE (independent auditor)",
    "verify --db", "documents (every member)",
)


def test_the_month_benchmark_measures_every_step(tmp_path):
    results = tmp_path / "month.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench.month", "--gpus", "5", "--days", "1", "--workers", "1",
         "--api-clients", "2", "--api-seconds", "1", "--results", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = json.loads(results.read_text())
    steps, config = figures["steps"], figures["config"]
    assert set(steps) == {"ingest", "api", "open", "close", "capacity", "export", "verify", "verify_db", "documents"}
    main, late = steps["ingest"]["counts"], steps["ingest"]["late"]["counts"]
    assert main["received"] + late["received"] == steps["ingest"]["all_events"] == config["events"] + config["resent"] + config["rereported"]
    assert main["accepted"] > 0 and steps["close"]["lines"] > 0
    for name in ("open", "close", "capacity", "export", "verify", "verify_db", "documents"):
        assert steps[name]["seconds"] > 0 and steps[name]["vm_hwm_mib"] > 0, name
    assert steps["export"]["bundle_bytes"] > 0 and steps["documents"]["pdfs"] > 0
    for kind in ("single_client", "cached", "uncached"):
        load = steps["api"][kind]
        assert (load.get("latency") or load)["p99_ms"] is not None, kind
    assert steps["api"]["cached"]["errors"] == 0  # new queries may meet the per-token rate (429), a figure
    assert {"api", "worker-1", "broker"} <= set(figures["stack_memory"])
    assert figures["storage"]["database_bytes"] > 0
    table = completed.stdout
    for row in ROWS:
        line = next((line for line in table.splitlines() if line.strip().startswith(row)), None)
        assert line is not None and "skipped" not in line, row
    assert "database " in table and "largest tables" in table
