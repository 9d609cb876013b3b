"""Format /4's evidence lines (ledger/service/export_evidence.py): the hourly bitmaps of a GPU's
day as maximal runs of one attribution, and the seconds billed elsewhere as runs."""

from __future__ import annotations

import random

import orjson

from ledger.domain.metering import ClaimKey
from ledger.domain.ports import Evidence
from ledger.service.export_evidence import bit_runs, day_line, write_runs

DAY = 1_790_985_600  # 2026-10-03T00:00:00Z
ACME = ("sakura", "kddi", "acme", "H200")
BETA = ("sakura", "kddi", "beta", "H200")
FULL = (1 << 3600) - 1


def hour(offset: int, attribution=ACME, bits: int = FULL, elsewhere: int = 0, gpu: str = "GPU-1") -> Evidence:
    return Evidence(ClaimKey(gpu, DAY + offset * 3600, attribution, "2026-10", "2026-10"), bits, elsewhere)


def ones(low: int, high: int) -> int:
    return ((1 << (high - low)) - 1) << low


def test_bit_runs_are_the_maximal_runs_of_set_bits():
    assert bit_runs(0) == []
    assert bit_runs(FULL) == [(0, 3600)]
    assert bit_runs(ones(0, 1) | ones(2, 5) | ones(3599, 3600)) == [(0, 1), (2, 5), (3599, 3600)]
    generator = random.Random(20)
    for _ in range(200):
        bits = generator.getrandbits(3600) & generator.getrandbits(3600)
        rebuilt = 0
        for low, high in bit_runs(bits):
            rebuilt |= ones(low, high)
        assert rebuilt == bits


def test_a_day_of_full_hours_of_one_tenant_is_one_run():
    line = orjson.loads(day_line("GPU-1", DAY, [hour(n) for n in range(24)]))
    assert line == {"gpu_uuid": "GPU-1", "day": "2026-10-03",
                    "attributions": [["sakura", "kddi", "acme", "H200", "2026-10"]],
                    "seconds": 86_400, "billed": [[0, 86_400, 0]], "elsewhere": []}


def test_runs_continue_across_hours_and_change_with_the_attribution():
    hours = [
        hour(5, ACME, ones(1800, 3600)),
        hour(6, ACME, ones(0, 600)), hour(6, BETA, ones(600, 3000), elsewhere=ones(3000, 3600)),
        hour(7, BETA, ones(0, 100), elsewhere=ones(100, 3600)),
    ]
    line = orjson.loads(day_line("GPU-1", DAY, hours))
    assert line["attributions"] == [[*ACME, "2026-10"], [*BETA, "2026-10"]]
    assert line["billed"] == [[19800, 22200, 0], [22200, 24600, 1], [25200, 25300, 1]]
    assert line["elsewhere"] == [[24600, 25200], [25300, 28800]]
    assert line["seconds"] == 1800 + 600 + 2400 + 100


async def test_lines_are_written_one_per_gpu_and_utc_day():
    async def evidence():
        for item in (hour(23), hour(24), hour(25), hour(0, gpu="GPU-2")):
            yield item

    written: list[bytes] = []
    await write_runs(evidence(), written.append, None)
    lines = [orjson.loads(line) for line in written]
    assert [(line["gpu_uuid"], line["day"], line["billed"]) for line in lines] == [
        ("GPU-1", "2026-10-03", [[82800, 86400, 0]]),
        ("GPU-1", "2026-10-04", [[0, 7200, 0]]),
        ("GPU-2", "2026-10-03", [[0, 3600, 0]]),
    ]
