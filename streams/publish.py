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
    member_topic,
)

BATCH_MAX_EVENTS = 200
BATCH_MAX_BYTES = 256 * 1024
# Sends not yet acknowledged, at most: past it, the oldest are awaited until half remain,
# so reading the file goes on while the rest are in flight (waiting for all of them
# stopped the reading for the broker's last acknowledgement, every 2,000 records).
MAX_PENDING_SENDS = 2000
# Events held back in GPUs' unfinished batches, across GPUs: past it, every batch is
# sent as it is. A file of many GPUs' interleaved seconds otherwise sent nothing until
# each GPU had 200 events (two thirds of a 300,000-event file of 1,000 GPUs), and the
# workers waited.
MAX_BUFFERED_EVENTS = 50_000


def new_producer(bootstrap: str, options: dict | None = None) -> AIOKafkaProducer:
    """The usage topic's producer: acks from all replicas, small linger, large batches,
    zstd-compressed.

    Usage events are repetitive JSON: zstd sends about a twelfth of the bytes, so the
    broker and the workers handle fewer (make bench, phase a: see README). The workers
    read every codec Kafka defines (aiokafka's extras in pyproject.toml), whatever a
    member's own producer uses.

    Not idempotent: the test broker refuses InitProducerId, and the ledger does not
    need it (a re-sent record is a duplicate by the rules).
    """
    settings = {
        "acks": "all",
        "linger_ms": 5,
        "max_batch_size": 1 << 20,
        "max_request_size": MAX_BATCH_RECORD_BYTES,  # an API request is one record
        "request_timeout_ms": 30_000,
        "compression_type": "zstd",
    }
    return AIOKafkaProducer(bootstrap_servers=bootstrap, **(settings | (options or {})))


async def started_producer(bootstrap: str, options: dict | None = None) -> AIOKafkaProducer:
    """A started producer, or ServiceUnavailable when the broker cannot be reached."""
    producer = new_producer(bootstrap, options)
    try:
        await producer.start()
    except (KafkaError, OSError) as exc:
        await producer.stop()
        raise ServiceUnavailable(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    return producer


class _Batches:
    """Groups one GPU's consecutive events into batches; no I/O, so the per-line work
    is a few dictionary operations (the caller awaits sends only when a batch is ready)."""

    def __init__(self, max_events: int) -> None:
        self.max_events = max_events
        self.buffers: dict[bytes, list[bytes]] = {}
        self.sizes: dict[bytes, int] = {}
        self.buffered = 0

    def add(self, raw: bytes) -> list[tuple[bytes | None, list[bytes]]] | None:
        """The batches that are ready once `raw` is added (None: none yet)."""
        key = gpu_key(raw)
        if key is None:
            return [(None, [raw])]
        buffer = self.buffers.get(key)
        if buffer is None:
            buffer = self.buffers[key] = [raw]
            size = self.sizes[key] = len(raw) + 2
        else:
            buffer.append(raw)
            size = self.sizes[key] = self.sizes[key] + len(raw) + 2
        self.buffered += 1
        if len(buffer) >= self.max_events or size >= BATCH_MAX_BYTES:
            del self.buffers[key], self.sizes[key]
            self.buffered -= len(buffer)
            return [(key, buffer)]
        if self.buffered >= MAX_BUFFERED_EVENTS:
            return self.rest()
        return None

    def rest(self) -> list[tuple[bytes | None, list[bytes]]]:
        """Every unfinished batch, as it is."""
        ready = list(self.buffers.items())
        self.buffers.clear()
        self.sizes.clear()
        self.buffered = 0
        return ready


class _Sender:
    """Sends batches as records of one ingest; keeps their acknowledgements to await."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, ingest_id: str) -> None:
        self.producer, self.topic = producer, topic
        ingest = (INGEST_HEADER, ingest_id.encode("ascii"))
        self.single = [(CONTENT_TYPE_HEADER, SINGLE_CONTENT_TYPE), ingest]
        self.batch = [(CONTENT_TYPE_HEADER, BATCH_CONTENT_TYPE), ingest]
        self.pending: list[asyncio.Future] = []
        self.records = 0

    async def send(self, ready: list[tuple[bytes | None, list[bytes]]]) -> None:
        for key, raws in ready:
            if len(raws) == 1:
                value, headers = raws[0], self.single
            else:
                value, headers = encode_batch(raws), self.batch
            self.pending.append(await self.producer.send(self.topic, value, key=key, headers=headers))
        self.records += len(ready)

    async def drain(self, keep: int = 0) -> None:
        """Await the oldest sends until at most `keep` are pending."""
        done = len(self.pending) - keep
        if done > 0:
            await asyncio.gather(*self.pending[:done])
            del self.pending[:done]


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
        batches, sender = _Batches(batch_max_events), _Sender(await self._started(), self.topic, ingest_id)
        count = 0
        try:
            for line in lines:
                count += 1
                ready = batches.add(line)
                if ready is not None:
                    await sender.send(ready)
                    if len(sender.pending) >= MAX_PENDING_SENDS:
                        await sender.drain(keep=MAX_PENDING_SENDS // 2)
                        if on_progress is not None:
                            on_progress(count)
            await sender.send(batches.rest())
            await sender.drain()
        except KafkaError as exc:
            raise self._unavailable(exc) from exc
        return sender.records

    async def send_events(self, raws: list[bytes], ingest_id: str, sender: str | None = None) -> int:
        """Events held in memory (an HTTP request's) as one record: one append to the log,
        so the request is in Kafka whole or not at all. Keyed by its first event's GPU; on the
        topic of the member that sent them (SPEC.md, "Who sent it"), or the usage topic."""
        if not raws:
            return 0
        topic = self.topic if sender is None else member_topic(self.topic, sender)
        sender = _Sender(await self._started(), topic, ingest_id)
        try:
            await sender.send([(gpu_key(raws[0]), raws)])
            await sender.drain()
        except KafkaError as exc:
            raise self._unavailable(exc) from exc
        return 1

