"""The raw consumer's count of the events a record carries (bench.month's broker read rate)."""

from aiokafka.structs import ConsumerRecord

from bench.phases.raw_consumer import record_events
from schemas.wire import BATCH_CONTENT_TYPE, CONTENT_TYPE_HEADER, SINGLE_CONTENT_TYPE, encode_batch


def _record(value: bytes, headers: list) -> ConsumerRecord:
    return ConsumerRecord("gpu.usage", 0, 0, 0, 0, b"k", value, None, len(b"k"), len(value), headers)


def test_a_batch_record_counts_its_elements():
    raws = [b'{"id":"a"}', b'{"id":"b,\\n"}', b'{"id":"c"}']
    assert record_events(_record(encode_batch(raws), [(CONTENT_TYPE_HEADER, BATCH_CONTENT_TYPE)])) == 3


def test_a_single_event_or_unlabelled_record_counts_one():
    value = encode_batch([b"{}", b"{}"])
    assert record_events(_record(value, [(CONTENT_TYPE_HEADER, SINGLE_CONTENT_TYPE)])) == 1
    assert record_events(_record(value, [])) == 1
