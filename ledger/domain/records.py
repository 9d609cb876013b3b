"""Kafka records as the ledger receives them, and the events each one carries.

SPEC.md, "How events arrive": a record is one event, or a CloudEvents batch whose every
element is one received event. `unpack` turns a record into its received events with
their first verdict (decoded JSON, or `malformed`); what happens next is
`ledger.service.intake`'s. Pure: no Kafka here, only the fields a record has.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from ledger.domain import binary_mode, events
from schemas.wire import (
    BINARY_MODE_HEADER,
    CONTENT_TYPE_HEADER,
    INGEST_HEADER,
    MAX_BATCH_EVENTS,
    MAX_BATCH_RECORD_BYTES,
    MAX_DECOMPRESSED_BATCH_BYTES,
    MAX_EVENT_BYTES,
    is_batch,
    split_batch,
)

_INGEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
MEMBER_ID = re.compile(r"[a-z][a-z0-9-]{1,31}")
MAX_DETAIL_CHARS = 1000
# What a dead letter keeps of an event it cannot keep whole (over MAX_EVENT_BYTES, which
# no replay could accept): enough to see what it was, with its size and SHA-256.
RAW_PREFIX_BYTES = 4096


class UnreadBatch(bytes):
    """The value of the one record that stands for a compressed Kafka record batch the
    worker did not decompress: it decompresses to more than MAX_DECOMPRESSED_BATCH_BYTES,
    or is not valid in its codec (`problem`, None for the first).

    Only the worker's fetcher makes one (`streams.fetching`), at the batch's last offset.
    It is a Python type, never bytes off the wire: nothing a producer sends can pose as one
    (a header could). Its content is empty; it carries the codec and the compressed
    batch's size and SHA-256, which its dead letter keeps.
    """

    codec: str
    compressed_bytes: int
    sha256: bytes
    problem: str | None

    def __new__(cls, codec: str, compressed_bytes: int, sha256: bytes, problem: str | None = None) -> UnreadBatch:
        batch = super().__new__(cls)
        batch.codec, batch.compressed_bytes, batch.sha256, batch.problem = codec, compressed_bytes, sha256, problem
        return batch


def unread_batch_detail(batch: UnreadBatch) -> str:
    """Why a batch the worker did not decompress is one `malformed` event."""
    if batch.problem is None:
        what = f"decompresses to more than {MAX_DECOMPRESSED_BATCH_BYTES} bytes"
    else:
        what = f"cannot be decompressed ({batch.problem[:200]})"
    return (f"a {batch.codec}-compressed record batch that {what}; "
            f"sha256 {batch.sha256.hex()}, {batch.compressed_bytes} bytes compressed")


class KeptRaw(NamedTuple):
    """What a dead letter keeps of a received event's bytes."""

    stored: bytes  # the bytes whole, or their first RAW_PREFIX_BYTES
    size: int  # the full size
    sha256: bytes  # of the full bytes

    @property
    def whole(self) -> bool:
        return len(self.stored) == self.size


def keep_raw(raw: bytes) -> KeptRaw:
    """A received event's bytes as its dead letter keeps them: whole when within SPEC.md's
    1 MiB (so a replay can judge them again), else a prefix; always the size and SHA-256.
    A batch the worker did not decompress keeps nothing but its compressed size and hash."""
    if isinstance(raw, UnreadBatch):
        return KeptRaw(b"", raw.compressed_bytes, raw.sha256)
    stored = raw if len(raw) <= MAX_EVENT_BYTES else raw[:RAW_PREFIX_BYTES]
    return KeptRaw(bytes(stored), len(raw), hashlib.sha256(raw).digest())


class Record(NamedTuple):
    """One Kafka record as the ledger needs it (a replayed dead letter has no topic)."""

    topic: str | None
    partition: int | None
    offset: int | None
    timestamp_ms: int | None  # None: the record carries none
    value: bytes
    headers: dict[str, bytes]
    # The member whose own topic (or API token) it came from; None: the operator's usage
    # topic. Set by who received it (the worker from the topic's name), never by its bytes.
    sender: str | None = None
    # The offset from which the consumer read up to this record with nothing left out
    # (transaction markers and a refused batch's records skipped on the way count as read):
    # where the fetch that brought it started, or the offset after the record before it.
    # None: unknown (a replay, a test). See `ledger.service.intake`, step 2.
    contiguous_from: int | None = None

    @property
    def ingest_id(self) -> str:
        """The id of the ingest that sent it: what `--wait` counts by. A header that is not a
        plain id (any producer can set any bytes) counts as none: ''."""
        value = self.headers.get(INGEST_HEADER, b"")
        return value.decode("ascii") if _INGEST_ID.fullmatch(value) else ""

    def received_at(self, clock_ms: int) -> Record:
        """The record judged at its receipt time: its timestamp, or the processing worker's
        clock if that is earlier or the record has none (no producer dates into the future)."""
        stamp = self.timestamp_ms
        receipt = clock_ms if stamp is None or stamp < 0 else min(stamp, clock_ms)
        return self if receipt == stamp else self._replace(timestamp_ms=receipt)


@dataclass(slots=True)
class Received:
    """One received event of a record, with what was decided about it."""

    record: Record
    position: int  # index in a batch record, 0 for a single event
    raw: bytes
    verdict: object  # dict (decoded), Usage, Rejection, ACCEPTED or DUPLICATE
    # A replayed dead letter's event: the dead letter whose stored row holds these bytes,
    # so a new dead letter refers to them instead of keeping another copy.
    raw_of: int | None = None

    @property
    def outcome(self) -> str:
        """accepted, duplicate or the reason of the rejection (once decided)."""
        verdict = self.verdict
        return verdict.reason if isinstance(verdict, events.Rejection) else verdict


@dataclass
class BatchResult:
    """What one batch (or one transaction of it) decided."""

    received: int = 0
    skipped_records: int = 0  # redelivered records already applied
    outcomes: Counter = field(default_factory=Counter)
    # (topic, partition) -> the stored position, for partitions whose records in the batch
    # do not follow it: held back unapplied, to be read again from that position.
    gaps: dict[tuple[str, int], int] = field(default_factory=dict)
    held_records: int = 0

    def add(self, other: BatchResult) -> None:
        self.received += other.received
        self.skipped_records += other.skipped_records
        self.outcomes.update(other.outcomes)
        self.gaps.update(other.gaps)
        self.held_records += other.held_records


def _whole(record: Record, value: bytes, detail: str) -> list[Received]:
    """A batch refused whole: one received event, `malformed`, the record's bytes kept."""
    return [Received(record, 0, value, events.Rejection(events.MALFORMED, detail))]


def unpack(record: Record) -> list[Received]:
    """The received events of a record: one (structured or binary mode), or each element of
    a CloudEvents batch.

    A batch of more than MAX_BATCH_EVENTS elements, or over MAX_BATCH_RECORD_BYTES, is one
    received event, `malformed`: the work one record may ask of a worker is bounded. So is
    a compressed batch the worker did not decompress (`UnreadBatch`).
    """
    value = record.value if record.value is not None else b""
    if isinstance(value, UnreadBatch):
        return [Received(record, 0, value, events.Rejection(events.MALFORMED, unread_batch_detail(value)))]
    headers = record.headers
    if BINARY_MODE_HEADER in headers:  # binary whatever its content-type (SPEC.md)
        return [Received(record, 0, *binary_mode.received(headers, value))]
    if not is_batch(headers.get(CONTENT_TYPE_HEADER, b"")):
        return [Received(record, 0, value, events.decode(value))]
    if len(value) > MAX_BATCH_RECORD_BYTES:
        return _whole(record, value, f"batch of {len(value)} bytes, more than {MAX_BATCH_RECORD_BYTES}")
    if value.count(b",\n") >= MAX_BATCH_EVENTS:  # each element but the last ends with one
        return _whole(record, value, f"batch of more than {MAX_BATCH_EVENTS} events")
    lines = split_batch(value)
    if lines is not None:
        return [
            Received(record, i, raw, events.check_decoded(raw, parsed))
            for i, (raw, parsed) in enumerate(lines)
        ]
    try:
        elements = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        rejection = events.Rejection(events.MALFORMED, f"batch is not JSON: {exc}"[:300])
        return [Received(record, 0, value, rejection)]
    if not isinstance(elements, list):
        return _whole(record, value, "batch is not a JSON array")
    if len(elements) > MAX_BATCH_EVENTS:
        return _whole(record, value, f"batch of more than {MAX_BATCH_EVENTS} events")
    received = []
    for i, element in enumerate(elements):
        raw = orjson.dumps(element)
        received.append(Received(record, i, raw, events.check_decoded(raw, element)))
    return received


def parties(raw: bytes) -> tuple[str | None, str | None]:
    """(provider, reseller) that a rejected event names, if any: who may see its dead letter."""
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    data = event.get("data") if isinstance(event, dict) else None
    if not isinstance(data, dict):
        return None, None
    provider, reseller = data.get("provider"), data.get("reseller")
    return (
        provider if isinstance(provider, str) and MEMBER_ID.fullmatch(provider) else None,
        reseller if isinstance(reseller, str) and MEMBER_ID.fullmatch(reseller) else None,
    )


def storable(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """A text any database column can hold: NUL escaped, bounded in length."""
    text = text.replace("\x00", "\\x00")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def gpu_key(raw: bytes) -> bytes | None:
    """The Kafka key of an event: its `data.gpu_uuid`, so one GPU's events keep their order.

    None for anything that is not an object naming a string gpu_uuid (sent unkeyed; the
    worker rejects it with its reason).
    """
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(event, dict):
        data = event.get("data")
        if isinstance(data, dict) and isinstance(data.get("gpu_uuid"), str):
            return data["gpu_uuid"].encode("utf-8", "surrogatepass")
    return None
