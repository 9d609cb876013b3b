"""The Faust app: the usage topics and the agent that meters them into the ledger.

Processing guarantee: at least once from Kafka, effectively once in the ledger. The
agent takes batches of records from the consumer's direct path (`faust_ext.Batches`,
past Faust's streams) and acks them (which lets Faust commit their offsets) only after
the batch is committed in the store together with its Kafka positions
(`ledger.service.intake`). A batch redelivered after a crash or a rebalance is
recognised by those positions and skipped. If a batch cannot be written for a reason
that retrying will not fix, the process exits at once instead of acking what was not
written.

Broker features used: consumer groups and offset commits (both present on the Tansu
test broker); no transactions, no idempotent producer, no end offsets. Which topics a
worker reads, and whether it trusts their timestamps: `streams.subscription`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import faust
from faust.types import TP

from ledger.domain.ports import Store
from ledger.domain.records import BatchResult, Record
from ledger.service.intake import Intake
from ledger.settings import Settings
from schemas.wire import (
    CONTENT_TYPE_HEADER,
    MAX_BATCH_EVENTS,
    MAX_BATCH_RECORD_BYTES,
    is_batch,
    sender_of,
)
from streams import diagnostics, fetching, metrics, positions
from streams.auth import client_options, faust_credentials
from streams.faust_ext import LedgerApp, RawSchema
from streams.subscription import (
    LOG_APPEND,
    RESUBSCRIBE_AFTER_SECONDS,
    WATCH_EVERY_SECONDS,
    Subscription,
    until_next_watch,
)
from streams.topics import METER_GROUP, usage_topics_on_broker

log = logging.getLogger(__name__)

# Up to 10,000 records per take: a GPU-hour's bitmap is then read and written once for
# many single-event records (takes of 2,000 cost about 4 us more per record).
TAKE_MAX_RECORDS = 10000
TAKE_WITHIN_SECONDS = 0.5
# Once a take that waited has its first records, how long it waits for more. A take
# that finds records waiting (fetched while the last take was written) does not linger:
# a worker that is behind would otherwise idle 50 ms a take (`faust_ext.Batches.take`).
TAKE_LINGER_SECONDS = 0.05
# A batch record may carry hundreds of events: what a worker takes is written in
# transactions of at most this many bytes of record values (in offset order, so each
# one's positions cover exactly its records), which bounds a worker's memory.
TRANSACTION_MAX_BYTES = 8 << 20
# ...and of about this many events: a batch record may carry thousands of tiny ones.
TRANSACTION_MAX_EVENTS = 50_000
# The longest a fetch waits for records on an idle partition. Faust fixes 1500 ms, which
# on a broker that answers only when the wait is over (the test broker) is the delay
# between a record's production and its worker; 100 ms keeps a single event's way to
# the ledger well under a second, for ten empty fetches a second on an idle Kafka.
FETCH_MAX_WAIT_MS = 100
# Records one poll of the consumer may return (Faust's default: all that were fetched).
# A fetch is bounded in bytes as they travel, so compressed records (zstd: a twelfth)
# made one poll hold twelve times the events: draining a backlog of 2M events from
# `gpuledger ingest`, workers peaked at 417 MiB; with 2,000, 213 MiB and as fast
# (500: 200 MiB, 20% slower). Measured with python -m bench.pipeline --backlog.
MAX_POLL_RECORDS = 2000
# How often a worker asks the store to prepare the coming months (and once at start).
PREPARE_MONTHS_EVERY_SECONDS = 3600.0


# The broker's high watermark of (topic, partition), if known: for the lag metric.
Highwater = Callable[[str, int], "int | None"]

# Opens the ledger's store for the worker's lifetime, inside Faust's event loop (the
# composition root, `gpuledger worker`, decides which store).
StoreOpener = Callable[[], Awaitable[Store]]


@dataclass(frozen=True)
class Worker:
    """One worker process: where it keeps Faust's files, and how it reports readiness."""

    name: str
    data_dir: Path
    partitions: int
    ready_file: Path | None = None
    group_id: str = METER_GROUP
    # A development broker (the embedded one) ignores LogAppendTime: trust the timestamps
    # the CLI and the API set. Never in production (streams/subscription.py).
    trust_producer_time: bool = False


def to_record(message, usage_topic: str, *, trust_producer_time: bool) -> Record:
    """A Kafka message (Faust's) as the ledger's Record, whatever a producer put in it:
    header names that are not UTF-8 are read with replacement characters; a missing or
    negative timestamp, or one the broker did not set (unless the producers' are trusted),
    becomes None (judged at the worker's clock); the sender is the member whose own topic
    it came on (None: the operator's usage topic)."""
    headers = {}
    for key, value in message.headers or ():
        name = key if isinstance(key, str) else bytes(key).decode("utf-8", "replace")
        headers[name.lower()] = value or b""
    timestamp = message.timestamp
    stamped = trust_producer_time or getattr(message, "timestamp_type", None) == LOG_APPEND
    timestamp_ms = round(timestamp * 1000) if stamped and timestamp is not None and timestamp >= 0 else None
    value = message.value if message.value is not None else b""  # keeps an UnreadBatch (falsy)
    return Record(
        message.topic, message.partition, message.offset, timestamp_ms, value, headers,
        sender_of(usage_topic, message.topic), getattr(message, "contiguous_from", None),
    )


def estimated_events(record: Record) -> int:
    """At least as many events as a record carries (batch elements are comma separated)."""
    if not is_batch(record.headers.get(CONTENT_TYPE_HEADER, b"")):
        return 1
    return min(record.value.count(b",") + 1, MAX_BATCH_EVENTS)


def transactions(records: list[Record], max_bytes: int, max_events: int) -> list[list[Record]]:
    """Consecutive slices of records of at most max_bytes of values and about max_events
    events (at least one record each): what one store transaction decides and writes."""
    chunks: list[list[Record]] = []
    size = events = 0
    for record in records:
        weight = estimated_events(record)
        if not chunks or (chunks[-1] and (size + len(record.value) > max_bytes or events + weight > max_events)):
            chunks.append([])
            size = events = 0
        chunks[-1].append(record)
        size += len(record.value)
        events += weight
    return chunks


def _faust_app(settings: Settings, worker: Worker) -> LedgerApp:
    fetching.install()  # no record batch, however compressed, costs a worker more than its bound
    return LedgerApp(
        worker.group_id,
        direct=True,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        broker=f"kafka://{settings.need_kafka()}",
        datadir=str(worker.data_dir),
        store="memory://",
        processing_guarantee="at_least_once",
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=worker.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        # Measured on the test broker (INFRA.md): ready in ~5 s instead of 30, restart
        # in ~7 s instead of 112.
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        broker_rebalance_timeout=10,
        producer_max_batch_size=64,
        # Records read ahead of the agent (per stream). faust_ext's bound of 64 MiB
        # usually stops read-ahead first; larger buffers did not go faster.
        stream_buffer_maxsize=65536,
        broker_max_poll_records=MAX_POLL_RECORDS,
        # A record may be as large as an API request (one record each): fetch it whole.
        consumer_max_fetch_size=MAX_BATCH_RECORD_BYTES,
        web_enabled=False,
        broker_credentials=faust_credentials(settings.kafka_auth),
    )


def _record_metrics(records: list[Record], result: BatchResult, seconds: float, highwater: Highwater) -> None:
    metrics.FLUSH_SECONDS.observe(seconds)
    metrics.BATCH_RECORDS.observe(len(records))
    metrics.BATCH_EVENTS.observe(result.received)
    metrics.REDELIVERED.inc(result.skipped_records)
    for outcome, count in result.outcomes.items():
        metrics.EVENTS.labels(outcome).inc(count)
    next_offsets: dict[tuple[str, int], int] = {}
    for record in records:
        next_offsets[(record.topic, record.partition)] = record.offset + 1
    for (topic, partition), offset in next_offsets.items():
        metrics.COMMITTED_POSITION.labels(topic, partition).set(offset)
        end = highwater(topic, partition)
        if end is not None:
            metrics.CONSUMER_LAG.labels(topic, partition).set(max(0, end - offset))


async def _write_or_exit(intake: Intake, messages, highwater: Highwater, read: Callable) -> BatchResult:
    """Write a take, or end the process: nothing may let take_events ack an unwritten batch."""
    started = time.perf_counter()
    try:
        # Everything from here to the commit sits inside this try: an exception escaping
        # the loop body would let take_events ack what was not written.
        records = [read(message) for message in messages]
        result = BatchResult()
        for chunk in transactions(records, TRANSACTION_MAX_BYTES, TRANSACTION_MAX_EVENTS):
            kept = positions.without_held(chunk, result)  # a gap holds its partition for the take
            if kept:
                result.add(await intake.apply(kept))
    except asyncio.CancelledError:
        # Stopping mid-batch: the transaction is rolled back; leaving now keeps
        # take_events from acking the batch, which is redelivered to the next owner.
        log.warning("stopped while writing a batch; it will be redelivered")
        logging.shutdown()
        os._exit(0)
    except BaseException:
        log.exception("batch could not be written; exiting so that it is not acked")
        logging.shutdown()
        os._exit(70)
    _record_metrics(records, result, time.perf_counter() - started, highwater)
    return result


def _month_preparer(state: dict) -> Callable[[], Awaitable[None]]:
    """Makes the next months' storage (partitions) ready long before their first usage;
    any worker may, the database makes each once. Run once the store is open, then hourly."""

    async def prepare_months() -> None:
        store = state.get("store")
        if store is None:
            return
        try:
            made = await store.prepare_months()
        except Exception:  # noqa: BLE001 - retried at the next tick; a row never waits for it
            log.warning("could not prepare the coming months' storage", exc_info=True)
            return
        if made:
            log.info("storage prepared for the coming months: %s", ", ".join(made))

    return prepare_months


def _topic_watcher(app: faust.App, settings: Settings, subscription: Subscription, channel) -> Callable:
    """Reads new members' topics (and fixed refused ones) without a restart."""

    async def watch_topics() -> None:
        try:
            found = await usage_topics_on_broker(
                settings.need_kafka(), settings.usage_topic, client_options(settings.kafka_auth)
            )
        except Exception:  # noqa: BLE001 - the broker may be away; the next watch tries again
            log.warning("could not list the usage topics; trying again in %.0fs", WATCH_EVERY_SECONDS, exc_info=True)
            return
        added = subscription.update(found)
        if added:
            log.info("reading new usage topics: %s", ", ".join(added))
            conductor = app.topics  # Faust's conductor: it resubscribes once a channel is added
            conductor._resubscribe_sleep_lock_seconds = RESUBSCRIBE_AFTER_SECONDS
            conductor.add(channel(added))

    return watch_topics


def _on_the_clock(watch: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """`watch` at every multiple of WATCH_EVERY_SECONDS of the wall clock, in every worker alike."""

    async def watch_topics() -> None:
        while True:  # Faust cancels its tasks when the worker stops
            await asyncio.sleep(until_next_watch(time.time()))
            await watch()

    return watch_topics


def _lifecycle(app: faust.App, worker: Worker) -> None:
    """Start-up chores: no per-message monitor, and the ready file once partitions are assigned."""

    @app.task
    async def without_monitor() -> None:
        # Faust's Monitor sensor does bookkeeping for every message, for its web views,
        # which these workers do not serve; the ledger's own metrics are in streams.metrics.
        app.sensors.remove(app.monitor)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender, assigned, **kwargs) -> None:
        log.info("partitions assigned: %s", sorted((tp.topic, tp.partition) for tp in assigned))
        if worker.ready_file is not None:
            worker.ready_file.parent.mkdir(parents=True, exist_ok=True)
            worker.ready_file.write_text(str(os.getpid()))


def create_app(
    settings: Settings, worker: Worker, open_store: StoreOpener, subscription: Subscription | None = None,
) -> faust.App:
    app = _faust_app(settings, worker)
    subscription = subscription or Subscription(settings.usage_topic, worker.trust_producer_time)
    schema = RawSchema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    def channel(topics: list[str]):
        return app.topic(*topics, schema=schema, partitions=worker.partitions)

    usage_topics = channel(sorted(subscription.read or {settings.usage_topic}))
    app.task(_on_the_clock(_topic_watcher(app, settings, subscription, channel)))
    state: dict = {}

    def read(message) -> Record:
        return to_record(message, settings.usage_topic, trust_producer_time=subscription.trust_producer_time)

    _lifecycle(app, worker)
    prepare_months = _month_preparer(state)
    app.timer(PREPARE_MONTHS_EVERY_SECONDS, on_leader=False, name="prepare_months")(prepare_months)

    @app.agent(usage_topics, concurrency=1, name="meter")
    async def meter(stream) -> None:
        if "diagnostics" not in state:
            # SIGUSR2: where each task waits, and what the consumer's flow is
            diagnostics.install(asyncio.get_running_loop(), app.consumer.flow_state)
            state["diagnostics"] = True
        if "store" not in state:
            # Open for the process's life; its connections come back after an outage.
            state["store"] = await open_store()
            await prepare_months()
        intake = Intake(state["store"], on_retry=lambda reason: metrics.STORE_RETRIES.labels(reason).inc())
        rereader = positions.Rereader(app.consumer, intake)
        if "frozen" not in state:
            gc.collect()
            gc.freeze()
            state["frozen"] = True
        # The direct path (streams/faust_ext.py, `Batches`): the stream itself stays empty.
        batches, ack = app.consumer.batches, app.consumer.ack
        while True:
            messages = await batches.take(TAKE_MAX_RECORDS, TAKE_WITHIN_SECONDS, TAKE_LINGER_SECONDS)
            if messages:
                result = await _write_or_exit(intake, messages, highwater, read)
                for message in messages:
                    if positions.acked(message, result):
                        ack(message)
                if result.gaps:
                    await rereader.read_again(result.gaps)

    def highwater(topic: str, partition: int) -> int | None:
        """The broker's end of a partition as of the last fetch (None before one)."""
        try:
            return app.consumer.highwater(TP(topic, partition))
        except Exception:  # noqa: BLE001 - a metric must never stop a worker
            return None

    return app


def run_worker(settings: Settings, worker: Worker, open_store: StoreOpener, loglevel: str = "info") -> None:
    """Run a Faust worker in this process until SIGTERM or SIGINT; TopicRefused before it
    starts when the usage topic is missing or dated by its producers."""
    subscription = Subscription(settings.usage_topic, worker.trust_producer_time)
    subscription.first(asyncio.run(
        usage_topics_on_broker(settings.need_kafka(), settings.usage_topic, client_options(settings.kafka_auth))
    ))
    try:
        import uvloop  # optional (not on Windows), so imported only where it is used

        uvloop.install()
    except ImportError:  # uvloop is optional; the default loop is only slower
        pass
    worker.data_dir.mkdir(parents=True, exist_ok=True)
    # Faust and aiokafka keep many long-lived objects, which every full collection of
    # the cyclic garbage collector walks; a batch of records allocates tens of thousands
    # of short-lived ones. Fewer full collections: about 10 us less CPU per single-event
    # record (python -m bench.pipeline). Objects alive once the agent has started are
    # frozen out of the collector's walks (`meter` below).
    gc.set_threshold(700, 20, 100)
    app = create_app(settings, worker, open_store, subscription)
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
