"""The books' tables: billed seconds read for statements, closed statements, the journal.

Journal entries are hash-chained by the application (`ledger.domain.journal`); the
database refuses an entry whose postings do not sum to zero (a deferred constraint
trigger), any change to what was written (the append-only policy, migration 0011), and
books that move over a period without its stored statement (0011).
"""

from __future__ import annotations

import json

import asyncpg

from ledger.domain import journal
from ledger.domain.capacity import BilledSeconds
from ledger.domain.catalog import Catalog
from ledger.domain.correction_records import DisputeRow
from ledger.domain.metering import ClaimKey
from ledger.domain.payments import Payment, Transfer
from ledger.domain.ports import RollupCheck, VoidedBits, VoidRow
from ledger.domain.rating import HourUsage
from ledger.domain.rollup_check import RollupDifference
from ledger.domain.usage import Coarsening
from ledger.postgres import disputes as stored_disputes
from ledger.postgres import payments as payment_rows
from ledger.postgres import voids as stored_voids
from ledger.postgres.catalog import load_catalog
from ledger.postgres.errors import translating, translating_iterator

CURSOR_PREFETCH = 2000

# Whole hours from the rollups (migration 0008); hours a price changes within are read
# bit by bit from the claims.
# The rollups are what is billed now; a booking period's statement also holds the seconds
# voided after it closed (returned by a later period's statement): those are added back.
# {hours} groups the hours: each hour alone, or (for a statement) `ledger.domain.usage.coarsen`
# in SQL as the usage API sums them: per span between two bounds ($3, sorted; width_bucket
# counts the bounds at or before an hour), carrying the first of its hours.
_HOUR_TOTALS = """
SELECT reseller, tenant, provider, sku, service_period, {first} AS hour_start, sum(seconds)::bigint AS seconds
FROM (
    SELECT reseller, tenant, provider, sku, service_period, hour_start, seconds FROM usage_hours
    WHERE booking_period = $1 AND NOT (hour_start = ANY($2::bigint[]))
    UNION ALL
    SELECT reseller, tenant, provider, sku, service_period, hour_start, seconds FROM voided_seconds
    WHERE booking_period = $1 AND returned_in IS NOT NULL AND NOT (hour_start = ANY($2::bigint[]))
) booked
GROUP BY reseller, tenant, provider, sku, service_period, {hours}
HAVING sum(seconds) > 0
"""
SELECT_HOUR_TOTALS = _HOUR_TOTALS.format(first="hour_start", hours="hour_start")
SELECT_SPAN_TOTALS = _HOUR_TOTALS.format(first="min(hour_start)", hours="width_bucket(hour_start, $3::bigint[])")

SELECT_HOUR_BITS = """
SELECT gpu_uuid, hour_start, provider, reseller, tenant, sku, service_period, booking_period, bits
FROM claims
WHERE booking_period = $1 AND hour_start = ANY($2::bigint[])
"""

SELECT_CLOSED_STATEMENT = "SELECT document FROM closed_statements WHERE period = $1"
SELECT_CLOSED_STATEMENTS = "SELECT period, document FROM closed_statements"
SELECT_MEMBERS_AT_CLOSE = """
SELECT member_ids FROM period_closes WHERE closed_through >= $1 ORDER BY closed_through LIMIT 1
"""
SELECT_CLOSED_AT = """
SELECT floor(extract(epoch FROM coalesce(
    (SELECT closed_at FROM closed_statements WHERE period = $1),
    (SELECT closed_at FROM period_closes WHERE closed_through >= $1 ORDER BY closed_through LIMIT 1)
)))::bigint
"""
SELECT_EARLIEST_BOOKING = "SELECT min(booking_period) FROM claims"
SELECT_NOW = "SELECT extract(epoch FROM now())::bigint"
INSERT_CLOSED_STATEMENT = "INSERT INTO closed_statements (period, document) VALUES ($1, $2)"
INSERT_CLOSE = "INSERT INTO period_closes (closed_through, member_ids) VALUES ($1, $2)"
UPDATE_BOOKS = "UPDATE books SET closed_through = $1 WHERE id = 1"

INSERT_JOURNAL_ENTRY = """
INSERT INTO journal_entries (seq, period, kind, reference, prev_hash, hash)
VALUES ($1, $2, $3, $4::jsonb, $5, $6)
"""
SELECT_JOURNAL_HEAD = "SELECT seq, hash FROM journal_entries ORDER BY seq DESC LIMIT 1"
# Appends to the journal, one transaction at a time (closes, payments' confirmations).
JOURNAL_LOCK = "SELECT pg_advisory_xact_lock(x'6a726e6c'::int, 0)"
SELECT_JOURNAL = """
SELECT e.seq, e.period, e.kind, e.reference::text AS reference, e.prev_hash, e.hash,
       coalesce(array_agg(p.account ORDER BY p.idx) FILTER (WHERE p.idx IS NOT NULL), '{}') AS accounts,
       coalesce(array_agg(p.amount_yen ORDER BY p.idx) FILTER (WHERE p.idx IS NOT NULL), '{}') AS amounts
FROM journal_entries e LEFT JOIN postings p ON p.entry_seq = e.seq
WHERE ($1::text IS NULL OR e.period = $1)
GROUP BY e.seq
ORDER BY e.seq
"""


SELECT_CAPACITY_BILLED = """
SELECT provider, sku, region, reseller <> provider AS resold, sum(seconds)::bigint AS seconds
FROM usage_hours
WHERE service_period = $1
GROUP BY 1, 2, 3, 4
HAVING sum(seconds) > 0
"""

# What the rollups must be (migration 0008): the claims grouped with the registry as it is
# now. Region '' stands for none on both sides, so the full join can hash (no region is '').
SELECT_ROLLUP_DIFFERENCES = """
WITH billed AS (
    SELECT c.hour_start, c.provider, c.reseller, c.tenant, c.sku, c.service_period, c.booking_period,
           coalesce(r.region, '') AS region, sum(c.seconds)::bigint AS seconds
    FROM (SELECT gpu_uuid, hour_start, provider, reseller, tenant, sku, service_period, booking_period, seconds
          FROM claims
          UNION ALL  -- less what voids took back (migration 0012)
          SELECT gpu_uuid, hour_start, provider, reseller, tenant, sku, service_period, booking_period, -seconds
          FROM voided_seconds) c
    LEFT JOIN gpu_registrations r ON r.uuid = c.gpu_uuid AND r.provider = c.provider AND r.sku = c.sku
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    HAVING sum(c.seconds) <> 0
), rolled AS (
    SELECT hour_start, provider, reseller, tenant, sku, service_period, booking_period,
           coalesce(region, '') AS region, seconds
    FROM usage_hours WHERE seconds <> 0
)
SELECT hour_start, provider, reseller, tenant, sku, service_period, booking_period, nullif(region, '') AS region,
       coalesce(u.seconds, 0) AS rolled_seconds, coalesce(b.seconds, 0) AS billed_seconds,
       count(*) OVER () AS differences_total
FROM billed b FULL JOIN rolled u
    USING (hour_start, provider, reseller, tenant, sku, service_period, booking_period, region)
WHERE u.seconds IS DISTINCT FROM b.seconds
ORDER BY hour_start, provider COLLATE "C", reseller COLLATE "C", tenant COLLATE "C", sku COLLATE "C",
         service_period COLLATE "C", booking_period COLLATE "C", region COLLATE "C"
LIMIT $1
"""
SELECT_ROLLUP_TOTALS = "SELECT count(*) AS n, coalesce(sum(seconds), 0)::bigint AS s FROM usage_hours WHERE seconds <> 0"

SELECT_DEAD_LETTER_COUNTS = """
SELECT reason, count(*) AS n FROM dead_letters
WHERE received_ms >= $1 AND received_ms < $2
GROUP BY reason ORDER BY reason
"""


def _usage(row: asyncpg.Record, bits: int | None = None) -> HourUsage:
    return HourUsage(
        row["reseller"], row["tenant"], row["provider"], row["sku"], row["service_period"],
        row["hour_start"], row["seconds"], bits,
    )


class PgBooks:
    """The books on one connection inside one transaction: `BooksWriter` and `ExportReader`.

    `books_lock` is how the books row is read: "" (a statement), "FOR UPDATE" (a close:
    workers wait), taken by `closed_through`.
    """

    def __init__(self, conn: asyncpg.Connection, books_lock: str = "") -> None:
        assert books_lock in ("", "FOR UPDATE", "FOR SHARE"), books_lock
        self.conn = conn
        self._select_books = f"SELECT closed_through FROM books WHERE id = 1 {books_lock}"

    @translating
    async def closed_through(self) -> str | None:
        return await self.conn.fetchval(self._select_books)

    @translating
    async def catalog(self) -> Catalog:
        return (await load_catalog(self.conn))[0]

    @translating
    async def hour_usages(
        self, booking_period: str, split_hours: list[int], *, coarse: Coarsening | None = None,
    ) -> list[HourUsage]:
        if coarse is None:
            rows = await self.conn.fetch(SELECT_HOUR_TOTALS, booking_period, split_hours)
        else:
            rows = await self.conn.fetch(SELECT_SPAN_TOTALS, booking_period, split_hours, list(coarse.bounds))
        usages = [_usage(r) for r in rows]
        if not split_hours:
            return usages
        left = await stored_voids.open_voids(self.conn, booking_period, split_hours)
        for row in await self.conn.fetch(SELECT_HOUR_BITS, booking_period, split_hours):
            bits = stored_voids.bits_of(row) & ~left.get(stored_voids.claim_of(row), 0)
            if bits:
                usages.append(HourUsage(row["reseller"], row["tenant"], row["provider"], row["sku"],
                                        row["service_period"], row["hour_start"], bits.bit_count(), bits))
        return usages

    @translating
    async def returned(self, through: str) -> list[VoidedBits]:
        return await stored_voids.returned(self.conn, through)

    @translating
    async def voids(self, member: str | None = None, limit: int | None = 1000) -> list[VoidRow]:
        return await stored_voids.voids(self.conn, member, limit)

    @translating
    async def closed_statement(self, period: str) -> bytes | None:
        return await self.conn.fetchval(SELECT_CLOSED_STATEMENT, period)

    @translating
    async def closed_statements(self) -> dict[str, bytes]:
        return {r["period"]: r["document"] for r in await self.conn.fetch(SELECT_CLOSED_STATEMENTS)}

    @translating
    async def members_at_close(self, period: str) -> list[str] | None:
        return await self.conn.fetchval(SELECT_MEMBERS_AT_CLOSE, period)

    @translating
    async def closed_at(self, period: str) -> int | None:
        return await self.conn.fetchval(SELECT_CLOSED_AT, period)

    @translating_iterator
    async def journal(self, period: str | None = None):
        async for row in self.conn.cursor(SELECT_JOURNAL, period, prefetch=CURSOR_PREFETCH):
            yield journal.ChainedEntry(
                row["seq"], row["period"], row["kind"], json.loads(row["reference"]),
                list(zip(row["accounts"], row["amounts"], strict=True)),
                bytes(row["prev_hash"]), bytes(row["hash"]),
            )

    @translating
    async def capacity_billed(self, service_period: str) -> list[BilledSeconds]:
        rows = await self.conn.fetch(SELECT_CAPACITY_BILLED, service_period)
        return [BilledSeconds(*row.values()) for row in rows]

    @translating
    async def earliest_booking_period(self) -> str | None:
        return await self.conn.fetchval(SELECT_EARLIEST_BOOKING)

    @translating
    async def check_rollups(self, limit: int) -> RollupCheck:
        rows = await self.conn.fetch(SELECT_ROLLUP_DIFFERENCES, limit)
        totals = await self.conn.fetchrow(SELECT_ROLLUP_TOTALS)
        differences = tuple(
            RollupDifference(
                r["hour_start"], (r["provider"], r["reseller"], r["tenant"], r["sku"]), r["service_period"],
                r["booking_period"], r["region"], r["rolled_seconds"], r["billed_seconds"],
            )
            for r in rows
        )
        return RollupCheck(totals["n"], totals["s"], differences, rows[0]["differences_total"] if rows else 0)

    # -- closing

    @translating
    async def now(self) -> int:
        return await self.conn.fetchval(SELECT_NOW)

    @translating
    async def store_closed_statement(self, period: str, document: bytes) -> None:
        await self.conn.execute(INSERT_CLOSED_STATEMENT, period, document)

    @translating
    async def journal_head(self) -> tuple[int, bytes]:
        await self.conn.execute(JOURNAL_LOCK)
        head = await self.conn.fetchrow(SELECT_JOURNAL_HEAD)
        return (head["seq"], bytes(head["hash"])) if head else (0, journal.GENESIS_HASH)

    @translating
    async def append_journal(self, entries: list[journal.ChainedEntry]) -> None:
        await self.conn.executemany(
            INSERT_JOURNAL_ENTRY,
            [(e.seq, e.period, e.kind, json.dumps(e.reference, sort_keys=True), e.prev_hash, e.hash)
             for e in entries],
        )
        await self.conn.copy_records_to_table(
            "postings",
            records=[(e.seq, idx, account, amount) for e in entries for idx, (account, amount) in enumerate(e.postings)],
            columns=("entry_seq", "idx", "account", "amount_yen"),
        )

    @translating
    async def record_close(self, closed_through: str, member_ids: list[str]) -> None:
        # The database refuses to move the books over a period whose statement is not
        # stored (migration 0011), and a stored statement the books do not move past.
        await self.conn.execute(INSERT_CLOSE, closed_through, member_ids)
        await self.conn.execute(UPDATE_BOOKS, closed_through)

    # -- exporting

    @translating_iterator
    async def evidence(self, booking_period: str):
        span = await self.conn.fetchrow(stored_voids.SELECT_EVIDENCE_SPAN, booking_period)
        if span["low"] is None:
            return
        hours = stored_voids.EvidenceHours(booking_period)
        cursor = await self.conn.cursor(stored_voids.SELECT_EVIDENCE, span["low"], span["high"])
        async for rows in stored_voids.read_ahead(cursor, CURSOR_PREFETCH):
            for item in hours.feed(rows):
                yield item
        for item in hours.finish():
            yield item

    @translating
    async def void_parts(self, returned_in: str | None = None) -> list[tuple[str, VoidedBits]]:
        return await stored_voids.void_parts(self.conn, returned_in)

    @translating
    async def dispute_rows(self) -> list[DisputeRow]:
        return await stored_disputes.rows(self.conn)

    @translating
    async def claim_bits(self, keys: list[ClaimKey]) -> dict[ClaimKey, int]:
        return await stored_voids.claim_bits(self.conn, keys)

    @translating
    async def dead_letter_counts(self, since_ms: int, until_ms: int) -> dict[str, int]:
        rows = await self.conn.fetch(SELECT_DEAD_LETTER_COUNTS, since_ms, until_ms)
        return {r["reason"]: r["n"] for r in rows}

    @translating
    async def transfers(self, period: str | None = None) -> list[Transfer]:
        return await payment_rows.transfers(self.conn, period)

    @translating
    async def payments(self, period: str | None = None, payment_id: str | None = None) -> list[Payment]:
        return await payment_rows.payments(self.conn, period, payment_id)
