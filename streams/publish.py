"""Writing to the usage topic: the `Publisher` of `ledger.domain.ports` on aiokafka.

Records are keyed by `gpu_uuid`, so one GPU's events keep their order on one partition.
For throughput, consecutive events of one GPU travel together as a CloudEvents batch
record, one event per line so the worker keeps each event's original bytes
(`schemas.wire`). An event that is not a JSON object with a string `data.gpu_uuid`
travels alone, unkeyed: the worker rejects it with its reason. Every record carries its
ingest's id in a header, which is how `--wait` counts that ingest's events and no others.
Every send is awaited before a call returns: what the caller acknowledges is never lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ledger.domain.errors import ServiceUnavailable
from ledger.domain.records import gpu_key
from schemas.wire import (
    BATCH_CONTENT_TYPE,
    CONTENT_TYPE_HEADER,
    INGEST_HEADER,
    MAX_BATCH_RECORD_BYTES,
    SINGLE_CONTENT_TYPE,
    encode_batch,
)

BATCH_MAX_EVENTS = 200
BATCH_MAX_BYTES = 256 * 1024
MAX_PENDING_SENDS = 2000
# Events held back in GPUs' unfinished batches, across GPUs: past it, every batch is
# sent as it is. A file of many GPUs' interleaved seconds otherwise sent nothing until
# each GPU had 200 events (two thirds of a 300,000-event file of 1,000 GPUs), and the
# workers waited.
MAX_BUFFERED_EVENTS = 50_000


def new_producer(bootstrap: str, options: dict | None = None) -> AIOKafkaProducer:
    """The usage topic's producer: acks from all replicas, small linger, large batches.

    Not idempotent: the test broker refuses InitProducerId, and the ledger does not
    need it (a re-sent record is a duplicate by the rules).
    """
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=1 << 20,
        max_request_size=MAX_BATCH_RECORD_BYTES,  # an API request is one record
        request_timeout_ms=30_000,
        **(options or {}),
    )


async def started_producer(bootstrap: str, options: dict | None = None) -> AIOKafkaProducer:
    """A started producer, or ServiceUnavailable when the broker cannot be reached."""
    producer = new_producer(bootstrap, options)
    try:
        await producer.start()
    except (KafkaError, OSError) as exc:
        await producer.stop()
        raise ServiceUnavailable(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    return producer


class _Batcher:
    """Groups one GPU's consecutive events into batch records and sends them."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, ingest_id: str, max_events: int) -> None:
        self.producer, self.topic, self.max_events = producer, topic, max_events
        ingest = (INGEST_HEADER, ingest_id.encode("ascii"))
        self.single = [(CONTENT_TYPE_HEADER, SINGLE_CONTENT_TYPE), ingest]
        self.batch = [(CONTENT_TYPE_HEADER, BATCH_CONTENT_TYPE), ingest]
        self.buffers: dict[bytes, list[bytes]] = {}
        self.sizes: dict[bytes, int] = {}
        self.pending: list[asyncio.Future] = []
        self.records = 0
        self.buffered = 0

    async def add(self, raw: bytes) -> None:
        key = gpu_key(raw)
        if key is None:
            await self.send(None, [raw])
            return
        buffer = self.buffers.setdefault(key, [])
        buffer.append(raw)
        self.buffered += 1
        size = self.sizes[key] = self.sizes.get(key, 0) + len(raw) + 2
        if len(buffer) >= self.max_events or size >= BATCH_MAX_BYTES:
            await self.send(key, buffer)
            del self.buffers[key], self.sizes[key]
            self.buffered -= len(buffer)
        elif self.buffered >= MAX_BUFFERED_EVENTS:
            await self.send_buffered()

    async def send(self, key: bytes | None, raws: list[bytes]) -> None:
        if len(raws) == 1:
            value, headers = raws[0], self.single
        else:
            value, headers = encode_batch(raws), self.batch
        self.pending.append(await self.producer.send(self.topic, value, key=key, headers=headers))
        self.records += 1

    async def send_buffered(self) -> None:
        for key, buffer in self.buffers.items():
            await self.send(key, buffer)
        self.buffers.clear()
        self.sizes.clear()
        self.buffered = 0

    async def flush(self) -> None:
        await self.send_buffered()
        await self.drain()

    async def drain(self) -> None:
        await asyncio.gather(*self.pending)
        self.pending.clear()


class KafkaPublisher:
    """`ledger.domain.ports.Publisher` on one producer (`close` stops it).

    `lazy` makes one that starts its producer on first use, and again on the next use if
    the broker could not be reached: a process that needs Kafka only for some requests
    (the API) starts and answers the others while the broker is away.
    """

    def __init__(
        self, producer: AIOKafkaProducer | None, topic: str, bootstrap: str = "", options: dict | None = None
    ) -> None:
        self.producer, self.topic, self.bootstrap, self.options = producer, topic, bootstrap, options

    @classmethod
    async def start(cls, bootstrap: str, topic: str, options: dict | None = None) -> KafkaPublisher:
        return cls(await started_producer(bootstrap, options), topic, bootstrap, options)

    @classmethod
    def lazy(cls, bootstrap: str, topic: str, options: dict | None = None) -> KafkaPublisher:
        return cls(None, topic, bootstrap, options)

    async def _started(self) -> AIOKafkaProducer:
        if self.producer is None:
            self.producer = await started_producer(self.bootstrap, self.options)
        return self.producer

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    def _unavailable(self, exc: Exception) -> ServiceUnavailable:
        where = f" at {self.bootstrap}" if self.bootstrap else ""
        return ServiceUnavailable(f"publishing to Kafka{where} failed: {exc}")

    async def publish(
        self, lines: Iterable[bytes], ingest_id: str, *, batch_max_events: int = BATCH_MAX_EVENTS,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        batcher = _Batcher(await self._started(), self.topic, ingest_id, batch_max_events)
        try:
            for count, line in enumerate(lines, start=1):
                await batcher.add(line)
                if len(batcher.pending) >= MAX_PENDING_SENDS:
                    await batcher.drain()
                    if on_progress is not None:
                        on_progress(count)
            await batcher.flush()
        except KafkaError as exc:
            raise self._unavailable(exc) from exc
        return batcher.records

    async def send_events(self, raws: list[bytes], ingest_id: str) -> int:
        """Events held in memory (an HTTP request's) as one record: one append to the log,
        so the request is in Kafka whole or not at all. Keyed by its first event's GPU."""
        if not raws:
            return 0
        ingest = (INGEST_HEADER, ingest_id.encode("ascii"))
        if len(raws) == 1:
            value, headers = raws[0], [(CONTENT_TYPE_HEADER, SINGLE_CONTENT_TYPE), ingest]
        else:
            value, headers = encode_batch(raws), [(CONTENT_TYPE_HEADER, BATCH_CONTENT_TYPE), ingest]
        producer = await self._started()
        try:
            await (await producer.send(self.topic, value, key=gpu_key(raws[0]), headers=headers))
        except KafkaError as exc:
            raise self._unavailable(exc) from exc
        return 1

