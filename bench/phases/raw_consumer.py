"""Phase c of the pipeline benchmark: the ceiling of a plain consumer.

Owns: reading phase b's records back with a raw aiokafka consumer (manual assignment
from phase b's first offsets, `getmany(max_records=10000)`, no decoding), spot-checking
that they are phase b's by their ingest header, and its records/s.
"""

from __future__ import annotations

import time

from bench.harness import notice
from schemas.wire import INGEST_HEADER, USAGE_TOPIC


async def raw_consumer_phase(
    bootstrap: str, first_offsets: dict[int, int], expected: int, ingest_id: str, timeout: float
) -> dict:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    header = ingest_id.encode("ascii")
    checked = foreign = 0
    count = 0
    try:
        partitions = [TopicPartition(USAGE_TOPIC, p) for p in sorted(first_offsets)]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, first_offsets[tp.partition])
        notice(f"phase c: raw consumer from the first offsets of phase b {first_offsets}")
        started = last_data = time.perf_counter()
        while count < expected:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            now = time.perf_counter()
            if not batches:
                if now - last_data > timeout:
                    notice(f"phase c: nothing more to read after {count:,} records")
                    break
                continue
            last_data = now
            for messages in batches.values():
                count += len(messages)
                # Spot check (first and last record of each fetch) that these are phase b's.
                for message in (messages[0], messages[-1]):
                    checked += 1
                    if dict(message.headers or ()).get(INGEST_HEADER) != header:
                        foreign += 1
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
    if foreign:
        notice(f"phase c: {foreign} of {checked} spot-checked records were not phase b's")
    return {
        "what": "plain aiokafka consumer, manual assignment, getmany(max_records=10000), "
                "counting records without decoding them",
        "records": count,
        "seconds": round(elapsed, 3),
        "records_per_second": round(count / elapsed) if elapsed > 0 else None,
        "spot_checked": checked,
        "spot_checked_not_phase_b": foreign,
    }
