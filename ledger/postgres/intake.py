"""The tables one batch of the usage topic reads and writes (`ledger.service.intake`).

Billed seconds are kept per (GPU, UTC hour, attribution, service period, booking period)
as a 3600-bit bitmap, little-endian (`claims`); a batch writes each bitmap it changed
whole. Dead letters and tallies go in by COPY; positions only move forward.
"""

from __future__ import annotations

import asyncpg

from ledger.domain.catalog import Catalog
from ledger.domain.events import REASONS
from ledger.domain.metering import HOUR_BITS_BYTES, ClaimKey
from ledger.domain.ports import DeadLetter, NewVoid, ReplayTarget, Tally, VoidedBits
from ledger.postgres import voids as stored_voids
from ledger.postgres.catalog import SELECT_REVISION, load_catalog
from ledger.postgres.errors import translating

REPLAY_LOCK_CLASS = 0x67706C72  # pg_advisory_xact_lock(class, key) space of replayed dead letters

SELECT_BOOKS_SHARED = "SELECT closed_through FROM books WHERE id = 1 FOR SHARE"

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

LOCK_GPUS = "SELECT gpu_uuid FROM gpus WHERE gpu_uuid = ANY($1::text[]) ORDER BY gpu_uuid FOR UPDATE"

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

LOCK_REPLAYED = "SELECT pg_advisory_xact_lock($1, key) FROM unnest($2::int[]) AS key"

# A dead letter's bytes are its own, or those of the one it refers to (raw_of); rows
# from before migration 0010 have no raw_bytes and keep their bytes whole.
SELECT_REPLAY_TARGETS = """
SELECT d.id, coalesce(o.raw, d.raw) AS raw, d.received_ms, d.sender, r.dead_letter_id IS NOT NULL AS replayed,
       length(coalesce(o.raw, d.raw)) = coalesce(d.raw_bytes, length(d.raw)) AS whole,
       coalesce(d.raw_of, d.id) AS bytes_of
FROM dead_letters d
LEFT JOIN dead_letters o ON o.id = d.raw_of
LEFT JOIN dead_letter_replays r ON r.dead_letter_id = d.id
WHERE d.id = ANY($1::bigint[])
"""

INSERT_REPLAYS = """
INSERT INTO dead_letter_replays (dead_letter_id, outcome)
SELECT * FROM unnest($1::bigint[], $2::text[])
ON CONFLICT (dead_letter_id) DO NOTHING
RETURNING dead_letter_id
"""

DEAD_LETTER_COLUMNS = (
    "reason", "detail", "raw", "received_ms", "topic", "partition", "offset", "position", "ingest_id",
    "provider", "reseller", "sender", "raw_of", "raw_bytes", "raw_sha256",
)
OUTCOME_COLUMNS = ("accepted", "duplicate", *REASONS)
TALLY_COLUMNS = ("ingest_id", "topic", "partition", *OUTCOME_COLUMNS)


def claim_key(row: asyncpg.Record) -> ClaimKey:
    return ClaimKey(
        row["gpu_uuid"], row["hour_start"],
        (row["provider"], row["reseller"], row["tenant"], row["sku"]),
        row["service_period"], row["booking_period"],
    )


async def copy_dead_letters(conn: asyncpg.Connection, letters: list[DeadLetter]) -> None:
    if letters:
        rows = [tuple(getattr(letter, name) for name in DEAD_LETTER_COLUMNS) for letter in letters]
        await conn.copy_records_to_table("dead_letters", records=rows, columns=DEAD_LETTER_COLUMNS)


async def copy_tallies(conn: asyncpg.Connection, tallies: list[Tally]) -> None:
    rows = [
        (t.ingest_id, t.topic, t.partition, *(t.counts.get(name, 0) for name in OUTCOME_COLUMNS))
        for t in tallies
    ]
    await conn.copy_records_to_table("intake_tallies", records=rows, columns=TALLY_COLUMNS)


class PgIntakeTransaction:
    """`ledger.domain.ports.IntakeTransaction` on one connection inside one transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    @translating
    async def closed_through(self) -> str | None:
        return await self.conn.fetchval(SELECT_BOOKS_SHARED)

    @translating
    async def positions(self, topic: str, partitions: list[int]) -> dict[int, int]:
        return dict(await self.conn.fetch(SELECT_POSITIONS, topic, partitions))

    @translating
    async def catalog_revision(self) -> int:
        return await self.conn.fetchval(SELECT_REVISION)

    @translating
    async def catalog(self) -> tuple[Catalog, int]:
        return await load_catalog(self.conn)

    @translating
    async def replay_targets(self, ids: list[int]) -> dict[int, ReplayTarget]:
        await self.conn.execute(LOCK_REPLAYED, REPLAY_LOCK_CLASS, sorted({i & 0x7FFFFFFF for i in ids}))
        return {
            row["id"]: ReplayTarget(
                bytes(row["raw"]), row["received_ms"], row["replayed"], row["sender"], row["whole"], row["bytes_of"]
            )
            for row in await self.conn.fetch(SELECT_REPLAY_TARGETS, ids)
        }

    @translating
    async def lock_gpus(self, gpu_uuids: list[str]) -> None:
        await self.conn.execute(INSERT_GPUS, gpu_uuids)
        await self.conn.execute(LOCK_GPUS, gpu_uuids)

    @translating
    async def claims(self, pairs: list[tuple[str, int]]) -> list[tuple[ClaimKey, int]]:
        rows = await self.conn.fetch(SELECT_CLAIMS, [p[0] for p in pairs], [p[1] for p in pairs])
        return [(claim_key(row), int.from_bytes(row["bits"], "little")) for row in rows]

    @translating
    async def voided(self, pairs: list[tuple[str, int]]) -> list[tuple[ClaimKey, int]]:
        return await stored_voids.voided(self.conn, pairs)

    @translating
    async def write_void(self, void: NewVoid, taken: list[VoidedBits]) -> str:
        return await stored_voids.write_void(self.conn, void, taken)

    @translating
    async def write_claims(self, changed: list[tuple[ClaimKey, int]]) -> None:
        if not changed:
            return
        columns: list[list] = [[] for _ in range(10)]
        for key, bits in changed:
            values = (
                key.gpu_uuid, key.hour_start, *key.attribution, key.service_period,
                key.booking_period, bits.bit_count(), bits.to_bytes(HOUR_BITS_BYTES, "little"),
            )
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        await self.conn.execute(UPSERT_CLAIMS, *columns)

    @translating
    async def write_dead_letters(self, letters: list[DeadLetter]) -> None:
        await copy_dead_letters(self.conn, letters)

    @translating
    async def write_tallies(self, tallies: list[Tally]) -> None:
        await copy_tallies(self.conn, tallies)

    @translating
    async def record_replays(self, outcomes: list[tuple[int, str]]) -> int:
        inserted = await self.conn.fetch(
            INSERT_REPLAYS, [i for i, _ in outcomes], [outcome for _, outcome in outcomes]
        )
        return len(inserted)

    @translating
    async def advance_positions(self, topic: str, next_offsets: dict[int, int]) -> None:
        partitions = sorted(next_offsets)
        await self.conn.execute(UPSERT_POSITIONS, topic, partitions, [next_offsets[p] for p in partitions])


SELECT_INGEST_TALLY = (
    "SELECT coalesce(sum(received), 0)::bigint AS received,\n"
    + ",\n".join(f"       coalesce(sum({name}), 0)::bigint AS {name}" for name in OUTCOME_COLUMNS)
    + "\nFROM intake_tallies WHERE ingest_id = $1"
)


async def ingest_tally(conn: asyncpg.Connection, ingest_id: str) -> dict[str, int]:
    return dict(await conn.fetchrow(SELECT_INGEST_TALLY, ingest_id))


# The usage topic and its members' topics (`<usage topic>.<member>`).
FORGET_POSITIONS = "DELETE FROM consumer_positions WHERE topic = $1 OR left(topic, length($1) + 1) = $1 || '.'"


@translating
async def forget_positions(conn: asyncpg.Connection, topic: str) -> None:
    """Drop the stored positions of a usage topic and its members' topics, recreated
    (empty, from offset 0) by a new embedded broker."""
    await conn.execute(FORGET_POSITIONS, topic)
