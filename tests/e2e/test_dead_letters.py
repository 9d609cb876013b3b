"""Dead letters: listed, replayed after a catalog fix, each replayed and counted once.

Given a stack whose catalog lacks one retail price, events that need it are rejected
`no_price`; `dlq list` shows them; once the price is loaded, `dlq replay` bills them and
a second replay replays nothing. A replay is judged at the event's original receipt
time and from the dead letter's stored bytes; a record on the topic cannot ask for a
replay (the header that once did is ignored) and the worker carries on. Through the
API, members see and replay only what is theirs, and auditors replay nothing. A replay
rejected again refers to the first dead letter's bytes; a dead letter that keeps only a
prefix of its event is never replayed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from schemas.wire import INGEST_HEADER
from tests.db import fetch
from tests.factories import ms, usage_event
from tests.scenario import scenario_dirs

pytestmark = pytest.mark.infra

SCENARIO = scenario_dirs()[0]
TOPIC = "gpu.usage"
DAY_MS = 86_400_000
HORIZON_DAYS = 1000  # the scenario catalog's acceptance_horizon_days
MISSING_PRICE = '[[retail_prices]]\nreseller = "sakura"\nsku = "GB200"\n'


def catalog_without_sakura_gb200() -> str:
    blocks = (SCENARIO / "catalog.toml").read_text().split("\n\n")
    kept = [b for b in blocks if not b.strip().startswith(MISSING_PRICE.strip())]
    assert len(kept) == len(blocks) - 1, "the scenario catalog changed: pick another price to drop"
    return "\n\n".join(kept)


@pytest.fixture(scope="module")
def ledger(make_stack, tmp_path_factory):
    """A stack whose catalog is the scenario's minus the retail price of sakura's GB200."""
    stack = make_stack()
    folder = tmp_path_factory.mktemp("dlq")
    (folder / "partial.toml").write_text(catalog_without_sakura_gb200())
    stack.run("catalog", "load", str(folder / "partial.toml"))
    return stack, folder


def event_line(**fields) -> bytes:
    fields.setdefault("event_id", str(uuid.uuid4()))
    return json.dumps(usage_event(**fields)).encode()


def ingest(stack, folder, lines: list[bytes]) -> dict:
    path = folder / f"{uuid.uuid4().hex}.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return stack.json("ingest", str(path), "--wait", "--timeout", "120")


def tally(stack, ingest_id: str) -> dict:
    row = fetch(
        stack.database_url,
        "SELECT coalesce(sum(received), 0) AS received, coalesce(sum(accepted), 0) AS accepted, "
        "coalesce(sum(malformed), 0) AS malformed, coalesce(sum(schema), 0) AS schema, "
        "coalesce(sum(future), 0) AS future, coalesce(sum(too_late), 0) AS too_late "
        "FROM intake_tallies WHERE ingest_id = $1",
        ingest_id,
    )[0]
    return dict(row)


def wait_until(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def send_records(stack, records: list[dict]) -> None:
    """Write records straight to the usage topic, as any member's producer may."""

    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, max_request_size=32 << 20,
                                    compression_type="zstd")
        await producer.start()
        try:
            for record in records:
                await producer.send_and_wait(
                    TOPIC, record["value"], key=record.get("key"),
                    timestamp_ms=record.get("timestamp_ms"), headers=record["headers"],
                )
        finally:
            await producer.stop()

    asyncio.run(run())


def dead_letters_of(stack, ingest_id: str) -> list:
    """Each with the bytes it keeps (its own, or those of the dead letter it refers to)."""
    return fetch(
        stack.database_url,
        "SELECT d.id, d.reason, d.received_ms, coalesce(o.raw, d.raw) AS raw, length(d.raw) AS own_bytes, d.raw_of "
        "FROM dead_letters d LEFT JOIN dead_letters o ON o.id = d.raw_of WHERE d.ingest_id = $1 ORDER BY d.id",
        ingest_id,
    )


def replay_outcomes(stack, ids: list[int]) -> dict[int, str]:
    rows = fetch(
        stack.database_url,
        "SELECT dead_letter_id, outcome FROM dead_letter_replays WHERE dead_letter_id = ANY($1::bigint[])",
        ids,
    )
    return {row["dead_letter_id"]: row["outcome"] for row in rows}


def test_no_price_events_are_billed_once_replayed_after_the_price_is_loaded(ledger):
    stack, folder = ledger
    # Given events that need the missing price: kddi's GPU resold by sakura, and sakura's own.
    resold = [
        event_line(time=f"2026-11-02T0{h}:00:00Z", seconds=3600, provider="kddi",
                   reseller="sakura", tenant="sak-dlq", gpu_uuid="GPU-DLQ-K1", sku="GB200")
        for h in range(3)
    ]
    own = [event_line(time="2026-11-02T00:00:00Z", seconds=3600, provider="sakura",
                      reseller="sakura", tenant="sak-dlq", gpu_uuid="GPU-DLQ-S1", sku="GB200")]
    counts = ingest(stack, folder, resold + own)
    assert counts == {"received": 4, "accepted": 0, "duplicate": 0, "rejected": {"no_price": 4}}

    # When they are listed, then each shows its reason, bytes and parties, not replayed.
    listed = stack.json("dlq", "list", "--reason", "no_price")
    items = [i for i in listed["items"] if "sak-dlq" in i["raw"]]
    assert sorted(i["raw"].encode() for i in items) == sorted(resold + own)
    assert {(i["provider"], i["reseller"]) for i in items} == {("kddi", "sakura"), ("sakura", "sakura")}
    assert all(not i["replayed"] and i["reason"] == "no_price" for i in items)
    assert all(i["received_at"].endswith("Z") and i["raw_bytes"] == len(i["raw"]) for i in items)
    ids = [i["id"] for i in items]

    # When the price is loaded and the dead letters replayed, then they are all accepted.
    stack.run("catalog", "load", str(SCENARIO / "catalog.toml"))
    replayed = stack.json("dlq", "replay", "--reason", "no_price")
    assert replayed["replayed"] == 4 and replayed["skipped_already_replayed"] == 0
    assert replayed["received"] == 4 and replayed["accepted"] == 4 and replayed["rejected"] == {}
    assert replay_outcomes(stack, ids) == {i: "accepted" for i in ids}

    # Then the statement bills them.
    lines = stack.json("settle", "2026-11")["lines"]
    billed = {(line["provider"], line["reseller"]): line["gpu_seconds"]
              for line in lines if line["sku"] == "GB200" and line["tenant"] == "sak-dlq"}
    assert billed == {("kddi", "sakura"): 3 * 3600, ("sakura", "sakura"): 3600}

    # When the same dead letters are replayed again, then nothing is replayed or counted.
    again = stack.json("dlq", "replay", *map(str, ids), "--wait")  # --wait is still accepted
    assert again["replayed"] == 0 and again["skipped_already_replayed"] == 4
    assert again["received"] == 0
    assert stack.json("dlq", "replay", "--reason", "no_price")["replayed"] == 0
    assert stack.json("settle", "2026-11")["lines"] == lines
    # The first rejection stays counted where it was.
    assert tally(stack, counts_ingest_id(stack, ids[0]))["received"] == 4
    listed = stack.json("dlq", "list", "--reason", "no_price")
    assert all(i["replayed"] and i["replay_outcome"] == "accepted" for i in listed["items"] if i["id"] in ids)


def counts_ingest_id(stack, dead_letter_id: int) -> str:
    return fetch(stack.database_url, "SELECT ingest_id FROM dead_letters WHERE id = $1", dead_letter_id)[0]["ingest_id"]


def test_a_replay_is_judged_at_the_original_receipt_time_from_the_stored_bytes(ledger):
    stack, _ = ledger
    start = "2026-11-20T00:00:00Z"
    early = dict(time=start, provider="sakura", reseller="sakura", tenant="sak-time", sku="H200")
    long_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - (HORIZON_DAYS + 1) * 86400))
    # Given an event received a day before it ran (future) and one received after the
    # acceptance horizon (too_late).
    ingest_id = uuid.uuid4().hex
    headers = [(INGEST_HEADER, ingest_id.encode())]
    send_records(stack, [
        {"value": event_line(gpu_uuid="GPU-DLQ-FUTURE", **early), "headers": headers,
         "timestamp_ms": ms(start) - DAY_MS},
        {"value": event_line(gpu_uuid="GPU-DLQ-LATE", **{**early, "time": long_ago}), "headers": headers},
    ])
    wait_until(lambda: tally(stack, ingest_id)["received"] == 2, "the two events")
    rejected = {row["reason"]: row for row in dead_letters_of(stack, ingest_id)}
    assert set(rejected) == {"future", "too_late"}
    future, late = rejected["future"], rejected["too_late"]

    # When both are replayed through the CLI, a month later than the future one arrived:
    replayed = stack.json("dlq", "replay", str(future["id"]), str(late["id"]))

    # Then each is judged as on arrival: still future, still too_late, nothing billed.
    assert replayed["rejected"] == {"future": 1, "too_late": 1} and replayed["received"] == 2
    assert replay_outcomes(stack, [future["id"], late["id"]]) == {future["id"]: "future", late["id"]: "too_late"}
    billed = fetch(stack.database_url, "SELECT count(*) AS n FROM claims WHERE gpu_uuid IN ('GPU-DLQ-FUTURE', 'GPU-DLQ-LATE')")
    assert billed[0]["n"] == 0
    # And each new rejection is a new dead letter with the original bytes and receipt time,
    # which it refers to rather than copies.
    again = {row["reason"]: row for row in dead_letters_of(stack, replayed["ingest_id"])}
    for reason, original in (("future", future), ("too_late", late)):
        assert (again[reason]["raw"], again[reason]["received_ms"]) == (original["raw"], original["received_ms"])
        assert (again[reason]["own_bytes"], again[reason]["raw_of"]) == (0, original["id"])


def test_a_replay_header_on_the_topic_is_ignored_and_the_worker_carries_on(ledger):
    stack, folder = ledger
    # Given a dead letter (seconds out of range: schema).
    counts = ingest(stack, folder, [event_line(gpu_uuid="GPU-DLQ-SCHEMA", seconds=0)])
    assert counts["rejected"] == {"schema": 1}
    (dead,) = fetch(stack.database_url, "SELECT id FROM dead_letters WHERE position($1::bytea IN raw) > 0",
                    b"GPU-DLQ-SCHEMA")
    # When records on the topic carry the header that once asked for a replay, naming
    # that dead letter, an unknown one, and something that is not a number:
    ingest_id = uuid.uuid4().hex

    def forged(dead_letter_id: bytes, value: bytes) -> dict:
        return {"key": b"GPU-DLQ-SCHEMA", "value": value,
                "headers": [(INGEST_HEADER, ingest_id.encode()), ("gpuledger-replay", dead_letter_id)]}

    send_records(stack, [
        forged(str(dead["id"]).encode(), b"{}"),
        forged(b"999999999999", b"not even json"),
        forged(b"abc", event_line(gpu_uuid="GPU-DLQ-FORGED", time="2026-11-03T00:00:00Z")),
    ])
    wait_until(lambda: tally(stack, ingest_id)["received"] >= 3, "the records")

    # Then each is judged as the ordinary event it is, and no dead letter is replayed.
    assert tally(stack, ingest_id) == {"received": 3, "accepted": 1, "malformed": 1, "schema": 1,
                                       "future": 0, "too_late": 0}
    assert replay_outcomes(stack, [dead["id"]]) == {}
    assert all(c["running"] for c in stack.json("dev", "status")["components"])
    # And the CLI refuses to replay what does not exist.
    refused = stack.run("dlq", "replay", "999999999999", check=False)
    assert refused.returncode == 2 and b"no such dead letters: 999999999999" in refused.stderr


# -- through the API ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(ledger):
    stack, folder = ledger
    url = stack.env_values()["GPULEDGER_API_URL"]
    tokens = {m: stack.json("token", "create", "--member", m)["token"] for m in ("kddi", "sakura", "highreso")}
    tokens["auditor"] = stack.json("token", "create", "--role", "auditor")["token"]
    tokens["admin"] = stack.json("token", "create", "--role", "admin")["token"]
    # sakura's GPU resold by kddi, before kddi has a GB200 price (no_price); highreso's
    # own GPU with an unknown SKU (unknown_sku).
    counts = ingest(stack, folder, [
        event_line(time="2026-09-15T00:00:00Z", provider="sakura", reseller="kddi",
                   tenant="kdd-api", gpu_uuid="GPU-DLQ-API-S", sku="GB200"),
        event_line(time="2026-11-15T00:00:00Z", provider="highreso", reseller="highreso",
                   tenant="hig-api", gpu_uuid="GPU-DLQ-API-H", sku="Z900"),
    ])
    assert counts["rejected"] == {"no_price": 1, "unknown_sku": 1}
    rows = fetch(stack.database_url, "SELECT id, raw FROM dead_letters WHERE position($1::bytea IN raw) > 0",
                 b"GPU-DLQ-API-")
    ids = {("sakura" if b"API-S" in bytes(r["raw"]) else "highreso"): r["id"] for r in rows}
    return stack, url, tokens, ids


def call(api, who: str, method: str, path: str, **kwargs) -> httpx.Response:
    _, url, tokens, _ = api
    return httpx.request(method, f"{url}{path}", headers={"Authorization": f"Bearer {tokens[who]}"},
                         timeout=30, **kwargs)


def all_items(api, who: str, **params) -> list[dict]:
    items, cursor = [], None
    while True:
        response = call(api, who, "GET", "/v1/dead-letters",
                        params={**params, "limit": 2, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


@pytest.mark.parametrize("member", ["kddi", "sakura", "highreso"])
def test_a_member_sees_only_dead_letters_naming_it(api, member):
    ids = api[3]
    items = all_items(api, member)
    assert items and all(member in (i["provider"], i["reseller"]) for i in items)
    seen = {i["id"] for i in items}
    assert (ids["sakura"] in seen) == (member in ("sakura", "kddi"))
    assert (ids["highreso"] in seen) == (member == "highreso")
    assert [i["id"] for i in items] == sorted(seen)  # pages in id order, no repeats


def test_auditors_see_all_and_replay_nothing(api):
    ids = api[3]
    seen = {i["id"] for i in all_items(api, "auditor")}
    assert set(ids.values()) <= seen
    assert {i["id"] for i in all_items(api, "auditor", reason="unknown_sku")} >= {ids["highreso"]}
    refused = call(api, "auditor", "POST", "/v1/dead-letters/replay", json={"ids": [ids["sakura"]]})
    assert refused.status_code == 403


def test_a_member_replays_only_its_own_gpus_dead_letters(api):
    stack, _, _, ids = api
    path = "/v1/dead-letters/replay"
    # The reseller sees sakura's dead letter but may not replay it.
    assert call(api, "kddi", "POST", path, json={"ids": [ids["sakura"]]}).status_code == 403
    # What a member cannot see is not found, and nothing else is said about the rest.
    hidden = call(api, "kddi", "POST", path, json={"ids": [ids["sakura"], ids["highreso"]]})
    assert hidden.status_code == 404
    assert str(ids["highreso"]) in hidden.text and str(ids["sakura"]) not in hidden.text
    assert call(api, "highreso", "POST", path, json={"ids": [ids["sakura"]]}).status_code == 404
    # A filter covers only the member's own GPUs.
    assert call(api, "sakura", "POST", path, json={"reason": "unknown_sku"}).json()["replayed"] == 0
    # Bad requests.
    assert call(api, "sakura", "POST", path, json={}).status_code == 400
    assert call(api, "sakura", "POST", path, json={"ids": [ids["sakura"]], "reason": "no_price"}).status_code == 400
    assert call(api, "sakura", "POST", path, json={"reason": "nope"}).status_code == 400
    assert call(api, "sakura", "POST", path, json={"ids": list(range(1, 10_002))}).status_code == 413

    # The provider replays its own: once.
    accepted = call(api, "sakura", "POST", path, json={"ids": [ids["sakura"]]})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["replayed"] == 1 and accepted.json()["skipped_already_replayed"] == 0
    wait_until(lambda: replay_outcomes(stack, [ids["sakura"]]), "the replay")
    assert replay_outcomes(stack, [ids["sakura"]]) == {ids["sakura"]: "no_price"}  # kddi still has no price
    assert tally(stack, accepted.json()["ingest_id"])["received"] == 1
    again = call(api, "sakura", "POST", path, json={"ids": [ids["sakura"]]}).json()
    assert again["replayed"] == 0 and again["skipped_already_replayed"] == 1

    # An admin replays anyone's.
    admin = call(api, "admin", "POST", path, json={"ids": [ids["highreso"]]})
    assert admin.status_code == 202 and admin.json()["replayed"] == 1
    wait_until(lambda: replay_outcomes(stack, [ids["highreso"]]), "the admin's replay")
    listed = {i["id"]: i for i in all_items(api, "highreso", reason="unknown_sku")}
    assert listed[ids["highreso"]]["replayed"] is True
    assert listed[ids["highreso"]]["replay_outcome"] == "unknown_sku"


def test_a_dead_letter_that_keeps_only_a_prefix_is_never_replayed(api):
    """Given an event over 1 MiB from a member's own producer, its dead letter keeps the
    first 4 KiB, its size and hash: named by id, a replay is refused (CLI exit 2, API 409),
    and a replay by filter leaves it out and counts it."""
    stack, _, _, _ = api
    ingest_id = uuid.uuid4().hex
    event = json.loads(event_line(time="2026-11-15T00:00:00Z", provider="sakura", reseller="sakura",
                                  tenant="sak-huge", gpu_uuid="GPU-DLQ-HUGE", sku="H200"))
    event["padding"] = "x" * (2 << 20)
    huge = json.dumps(event).encode()
    send_records(stack, [{"value": huge, "headers": [(INGEST_HEADER, ingest_id.encode())]}])
    wait_until(lambda: tally(stack, ingest_id)["received"] == 1, "the huge event's verdict")
    assert tally(stack, ingest_id)["malformed"] == 1
    (dead,) = dead_letters_of(stack, ingest_id)
    assert bytes(dead["raw"]) == huge[:4096] and dead["own_bytes"] == 4096

    refused = stack.run("dlq", "replay", str(dead["id"]), check=False)
    assert refused.returncode == 2 and b"cannot be replayed" in refused.stderr
    by_api = call(api, "sakura", "POST", "/v1/dead-letters/replay", json={"ids": [dead["id"]]})
    assert by_api.status_code == 409 and by_api.json()["error"]["code"] == "not_replayable"
    listed = {i["id"]: i for i in all_items(api, "sakura", reason="malformed")}[dead["id"]]
    assert (listed["raw_whole"], listed["raw_bytes"]) == (False, len(huge))
    assert listed["raw_sha256"] == hashlib.sha256(huge).hexdigest()
    by_filter = call(api, "sakura", "POST", "/v1/dead-letters/replay", json={"reason": "malformed"}).json()
    assert by_filter["skipped_not_replayable"] >= 1 and not replay_outcomes(stack, [dead["id"]])
