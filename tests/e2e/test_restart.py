"""The local stack restarts without losing or skipping usage.

Given a stack that ingested usage, when it is stopped (the embedded broker forgets its
topics) and started again on the same home, then the ledger keeps what it billed and
new usage is processed, not mistaken for records applied before the restart.
"""

from __future__ import annotations

import time

import orjson
import pytest

from ledger.domain.instants import format_utc
from tests.scenario import SCENARIOS

pytestmark = pytest.mark.infra

CATALOG = SCENARIOS / "alliance-2026-q3" / "catalog.toml"


def usage_file(path, gpu_prefix: str, count: int):
    start = int(time.time()) - 7200
    lines = [
        orjson.dumps({
            "specversion": "1.0", "id": f"{gpu_prefix}-{n}", "source": "//kddi/c", "type": "gpu.usage.v1",
            "time": format_utc(start + n * 60),
            "data": {"provider": "kddi", "reseller": "kddi", "tenant": "t", "gpu_uuid": f"{gpu_prefix}-{n % 3}",
                     "sku": "H200", "seconds": 60},
        })
        for n in range(count)
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_down_and_up_keeps_the_ledger_and_processes_new_usage(stack, tmp_path):
    stack.run("catalog", "load", str(CATALOG))
    first = stack.json("ingest", str(usage_file(tmp_path / "a.ndjson", "GPU-a", 30)), "--wait", "--timeout", "120")
    assert first["accepted"] == 30
    period = stack.json("settle", format_utc(int(time.time()))[:7])
    stack.down()
    stack.up()
    assert stack.json("settle", format_utc(int(time.time()))[:7]) == period
    second = stack.json("ingest", str(usage_file(tmp_path / "b.ndjson", "GPU-b", 20)), "--wait", "--timeout", "120")
    assert second == {"received": 20, "accepted": 20, "duplicate": 0, "rejected": {}}
    again = stack.json("ingest", str(tmp_path / "a.ndjson"), "--wait", "--timeout", "120")
    assert again == {"received": 30, "accepted": 0, "duplicate": 30, "rejected": {}}
