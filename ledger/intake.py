"""Intake: a batch of Kafka records -> billed seconds, dead letters, tallies, positions.

`Intake.apply` is what a stream worker calls for every batch it takes. It decides and
writes a whole batch in ONE PostgreSQL transaction, in these steps (each says what
happens if it fails there: a failure anywhere rolls the transaction back, nothing of
the batch is written, and the batch is retried whole):

1. Lock the books row FOR SHARE: a close cannot interleave with booking.
2. Lock the consumer positions of the batch's partitions and drop every record below
   them: those were applied by an earlier transaction (a redelivery after a crash or a
   rebalance), so applying them again would count them twice.
3. Reload the catalog if a load happened since the last batch: `no_price` and
   `no_agreement` are decided with the catalog of the moment of processing.
4. Decode and check every event (pure; `ledger.events`).
5. Lock the batch's GPUs in sorted order, so two workers never decide the same
   GPU-seconds at once even when one GPU's events arrive on several partitions.
6. Read the stored bitmaps of the (GPU, hour) pairs touched, and apply the events in
   record order (pure; `ledger.metering`).
7. Write the changed bitmaps, the dead letters, one tally row per ingest, and the new
   positions, then commit.

Memory: a batch holds its own records and the bitmaps of the hours they touch, and
nothing is kept between batches but the catalog.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

import asyncpg
import orjson

from ledger import store
from ledger.domain import events
from ledger.domain.catalog import Catalog
from ledger.domain.metering import ACCEPTED, DUPLICATE, ClaimKey, Meter, Pieces, hours_of

log = logging.getLogger(__name__)

BATCH_CONTENT_TYPE = b"application/cloudevents-batch+json"
CONTENT_TYPE_HEADER = "content-type"
INGEST_HEADER = "gpuledger-ingest"
REPLAY_HEADER = "gpuledger-replay"  # value: the id of the dead letter to replay
REPLAY_LOCK_CLASS = 0x67706C72  # pg_advisory_xact_lock(class, key) space of replayed dead letters
HOUR_BITS_BYTES = 450


class ReplayRaced(Exception):
    """Another transaction recorded a replay of the same dead letter first (see _Replays)."""


RETRYABLE = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.LockNotAvailableError,
    ReplayRaced,
)


class Record(NamedTuple):
    """One Kafka record as the ledger needs it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes
    headers: dict[str, bytes]


@dataclass(slots=True)
class Received:
    """One received event of a record, with what was decided about it."""

    record: Record
    position: int  # index in a batch record, 0 for a single event
    raw: bytes
    verdict: object  # dict (decoded), Usage, Rejection, ACCEPTED or DUPLICATE


def unpack(record: Record) -> list[Received]:
    """The received events of a record: one, or each element of a CloudEvents batch."""
    value = record.value if record.value is not None else b""
    content_type = record.headers.get(CONTENT_TYPE_HEADER, b"")
    if not content_type.split(b";")[0].strip().lower() == BATCH_CONTENT_TYPE:
        return [Received(record, 0, value, events.decode(value))]
    lines = _batch_lines(value)
    if lines is not None:
        return [
            Received(record, i, raw, events.check_decoded(raw, parsed))
            for i, (raw, parsed) in enumerate(lines)
        ]
    try:
        elements = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return [Received(record, 0, value, events.Rejection(events.MALFORMED, f"batch is not JSON: {exc}"[:300]))]
    if not isinstance(elements, list):
        return [Received(record, 0, value, events.Rejection(events.MALFORMED, "batch is not a JSON array"))]
    received = []
    for i, element in enumerate(elements):
        raw = orjson.dumps(element)
        received.append(Received(record, i, raw, events.check_decoded(raw, element)))
    return received


def _batch_lines(value: bytes) -> list[tuple[bytes, object]] | None:
    """The elements of a batch written one per line (as `gpuledger ingest` writes them).

    `[\\n e1,\\n e2 ... \\n]` where every piece parses alone is exactly the array of those
    pieces, so each element keeps its original bytes. Any other layout returns None and
    the array is parsed whole.
    """
    if not (value.startswith(b"[\n") and value.endswith(b"\n]")):
        return None
    body = value[2:-2]
    if not body:
        return []
    lines = []
    for piece in body.split(b",\n"):
        try:
            lines.append((piece, orjson.loads(piece)))
        except orjson.JSONDecodeError:
            return None
    return lines


def encode_batch(raws: list[bytes]) -> bytes:
    """A CloudEvents batch record value whose elements keep their bytes (see _batch_lines)."""
    return b"[\n" + b",\n".join(raws) + b"\n]"


@dataclass
class BatchResult:
    received: int = 0
    skipped_records: int = 0  # redelivered records already applied
    outcomes: Counter = field(default_factory=Counter)

    def add(self, other: BatchResult) -> None:
        self.received += other.received
        self.skipped_records += other.skipped_records
        self.outcomes.update(other.outcomes)


SELECT_POSITIONS = """
SELECT partition, next_offset FROM consumer_positions
WHERE topic = $1 AND partition = ANY($2::int[])
ORDER BY partition
FOR UPDATE
"""

UPSERT_POSITIONS = """
INSERT INTO consumer_positions (topic, partition, next_offset)
SELECT $1, p, o FROM unnest($2::int[], $3::bigint[]) AS t(p, o)
ON CONFLICT (topic, partition) DO UPDATE
SET next_offset = excluded.next_offset, updated_at = now()
WHERE consumer_positions.next_offset < excluded.next_offset
"""

INSERT_GPUS = """
INSERT INTO gpus (gpu_uuid)
SELECT g FROM unnest($1::text[]) AS g ORDER BY g
ON CONFLICT (gpu_uuid) DO NOTHING
"""

LOCK_GPUS = """
SELECT gpu_uuid FROM gpus WHERE gpu_uuid = ANY($1::text[]) ORDER BY gpu_uuid FOR UPDATE
"""

SELECT_CLAIMS = """
SELECT c.gpu_uuid, c.hour_start, c.provider, c.reseller, c.tenant, c.sku,
       c.service_period, c.booking_period, c.bits
FROM claims c
JOIN unnest($1::text[], $2::bigint[]) AS t(gpu_uuid, hour_start)
  ON c.gpu_uuid = t.gpu_uuid AND c.hour_start = t.hour_start
"""

UPSERT_CLAIMS = """
INSERT INTO claims (gpu_uuid, hour_start, provider, reseller, tenant, sku,
                    service_period, booking_period, seconds, bits)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::int[], $10::bytea[])
ON CONFLICT (gpu_uuid, hour_start, provider, reseller, tenant, sku, service_period, booking_period)
DO UPDATE SET seconds = excluded.seconds, bits = excluded.bits, updated_at = now()
"""

DEAD_LETTER_COLUMNS = (
    "reason", "detail", "raw", "received_ms", "topic", "partition", "offset", "position", "ingest_id",
    "provider", "reseller",
)

TALLY_COLUMNS = ("ingest_id", "topic", "partition", "accepted", "duplicate", *events.REASONS)


class Intake:
    """Applies batches of records to the ledger; one per worker, used by one task."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.catalog = Catalog()
        self.catalog_revision = -1
        self._pieces: Pieces | None = None

    async def apply(self, records: list[Record]) -> BatchResult:
        """Apply a batch, retrying it whole on a deadlock or a lost connection."""
        delay = 0.05
        while True:
            try:
                async with self.pool.acquire() as conn:
                    return await self._apply_once(conn, records)
            except RETRYABLE as exc:
                log.warning("batch retried after %s", exc.__class__.__name__)
            except (OSError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
                    asyncpg.ConnectionDoesNotExistError) as exc:
                log.warning("PostgreSQL unavailable (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _apply_once(self, conn: asyncpg.Connection, records: list[Record]) -> BatchResult:
        result = BatchResult()
        by_topic: dict[str, list[Record]] = defaultdict(list)
        for record in records:
            by_topic[record.topic].append(record)
        async with conn.transaction():
            # 1. books
            closed_through = await conn.fetchval(
                "SELECT closed_through FROM books WHERE id = 1 FOR SHARE"
            )
            # 2. positions
            fresh: list[Record] = []
            next_offsets: dict[tuple[str, int], int] = {}
            for topic, topic_records in by_topic.items():
                partitions = sorted({r.partition for r in topic_records})
                stored = dict(await conn.fetch(SELECT_POSITIONS, topic, partitions))
                for record in topic_records:
                    if record.offset < stored.get(record.partition, 0):
                        result.skipped_records += 1
                        continue
                    fresh.append(record)
                    key = (topic, record.partition)
                    next_offsets[key] = max(next_offsets.get(key, 0), record.offset + 1)
            if not fresh:
                return result
            # 3. catalog
            revision = await conn.fetchval(store.SELECT_CATALOG_REVISION)
            if revision != self.catalog_revision:
                self.catalog, self.catalog_revision = await store.load_catalog(conn)
                self._pieces = Pieces(self.catalog.calendar)
            # 4. decode and check (replay records take the slow path of _Replays)
            received: list[Received] = []
            replays = None
            if any(REPLAY_HEADER in record.headers for record in fresh):
                replays = await _Replays.load(conn, fresh)
            for record in fresh:
                if replays is not None and REPLAY_HEADER in record.headers:
                    received.extend(replays.unpack(record, self.catalog))
                    continue
                for item in unpack(record):
                    if isinstance(item.verdict, dict):
                        item.verdict = events.check(item.verdict, record.timestamp_ms, self.catalog)
                    received.append(item)
            usages = [r for r in received if isinstance(r.verdict, events.Usage)]
            # 5. GPU locks
            meter = Meter(self._pieces, closed_through)
            if usages:
                gpu_uuids = sorted({r.verdict.gpu_uuid for r in usages})
                await conn.execute(INSERT_GPUS, gpu_uuids)
                await conn.execute(LOCK_GPUS, gpu_uuids)
                # 6. stored bitmaps, then the rules in record order
                pairs = sorted({(r.verdict.gpu_uuid, h) for r in usages for h in hours_of(r.verdict)})
                rows = await conn.fetch(
                    SELECT_CLAIMS, [p[0] for p in pairs], [p[1] for p in pairs]
                )
                for row in rows:
                    meter.load(
                        ClaimKey(
                            row["gpu_uuid"], row["hour_start"],
                            (row["provider"], row["reseller"], row["tenant"], row["sku"]),
                            row["service_period"], row["booking_period"],
                        ),
                        int.from_bytes(row["bits"], "little"),
                    )
                for item in usages:
                    item.verdict = meter.apply(item.verdict)
            # 7. writes
            if replays is not None:
                await replays.write(conn)
            await self._write_claims(conn, meter.changed())
            await self._write_dead_letters(conn, received)
            result.received = len(received)
            result.outcomes = await self._write_tallies(conn, received)
            for topic in by_topic:
                partitions = [p for (t, p) in next_offsets if t == topic]
                await conn.execute(
                    UPSERT_POSITIONS, topic, partitions, [next_offsets[(topic, p)] for p in partitions]
                )
        return result

    async def _write_claims(self, conn, changed: list[tuple[ClaimKey, int]]) -> None:
        if not changed:
            return
        columns: list[list] = [[] for _ in range(10)]
        for key, bits in changed:
            provider, reseller, tenant, sku = key.attribution
            values = (
                key.gpu_uuid, key.hour_start, provider, reseller, tenant, sku,
                key.service_period, key.booking_period, bits.bit_count(),
                bits.to_bytes(HOUR_BITS_BYTES, "little"),
            )
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        await conn.execute(UPSERT_CLAIMS, *columns)

    async def _write_dead_letters(self, conn, received: list[Received]) -> None:
        rows = [
            (
                item.verdict.reason, item.verdict.detail, item.raw, item.record.timestamp_ms,
                item.record.topic, item.record.partition, item.record.offset, item.position,
                _ingest_id(item.record), *_parties(item.raw),
            )
            for item in received
            if isinstance(item.verdict, events.Rejection)
        ]
        if rows:
            await conn.copy_records_to_table("dead_letters", records=rows, columns=DEAD_LETTER_COLUMNS)

    async def _write_tallies(self, conn, received: list[Received]) -> Counter:
        tallies: dict[tuple[str, str, int], Counter] = defaultdict(Counter)
        total: Counter = Counter()
        keys: dict[int, tuple[str, str, int]] = {}  # per record, not per event
        for item in received:
            verdict = item.verdict
            outcome = verdict.reason if isinstance(verdict, events.Rejection) else verdict
            assert outcome in (ACCEPTED, DUPLICATE) or outcome in events.REASONS, outcome
            record = item.record
            key = keys.get(id(record))
            if key is None:
                key = keys[id(record)] = (_ingest_id(record), record.topic, record.partition)
            tallies[key][outcome] += 1
            total[outcome] += 1
        rows = [
            (*key, *(counts.get(name, 0) for name in TALLY_COLUMNS[3:]))
            for key, counts in tallies.items()
        ]
        await conn.copy_records_to_table("intake_tallies", records=rows, columns=TALLY_COLUMNS)
        return total


SELECT_REPLAYED_DEAD_LETTERS = """
SELECT d.id, d.raw, d.received_ms, r.dead_letter_id IS NOT NULL AS replayed
FROM dead_letters d LEFT JOIN dead_letter_replays r ON r.dead_letter_id = d.id
WHERE d.id = ANY($1::bigint[])
"""

LOCK_REPLAYED_DEAD_LETTERS = """
SELECT pg_advisory_xact_lock($1, key) FROM unnest($2::int[]) AS key
"""

INSERT_REPLAYS = """
INSERT INTO dead_letter_replays (dead_letter_id, outcome)
SELECT * FROM unnest($1::bigint[], $2::text[])
ON CONFLICT (dead_letter_id) DO NOTHING
RETURNING dead_letter_id
"""

UNKNOWN_DEAD_LETTER = "unknown dead letter"


class _Replays:
    """The replay records of a batch: header `gpuledger-replay: <dead letter id>`.

    A replay is processed from the dead letter's row, never from the record: its stored
    bytes, at its stored receipt time (so `future` and `too_late` are judged as they were
    on arrival), against the catalog of now. The record's value and timestamp are only
    for people reading the topic. A rejected replay writes a new dead letter (with the
    original receipt time), which may itself be replayed once.

    Counted once: a dead letter is replayed at most once, recorded by the primary key of
    `dead_letter_replays` in the same transaction as the outcome's claims and tallies. A
    replay record redelivered after a crash or a rebalance never gets here (step 2 drops
    records below the stored positions, written in that same transaction); a second
    record for the same dead letter (a producer's retry, a second replay request) has its
    own offset and is skipped here, uncounted, because the row exists. Concurrent
    batches replaying the same dead letter (unkeyed records land on any partition) are
    serialized by an advisory lock per dead letter, taken before the rows are read and
    before the GPU locks (step 5), so every worker takes its locks in the same order.
    A replay naming no dead letter (unknown id, or not a number) is received and
    rejected `malformed`, with the record's value as its bytes: never lost, never fatal.
    """

    def __init__(self, rows: dict[int, asyncpg.Record]) -> None:
        self.rows = rows
        self.done = {i for i, row in rows.items() if row["replayed"]}
        self.replayed: list[tuple[int, Received]] = []

    @classmethod
    async def load(cls, conn: asyncpg.Connection, records: list[Record]) -> _Replays:
        ids = sorted({i for r in records if (i := _replay_id(r)) is not None})
        if not ids:
            return cls({})
        await conn.execute(
            LOCK_REPLAYED_DEAD_LETTERS, REPLAY_LOCK_CLASS, sorted({i & 0x7FFFFFFF for i in ids})
        )
        rows = await conn.fetch(SELECT_REPLAYED_DEAD_LETTERS, ids)
        return cls({row["id"]: row for row in rows})

    def unpack(self, record: Record, catalog: Catalog) -> list[Received]:
        dead_letter_id = _replay_id(record)
        row = self.rows.get(dead_letter_id)
        if row is None:
            return [Received(record, 0, record.value or b"", events.Rejection(
                events.MALFORMED, f"{UNKNOWN_DEAD_LETTER}: {_header_text(record, REPLAY_HEADER)}"[:300]
            ))]
        if dead_letter_id in self.done:
            return []
        self.done.add(dead_letter_id)
        raw = bytes(row["raw"])
        original = record._replace(timestamp_ms=row["received_ms"], value=raw)
        verdict = events.decode(raw)
        if isinstance(verdict, dict):
            verdict = events.check(verdict, original.timestamp_ms, catalog)
        item = Received(original, 0, raw, verdict)
        self.replayed.append((dead_letter_id, item))
        return [item]

    async def write(self, conn: asyncpg.Connection) -> None:
        """Record each replay with its outcome (the items' verdicts are final by now)."""
        if not self.replayed:
            return
        ids = [i for i, _ in self.replayed]
        outcomes = [
            item.verdict.reason if isinstance(item.verdict, events.Rejection) else item.verdict
            for _, item in self.replayed
        ]
        inserted = await conn.fetch(INSERT_REPLAYS, ids, outcomes)
        if len(inserted) != len(ids):
            # Cannot happen while the advisory locks above hold; if it ever does, the
            # whole batch is retried and then sees the replay as done.
            raise ReplayRaced(f"dead letters replayed concurrently: {sorted(set(ids) - {r[0] for r in inserted})}")


def _replay_id(record: Record) -> int | None:
    text = record.headers.get(REPLAY_HEADER, b"")
    if not (0 < len(text) <= 18 and text.isdigit()):
        return None
    return int(text)


def _header_text(record: Record, name: str) -> str:
    return record.headers.get(name, b"").decode("ascii", "replace")[:64]


def _parties(raw: bytes) -> tuple[str | None, str | None]:
    """(provider, reseller) of a rejected event, when it names them: who may see it."""
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


def _ingest_id(record: Record) -> str:
    value = record.headers.get(INGEST_HEADER)
    return value.decode("ascii", "replace")[:64] if value else ""


SELECT_INGEST_TALLY = """
SELECT coalesce(sum(received), 0)::bigint AS received,
       coalesce(sum(accepted), 0)::bigint AS accepted,
       coalesce(sum(duplicate), 0)::bigint AS duplicate,
""" + ",\n".join(
    f"       coalesce(sum({name}), 0)::bigint AS {name}" for name in events.REASONS
) + """
FROM intake_tallies WHERE ingest_id = $1
"""


async def ingest_tally(conn: asyncpg.Connection, ingest_id: str) -> dict:
    """SPEC.md's counts for the events of one ingest."""
    row = await conn.fetchrow(SELECT_INGEST_TALLY, ingest_id)
    return {
        "received": row["received"],
        "accepted": row["accepted"],
        "duplicate": row["duplicate"],
        "rejected": {name: row[name] for name in events.REASONS if row[name]},
    }


async def record_oversize(conn: asyncpg.Connection, ingest_id: str, raws: list[bytes], received_ms: int) -> None:
    """Dead-letter events too large for a Kafka record, on behalf of `gpuledger ingest`.

    They are `malformed` by the first check whatever they hold, so no worker needs to
    see them; they are counted under the ingest like any other event.
    """
    if not raws:
        return
    async with conn.transaction():
        await conn.copy_records_to_table(
            "dead_letters",
            records=[
                (
                    events.MALFORMED,
                    f"{len(raw)} bytes, more than {events.MAX_EVENT_BYTES}",
                    raw,
                    received_ms,
                    None,
                    None,
                    None,
                    None,
                    ingest_id,
                    None,
                    None,
                )
                for raw in raws
            ],
            columns=DEAD_LETTER_COLUMNS,
        )
        await conn.execute(
            "INSERT INTO intake_tallies (ingest_id, malformed) VALUES ($1, $2)", ingest_id, len(raws)
        )
