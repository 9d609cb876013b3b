"""How a worker's aiokafka consumer reads a fetch: bounded in decompressed bytes.

A fetch is bounded in bytes as they travel (16 MiB a partition), which compression
turns into no bound at all on what it holds decompressed. Three changes to aiokafka's
fetcher, installed once per worker process (`install`), bound it:

- **Each batch**: every codec decompresses through `streams.codecs`, which stops at
  MAX_DECOMPRESSED_BATCH_BYTES. A batch it refuses does not raise into the consumer (the
  worker would exit, meet it again, and its partition would stop): `Batch` reads it as ONE
  record at the batch's last offset, whose value is a `records.UnreadBatch` (codec,
  compressed size, SHA-256). The ledger counts it as one received event, `malformed`, and
  its offset moves the partition past the batch (Faust acks the offsets it skipped as a
  gap, `streams.faust_ext`).
- **Each poll**: `getmany` returns up to MAX_POLL_RECORDS records, and a record may be
  16 MiB decompressed: a poll of batches just under the bound would hold thousands of
  them. `BoundedFetchResult` stops a poll once its records' keys and values weigh
  MAX_POLL_BYTES (at least one record a poll); the rest stays fetched for the next poll,
  as records past `max_records` do.
- Nothing else changes: offsets, CRC checks, transactions and control batches are
  aiokafka's own code.

aiokafka calls these classes by its modules' names (`fetcher.PartitionRecords`,
`fetcher.FetchResult`, `consumer.Fetcher`), which `install` points at the subclasses.
pyproject.toml keeps aiokafka below 0.15; tests/streams/test_fetching.py runs them on
real record batches and checks the code of aiokafka they rely on is still there.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from aiokafka.consumer import consumer as aiokafka_consumer
from aiokafka.consumer import fetcher as aiokafka_fetcher

from ledger.domain.records import UnreadBatch
from streams import codecs

# Half of what a worker lets through unacked (faust_ext: 64 MiB): a poll never holds more
# than the consumer would hand on anyway, and a backlog still drains in large polls.
MAX_POLL_BYTES = 32 << 20


class RefusedRecord(NamedTuple):
    """What aiokafka reads of a record (`PartitionRecords._consumer_record`), for a batch
    that was not decompressed."""

    offset: int
    timestamp: int | None
    timestamp_type: int
    value: UnreadBatch
    key: None = None
    headers: tuple = ()
    checksum: None = None


class Batch:
    """One record batch of a fetch, read as aiokafka reads it, except that a batch the codecs
    refuse reads as one `RefusedRecord` at its last offset, dated as the batch is."""

    __slots__ = ("_batch",)

    def __init__(self, batch: Any) -> None:
        self._batch = batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    # What aiokafka's `_unpack_records` reads of every batch, without __getattr__'s detour.
    @property
    def is_control_batch(self) -> bool:
        return self._batch.is_control_batch

    @property
    def next_offset(self) -> int:
        return self._batch.next_offset

    def validate_crc(self) -> bool:
        return self._batch.validate_crc()

    def __iter__(self):
        # The C batches decompress in iter(), the pure-Python ones at the first next().
        try:
            records = iter(self._batch)
            first = next(records, None)
        except codecs.BatchRefused as refused:
            yield self.refused(refused)
            return
        if first is None:
            return
        yield first
        # Not `yield from records`: that calls iter() again, which a C batch allows once.
        read = records.__next__
        while True:
            try:
                record = read()
            except StopIteration:
                return
            yield record

    def __next__(self) -> Any:  # aiokafka reads a control batch's marker with next()
        return next(self._batch)

    def refused(self, refused: codecs.BatchRefused) -> RefusedRecord:
        batch = self._batch
        # v2 batches carry their timestamps (LogAppendTime: the broker's); v0/v1 wrappers do
        # not expose theirs, and the worker then judges the event at its own clock.
        timestamp = getattr(batch, "max_timestamp", None)
        return RefusedRecord(
            batch.next_offset - 1, timestamp if timestamp is not None and timestamp >= 0 else None,
            getattr(batch, "timestamp_type", 0), refused.unread(),
        )


class Records:
    """A fetch's `MemoryRecords`, whose compressed batches are read as `Batch`es."""

    __slots__ = ("_records",)

    def __init__(self, records: Any) -> None:
        self._records = records

    def __getattr__(self, name: str) -> Any:
        return getattr(self._records, name)

    def has_next(self) -> bool:
        return self._records.has_next()

    def next_batch(self) -> Any:
        batch = self._records.next_batch()
        if batch is None or getattr(batch, "compression_type", None) == 0:
            return batch  # a v2 batch sent uncompressed: nothing to decompress, read as it is
        return Batch(batch)


class GuardedPartitionRecords(aiokafka_fetcher.PartitionRecords):
    """aiokafka's records of one partition's fetch, whose batches are `Batch`es, each record
    marked with the offset from which this fetch read up to it with nothing left out
    (`contiguous_from`: the fetch's offset for its first record, then the offset after the
    record before; control batches and a refused batch's offsets skipped on the way count
    as read). The ledger applies a record only if that offset is its stored position or
    before (`ledger.service.intake`, step 2)."""

    def __init__(self, tp: Any, records: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(tp, Records(records), *args, **kwargs)

    def __next__(self) -> Any:
        before = self.next_fetch_offset
        record = super().__next__()
        record.contiguous_from = before  # aiokafka's ConsumerRecord: a plain dataclass
        return record


class PollBudget:
    """The bytes of keys and values one poll may still return."""

    __slots__ = ("left", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.left = size

    def reset(self) -> None:
        self.left = self.size


def _weight(record: Any) -> int:
    return max(0, record.serialized_key_size) + max(0, record.serialized_value_size)


class BoundedFetchResult(aiokafka_fetcher.FetchResult):
    """One partition's fetched records, taken by a poll up to its `PollBudget` (set by
    `BoundedFetcher`), at least one record a poll; the rest waits for the next poll."""

    poll: PollBudget | None = None

    def getall(self, max_records: int | None = None) -> list:
        poll = self.poll
        if poll is None:
            return super().getall(max_records)
        # From here as aiokafka's getall, with the budget as a second limit.
        if not self.check_assignment(self._topic_partition) or not self.has_more():
            return []
        if poll.left <= 0:
            return []
        taken = []
        for record in self._partition_records:
            taken.append(record)
            poll.left -= _weight(record)
            if (max_records is not None and len(taken) >= max_records) or poll.left <= 0:
                self._update_position()
                break
        else:
            self._update_position()
            self._partition_records = None
        return taken


class BoundedFetcher(aiokafka_fetcher.Fetcher):
    """aiokafka's fetcher, whose polls (`fetched_records`) share one `PollBudget`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.poll = PollBudget(MAX_POLL_BYTES)

    def _budget_results(self) -> None:
        for result in self._records.values():
            if isinstance(result, BoundedFetchResult):
                result.poll = self.poll

    async def _proc_fetch_request(self, assignment: Any, node_id: Any, request: Any) -> Any:
        try:
            return await super()._proc_fetch_request(assignment, node_id, request)
        finally:
            self._budget_results()  # the results it added, before any poll takes from them

    async def fetched_records(self, partitions: Any, timeout: float = 0, max_records: int | None = None) -> dict:
        self.poll.reset()
        self._budget_results()
        return await super().fetched_records(partitions, timeout=timeout, max_records=max_records)


def install() -> None:
    """Bound what every aiokafka consumer of this process decompresses and polls."""
    codecs.install()
    aiokafka_fetcher.PartitionRecords = GuardedPartitionRecords
    aiokafka_fetcher.FetchResult = BoundedFetchResult
    aiokafka_consumer.Fetcher = BoundedFetcher
