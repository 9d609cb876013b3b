"""CloudEvents binary content mode on Kafka, judged as the structured event it stands for.

Given what the official CloudEvents SDK (`cloudevents` 2.2) writes for a usage event in
binary mode (`ce_` headers, `data` as the value), when a worker unpacks and checks it,
then its verdict is the structured event's, and its received bytes (what a dead letter
keeps and a replay judges) are that structured event. Given hostile binary records, then
SPEC.md's verdicts: a value over 1 MiB, not JSON or too deep is `malformed`; a value that
is JSON but not an object, a missing `ce_id`, an attribute header that is not UTF-8 are
`schema`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from cloudevents.core.bindings import kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from ledger.domain import binary_mode, events
from ledger.domain.records import Record, unpack
from schemas.wire import BATCH_CONTENT_TYPE, CONTENT_TYPE_HEADER
from tests.factories import load, on_time_ms, usage_event

CATALOG = load()
EVENT = usage_event()
RECEIPT_MS = on_time_ms(EVENT)


def sdk_event(**attributes) -> CloudEvent:
    """The factories' valid usage event as the SDK builds it (its `time` is a datetime)."""
    base = {
        "specversion": "1.0", "id": EVENT["id"], "source": EVENT["source"], "type": EVENT["type"],
        "time": datetime(2026, 10, 3, 12, 0, 0, tzinfo=UTC),
    }
    return CloudEvent(base | attributes, dict(EVENT["data"]))


def kafka_record(headers: dict[str, bytes], value: bytes | None) -> Record:
    """A record as the worker reads it (`streams.app.to_record`: names lower-cased)."""
    return Record("gpu.usage", 0, 7, RECEIPT_MS, value or b"", {k.lower(): v for k, v in headers.items()})


def judged(record: Record) -> tuple[str, object, bytes]:
    """(outcome so far, the verdict, the received bytes) of a record's one event."""
    (item,) = unpack(record)
    verdict = item.verdict
    if isinstance(verdict, dict):
        verdict = events.check(verdict, RECEIPT_MS, CATALOG)
    outcome = verdict.reason if isinstance(verdict, events.Rejection) else "valid"
    return outcome, verdict, item.raw


def binary(**changes) -> tuple[dict[str, bytes], bytes]:
    message = kafka.to_binary(sdk_event(), JSONFormat())
    headers = dict(message.headers)
    for name, value in changes.items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return headers, message.value


def test_the_sdks_binary_and_structured_kafka_messages_are_the_same_usage():
    event = sdk_event(subject="ノード 42 / 100%")  # an extension of any text: ignored
    as_binary = kafka.to_binary(event, JSONFormat())
    as_structured = kafka.to_structured(event, JSONFormat())
    assert "ce_specversion" in as_binary.headers and b"specversion" not in as_binary.value
    binary_outcome, binary_usage, raw = judged(kafka_record(as_binary.headers, as_binary.value))
    structured_outcome, structured_usage, _ = judged(kafka_record(as_structured.headers, as_structured.value))
    assert binary_outcome == structured_outcome == "valid"
    assert binary_usage == structured_usage
    # The received bytes are the structured event: the attributes and the value as sent.
    kept = orjson.loads(raw)
    assert kept["subject"] == "ノード 42 / 100%" and kept["data"] == EVENT["data"]
    assert raw.endswith(b'"data":' + as_binary.value + b"}")


def test_a_ce_specversion_header_makes_a_record_binary_whatever_its_content_type():
    headers, value = binary()
    for content_type in (b"application/json", BATCH_CONTENT_TYPE, b"application/cloudevents+json"):
        outcome, _, raw = judged(kafka_record(headers | {CONTENT_TYPE_HEADER: content_type}, value))
        assert outcome == "valid"
        assert orjson.loads(raw)["datacontenttype"] == content_type.decode()


@pytest.mark.parametrize(("changes", "value", "reason", "detail"), [
    ({"ce_id": None}, None, events.SCHEMA, "id is not a non-empty string"),
    ({"ce_id": b""}, None, events.SCHEMA, "id is not a non-empty string"),
    ({"ce_specversion": b"0.3"}, None, events.SCHEMA, 'specversion is not "1.0"'),
    ({"ce_time": b"yesterday"}, None, events.SCHEMA, "time is not an RFC 3339 date-time"),
    ({"ce_source": b"//sakura/\xff\xfe"}, None, events.SCHEMA, 'header "ce_source" is not UTF-8'),
    ({"ce_subject": b"\xc3"}, None, events.SCHEMA, 'header "ce_subject" is not UTF-8'),
    ({}, b"[]", events.SCHEMA, "data is not an object"),
    ({}, b'"text"', events.SCHEMA, "data is not an object"),
    ({}, b"", events.MALFORMED, "binary mode, the value (data): not JSON"),
    ({}, b"{'provider': 'sakura'}", events.MALFORMED, "binary mode, the value (data): not JSON"),
    ({}, b"[" * 65 + b"]" * 65, events.MALFORMED, "nested deeper than 64 levels"),
    ({}, b'"' + b"x" * (2 << 20) + b'"', events.MALFORMED, f"{(2 << 20) + 2} bytes, more than {1 << 20}"),
])
def test_hostile_binary_records_get_spec_verdicts(changes, value, reason, detail):
    headers, good_value = binary(**changes)
    outcome, verdict, _ = judged(kafka_record(headers, good_value if value is None else value))
    assert outcome == reason
    assert detail in verdict.detail


def test_the_value_goes_through_check_1_before_any_header_is_read():
    headers, _ = binary(ce_source=b"\xff")
    outcome, verdict, raw = judged(kafka_record(headers, b"not json"))
    assert outcome == events.MALFORMED and verdict.detail.startswith("binary mode, the value (data): not JSON")
    assert raw.startswith(b'{"specversion":"1.0",') and raw.endswith(b'"data":not json}')  # attributes kept


def test_a_value_that_is_not_json_but_would_close_the_kept_object_is_kept_alone():
    forged = b'1,"data":' + orjson.dumps(EVENT["data"])  # not JSON alone; spliced, it would be
    headers, _ = binary()
    outcome, _, raw = judged(kafka_record(headers, forged))
    assert (outcome, raw) == (events.MALFORMED, forged)
    assert judged(Record(None, None, None, RECEIPT_MS, raw, {}))[0] == events.MALFORMED


@pytest.mark.parametrize("changes", [
    {}, {"ce_specversion": b"0.3"}, {"ce_id": None}, {"ce_type": b"gpu.usage.v2"},
])
@pytest.mark.parametrize("value", [
    None, b"[]", b"null", b'{"provider": "nobody"}', b"not json", b"[" * 65 + b"]" * 65,
    b'{"seconds": 1, "seconds": 2}', b'1,"data":{"provider":"sakura"}', b"",
])
def test_the_received_bytes_judged_as_a_structured_event_give_the_same_verdict(changes, value):
    # What a replay does with a dead letter: its bytes, with no headers, as a structured event.
    headers, good_value = binary(**changes)
    record = kafka_record(headers, good_value if value is None else value)
    outcome, verdict, raw = judged(record)
    replayed_outcome, replayed, _ = judged(Record(None, None, None, RECEIPT_MS, raw, {}))
    assert replayed_outcome == outcome
    assert replayed == verdict or replayed.reason == verdict.reason


def test_a_header_that_is_not_utf8_is_kept_as_sent_and_cannot_pass_a_replay():
    headers, value = binary(ce_subject=b'a"b\\c\x01\xff')
    outcome, _, raw = judged(kafka_record(headers, value))
    assert outcome == events.SCHEMA
    assert b'"subject":"a\\"b\\\\c\\u0001\xff"' in raw  # escaped, the bad byte itself kept
    # As a structured event these bytes are not UTF-8 JSON: a replay finds them malformed,
    # never billable (SPEC.md's structured-mode verdict for the same bytes).
    assert judged(Record(None, None, None, RECEIPT_MS, raw, {}))[0] == events.MALFORMED


def test_splicing_the_value_never_lets_a_header_or_value_forge_another_attribute():
    headers, value = binary(ce_subject=b'x","data":{"provider":"kddi"},"y":"')
    outcome, usage, raw = judged(kafka_record(headers, value))
    assert outcome == "valid" and usage.provider == "sakura"
    assert orjson.loads(raw)["subject"] == 'x","data":{"provider":"kddi"},"y":"'
    # A ce_data header is not `data`: the value is.
    headers, value = binary(ce_data=b'{"provider":"kddi"}')
    assert judged(kafka_record(headers, value))[1].provider == "sakura"


def test_structured_records_never_read_their_headers_as_attributes():
    as_structured = kafka.to_structured(sdk_event(), JSONFormat())
    headers = dict(as_structured.headers) | {"ce_id": b"ignored", "ce_type": b"other"}
    (item,) = unpack(kafka_record(headers, as_structured.value))
    assert item.raw == as_structured.value  # no ce_specversion: structured, bytes as sent
    assert binary_mode.attribute_headers({"content-type": b"a/b", "ce_x": b"1", "other": b"2"}) == [
        ("datacontenttype", b"a/b"), ("x", b"1"),
    ]
