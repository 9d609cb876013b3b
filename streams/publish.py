"""The producer behind `gpuledger ingest`: NDJSON lines -> records on the usage topic.

Records are keyed by `gpu_uuid`, so one GPU's events keep file order on one partition.
For throughput, consecutive events of one GPU travel together as a CloudEvents batch
record (`application/cloudevents-batch+json`), one event per line so the worker keeps
each event's original bytes. A line that is not a JSON object with a string
`data.gpu_uuid` travels alone, unkeyed: the worker rejects it with its reason. Every
record carries the ingest's id in a header, which is how `--wait` counts this file's
events and no others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ledger.domain.errors import ServiceUnavailable
from ledger.domain.events import MAX_EVENT_BYTES
from ledger.intake import BATCH_CONTENT_TYPE, INGEST_HEADER, encode_batch

SINGLE_CONTENT_TYPE = b"application/cloudevents+json"
BATCH_MAX_EVENTS = 200
BATCH_MAX_BYTES = 256 * 1024
MAX_PENDING_SENDS = 2000


@dataclass
class Published:
    received: int = 0
    records: int = 0
    oversize: list[bytes] = field(default_factory=list)  # kept out of Kafka; see ingest


def gpu_key(line: bytes) -> bytes | None:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if isinstance(event, dict):
        data = event.get("data")
        if isinstance(data, dict) and isinstance(data.get("gpu_uuid"), str):
            return data["gpu_uuid"].encode("utf-8", "surrogatepass")
    return None


def new_producer(bootstrap: str) -> AIOKafkaProducer:
    """The usage topic's producer: acks from all replicas, small linger, large batches.

    Not idempotent: the test broker refuses InitProducerId, and the ledger does not
    need it (a re-sent record is a duplicate by the rules).
    """
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=1 << 20,
        max_request_size=4 << 20,
        request_timeout_ms=30_000,
    )


async def started_producer(bootstrap: str) -> AIOKafkaProducer:
    """A started producer, or ServiceUnavailable when the broker cannot be reached."""
    producer = new_producer(bootstrap)
    try:
        await producer.start()
    except (KafkaError, OSError) as exc:
        await producer.stop()
        raise ServiceUnavailable(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    return producer


async def publish(
    bootstrap: str,
    topic: str,
    lines: Iterable[bytes],
    ingest_id: str,
    batch_max_events: int = BATCH_MAX_EVENTS,
    on_progress: Callable[[int], None] | None = None,
) -> Published:
    producer = await started_producer(bootstrap)
    result = Published()
    pending: list[asyncio.Future] = []
    buffers: dict[bytes, list[bytes]] = {}
    buffer_bytes: dict[bytes, int] = {}
    ingest_header = (INGEST_HEADER, ingest_id.encode("ascii"))

    async def send(key: bytes | None, raws: list[bytes]) -> None:
        if len(raws) == 1:
            value, content_type = raws[0], SINGLE_CONTENT_TYPE
        else:
            value, content_type = encode_batch(raws), BATCH_CONTENT_TYPE
        pending.append(
            await producer.send(
                topic, value, key=key, headers=[("content-type", content_type), ingest_header]
            )
        )
        result.records += 1
        if len(pending) >= MAX_PENDING_SENDS:
            await drain()

    async def drain() -> None:
        await asyncio.gather(*pending)
        pending.clear()
        if on_progress is not None:
            on_progress(result.received)

    try:
        for line in lines:
            result.received += 1
            if len(line) > MAX_EVENT_BYTES:
                result.oversize.append(line)
                continue
            key = gpu_key(line)
            if key is None:
                await send(None, [line])
                continue
            buffer = buffers.setdefault(key, [])
            buffer.append(line)
            size = buffer_bytes[key] = buffer_bytes.get(key, 0) + len(line) + 2
            if len(buffer) >= batch_max_events or size >= BATCH_MAX_BYTES:
                await send(key, buffer)
                del buffers[key], buffer_bytes[key]
        for key, buffer in buffers.items():
            await send(key, buffer)
        await drain()
    except KafkaError as exc:
        raise ServiceUnavailable(f"publishing to Kafka at {bootstrap} failed: {exc}") from exc
    finally:
        await producer.stop()
    return result


async def send_events(producer: AIOKafkaProducer, topic: str, raws: list[bytes], ingest_id: str) -> int:
    """Send events held in memory (the HTTP API's), one GPU's together, and wait until the
    broker has every record: what the caller acknowledges is never lost. Returns records sent."""
    by_gpu: dict[bytes | None, list[bytes]] = {}
    for raw in raws:
        by_gpu.setdefault(gpu_key(raw), []).append(raw)
    headers_single = [("content-type", SINGLE_CONTENT_TYPE), (INGEST_HEADER, ingest_id.encode("ascii"))]
    headers_batch = [("content-type", BATCH_CONTENT_TYPE), (INGEST_HEADER, ingest_id.encode("ascii"))]
    pending = []
    for key, group in by_gpu.items():
        if key is None:
            for raw in group:
                pending.append(await producer.send(topic, raw, headers=headers_single))
            continue
        chunk: list[bytes] = []
        size = 0
        for raw in [*group, None]:
            if raw is None or len(chunk) >= BATCH_MAX_EVENTS or size + len(raw) > BATCH_MAX_BYTES:
                if chunk:
                    value, headers = (
                        (chunk[0], headers_single) if len(chunk) == 1
                        else (encode_batch(chunk), headers_batch)
                    )
                    pending.append(await producer.send(topic, value, key=key, headers=headers))
                chunk, size = [], 0
            if raw is not None:
                chunk.append(raw)
                size += len(raw) + 2
    try:
        await asyncio.gather(*pending)
    except KafkaError as exc:
        raise ServiceUnavailable(f"publishing to Kafka failed: {exc}") from exc
    return len(pending)

