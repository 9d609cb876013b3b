"""Phase b of the pipeline benchmark: single-event records, end to end.

Owns: producing one CloudEvent per Kafka record (keyed by gpu_uuid, partitioned as
Kafka's default partitioner does, a fresh `gpuledger-ingest` header) with a plain
aiokafka producer's `create_batch`/`send_batch`, uncompressed (phase d sends the same records), and
the time from the first send until the intake tallies of that ingest id reach N.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from bench.events import EventSet
from bench.harness import notice
from bench.phases import PLAIN_PRODUCER, rounded
from bench.tallies import ingest_counts, received_under
from schemas.wire import INGEST_HEADER, SINGLE_CONTENT_TYPE, USAGE_TOPIC
from streams.publish import new_producer


async def produce_single_records(producer, topic: str, keyed: list[tuple[bytes, bytes]], headers: list) -> list:
    """One record per event, keyed, partitioned as Kafka's default partitioner does, sent as
    full batches with create_batch/send_batch (the fastest aiokafka path, INFRA.md)."""
    from aiokafka.partitioner import DefaultPartitioner

    partitions = sorted(await producer.partitions_for(topic))
    partitioner = DefaultPartitioner()
    partition_of: dict[bytes, int] = {}
    for key, _ in keyed:
        if key not in partition_of:
            partition_of[key] = partitioner(key, partitions, partitions)
    builders = {p: producer.create_batch() for p in partitions}
    deliveries = []
    for key, value in keyed:
        partition = partition_of[key]
        builder = builders[partition]
        if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
            deliveries.append(await producer.send_batch(builder, topic, partition=partition))
            builder = builders[partition] = producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise RuntimeError("a single event does not fit an empty batch")
    for partition, builder in builders.items():
        if builder.record_count():
            deliveries.append(await producer.send_batch(builder, topic, partition=partition))
    return await asyncio.gather(*deliveries)


async def _wait_for_tallies(
    conn, ingest_id: str, expected: int, started: float, produced: float, timeout: float
) -> tuple[float, float | None]:
    """Poll the tallies of `ingest_id` every 0.1 s until they reach `expected`; return when
    they did and when the first events were seen (seconds from `started`)."""
    last_change, last_seen = produced, -1
    first_in_ledger = None
    while True:
        done = await received_under(conn, ingest_id)
        now = time.perf_counter()
        if done and first_in_ledger is None:
            first_in_ledger = now - started
        if done >= expected:
            return time.perf_counter(), first_in_ledger
        if done != last_seen:
            last_seen, last_change = done, now
        elif now - last_change > 60:
            notice(f"phase b: no progress for 60 s ({done:,}/{expected:,})")
            last_change = now
        if now - started > timeout:
            raise RuntimeError(f"phase b timed out after {timeout:.0f} s at {done:,}/{expected:,}")
        await asyncio.sleep(0.1)


async def single_records_phase(
    bootstrap: str, database_url: str, events: EventSet, timeout: float
) -> tuple[dict, dict[int, int]]:
    """Phase b's figures, and the first offset of its records per partition (for phase c)."""
    import asyncpg

    ingest_id = f"bench-single-{uuid.uuid4().hex}"
    headers = [("content-type", SINGLE_CONTENT_TYPE), (INGEST_HEADER, ingest_id.encode("ascii"))]
    producer = new_producer(bootstrap, PLAIN_PRODUCER)
    await producer.start()
    conn = await asyncpg.connect(database_url)
    try:
        notice(
            f"phase b: {events.count:,} single-event records via create_batch/send_batch, "
            f"ingest id {ingest_id}"
        )
        started = time.perf_counter()
        metadata = await produce_single_records(producer, USAGE_TOPIC, events.keyed, headers)
        produced = time.perf_counter()
        notice(f"phase b: produced in {produced - started:.2f} s; waiting for the intake tallies")
        first_offsets: dict[int, int] = {}
        for item in metadata:
            first_offsets[item.partition] = min(first_offsets.get(item.partition, item.offset), item.offset)
        finished, first_in_ledger = await _wait_for_tallies(
            conn, ingest_id, events.count, started, produced, timeout
        )
        counts = await ingest_counts(conn, ingest_id)
    finally:
        await conn.close()
        await producer.stop()
    timing = {"started": started, "produced": produced, "finished": finished, "first_in_ledger": first_in_ledger}
    return _figures(events, ingest_id, len(metadata), counts, timing), first_offsets


def _figures(events: EventSet, ingest_id: str, batches: int, counts: dict, timing: dict) -> dict:
    started, produced = timing["started"], timing["produced"]
    elapsed = timing["finished"] - started
    all_accepted = counts["received"] == events.count and counts["accepted"] == events.count
    if not all_accepted:
        notice(f"phase b: NOT all accepted: {counts}")
    return {
        "what": "single-event records (plain aiokafka create_batch/send_batch), "
                "first send -> intake tallies reach N (polled every 0.1 s)",
        "events": events.count,
        "records": events.count,
        "batches_sent": batches,
        "ingest_id": ingest_id,
        "produce_seconds": round(produced - started, 3),
        "produce_records_per_second": round(events.count / (produced - started)),
        "seconds": round(elapsed, 3),
        "events_per_second": round(events.count / elapsed),
        "counts": counts,
        "all_accepted": all_accepted,
        "timeline_seconds": {
            "note": "from the first send; ledger times polled every 0.1 s (from the end of producing)",
            "all_produced": round(produced - started, 3),
            "first_events_in_ledger": rounded(timing["first_in_ledger"]),
            "all_events_in_ledger": round(elapsed, 3),
        },
    }
