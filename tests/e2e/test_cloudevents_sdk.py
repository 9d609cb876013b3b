"""A member's developer with the official CloudEvents SDK, through the real stack.

Given a running stack, when usage events made by the SDK (`cloudevents` 2.2) arrive in
binary and in structured content mode, over HTTP (`POST /v1/events`, a member's token)
and over Kafka (the usage topic), then each is billed once (sent twice: once accepted,
once a duplicate). When hostile binary records arrive (no `ce_id`, a header that is not
UTF-8, a value of `[]`, a value of 2 MiB), then each gets SPEC.md's verdict, every worker
keeps running, and a good event sent after them is billed. A binary event rejected for a
missing price is listed with its attributes and value, and billed once replayed after the
price is loaded.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from cloudevents.core.bindings import http, kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from schemas.wire import INGEST_HEADER
from tests.db import fetch
from tests.e2e.test_dead_letters import SCENARIO, catalog_without_sakura_gb200, replay_outcomes

pytestmark = pytest.mark.infra

TOPIC = "gpu.usage"
FORMAT = JSONFormat()


@pytest.fixture(scope="module")
def ledger(make_stack, tmp_path_factory):
    """A stack whose catalog lacks sakura's retail price of GB200, and a sakura token."""
    stack = make_stack()
    path = tmp_path_factory.mktemp("sdk") / "partial.toml"
    path.write_text(catalog_without_sakura_gb200())
    stack.run("catalog", "load", str(path))
    token = stack.json("token", "create", "--member", "sakura")["token"]
    return stack, token


def usage(gpu_uuid: str, seconds: int = 60, **data) -> CloudEvent:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    attributes = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "//sakura/sdk-test",
                  "type": "gpu.usage.v1", "time": start, "subject": "node 42 — 100%"}
    return CloudEvent(attributes, {"provider": "sakura", "reseller": "kddi", "tenant": "sdk", "gpu_uuid": gpu_uuid,
                                   "sku": "H200", "seconds": seconds} | data)


def produce(stack, messages: list[tuple[dict, bytes | None]], ingest_id: str) -> None:
    """Write (headers, value) records to the usage topic, as a member's producer would."""

    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, max_request_size=32 << 20)
        await producer.start()
        try:
            for headers, value in messages:
                listed = [(name, value if isinstance(value, bytes) else value.encode()) for name, value in headers.items()]
                await producer.send_and_wait(TOPIC, value, headers=[*listed, (INGEST_HEADER, ingest_id.encode())])
        finally:
            await producer.stop()

    asyncio.run(run())


def post(stack, token: str, headers: dict[str, str], body: bytes) -> httpx.Response:
    url = stack.env_values()["GPULEDGER_API_URL"]
    return httpx.post(f"{url}/v1/events", content=body, headers={**headers, "Authorization": f"Bearer {token}"},
                      timeout=30)


def outcomes(stack, ingest_id: str, received: int, timeout: float = 120) -> dict:
    """The ingest's counts per outcome, once `received` events of it were decided."""
    deadline = time.monotonic() + timeout
    while True:
        rows = fetch(stack.database_url, "SELECT * FROM intake_tallies WHERE ingest_id = $1", ingest_id)
        counts: dict = {}
        for row in rows:
            for name, value in dict(row).items():
                if isinstance(value, int) and value and name not in ("id", "partition"):
                    counts[name] = counts.get(name, 0) + value
        if counts.get("received", 0) >= received or time.monotonic() > deadline:
            return counts
        time.sleep(0.3)


def billed_seconds(stack, prefix: str) -> dict[str, int]:
    rows = fetch(stack.database_url, "SELECT gpu_uuid, sum(seconds) AS s FROM claims WHERE gpu_uuid LIKE $1 "
                 "GROUP BY gpu_uuid", prefix + "%")
    return {row["gpu_uuid"]: row["s"] for row in rows}


def workers_running(stack) -> bool:
    return all(c["running"] for c in stack.json("dev", "status")["components"])


def test_sdk_events_in_both_modes_over_kafka_are_each_billed_once(ledger):
    stack, _ = ledger
    binary, structured = usage("GPU-SDK-K-BIN"), usage("GPU-SDK-K-STR")
    as_binary = kafka.to_binary(binary, FORMAT)
    as_structured = kafka.to_structured(structured, FORMAT)
    assert "ce_specversion" in as_binary.headers and as_structured.headers["content-type"] == b"application/cloudevents+json"
    ingest_id = uuid.uuid4().hex
    messages = [(as_binary.headers, as_binary.value), (as_structured.headers, as_structured.value)]
    produce(stack, messages * 2, ingest_id)  # each sent twice: a collector's retry
    assert outcomes(stack, ingest_id, 4) == {"received": 4, "accepted": 2, "duplicate": 2}
    assert billed_seconds(stack, "GPU-SDK-K-") == {"GPU-SDK-K-BIN": 60, "GPU-SDK-K-STR": 60}


def test_sdk_events_in_both_modes_over_http_are_each_billed_once(ledger):
    stack, token = ledger
    messages = [http.to_binary(usage("GPU-SDK-H-BIN"), FORMAT), http.to_structured(usage("GPU-SDK-H-STR"), FORMAT)]
    assert messages[0].headers["ce-subject"] == "node%2042%20%E2%80%94%20100%25"  # percent-encoded
    decided = []
    for message in messages * 2:  # each sent twice: a client's retry
        answer = post(stack, token, message.headers, message.body)
        assert answer.status_code == 202, answer.text
        decided.append(outcomes(stack, answer.json()["ingest_id"], 1))
    accepted, duplicate = {"received": 1, "accepted": 1}, {"received": 1, "duplicate": 1}
    assert decided == [accepted, accepted, duplicate, duplicate]
    assert billed_seconds(stack, "GPU-SDK-H-") == {"GPU-SDK-H-BIN": 60, "GPU-SDK-H-STR": 60}
    # What the API refuses in binary mode, as it refuses such a structured body: before Kafka.
    bad = http.to_binary(usage("GPU-SDK-H-BAD"), FORMAT)
    answer = post(stack, token, bad.headers, b"[]")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_event"
    answer = post(stack, token, bad.headers | {"ce-source": "%FF%FE"}, bad.body)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_header"
    not_theirs = http.to_binary(usage("GPU-SDK-H-BAD", provider="kddi"), FORMAT)
    answer = post(stack, token, not_theirs.headers, not_theirs.body)
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "not_your_gpus"


def test_hostile_binary_records_get_spec_verdicts_and_the_worker_bills_on(ledger):
    stack, _ = ledger
    good = kafka.to_binary(usage("GPU-SDK-HOSTILE"), FORMAT)
    headers = dict(good.headers)
    without_id = {k: v for k, v in headers.items() if k != "ce_id"}
    ingest_id = uuid.uuid4().hex
    produce(stack, [
        (without_id, good.value),
        (headers | {"ce_subject": b"\xff\xfe node"}, good.value),
        (headers, b"[]"),
        (headers, b'{"pad": "' + b"x" * (2 << 20) + b'"}'),
    ], ingest_id)
    assert outcomes(stack, ingest_id, 4) == {"received": 4, "schema": 3, "malformed": 1}
    rows = fetch(stack.database_url, "SELECT reason, detail, raw_bytes, length(raw) AS kept FROM dead_letters "
                 "WHERE ingest_id = $1", ingest_id)  # unkeyed: any partition, any order
    found = {row["detail"]: row for row in rows}
    assert {(row["reason"], detail) for detail, row in found.items()} == {
        ("schema", "id is not a non-empty string"),
        ("schema", 'binary mode: header "ce_subject" is not UTF-8'),
        ("schema", "data is not an object"),
        ("malformed", f"binary mode, the value (data): {(2 << 20) + 11} bytes, more than {1 << 20}"),
    }
    (too_large,) = [row for row in rows if row["reason"] == "malformed"]
    assert too_large["raw_bytes"] > (2 << 20) + 11 and too_large["kept"] == 4096  # its prefix, size and hash
    head = fetch(stack.database_url, "SELECT raw FROM dead_letters WHERE ingest_id = $1 AND reason = 'malformed'",
                 ingest_id)[0]["raw"]
    assert bytes(head).startswith(b'{"specversion":"1.0","id":')  # the attributes come first
    assert b'"source":"//sakura/sdk-test","type":"gpu.usage.v1"' in bytes(head)
    assert workers_running(stack)
    after = uuid.uuid4().hex
    produce(stack, [(good.headers, good.value)], after)
    assert outcomes(stack, after, 1) == {"received": 1, "accepted": 1}
    assert workers_running(stack)


def test_a_binary_dead_letter_keeps_its_attributes_and_value_and_is_billed_once_replayed(ledger):
    stack, _ = ledger
    event = usage("GPU-SDK-REPLAY", reseller="sakura", sku="GB200")  # no price yet
    message = kafka.to_binary(event, FORMAT)
    ingest_id = uuid.uuid4().hex
    produce(stack, [(message.headers, message.value)], ingest_id)
    assert outcomes(stack, ingest_id, 1) == {"received": 1, "no_price": 1}
    (item,) = [i for i in stack.json("dlq", "list", "--reason", "no_price")["items"] if i["ingest_id"] == ingest_id]
    kept = orjson.loads(item["raw"])  # the event in structured mode: attributes and the value
    assert kept["id"] == event.get_id() and kept["subject"] == "node 42 — 100%"
    assert kept["data"] == orjson.loads(message.value)
    assert (item["provider"], item["reseller"]) == ("sakura", "sakura")

    stack.run("catalog", "load", str(SCENARIO / "catalog.toml"))
    replayed = stack.json("dlq", "replay", str(item["id"]))
    assert replayed["replayed"] == 1 and replayed["accepted"] == 1
    assert replay_outcomes(stack, [item["id"]]) == {item["id"]: "accepted"}
    assert billed_seconds(stack, "GPU-SDK-REPLAY") == {"GPU-SDK-REPLAY": 60}
    assert stack.json("dlq", "replay", str(item["id"]))["replayed"] == 0
