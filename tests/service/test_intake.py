"""The intake service on the in-memory store: redeliveries, retries, replays, counting.

Given records as a worker takes them, when `Intake.apply` decides them, then every
received event is accepted, duplicate or rejected, exactly once, whatever is redelivered.
"""

from __future__ import annotations

import orjson

from ledger.domain.access import OPERATOR
from ledger.domain.errors import ServiceUnavailable, StoreBusy
from ledger.domain.ports import DeadLetterFilter
from ledger.domain.records import Record
from ledger.service import deadletters
from ledger.service import ingest as ingest_service
from ledger.service.intake import Intake
from schemas.wire import CONTENT_TYPE_HEADER, INGEST_HEADER, SINGLE_CONTENT_TYPE
from tests.factories import DEFAULT_CATALOG, encode, ms, usage_event
from tests.service.conftest import TOPIC, LoopbackPublisher, deliver, load_catalog

RECEIVED_MS = ms("2026-10-03T13:00:00Z")


def record(offset: int, event: dict | bytes, partition: int = 0, ingest: str = "one", headers=None) -> Record:
    value = event if isinstance(event, bytes) else encode(event)
    found = {CONTENT_TYPE_HEADER: SINGLE_CONTENT_TYPE, INGEST_HEADER: ingest.encode()}
    return Record(TOPIC, partition, offset, RECEIVED_MS, value, {**found, **(headers or {})})


async def test_a_redelivered_batch_is_skipped_and_counted_once(store):
    await load_catalog(store, DEFAULT_CATALOG)
    intake = Intake(store)
    batch = [record(i, usage_event(time=f"2026-10-03T12:00:0{i}Z")) for i in range(3)]
    first = await intake.apply(batch)
    again = await intake.apply(batch)
    assert (first.received, first.outcomes["accepted"]) == (3, 3)
    assert (again.received, again.skipped_records) == (0, 3)
    assert (await ingest_service.tally(store, "one"))["accepted"] == 3


async def test_records_past_the_stored_position_are_applied_even_in_a_mixed_batch(store):
    await load_catalog(store, DEFAULT_CATALOG)
    intake = Intake(store)
    await intake.apply([record(0, usage_event())])
    result = await intake.apply([record(0, usage_event()), record(1, usage_event(gpu_uuid="GPU-2"))])
    assert (result.skipped_records, result.received, result.outcomes["accepted"]) == (1, 1, 1)


async def test_every_event_gets_a_verdict_and_rejections_keep_their_bytes(store):
    await load_catalog(store, DEFAULT_CATALOG)
    bad = b'{"specversion": "1.0", "id": 1}'
    result = await Intake(store).apply([record(0, usage_event()), record(1, bad), record(2, b"\xff\xfe")])
    assert dict(result.outcomes) == {"accepted": 1, "schema": 1, "malformed": 1}
    page = await deadletters.page(store, None)
    assert [item["raw"].encode() for item in page["items"]][:1] == [bad]
    tally = await ingest_service.tally(store, "one")
    assert tally == {"received": 3, "accepted": 1, "duplicate": 0, "rejected": {"malformed": 1, "schema": 1}}


async def test_a_busy_or_unavailable_store_is_retried_until_the_batch_is_written(store):
    await load_catalog(store, DEFAULT_CATALOG)
    failures = [StoreBusy("deadlock"), ServiceUnavailable("restarting")]
    real = store.intake

    def flaky():
        if failures:
            raise failures.pop(0)
        return real()

    store.intake = flaky
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    result = await Intake(store, sleep=sleep).apply([record(0, usage_event())])
    assert result.outcomes["accepted"] == 1 and slept == [0.05, 0.1]


async def test_a_catalog_loaded_between_batches_decides_the_next_one(store):
    await load_catalog(store, DEFAULT_CATALOG)
    intake = Intake(store)
    h100 = usage_event(sku="B200", time="2026-10-03T12:00:00Z")
    assert (await intake.apply([record(0, h100)])).outcomes == {"no_price": 1}
    await load_catalog(store, DEFAULT_CATALOG.replace(
        '"2026-12-01T00:00:00+09:00"', '"2026-12-01T00:00:00+09:00"'
    ) + '[[retail_prices]]\nreseller = "kddi"\nsku = "B200"\nyen_per_gpu_hour = "1"\neffective_from = "2026-01-01T00:00:00+09:00"\n')
    assert (await intake.apply([record(1, usage_event(sku="B200", gpu_uuid="GPU-9"))])).outcomes == {"accepted": 1}


async def test_a_replay_is_judged_from_the_stored_bytes_once(store):
    await load_catalog(store, DEFAULT_CATALOG)
    publisher = LoopbackPublisher(clock_ms=lambda: RECEIVED_MS)
    intake = Intake(store)
    await publisher.send_events([encode(usage_event(sku="B200"))], "one")
    await deliver(publisher, intake)
    dead = (await deadletters.page(store, None))["items"][0]
    assert dead["reason"] == "no_price"
    await load_catalog(store, DEFAULT_CATALOG + '[[retail_prices]]\nreseller = "kddi"\nsku = "B200"\nyen_per_gpu_hour = "1"\neffective_from = "2026-01-01T00:00:00+09:00"\n')
    first = await deadletters.replay(store, OPERATOR, ids=[dead["id"]])
    second = await deadletters.replay(store, OPERATOR, ids=[dead["id"]])
    assert (first["replayed"], first["accepted"]) == (1, 1)
    assert (await ingest_service.tally(store, first["ingest_id"]))["accepted"] == 1
    assert (second["replayed"], second["skipped_already_replayed"], second["received"]) == (0, 1, 0)
    assert await store.count_replayed(DeadLetterFilter()) == 1


async def test_a_replay_header_from_a_producer_is_ignored(store):
    """Given a record asking to replay a dead letter, then it is judged as an ordinary event."""
    await load_catalog(store, DEFAULT_CATALOG)
    intake = Intake(store)
    await intake.apply([record(0, usage_event(sku="B200"))])
    dead = (await deadletters.page(store, None))["items"][0]
    forged = {"gpuledger-replay": str(dead["id"]).encode()}
    result = await intake.apply([record(1, b"{}", headers=forged), record(2, usage_event(), headers=forged)])
    assert dict(result.outcomes) == {"schema": 1, "accepted": 1}
    assert await store.count_replayed(DeadLetterFilter()) == 0


async def test_a_batch_record_counts_each_element(store):
    await load_catalog(store, DEFAULT_CATALOG)
    publisher = LoopbackPublisher(clock_ms=lambda: RECEIVED_MS)
    lines = [orjson.dumps(usage_event(time=f"2026-10-03T12:00:{s:02d}Z")) for s in range(10)] + [b"[]", b"7"]
    published = await ingest_service.publish(store, publisher, lines, "batch", batch_max_events=4)
    await deliver(publisher, Intake(store))
    tally = await ingest_service.tally(store, "batch")
    assert published.received == tally["received"] == 12
    assert tally["accepted"] == 10 and tally["rejected"] == {"malformed": 2}


# -- who sent it (SPEC.md, check 4) -------------------------------------------------------


async def test_a_member_reports_only_its_own_gpus_and_a_replay_judges_it_as_that_members_again(store):
    """Given kddi (the reseller) sending usage of sakura's GPU on its own topic, then it is
    wrong_provider and nothing is billed; sakura's own event for the same seconds bills; a
    replay of kddi's dead letter is still kddi's, so still refused."""
    await load_catalog(store, DEFAULT_CATALOG)
    publisher = LoopbackPublisher(clock_ms=lambda: RECEIVED_MS)
    intake = Intake(store)
    await publisher.send_events([encode(usage_event(provider="sakura", reseller="kddi"))], "forged", sender="kddi")
    await publisher.send_events([encode(usage_event(provider="sakura", reseller="kddi"))], "own", sender="sakura")
    await deliver(publisher, intake)
    assert (await ingest_service.tally(store, "forged"))["rejected"] == {"wrong_provider": 1}
    assert (await ingest_service.tally(store, "own"))["accepted"] == 1
    dead = (await deadletters.page(store, None))["items"][0]
    assert dead["reason"] == "wrong_provider"
    replayed = await deadletters.replay(store, OPERATOR, ids=[dead["id"]])
    assert (replayed["received"], replayed["accepted"]) == (1, 0)
    assert (await ingest_service.tally(store, replayed["ingest_id"]))["rejected"] == {"wrong_provider": 1}


async def test_the_operators_usage_topic_may_report_any_providers_gpus(store):
    await load_catalog(store, DEFAULT_CATALOG)
    result = await Intake(store).apply([record(0, usage_event(provider="sakura", reseller="kddi"))])
    assert dict(result.outcomes) == {"accepted": 1}


async def test_an_oversize_event_over_http_keeps_its_sender(store):
    """Dead-lettered by the API itself (no broker takes 1 MiB), it is still the member's."""
    await load_catalog(store, DEFAULT_CATALOG)
    big = encode(usage_event(provider="sakura")).replace(b'"data"', b'"pad": "' + b"x" * (1 << 20) + b'", "data"')
    await ingest_service.accept_request(store, LoopbackPublisher(), [big], "http-1", "sakura")
    async with store.intake() as tx:
        targets = await tx.replay_targets([(await deadletters.page(store, None))["items"][0]["id"]])
    assert [t.sender for t in targets.values()] == ["sakura"]


# -- records that do not follow the stored position (step 2) -------------------------------


def at(offset: int, contiguous_from: int | None, gpu: str = "GPU-1") -> Record:
    event = usage_event(time=f"2026-10-03T12:{offset // 60 % 60:02d}:{offset % 60:02d}Z", gpu_uuid=gpu)
    return record(offset, event)._replace(contiguous_from=contiguous_from)


async def test_records_that_skip_offsets_never_applied_are_held_and_reported_as_a_gap(store):
    """Given offsets 0-1 applied, when records 5-6 arrive read from offset 5 (a fetch made
    before a rebalance, delivered after it), then nothing moves past 2: they are held, and
    the worker is told to read the partition again from 2; read from there, all is applied."""
    await load_catalog(store, DEFAULT_CATALOG)
    intake = Intake(store)
    assert (await intake.apply([at(0, 0), at(1, 1)])).outcomes["accepted"] == 2
    stale = await intake.apply([at(5, 5), at(6, 6), at(2, 2)])
    assert (stale.gaps, stale.held_records, stale.received) == ({(TOPIC, 0): 2}, 3, 0)
    async with store.intake() as tx:
        assert (await tx.positions(TOPIC, [0]))[0] == 2
    again = await intake.apply([at(i, i) for i in range(2, 7)])
    assert (again.gaps, again.outcomes["accepted"]) == ({}, 5)


async def test_a_fetch_that_starts_at_or_before_the_position_is_applied_from_there(store):
    await load_catalog(store, DEFAULT_CATALOG)
    intake = Intake(store)
    await intake.apply([at(0, 0), at(1, 1), at(2, 2)])
    result = await intake.apply([at(1, 1), at(2, 2), at(3, 2), at(4, 4)])  # 3 read across a marker at 2
    assert (result.skipped_records, result.outcomes["accepted"], result.gaps) == (2, 2, {})


async def test_a_partition_never_read_starts_at_zero_unless_its_log_starts_later(store):
    await load_catalog(store, DEFAULT_CATALOG)
    intake = Intake(store)
    assert (await intake.apply([at(7, 7)])).gaps == {(TOPIC, 0): 0}
    intake.log_starts[(TOPIC, 0)] = 7  # retention deleted 0..6 before the ledger read them
    assert (await intake.apply([at(7, 7)])).outcomes["accepted"] == 1


async def test_records_of_unknown_continuity_are_applied_as_before(store):
    """A replay or a record from a test has no contiguous_from: only redeliveries are skipped."""
    await load_catalog(store, DEFAULT_CATALOG)
    result = await Intake(store).apply([at(5, None), at(9, None)])
    assert (result.outcomes["accepted"], result.gaps) == (2, {})
