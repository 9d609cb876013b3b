"""Phase c of the pipeline benchmark: the ceiling of a plain consumer.

Owns: reading records back with a raw aiokafka consumer (manual assignment from given
first offsets, `getmany(max_records=10000)`, no decoding), spot-checking that they are
the expected ingests' by their ingest header, and its records/s. Phase c reads phase b's
records; `bench.month` reads a whole month's from the start of the topic
(`read_from_start`), counting the events batch records carry as well, so that the
month's ingest rate can be read against the broker's own read rate.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from bench.harness import notice
from schemas.wire import CONTENT_TYPE_HEADER, INGEST_HEADER, USAGE_TOPIC, is_batch


def record_events(message) -> int:
    """Events a record carries: 1, or a batch record's elements (one per `,\\n`-ended
    line, as `schemas.wire.encode_batch` writes them), read from its bytes without parsing."""
    for name, value in message.headers or ():
        if name == CONTENT_TYPE_HEADER and is_batch(value):
            return message.value.count(b",\n") + 1
    return 1


async def raw_consumer_phase(
    bootstrap: str, first_offsets: dict[int, int], expected: int | None, ingest_ids: str | Collection[str] | None,
    timeout: float, *, count_events: bool = False, topic: str = USAGE_TOPIC,
) -> dict:
    """Read `expected` records (None: until nothing more arrives for `timeout` seconds;
    the time then ends at the last record read) from `first_offsets`, by partition.
    `ingest_ids`: whose records they must be (None: any, no spot check)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    if isinstance(ingest_ids, str):
        ingest_ids = [ingest_ids]
    headers = None if ingest_ids is None else {i.encode("ascii") for i in ingest_ids}
    checked = foreign = 0
    count = events = 0
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(first_offsets)]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, first_offsets[tp.partition])
        notice(f"raw consumer from offsets {first_offsets}")
        started = last_data = time.perf_counter()
        while expected is None or count < expected:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            now = time.perf_counter()
            if not batches:
                if now - last_data > timeout:
                    if expected is not None:
                        notice(f"raw consumer: nothing more to read after {count:,} records")
                    break
                continue
            last_data = now
            for messages in batches.values():
                count += len(messages)
                if count_events:
                    events += sum(map(record_events, messages))
                # Spot check (first and last record of each fetch) that these are the ingests'.
                for message in (messages[0], messages[-1]) if headers is not None else ():
                    checked += 1
                    if dict(message.headers or ()).get(INGEST_HEADER) not in headers:
                        foreign += 1
        elapsed = (time.perf_counter() if expected is not None else last_data) - started
    finally:
        await consumer.stop()
    if foreign:
        notice(f"raw consumer: {foreign} of {checked} spot-checked records were not of the expected ingests")
    figures = {
        "what": "plain aiokafka consumer, manual assignment, getmany(max_records=10000), "
                + ("counting records and the events batch records carry (bytes.count, no JSON)"
                   if count_events else "counting records without decoding them"),
        "records": count,
        "seconds": round(elapsed, 3),
        "records_per_second": round(count / elapsed) if elapsed > 0 else None,
        "spot_checked": checked,
        "spot_checked_foreign": foreign,
    }
    if count_events:
        figures |= {"events": events, "events_per_second": round(events / elapsed) if elapsed > 0 else None}
    return figures


async def read_from_start(bootstrap: str, idle_seconds: float = 3.0) -> dict:
    """Every record of the usage topic, from offset 0 of each partition, until none arrives
    for `idle_seconds` (end offsets cannot be trusted on the test broker, INFRA.md): on a
    fresh stack, all that was ingested."""
    from aiokafka import AIOKafkaConsumer

    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await probe.start()
    try:
        await probe.topics()  # the cluster's metadata, which partitions_for_topic reads
        partitions = sorted(probe.partitions_for_topic(USAGE_TOPIC) or ())
    finally:
        await probe.stop()
    return await raw_consumer_phase(
        bootstrap, dict.fromkeys(partitions, 0), None, None, idle_seconds, count_events=True,
    )
