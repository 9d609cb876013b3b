"""streams.fetching: a fetch read by aiokafka, bounded in decompressed bytes.

Given a fetch whose batches include one the codecs refuse, aiokafka's own reader returns
the records of the others and ONE record at the refused batch's last offset, valued as
an `UnreadBatch` (codec, compressed size, SHA-256), and moves past it; its CRC checks
and its handling of offsets stay its own. Given many large records, a poll stops at
MAX_POLL_BYTES and the next poll goes on from there. The last tests run a real aiokafka
consumer on the embedded broker, and check the code of aiokafka these rely on.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import shutil
import struct
import uuid
from functools import partial

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.consumer import consumer as aiokafka_consumer
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.errors import CorruptRecordException
from aiokafka.record._crecords import DefaultRecordBatchBuilder, MemoryRecords
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import TopicPartition

from bench.harness import world_enterable_folder
from ledger.dev import Stack
from ledger.dev.broker import bootstrap_address
from ledger.domain.records import UnreadBatch
from streams import codecs, fetching
from streams.fetching import BoundedFetchResult, GuardedPartitionRecords, PollBudget
from tests.kafka_batches import bomb, produce

LIMIT = 1 << 20
TP = TopicPartition("gpu.usage", 0)
ZSTD = 4


@pytest.fixture
def bounded_to_1_mib(monkeypatch):
    for module, names in codecs.RECORD_MODULES:
        for name in names:
            monkeypatch.setattr(module, name, partial(codecs.DECODERS[name], limit=LIMIT))


def at(offset: int, batch: bytes) -> bytes:
    """The batch with its base offset set (the broker's to assign; not under the CRC)."""
    return struct.pack(">q", offset) + batch[8:]


def honest(offset: int, values: list[bytes], codec: int = ZSTD) -> bytes:
    builder = DefaultRecordBatchBuilder(2, codec, 0, -1, -1, -1, 1 << 30)
    for delta, value in enumerate(values):
        builder.append(delta, timestamp=1_790_000_000_000, key=b"k", value=value, headers=[("h", b"v")])
    return at(offset, bytes(builder.build()))


def read(fetch: bytes, fetch_offset: int = 0) -> tuple[list, int]:
    records = GuardedPartitionRecords(TP, MemoryRecords(fetch), None, fetch_offset, None, None, True, 0)
    return list(records), records.next_fetch_offset


def test_a_refused_batch_is_one_record_at_its_last_offset_between_the_others(bounded_to_1_mib):
    refused = honest(3, [bytes(LIMIT // 2)] * 3)  # 1.5 MiB decompressed: over the bound
    fetch = honest(0, [b"a", b"b", b"c"]) + refused + honest(6, [b"d", b"e"])
    records, next_offset = read(fetch)
    assert [r.offset for r in records] == [0, 1, 2, 5, 6, 7] and next_offset == 8
    assert [r.value for r in records if r.offset != 5] == [b"a", b"b", b"c", b"d", b"e"]
    unread = records[3].value
    assert isinstance(unread, UnreadBatch) and unread == b"" and unread.problem is None
    compressed = refused[61:]  # after the v2 header
    assert (unread.codec, unread.compressed_bytes, unread.sha256) == ("zstd", len(compressed), hashlib.sha256(compressed).digest())
    assert records[3].timestamp == 1_790_000_000_000 and records[3].key is None and records[3].headers == ()


def test_a_batch_that_is_not_valid_zstd_is_one_record_too(bounded_to_1_mib):
    good = honest(0, [b"x" * 1000])
    broken = bytearray(good)
    broken[-4:] = b"\xff\xff\xff\xff"  # the frame's end
    broken[17:21] = struct.pack(">I", calc_crc32c(bytes(broken[21:])))
    records, next_offset = read(bytes(broken))
    assert [r.offset for r in records] == [0] and next_offset == 1
    assert records[0].value.problem and "zstd" in records[0].value.problem


def test_a_refused_batch_below_the_fetch_offset_is_skipped_like_any_record(bounded_to_1_mib):
    fetch = honest(0, [bytes(LIMIT // 2)] * 3) + honest(3, [b"d"])
    records, next_offset = read(fetch, fetch_offset=3)
    assert [(r.offset, r.value) for r in records] == [(3, b"d")] and next_offset == 4


def test_each_record_says_from_which_offset_its_fetch_read_up_to_it(bounded_to_1_mib):
    """The fetch's offset for its first record (records below it skipped), then the offset
    after the record before; a refused batch's offsets and a jump between batches count as
    read by this fetch, so the ledger sees no gap where Kafka holds nothing."""
    fetch = honest(0, [b"a", b"b", b"c"]) + honest(3, [bytes(LIMIT // 2)] * 3) + honest(9, [b"d", b"e"])
    records, _ = read(fetch, fetch_offset=1)
    assert [(r.offset, r.contiguous_from) for r in records] == [(1, 1), (2, 2), (5, 3), (9, 6), (10, 10)]


def test_a_bad_crc_still_raises_as_in_aiokafka(bounded_to_1_mib):
    broken = bytearray(honest(0, [bytes(LIMIT // 2)] * 3))
    broken[17] ^= 0xFF
    with pytest.raises(CorruptRecordException):
        read(bytes(broken))


async def test_a_poll_takes_records_up_to_its_budget_and_the_next_poll_goes_on():
    subscription = SubscriptionState()
    subscription.assign_from_user({TP})
    assignment = subscription.subscription.assignment
    assignment.state_value(TP).seek(0)
    fetch = b"".join(honest(offset, [bytes(300 << 10)]) for offset in range(10))
    partition = GuardedPartitionRecords(TP, MemoryRecords(fetch), None, 0, None, None, True, 0)
    result = BoundedFetchResult(TP, assignment=assignment, partition_records=partition, backoff=0)
    result.poll = budget = PollBudget(1 << 20)
    polls = []
    while result.has_more():
        budget.reset()
        polls.append([r.offset for r in result.getall(max_records=2000)])
    # 300 KiB records (and their 1-byte keys): the fourth crosses 1 MiB and ends a poll.
    assert polls == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert assignment.state_value(TP).position == 10
    # A budget another partition spent leaves this one's records for the next poll.
    partition = GuardedPartitionRecords(TP, MemoryRecords(honest(10, [b"x"])), None, 10, None, None, True, 0)
    result = BoundedFetchResult(TP, assignment=assignment, partition_records=partition, backoff=0)
    result.poll = budget
    budget.left = 0
    assert result.getall(max_records=2000) == [] and result.has_more()
    budget.reset()
    assert [r.offset for r in result.getall(max_records=2000)] == [10] and not result.has_more()


def test_the_aiokafka_code_these_rely_on_is_still_there():
    """An aiokafka upgrade that changes how it reads a fetch fails here first. (aiokafka's own
    classes are the bases of ours: `install()`, run by other tests in this process, points
    the module's names at ours.)"""
    partition_records = GuardedPartitionRecords.__bases__[0]
    fetch_result = BoundedFetchResult.__bases__[0]
    unpack = inspect.getsource(partition_records._unpack_records)
    assert "records.next_batch()" in unpack and "for record in next_batch:" in unpack
    assert "self._consumer_record(tp, record)" in unpack
    assert "self.next_fetch_offset = record.offset + 1" in unpack  # what contiguous_from reads
    consumer_record = inspect.getsource(partition_records._consumer_record)
    assert all(f"record.{name}" in consumer_record for name in ("offset", "timestamp", "key", "value", "headers"))
    getall = inspect.getsource(fetch_result.getall)
    assert "for msg in self._partition_records:" in getall and "self._update_position()" in getall
    proc = inspect.getsource(fetching.BoundedFetcher.__bases__[0]._proc_fetch_request)
    assert "PartitionRecords(" in proc and "FetchResult(" in proc
    assert "type(res_or_error) is FetchResult" in inspect.getsource(aiokafka_fetcher.Fetcher.fetched_records)
    assert "Fetcher(" in inspect.getsource(aiokafka_consumer.AIOKafkaConsumer.start)


# -- a real consumer on the embedded broker ----------------------------------------------


@pytest.fixture(scope="module")
def broker():
    folder = world_enterable_folder("gpuledger-fetch-")
    stack = Stack(folder / "home")
    try:
        yield bootstrap_address(stack.start_broker()["port"])
    finally:
        stack.down()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def installed(monkeypatch):
    """fetching.install(), undone after the test."""
    for module, names in codecs.RECORD_MODULES:
        for name in names:
            monkeypatch.setattr(module, name, codecs.DECODERS[name])
    monkeypatch.setattr(aiokafka_fetcher, "PartitionRecords", fetching.GuardedPartitionRecords)
    monkeypatch.setattr(aiokafka_fetcher, "FetchResult", fetching.BoundedFetchResult)
    monkeypatch.setattr(aiokafka_consumer, "Fetcher", fetching.BoundedFetcher)


async def _polls(bootstrap: str, topic: str, expected: int) -> list[list]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=16 << 20, fetch_max_wait_ms=100)
    await consumer.start()
    polls: list[list] = []
    try:
        async with asyncio.timeout(60):
            while sum(len(p) for p in polls) < expected:
                got = await consumer.getmany(timeout_ms=1000, max_records=2000)
                if got:
                    polls.append([r for records in got.values() for r in records])
    finally:
        await consumer.stop()
    return polls


@pytest.mark.infra
async def test_a_consumer_reads_past_a_1_gib_bomb_and_polls_at_most_its_budget(broker, installed):
    topic = f"fetch-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=broker, compression_type="zstd", max_request_size=32 << 20)
    await producer.start()
    try:
        for _ in range(12):  # 6 MiB each, a few hundred bytes compressed
            await producer.send_and_wait(topic, bytes(6 << 20), partition=0)
        await produce(broker, topic, 0, [bomb("zstd", 1 << 30)])
        await producer.send_and_wait(topic, b"after", partition=0)
    finally:
        await producer.stop()
    polls = await _polls(broker, topic, 14)
    records = [r for poll in polls for r in poll]
    assert [r.offset for r in records] == list(range(14))
    assert isinstance(records[12].value, UnreadBatch) and records[12].value.problem is None
    assert records[13].value == b"after"
    heaviest = max(sum(len(r.value) for r in poll) for poll in polls)
    print(f"{len(polls)} polls, the heaviest {heaviest / (1 << 20):.0f} MiB (budget {fetching.MAX_POLL_BYTES >> 20} MiB)")
    assert heaviest <= fetching.MAX_POLL_BYTES + (6 << 20)  # the budget and the record that crossed it
