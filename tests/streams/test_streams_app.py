"""The worker's slicing of a take into transactions: every record once, in order, bounded
in bytes and in events; and the task dump an operator asks a stuck worker for."""

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.records import Record, UnreadBatch, unpack
from schemas.wire import BATCH_CONTENT_TYPE, CONTENT_TYPE_HEADER, MAX_BATCH_EVENTS, encode_batch
from streams import diagnostics
from streams.app import estimated_events, to_record, transactions


def record(offset: int, size: int, batch_events: int = 0) -> Record:
    if batch_events:
        return Record("gpu.usage", 0, offset, 0, encode_batch([b"1"] * batch_events),
                      {CONTENT_TYPE_HEADER: BATCH_CONTENT_TYPE})
    return Record("gpu.usage", 0, offset, 0, b"x" * size, {})


def test_empty_values_anywhere_are_kept():
    """Given an empty record first (a member's producer may send one), then it is in a chunk."""
    records = [record(0, 0), record(1, 0), record(2, 5)]
    assert transactions(records, 10, 100) == [records]


def test_a_batch_record_weighs_its_elements_at_most_the_cap():
    assert estimated_events(record(0, 0, batch_events=7)) == 7
    assert estimated_events(record(0, 10)) == 1
    assert estimated_events(record(0, 0, batch_events=MAX_BATCH_EVENTS + 5)) == MAX_BATCH_EVENTS


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 50)), max_size=40), st.integers(1, 40), st.integers(1, 60))
def test_every_record_once_in_order_and_chunks_bounded(shapes, max_bytes, max_events):
    records = [record(i, size, events) for i, (size, events) in enumerate(shapes)]
    chunks = transactions(records, max_bytes, max_events)
    assert [r for chunk in chunks for r in chunk] == records
    for chunk in chunks:
        assert chunk, "no empty chunk"
        if len(chunk) > 1:
            assert sum(len(r.value) for r in chunk) <= max_bytes
            assert sum(estimated_events(r) for r in chunk) <= max_events


class _Message:
    def __init__(self, headers, timestamp, value=b"v", topic="gpu.usage", timestamp_type=1) -> None:
        self.topic, self.partition, self.offset = topic, 1, 7
        self.headers, self.timestamp, self.value = headers, timestamp, value
        self.timestamp_type = timestamp_type


def read(message, trust: bool = False) -> Record:
    return to_record(message, "gpu.usage", trust_producer_time=trust)


def test_a_record_is_read_whatever_its_headers_and_timestamp_hold():
    """Given header names that are not UTF-8 and timestamps a producer chose, then the
    worker reads the record (names with replacement characters, no timestamp as None)."""
    record = read(_Message([(b"\xff\xfeKey", b"x"), ("Content-Type", None)], -0.001, None))
    assert record.headers == {"\ufffd\ufffdkey": b"x", "content-type": b""}
    assert record.timestamp_ms is None and record.value == b""
    assert read(_Message([], None)).timestamp_ms is None
    assert read(_Message([], 1.5)).timestamp_ms == 1500
    assert record.received_at(1000).timestamp_ms == 1000
    assert Record("t", 0, 0, 5000, b"", {}).received_at(1000).timestamp_ms == 1000
    assert Record("t", 0, 0, 500, b"", {}).received_at(1000).timestamp_ms == 500


def test_a_timestamp_the_broker_did_not_set_is_trusted_only_on_a_development_broker():
    """Given a record its producer dated (CreateTime), then a production worker judges it at
    its own clock (None), a worker on the embedded broker at the producer's time."""
    dated = _Message([], 1.5, timestamp_type=0)
    assert read(dated).timestamp_ms is None
    assert read(dated, trust=True).timestamp_ms == 1500
    assert read(_Message([], 1.5, timestamp_type=1)).timestamp_ms == 1500


@pytest.mark.parametrize("topic, sender", [
    ("gpu.usage", None), ("gpu.usage.sakura", "sakura"), ("gpu.usage.kddi", "kddi"),
    ("gpu.usage.Sakura", None), ("gpu.usage.", None), ("gpu.usagesakura", None),
])
def test_the_sender_is_the_member_whose_own_topic_a_record_came_on(topic, sender):
    assert read(_Message([], 1.5, topic=topic)).sender == sender


def test_a_batch_the_fetcher_did_not_decompress_reaches_the_ledger_as_such():
    """Its value is an empty UnreadBatch (streams.fetching): still that, not b""."""
    unread = UnreadBatch("zstd", 32_786, bytes(32))
    record = read(_Message([], 1.5, unread))
    assert record.value is unread
    (item,) = unpack(record)
    assert item.outcome == "malformed" and "zstd-compressed record batch" in item.verdict.detail


def test_the_task_dump_shows_the_whole_await_chain(capsys) -> None:
    async def innermost(event: asyncio.Event) -> None:
        await event.wait()

    async def middle(event: asyncio.Event) -> None:
        await innermost(event)

    async def scenario() -> None:
        event = asyncio.Event()
        task = asyncio.create_task(middle(event), name="metering")
        await asyncio.sleep(0)
        diagnostics.dump_tasks()
        event.set()
        await task

    asyncio.run(scenario())

    dump = capsys.readouterr().err
    chain = dump[dump.index("task metering:"):].splitlines()
    assert [line.rsplit(" in ", 1)[-1] for line in chain[1:4]] == ["middle", "innermost", "wait"]
    assert chain[4].startswith("  (awaiting")  # the future the task is suspended on


async def test_the_worker_consumer_bounds_a_poll_and_a_fetch_wait(tmp_path):
    """A poll returns at most MAX_POLL_RECORDS records (compressed fetches hold many
    times more events than their bytes say) and a fetch waits FETCH_MAX_WAIT_MS at most."""
    from ledger.settings import Settings
    from streams.app import FETCH_MAX_WAIT_MS, MAX_POLL_RECORDS, Worker, _faust_app

    settings = Settings(home=tmp_path, database_url=None, kafka_bootstrap="127.0.0.1:1")
    app = _faust_app(settings, Worker("worker-test", tmp_path / "faust", 4))
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert consumer._max_poll_records == MAX_POLL_RECORDS
        assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS
        # ...and every batch it reads decompresses within the bound (streams.fetching).
        from aiokafka.consumer import consumer as aiokafka_consumer
        from aiokafka.record._crecords import default_records

        from streams import codecs, fetching

        assert aiokafka_consumer.Fetcher is fetching.BoundedFetcher
        assert default_records.zstd_decode is codecs.zstd_decode
    finally:
        await consumer.stop()
