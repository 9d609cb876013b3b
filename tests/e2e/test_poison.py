"""No record stops the ledger: poison on the usage topic, through the real workers.

Given a running stack, when a member's own producer writes records that are valid JSON
but cannot be stored as text (a NUL in a member id), dated in year 9999, with a NUL in
the ingest header, empty (a tombstone), or a batch of far more elements than a record may
carry, then every worker keeps running, every received event of the ingest is counted
as accepted, duplicate or rejected, and usage sent afterwards is billed as usual.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas.wire import BATCH_CONTENT_TYPE, CONTENT_TYPE_HEADER, INGEST_HEADER, encode_batch
from tests.db import fetch
from tests.e2e.test_bad_input import event
from tests.scenario import SCENARIOS

pytestmark = pytest.mark.infra

TOPIC = "gpu.usage"
YEAR_9999_MS = 253402300799000


def send(stack, records: list[dict]) -> None:
    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, max_request_size=32 << 20)
        await producer.start()
        try:
            for record in records:
                await producer.send_and_wait(
                    TOPIC, record.get("value"), key=record.get("key"),
                    timestamp_ms=record.get("timestamp_ms"), headers=record.get("headers", []),
                )
        finally:
            await producer.stop()

    asyncio.run(run())


def counts(stack, ingest_id: str) -> dict:
    found = fetch(stack.database_url, "SELECT coalesce(sum(received), 0) AS received, "
                  "coalesce(sum(accepted), 0) AS accepted, coalesce(sum(malformed), 0) AS malformed, "
                  "coalesce(sum(unknown_member), 0) AS unknown_member, coalesce(sum(future), 0) AS future "
                  "FROM intake_tallies WHERE ingest_id = $1", ingest_id)
    return dict(found[0])


def wait_for(stack, ingest_id: str, received: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = counts(stack, ingest_id)
        if found["received"] >= received or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_poison_records_leave_every_worker_running_and_every_event_counted(make_stack, tmp_path):
    stack = make_stack(workers=2)
    stack.run("catalog", "load", str(SCENARIOS / "alliance-2026-q3" / "catalog.toml"))
    ingest_id = uuid.uuid4().hex
    ours = [(INGEST_HEADER, ingest_id.encode())]
    batch = [(CONTENT_TYPE_HEADER, BATCH_CONTENT_TYPE), *ours]
    nul_member = orjson.dumps(event(data={"reseller": "kd\u0000di", "gpu_uuid": "GPU-poison-1"}))
    far_future = orjson.dumps(event(time="9999-12-31T23:00:00Z", data={"gpu_uuid": "GPU-poison-2"}))
    send(stack, [
        {"value": nul_member, "headers": ours},  # valid JSON that no text column can hold
        {"value": far_future, "headers": ours, "timestamp_ms": YEAR_9999_MS},  # dated into year 9999
        {"value": b"{}", "headers": [(INGEST_HEADER, b"x\x00y")]},  # a NUL in the ingest id
        {"value": None, "key": b"GPU-poison-3", "headers": ours},  # a tombstone
        {"value": b"[" + b"0," * 20_000 + b"0]", "headers": batch},  # 20,001 tiny elements
        {"value": encode_batch([nul_member, far_future]), "headers": batch},
    ])
    found = wait_for(stack, ingest_id, 6)
    # The NUL member id is unknown, year 9999 is in the future whatever the record says,
    # the tombstone and the oversized batch are malformed, the NUL ingest id counts as none.
    assert found == {"received": 6, "accepted": 0, "malformed": 2, "unknown_member": 2, "future": 2}
    assert all(c["running"] for c in stack.json("dev", "status")["components"])
    # And the ledger bills on: an ordinary event afterwards is accepted.
    path = tmp_path / "after.ndjson"
    path.write_bytes(orjson.dumps(event(data={"gpu_uuid": "GPU-poison-after"})) + b"\n")
    assert stack.json("ingest", str(path), "--wait", "--timeout", "120")["accepted"] == 1
    assert all(c["running"] for c in stack.json("dev", "status")["components"])


def test_records_compressed_with_any_kafka_codec_are_metered(make_stack):
    """A member's producer may compress its batches with any codec Kafka defines: a worker
    that could not read one would stop on that record and hold its partition."""
    stack = make_stack(workers=1)
    stack.run("catalog", "load", str(SCENARIOS / "alliance-2026-q3" / "catalog.toml"))
    ingest_id = uuid.uuid4().hex
    headers = [(INGEST_HEADER, ingest_id.encode())]
    codecs = ("gzip", "snappy", "lz4", "zstd")

    async def run():
        for number, codec in enumerate(codecs):
            producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, compression_type=codec)
            await producer.start()
            try:
                value = orjson.dumps(event(id=f"e-{codec}", data={"gpu_uuid": f"GPU-codec-{number}"}))
                await producer.send_and_wait(TOPIC, value, key=f"GPU-codec-{number}".encode(), headers=headers)
            finally:
                await producer.stop()

    asyncio.run(run())
    found = wait_for(stack, ingest_id, len(codecs), timeout=60)
    assert found["received"] == found["accepted"] == len(codecs)
    assert all(c["running"] for c in stack.json("dev", "status")["components"])
