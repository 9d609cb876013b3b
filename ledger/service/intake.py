"""Intake: a batch of Kafka records -> billed seconds, dead letters, tallies, positions.

`Intake.apply` is what a stream worker calls for every batch it takes. It decides and
writes a whole batch in ONE store transaction, in these steps (each says what happens if
it fails there: a failure anywhere rolls the transaction back, nothing of the batch is
written, and the batch is retried whole):

1. Hold the books (shared): a close cannot interleave with booking.
2. Lock the consumer positions of the batch's partitions and drop every record below
   them: those were applied by an earlier transaction (a redelivery after a crash or a
   rebalance), so applying them again would count them twice. A record above a stored
   position is applied only if the consumer read everything from that position up to it
   (`Record.contiguous_from`): otherwise records in between were never applied (a fetch
   from before a rebalance delivered late, Kafka's committed offset ahead of the ledger
   after a restore) and applying it would move the position past them for good. Such a
   partition's records are held back, unapplied and unacked, and reported as a gap: the
   worker reads the partition again from the stored position.
3. Reload the catalog if a load happened since the last batch: `no_price` and
   `no_agreement` are decided with the catalog of the moment of processing.
4. Decode and check every event, whichever way its record carries it (structured, a
   batch, or CloudEvents binary mode: `ledger.domain.records`), pure
   (`ledger.domain.events`).
5. Lock the batch's GPUs in sorted order, so two workers never decide the same
   GPU-seconds at once even when one GPU's events arrive on several partitions.
6. Read the stored bitmaps of the (GPU, hour) pairs touched, and the seconds voids took
   from them, and apply the events in record order (pure; `ledger.domain.metering`).
7. Write the changed bitmaps, the dead letters, one tally row per ingest, and the new
   positions, then commit.

Memory: a batch holds its own records and the bitmaps of the hours they touch, and
nothing is kept between batches but the catalog.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable

from ledger.domain import events
from ledger.domain.catalog import Catalog
from ledger.domain.errors import ServiceUnavailable, StoreBusy
from ledger.domain.metering import ACCEPTED, DUPLICATE, Meter, Pieces, hours_of
from ledger.domain.ports import DeadLetter, IntakeTransaction, Store, Tally
from ledger.domain.records import BatchResult, Received, Record, parties, storable, unpack

log = logging.getLogger(__name__)

RETRY_FIRST_DELAY_SECONDS = 0.05
RETRY_MAX_DELAY_SECONDS = 5.0
UNDECIDABLE = "could not be decided (kept for replay once the ledger is fixed)"


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class Intake:
    """Applies batches of records to the ledger; one per worker, used by one task."""

    def __init__(
        self, store: Store, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock_ms: Callable[[], int] = wall_clock_ms,
        on_retry: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.store = store
        self.catalog = Catalog()
        self.catalog_revision = -1
        self._pieces: Pieces | None = None
        self._sleep = sleep
        self._clock_ms = clock_ms
        self._on_retry = on_retry  # the worker counts retries by reason (busy, unavailable)
        # (topic, partition) -> the first offset Kafka still holds, where it found its log
        # starts after the ledger's position (retention deleted what the ledger never read)
        self.log_starts: dict[tuple[str, int], int] = {}

    async def apply(self, records: list[Record]) -> BatchResult:
        """Apply a batch, retrying it whole, with a bounded backoff, while the store is busy
        (a deadlock) or away (a lost connection, a restart, no connection slot left): the
        batch is not acked meanwhile, so nothing is lost however long the outage."""
        delay = RETRY_FIRST_DELAY_SECONDS
        while True:
            try:
                async with self.store.intake() as tx:
                    return await self._apply_once(tx, records)
            except StoreBusy as exc:
                log.warning("batch retried: %s", exc)
                self._on_retry("busy")
            except ServiceUnavailable as exc:
                log.warning("store unavailable (%s); retrying in %.1fs", exc, delay)
                self._on_retry("unavailable")
            await self._sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY_SECONDS)

    async def _apply_once(self, tx: IntakeTransaction, records: list[Record]) -> BatchResult:
        result = BatchResult()
        closed_through = await tx.closed_through()  # 1. books
        fresh, next_offsets = await _unapplied(tx, records, result, self.log_starts)  # 2. positions
        if not fresh:
            return result
        await self._refresh_catalog(tx)  # 3. catalog
        now_ms = self._clock_ms()
        received = [item for record in fresh for item in decide(record.received_at(now_ms), self.catalog)]  # 4.
        result.outcomes = await settle(tx, received, Meter(self._pieces, closed_through))  # 5, 6, 7
        result.received = len(received)
        for topic, offsets in next_offsets.items():
            await tx.advance_positions(topic, offsets)
        return result

    async def _refresh_catalog(self, tx: IntakeTransaction) -> None:
        revision = await tx.catalog_revision()
        if revision != self.catalog_revision:
            self.catalog, self.catalog_revision = await tx.catalog()
            self._pieces = Pieces(self.catalog.calendar)


def decide(record: Record, catalog: Catalog) -> list[Received]:
    """Step 4: every received event of a record with its verdict so far (checks 1 to 10)."""
    received = unpack(record)
    for item in received:
        if isinstance(item.verdict, dict):
            try:
                item.verdict = events.check(item.verdict, record.timestamp_ms, catalog, record.sender)
            except Exception:  # a bug of ours must not stop the ledger: keep the event, say so
                log.exception("an event could not be checked; it is dead-lettered")
                item.verdict = events.Rejection(events.MALFORMED, UNDECIDABLE)
    return received


async def settle(tx: IntakeTransaction, received: list[Received], meter: Meter) -> Counter:
    """Steps 5 to 7: meter the valid events, write bitmaps, dead letters and tallies."""
    usages = [r for r in received if isinstance(r.verdict, events.Usage)]
    if usages:
        await _meter(tx, meter, usages)
    await tx.write_claims(meter.changed())
    await tx.write_dead_letters(dead_letters(received))
    tallies, outcomes = tally(received)
    await tx.write_tallies(tallies)
    return outcomes
async def _unapplied(
    tx: IntakeTransaction, records: list[Record], result: BatchResult, log_starts: dict[tuple[str, int], int],
) -> tuple[list[Record], dict[str, dict[int, int]]]:
    """The records not applied yet that follow their partition's position without a gap, and
    the next offset of each partition after them (step 2)."""
    by_topic: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_topic[record.topic].append(record)
    fresh: list[Record] = []
    next_offsets: dict[str, dict[int, int]] = {}
    for topic, topic_records in by_topic.items():
        stored = await tx.positions(topic, sorted({r.partition for r in topic_records}))
        offsets = next_offsets.setdefault(topic, {})
        for record in topic_records:
            partition = record.partition
            if (topic, partition) in result.gaps:
                result.held_records += 1
                continue
            # A partition never read starts at 0, or where Kafka's log starts (retention).
            position = offsets.get(partition, max(stored.get(partition, 0), log_starts.get((topic, partition), 0)))
            if record.offset < position:
                result.skipped_records += 1
                continue
            if record.contiguous_from is not None and record.contiguous_from > position:
                result.gaps[(topic, partition)] = position
                result.held_records += 1
                continue
            fresh.append(record)
            offsets[partition] = record.offset + 1
    return fresh, {topic: offsets for topic, offsets in next_offsets.items() if offsets}


async def _meter(tx: IntakeTransaction, meter: Meter, usages: list[Received]) -> None:
    """Steps 5 and 6: lock the GPUs, load their bitmaps, apply the events in record order."""
    await tx.lock_gpus(sorted({r.verdict.gpu_uuid for r in usages}))
    pairs = sorted({(r.verdict.gpu_uuid, hour) for r in usages for hour in hours_of(r.verdict)})
    for key, bits in await tx.claims(pairs):
        meter.load(key, bits)
    for key, bits in await tx.voided(pairs):  # SPEC.md, "Corrections": voided seconds stay voided
        meter.load_voided(key.gpu_uuid, key.hour_start, key.attribution, bits)
    for item in usages:
        try:
            item.verdict = meter.apply(item.verdict)
        except Exception:  # the meter changes nothing before it decides; see decide()
            log.exception("an event could not be metered; it is dead-lettered")
            item.verdict = events.Rejection(events.MALFORMED, UNDECIDABLE)


def dead_letters(received: list[Received]) -> list[DeadLetter]:
    return [
        DeadLetter(
            item.verdict.reason, storable(item.verdict.detail), item.raw, item.record.timestamp_ms,
            item.record.topic, item.record.partition, item.record.offset, item.position,
            item.record.ingest_id, *parties(item.raw), item.record.sender, raw_of=item.raw_of,
        )
        for item in received
        if isinstance(item.verdict, events.Rejection)
    ]


def tally(received: list[Received]) -> tuple[list[Tally], Counter]:
    """One tally per (ingest, topic, partition), and the batch's total per outcome."""
    counts: dict[tuple[str, str, int], Counter] = defaultdict(Counter)
    total: Counter = Counter()
    keys: dict[int, tuple[str, str, int]] = {}  # per record, not per event
    for item in received:
        outcome = item.outcome
        assert outcome in (ACCEPTED, DUPLICATE) or outcome in events.REASONS, outcome
        record = item.record
        key = keys.get(id(record))
        if key is None:
            key = keys[id(record)] = (record.ingest_id, record.topic, record.partition)
        counts[key][outcome] += 1
        total[outcome] += 1
    return [Tally(*key, dict(found)) for key, found in counts.items()], total
