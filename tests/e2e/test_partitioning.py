"""No rule depends on keys or partitions.

Given two workers in one group and events of the same GPUs spread round-robin over
every partition, unkeyed, as members' own producers may send them (single events and
batches, with re-sends and partial overlaps but no conflicting claims), when they are
processed, then every statement equals the one the pure model computes from the same
events in any order.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from ledger.domain.instants import format_utc
from tests.db import fetch
from tests.model import InMemoryLedger
from tests.scenario import SCENARIOS

pytestmark = pytest.mark.infra

CATALOG = SCENARIOS / "alliance-2026-q3" / "catalog.toml"
ATTRIBUTIONS = [
    ("sakura", "kddi", "acme", "H200"),
    ("highreso", "kddi", "acme", "H100"),
    ("kddi", "kddi", "beta", "B200"),
    ("sakura", "highreso", "gamma", "B200"),
    ("kddi", "sakura", "delta", "GB200"),
]


def generate(rng: random.Random, now_s: int, count: int) -> list[bytes]:
    lines = []
    for n in range(count):
        gpu = rng.randrange(12)
        provider, reseller, tenant, sku = ATTRIBUTIONS[gpu % len(ATTRIBUTIONS)]
        start = now_s - 3 * 3600 + rng.randrange(0, 2 * 3600)
        document = {
            "specversion": "1.0", "id": f"e{n}", "source": "//test/collector", "type": "gpu.usage.v1",
            "time": format_utc(start),
            "data": {"provider": provider, "reseller": reseller, "tenant": tenant,
                     "gpu_uuid": f"GPU-part-{gpu}", "sku": sku, "seconds": rng.randrange(1, 900)},
        }
        lines.append(orjson.dumps(document))
    # Collectors re-send: exact duplicates, anywhere in the stream.
    lines += rng.sample(lines, count // 4)
    rng.shuffle(lines)
    return lines


def test_unkeyed_events_over_all_partitions_give_the_models_numbers(make_stack):
    stack = make_stack(workers=2)
    stack.run("catalog", "load", str(CATALOG))
    rng = random.Random(20261128)
    now_s = int(time.time())
    lines = generate(rng, now_s, 600)
    ingest_id = uuid.uuid4().hex

    async def send():
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
        await producer.start()
        try:
            partitions = sorted(await producer.partitions_for("gpu.usage"))
            assert len(partitions) > 1
            headers = [("gpuledger-ingest", ingest_id.encode())]
            batch_headers = headers + [("content-type", b"application/cloudevents-batch+json")]
            index = 0
            while index < len(lines):
                partition = partitions[index % len(partitions)]
                if rng.random() < 0.3:
                    chunk = lines[index : index + 5]
                    value = b"[ " + b" , ".join(chunk) + b" ]"
                    await producer.send(
                        "gpu.usage", value, partition=partition, headers=batch_headers
                    )
                    index += len(chunk)
                else:
                    await producer.send(
                        "gpu.usage", lines[index], partition=partition, headers=headers
                    )
                    index += 1
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(send())
    deadline = time.monotonic() + 180
    query = "SELECT coalesce(sum(received), 0) AS n FROM intake_tallies WHERE ingest_id = $1"
    while fetch(stack.database_url, query, ingest_id)[0]["n"] < len(lines):
        assert time.monotonic() < deadline, "the workers did not process every event"
        time.sleep(0.2)
    assert fetch(stack.database_url, query, ingest_id)[0]["n"] == len(lines)

    model = InMemoryLedger()
    model.load_catalog(CATALOG.read_bytes())
    counts = model.ingest(lines, now_s * 1000)
    assert counts["rejected"] == {}, "the generated events must all be valid"
    periods = {model.catalog.calendar.period_of(now_s - 3 * 3600), model.catalog.calendar.period_of(now_s)}
    for period in sorted(periods):
        assert stack.json("settle", period) == model.settle(period), period
    billed = fetch(stack.database_url, "SELECT sum(seconds) AS n FROM claims")[0]["n"]
    assert billed == sum(line["gpu_seconds"] for p in periods for line in model.settle(p)["lines"])
