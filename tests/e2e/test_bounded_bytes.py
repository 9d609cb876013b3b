"""No record, however it is compressed, fills a worker's memory or the database's disk.

Given a running stack with two workers, when a member's producer writes four batches of
200 MiB each (zstd, gzip, lz4, zstd) to one partition, which one fetch reads together
(written while the workers are stopped), and a zstd batch that decompresses to more than
1 GiB to each other partition (so that each worker meets at least one), then every worker
keeps running with its peak RSS (VmHWM, /proc) under WORKER_PEAK_RSS_BOUND, the database
grows by less than 1 MiB, each batch is counted as one received event, `malformed`, whose
dead letter keeps no bytes but the compressed batch's size and SHA-256, and the usage sent
after them is billed to the second.

Before the bound, one such 200 MiB batch took a worker from 65 to 665 MiB and grew
PostgreSQL by 207 MiB (the dead letter kept the whole value), and one over 1 GiB could
not be stored at all: the worker exited, met it again, and its partition stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time

import orjson
import pytest

from tests.db import fetch
from tests.e2e.test_bad_input import event
from tests.kafka_batches import HEADER, bomb, produce
from tests.scenario import SCENARIOS

pytestmark = pytest.mark.infra

TOPIC = "gpu.usage"
MIB = 1 << 20
# A worker's peak: Faust and the ledger at rest (about 100 MiB), one batch being refused
# (the 32 MiB bound, twice for a zstd frame that declares a large window), a poll (32 MiB)
# and what is handed on unacked (64 MiB). Before the bound one 200 MiB batch cost 665 MiB.
WORKER_PEAK_RSS_BOUND = 256 * MIB
HONEST_EVENTS = 200
HONEST_SECONDS = 30


def proc_status(pid: int, field: str) -> int:
    """A /proc/PID/status figure in bytes (VmRSS, VmHWM: the peak resident size)."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def database_size(stack) -> int:
    return fetch(stack.database_url, "SELECT pg_database_size(current_database()) AS size")[0]["size"]


def unread_tally(stack) -> dict:
    """What the workers decided for records without an ingest id: the batches' records."""
    row = fetch(stack.database_url, "SELECT coalesce(sum(received), 0) AS received, "
                "coalesce(sum(malformed), 0) AS malformed FROM intake_tallies WHERE ingest_id = ''")[0]
    return dict(row)


def wait_for(condition, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found or time.monotonic() > deadline:
            assert found, f"timed out waiting for {what}"
            return found
        time.sleep(0.3)


def send_while_stopped(stack, workers: list[dict], by_partition: dict[int, list[bytes]]) -> None:
    """Write the batches while the workers are stopped, so that one fetch reads them together."""
    for worker in workers:
        os.kill(worker["pid"], signal.SIGSTOP)
    try:
        for partition, batches in by_partition.items():
            asyncio.run(produce(stack.kafka_bootstrap, TOPIC, partition, batches))
    finally:
        for worker in workers:
            os.kill(worker["pid"], signal.SIGCONT)


def test_compressed_bombs_cost_bounded_memory_and_disk_and_the_ledger_bills_on(make_stack, tmp_path):
    stack = make_stack(workers=2)
    stack.run("catalog", "load", str(SCENARIOS / "alliance-2026-q3" / "catalog.toml"))
    workers = [c for c in stack.components().values() if c["role"] == "worker"]
    assert len(workers) == 2
    over_1_gib = bomb("zstd", (1 << 30) + MIB)
    four = [bomb(codec, 200 * MIB) for codec in ("zstd", "gzip", "lz4", "zstd")]
    before = database_size(stack)

    send_while_stopped(stack, workers, {0: four, 1: [over_1_gib], 2: [over_1_gib], 3: [over_1_gib]})
    tally = wait_for(lambda: (found := unread_tally(stack))["received"] >= 7 and found, "the seven batches' verdicts")
    bombs_grew = database_size(stack) - before

    # Every batch is one received event, malformed, whose dead letter says what it was.
    assert tally == {"received": 7, "malformed": 7}
    letters = fetch(stack.database_url, "SELECT detail, length(raw) AS kept, raw_bytes, raw_sha256 "
                    "FROM dead_letters WHERE reason = 'malformed' ORDER BY id")
    compressed = sorted(one[HEADER.size:] for one in [*four, over_1_gib, over_1_gib, over_1_gib])
    assert sorted((letter["raw_bytes"], bytes(letter["raw_sha256"])) for letter in letters) == sorted(
        (len(c), hashlib.sha256(c).digest()) for c in compressed)
    assert all(letter["kept"] == 0 and "decompresses to more than 33554432 bytes" in letter["detail"]
               and bytes(letter["raw_sha256"]).hex() in letter["detail"] for letter in letters)

    # The usage sent afterwards is billed to the second.
    path = tmp_path / "after.ndjson"
    path.write_bytes(b"".join(
        orjson.dumps(event(id=f"after-{i}", data={"gpu_uuid": f"GPU-after-bombs-{i}", "seconds": HONEST_SECONDS}))
        + b"\n" for i in range(HONEST_EVENTS)))
    counts = stack.json("ingest", str(path), "--wait", "--timeout", "120")
    assert (counts["received"], counts["accepted"]) == (HONEST_EVENTS, HONEST_EVENTS)
    billed = fetch(stack.database_url, "SELECT coalesce(sum(seconds), 0) AS billed FROM claims "
                   "WHERE gpu_uuid LIKE 'GPU-after-bombs-%'")[0]["billed"]
    assert billed == HONEST_EVENTS * HONEST_SECONDS
    grew = database_size(stack) - before

    peaks = {w["name"]: proc_status(w["pid"], "VmHWM") for w in workers}
    print(f"\nbombs: {(1 << 30) + MIB:,} bytes of zstd in {len(over_1_gib):,}; four of 200 MiB "
          f"in {', '.join(f'{len(b):,}' for b in four)} bytes")
    print("workers' peak RSS (VmHWM): " + ", ".join(f"{name} {peak / MIB:.0f} MiB" for name, peak in peaks.items())
          + f" (bound {WORKER_PEAK_RSS_BOUND // MIB} MiB)")
    print(f"database grew {bombs_grew / 1024:.0f} KiB by the seven batches, {grew / 1024:.0f} KiB with "
          f"{HONEST_EVENTS} events after them")
    components = stack.components()
    assert all(c["running"] and c["restarts"] == 0 for c in components.values()), components
    assert all(peak < WORKER_PEAK_RSS_BOUND for peak in peaks.values()), peaks
    assert grew < MIB
