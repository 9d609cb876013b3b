"""Bad input never stops a worker: every event is rejected with its reason and kept.

Given a running stack with the scenario's catalog, when files of hostile or invalid
lines are ingested, then each line is counted under the right reason, its original
bytes are in the dead-letter table (whole within 1 MiB, else their first 4 KiB with
their size and SHA-256), and the worker keeps running.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime

import orjson
import pytest

from ledger.domain.records import RAW_PREFIX_BYTES
from schemas.wire import MAX_EVENT_BYTES
from tests.db import fetch
from tests.scenario import SCENARIOS

pytestmark = pytest.mark.infra

CATALOG = SCENARIOS / "alliance-2026-q3" / "catalog.toml"


def _now_rfc3339(offset_s: int = -600) -> str:
    return datetime.fromtimestamp(time.time() + offset_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event(**changes) -> dict:
    document = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "//sakura/test",
        "type": "gpu.usage.v1",
        "time": _now_rfc3339(),
        "data": {
            "provider": "sakura", "reseller": "kddi", "tenant": "acme",
            "gpu_uuid": "GPU-bad-input-0", "sku": "H200", "seconds": 1,
        },
    }
    data_changes = changes.pop("data", {})
    document.update(changes)
    document["data"].update(data_changes)
    for key in [k for k, v in document.items() if v is DROP]:
        del document[key]
    for key in [k for k, v in document["data"].items() if v is DROP]:
        del document["data"][key]
    return document


DROP = object()


def line(document) -> bytes:
    return orjson.dumps(document)


SCHEMA_CASES = {
    "specversion 0.3": line(event(specversion="0.3")),
    "specversion number": line(event(specversion=1.0)),
    "type other": line(event(type="gpu.usage.v2")),
    "id missing": line(event(id=DROP)),
    "id empty": line(event(id="")),
    "id number": line(event(id=7)),
    "source empty": line(event(source="")),
    "time garbage": line(event(time="yesterday")),
    "time second 60": line(event(time="2026-10-03T12:00:60Z")),
    "time no offset": line(event(time="2026-10-03T12:00:00")),
    "time feb 30": line(event(time="2026-02-30T12:00:00Z")),
    "data string": line(event() | {"data": "x"}),
    "provider empty": line(event(data={"provider": ""})),
    "reseller number": line(event(data={"reseller": 5})),
    "sku missing": line(event(data={"sku": DROP})),
    "tenant too long": line(event(data={"tenant": "t" * 65})),
    "tenant tab": line(event(data={"tenant": "a\tb"})),
    "tenant non-ascii": line(event(data={"tenant": "ａ"})),
    "gpu_uuid space": line(event(data={"gpu_uuid": "GPU 1"})),
    "gpu_uuid too long": line(event(data={"gpu_uuid": "G" * 129})),
    "seconds string": line(event(data={"seconds": "60"})),
    "seconds float": b'{"specversion":"1.0","id":"f","source":"//s","type":"gpu.usage.v1","time":"2026-10-03T12:00:00Z","data":{"provider":"sakura","reseller":"kddi","tenant":"a","gpu_uuid":"G","sku":"H200","seconds":60.0}}',
    "seconds exponent": b'{"specversion":"1.0","id":"f","source":"//s","type":"gpu.usage.v1","time":"2026-10-03T12:00:00Z","data":{"provider":"sakura","reseller":"kddi","tenant":"a","gpu_uuid":"G","sku":"H200","seconds":6e1}}',
    "seconds fraction": line(event(data={"seconds": 1.5})),
    "seconds bool": line(event(data={"seconds": True})),
    "seconds zero": line(event(data={"seconds": 0})),
    "seconds 3601": line(event(data={"seconds": 3601})),
}

MALFORMED_CASES = {
    "binary garbage": bytes(range(256)).replace(b"\n", b"") * 4,
    "five megabytes": b'{"pad":"' + b"x" * (5 * 1024 * 1024) + b'"}',
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "nested 65 levels": b'{"a":' * 64 + b"{}" + b"}" * 64,
    "NaN": b'{"a": NaN}',
    "lone surrogate": b'{"a": "\\ud800"}',
    "huge number": b'{"a": 1e400}',
    "top-level array": b"[1, 2]",
    "not UTF-8": b'{"a": "\xff"}',
}


def test_every_bad_line_is_rejected_with_its_reason_and_kept(stack, tmp_path):
    stack.run("catalog", "load", str(CATALOG))
    cases = {**{k: ("schema", v) for k, v in SCHEMA_CASES.items()},
             **{k: ("malformed", v) for k, v in MALFORMED_CASES.items()}}
    cases["unknown member"] = ("unknown_member", line(event(data={"provider": "nobody-here"})))
    cases["unknown sku"] = ("unknown_sku", line(event(data={"sku": "TPU9"})))
    cases["future"] = ("future", line(event(time=_now_rfc3339(+3600))))
    cases["too late"] = ("too_late", line(event(time="2020-01-01T00:00:00Z")))
    cases["no agreement"] = ("no_agreement", line(event(data={"provider": "highreso", "sku": "B200"})))
    cases["valid"] = ("accepted", line(event()))
    path = tmp_path / "bad.ndjson"
    path.write_bytes(b"\n".join(raw for _, raw in cases.values()) + b"\n")

    counts = stack.json("ingest", str(path), "--wait", "--timeout", "300")

    expected_reasons: dict[str, int] = {}
    for reason, _ in cases.values():
        expected_reasons[reason] = expected_reasons.get(reason, 0) + 1
    accepted = expected_reasons.pop("accepted")
    assert counts == {
        "received": len(cases), "accepted": accepted, "duplicate": 0, "rejected": expected_reasons,
    }
    # Each is kept with its reason: whole within 1 MiB, else its first 4 KiB, size and hash.
    stored = {
        bytes(row["raw_sha256"]): (row["reason"], bytes(row["raw"]), row["raw_bytes"])
        for row in fetch(stack.database_url, "SELECT raw, raw_sha256, raw_bytes, reason FROM dead_letters")
    }
    for name, (reason, raw) in cases.items():
        if reason != "accepted":
            kept = raw if len(raw) <= MAX_EVENT_BYTES else raw[:RAW_PREFIX_BYTES]
            assert stored.get(hashlib.sha256(raw).digest()) == (reason, kept, len(raw)), name
    assert stack.components()["worker-1"]["running"]


def test_a_worker_survives_bad_records_from_a_members_own_producer(stack):
    """Records that `ingest` would never write: an empty value, a bad batch, a batch of non-objects."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    batch = [("content-type", b"application/cloudevents-batch+json")]
    records = [
        (b"", []),
        (b"[not json", batch),
        (b'{"an": "object, not an array"}', batch),
        (b'[1, "two", {"three": 3}]', batch),
        (b"[ " + line(event(data={"gpu_uuid": "GPU-member-batch"})) + b" ]", batch),
    ]

    async def send():
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
        await producer.start()
        try:
            for value, headers in records:
                await producer.send_and_wait("gpu.usage", value, headers=headers)
        finally:
            await producer.stop()

    before = fetch(stack.database_url, "SELECT coalesce(sum(received), 0) AS n FROM intake_tallies WHERE ingest_id = ''")[0]["n"]
    asyncio.run(send())
    # 1 (empty) + 1 (bad JSON) + 1 (not an array) + 3 (elements) + 1 (valid element)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = fetch(
            stack.database_url,
            "SELECT coalesce(sum(received), 0) AS received, coalesce(sum(malformed), 0) AS malformed,"
            " coalesce(sum(accepted), 0) AS accepted FROM intake_tallies WHERE ingest_id = ''",
        )[0]
        if rows["received"] - before >= 7:
            break
        time.sleep(0.2)
    assert rows["received"] - before == 7
    assert rows["accepted"] >= 1
    assert stack.components()["worker-1"]["running"]
