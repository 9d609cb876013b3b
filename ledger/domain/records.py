"""Kafka records as the ledger receives them, and the events each one carries.

SPEC.md, "How events arrive": a record is one event, or a CloudEvents batch whose every
element is one received event. `unpack` turns a record into its received events with
their first verdict (decoded JSON, or `malformed`); what happens next is
`ledger.service.intake`'s. Pure: no Kafka here, only the fields a record has.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from ledger.domain import events
from schemas.wire import (
    CONTENT_TYPE_HEADER,
    INGEST_HEADER,
    MAX_INGEST_ID_CHARS,
    is_batch,
    split_batch,
)


class Record(NamedTuple):
    """One Kafka record as the ledger needs it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes
    headers: dict[str, bytes]

    @property
    def ingest_id(self) -> str:
        """The id of the ingest that sent it ('' when none): what `--wait` counts by."""
        value = self.headers.get(INGEST_HEADER)
        return value.decode("ascii", "replace")[:MAX_INGEST_ID_CHARS] if value else ""


@dataclass(slots=True)
class Received:
    """One received event of a record, with what was decided about it."""

    record: Record
    position: int  # index in a batch record, 0 for a single event
    raw: bytes
    verdict: object  # dict (decoded), Usage, Rejection, ACCEPTED or DUPLICATE

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

    def add(self, other: BatchResult) -> None:
        self.received += other.received
        self.skipped_records += other.skipped_records
        self.outcomes.update(other.outcomes)


def unpack(record: Record) -> list[Received]:
    """The received events of a record: one, or each element of a CloudEvents batch."""
    value = record.value if record.value is not None else b""
    if not is_batch(record.headers.get(CONTENT_TYPE_HEADER, b"")):
        return [Received(record, 0, value, events.decode(value))]
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
        rejection = events.Rejection(events.MALFORMED, "batch is not a JSON array")
        return [Received(record, 0, value, rejection)]
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
        provider if isinstance(provider, str) else None,
        reseller if isinstance(reseller, str) else None,
    )


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
