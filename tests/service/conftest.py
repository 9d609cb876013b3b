"""The services on the in-memory store: no broker, no PostgreSQL, milliseconds per case.

`LoopbackPublisher` stands in for Kafka: what a service publishes becomes records of a
topic with partitions and offsets, which `deliver` hands to an `Intake` as a worker
would (in batches, in offset order per partition).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable

import pytest

from ledger.domain.catalog_file import parse_catalog
from ledger.domain.records import Record, gpu_key
from ledger.memory.store import MemoryStore
from ledger.service import catalog as catalog_service
from ledger.service.intake import Intake
from schemas.wire import (
    BATCH_CONTENT_TYPE,
    CONTENT_TYPE_HEADER,
    INGEST_HEADER,
    SINGLE_CONTENT_TYPE,
    encode_batch,
    member_topic,
    sender_of,
)

TOPIC = "gpu.usage"


class LoopbackPublisher:
    """A `Publisher` that keeps records in memory, partitioned by key like Kafka."""

    def __init__(self, partitions: int = 4, clock_ms: Callable[[], int] | None = None, batch: bool = True) -> None:
        self.partitions = [[] for _ in range(partitions)]
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.batch = batch
        self.delivered = [0] * partitions

    def append(self, value: bytes, headers: dict[str, bytes], key: bytes | None = None, timestamp_ms: int | None = None,
               sender: str | None = None) -> Record:
        """A record on the usage topic, or on `sender`'s own topic (the worker's Record says who)."""
        partition = zlib.crc32(key) % len(self.partitions) if key else sum(map(len, self.partitions)) % len(self.partitions)
        offsets = self.partitions[partition]
        topic = TOPIC if sender is None else member_topic(TOPIC, sender)
        stamp = self.clock_ms() if timestamp_ms is None else timestamp_ms
        record = Record(topic, partition, len(offsets), stamp, value, headers, sender_of(TOPIC, topic))
        offsets.append(record)
        return record

    async def publish(self, lines: Iterable[bytes], ingest_id: str, *, batch_max_events: int = 200, on_progress=None,
                      sender: str | None = None) -> int:
        records = 0
        groups: dict[bytes | None, list[bytes]] = {}
        for line in lines:
            groups.setdefault(gpu_key(line), []).append(line)
        for key, raws in groups.items():
            chunks = [raws[i:i + batch_max_events] for i in range(0, len(raws), batch_max_events)] if key and self.batch else [[r] for r in raws]
            for chunk in chunks:
                single = len(chunk) == 1
                headers = {
                    CONTENT_TYPE_HEADER: SINGLE_CONTENT_TYPE if single else BATCH_CONTENT_TYPE,
                    INGEST_HEADER: ingest_id.encode(),
                }
                self.append(chunk[0] if single else encode_batch(chunk), headers, key, sender=sender)
                records += 1
        return records

    async def send_events(self, raws: list[bytes], ingest_id: str, sender: str | None = None) -> int:
        return await self.publish(raws, ingest_id, sender=sender)

    async def close(self) -> None:
        pass

    def pending(self) -> list[Record]:
        """Records not yet delivered, partition by partition in offset order."""
        found = []
        for partition, records in enumerate(self.partitions):
            found.extend(records[self.delivered[partition]:])
            self.delivered[partition] = len(records)
        return found


async def deliver(publisher: LoopbackPublisher, intake: Intake, batch_records: int = 5000) -> None:
    """What a worker does: take the pending records in batches and apply each."""
    records = publisher.pending()
    for start in range(0, len(records), batch_records):
        await intake.apply(records[start:start + batch_records])


async def load_catalog(store: MemoryStore, text: str | bytes) -> dict:
    data = text.encode() if isinstance(text, str) else text
    return await catalog_service.load_parsed(store, parse_catalog(data), "0" * 64, "test")


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()
