"""Voids in PostgreSQL (migration 0012): what they took from which claims, and where it went."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator

import asyncpg

from ledger.domain import evidence
from ledger.domain.metering import HOUR_BITS_BYTES, ClaimKey
from ledger.domain.ports import Evidence, NewVoid, VoidedBits, VoidRow

SELECT_VOIDED = """
SELECT v.gpu_uuid, v.hour_start, v.provider, v.reseller, v.tenant, v.sku,
       v.service_period, v.booking_period, v.bits
FROM voided_seconds v
JOIN unnest($1::text[], $2::bigint[]) AS t(gpu_uuid, hour_start)
  ON v.gpu_uuid = t.gpu_uuid AND v.hour_start = t.hour_start
"""

NEXT_VOID = "SELECT 'void-' || nextval('void_numbers')"
INSERT_VOID = """
INSERT INTO voids (id, gpu_uuid, start_at, end_at, provider, reseller, tenant, sku, reason, dispute_id,
                   actor, gpu_seconds, closed_through)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
"""
VOIDED_COLUMNS = ("void_id", "gpu_uuid", "hour_start", "provider", "reseller", "tenant", "sku", "service_period",
                  "booking_period", "bits", "seconds", "returned_in")

# Booked seconds of a claim's booking period that left it while it was open.
SELECT_VOIDED_OPEN_BITS = """
SELECT gpu_uuid, hour_start, provider, reseller, tenant, sku, service_period, booking_period, bits
FROM voided_seconds
WHERE booking_period = $1 AND hour_start = ANY($2::bigint[]) AND returned_in IS NULL
"""

SELECT_RETURNED = """
SELECT gpu_uuid, hour_start, provider, reseller, tenant, sku, service_period, booking_period, bits, returned_in
FROM voided_seconds
WHERE returned_in IS NOT NULL AND returned_in <= $1
"""

SELECT_VOIDS = """
SELECT v.id, v.gpu_uuid, v.start_at, v.end_at, v.provider, v.reseller, v.tenant, v.sku, v.reason, v.dispute_id,
       v.actor, v.gpu_seconds, v.closed_through, floor(extract(epoch FROM v.made_at))::bigint AS made_at,
       (SELECT min(s.returned_in) FROM voided_seconds s WHERE s.void_id = v.id) AS returned_in
FROM voids v
WHERE $1::text IS NULL OR v.provider = $1 OR v.reseller = $1
ORDER BY v.made_at, v.id
LIMIT $2
"""


def claim_of(row: asyncpg.Record) -> ClaimKey:
    return ClaimKey(row["gpu_uuid"], row["hour_start"], (row["provider"], row["reseller"], row["tenant"], row["sku"]),
                    row["service_period"], row["booking_period"])


def bits_of(row: asyncpg.Record) -> int:
    return int.from_bytes(row["bits"], "little")


async def voided(conn: asyncpg.Connection, pairs: list[tuple[str, int]]) -> list[tuple[ClaimKey, int]]:
    found: dict[ClaimKey, int] = defaultdict(int)
    for row in await conn.fetch(SELECT_VOIDED, [p[0] for p in pairs], [p[1] for p in pairs]):
        found[claim_of(row)] |= bits_of(row)
    return list(found.items())


async def write_void(conn: asyncpg.Connection, void: NewVoid, taken: list[VoidedBits]) -> str:
    void_id = await conn.fetchval(NEXT_VOID)
    await conn.execute(
        INSERT_VOID, void_id, void.gpu_uuid, void.start, void.end, *void.attribution, void.reason,
        void.dispute_id, void.actor, void.gpu_seconds, void.closed_through,
    )
    rows = [
        (void_id, t.key.gpu_uuid, t.key.hour_start, *t.key.attribution, t.key.service_period, t.key.booking_period,
         t.bits.to_bytes(HOUR_BITS_BYTES, "little"), t.bits.bit_count(), t.returned_in)
        for t in taken
    ]
    # One statement, so the rollup trigger takes them all out at once.
    await conn.copy_records_to_table("voided_seconds", records=rows, columns=VOIDED_COLUMNS)
    return void_id


async def open_voids(conn: asyncpg.Connection, booking_period: str, hours: list[int]) -> dict[ClaimKey, int]:
    """Per claim of these hours of a booking period, the bits voids took while it was open."""
    found: dict[ClaimKey, int] = defaultdict(int)
    for row in await conn.fetch(SELECT_VOIDED_OPEN_BITS, booking_period, hours):
        found[claim_of(row)] |= bits_of(row)
    return found


async def returned(conn: asyncpg.Connection, through: str) -> list[VoidedBits]:
    return [VoidedBits(claim_of(r), bits_of(r), r["returned_in"]) for r in await conn.fetch(SELECT_RETURNED, through)]


async def voids(conn: asyncpg.Connection, member: str | None, limit: int | None) -> list[VoidRow]:
    return [
        VoidRow(
            r["id"],
            NewVoid(r["gpu_uuid"], r["start_at"], r["end_at"], (r["provider"], r["reseller"], r["tenant"], r["sku"]),
                    r["reason"], r["dispute_id"], r["actor"], r["gpu_seconds"], r["closed_through"]),
            r["made_at"], r["returned_in"],
        )
        for r in await conn.fetch(SELECT_VOIDS, member, limit)
    ]


# -- what bundles and `verify --db` read (ledger.domain.correction_ports) ---------------

_KEY = "s.gpu_uuid, s.hour_start, s.provider, s.reseller, s.tenant, s.sku, s.service_period, s.booking_period"
_KEY_ORDER = ('s.gpu_uuid COLLATE "C", s.hour_start, s.provider COLLATE "C", s.reseller COLLATE "C", '
              's.tenant COLLATE "C", s.sku COLLATE "C", s.service_period, s.booking_period')
SELECT_VOID_PARTS = f"""
SELECT s.void_id, {_KEY}, s.bits, s.returned_in
FROM voided_seconds s JOIN voids v ON v.id = s.void_id
WHERE $1::text IS NULL OR s.void_id IN (SELECT void_id FROM voided_seconds WHERE returned_in = $1)
ORDER BY v.made_at, v.id, {_KEY_ORDER}
"""

SELECT_CLAIM_BITS = """
SELECT c.gpu_uuid, c.hour_start, c.provider, c.reseller, c.tenant, c.sku, c.service_period, c.booking_period, c.bits
FROM claims c
JOIN unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
     AS k(gpu_uuid, hour_start, provider, reseller, tenant, sku, service_period, booking_period)
  ON c.gpu_uuid = k.gpu_uuid AND c.hour_start = k.hour_start AND c.provider = k.provider
 AND c.reseller = k.reseller AND c.tenant = k.tenant AND c.sku = k.sku
 AND c.service_period = k.service_period AND c.booking_period = k.booking_period
"""

# The evidence of a booking period (docs/auditor-bundle.md): every claim and void part of
# the hours its claims span, in one ordered scan, so that each GPU-hour's rows arrive
# together: its claims of the period, the other periods' claims of it, and its void parts,
# from which `ledger.domain.evidence` derives what the statement holds and what is billed
# elsewhere. (One ordered scan, not an index lookup per claim: a month of 10,000 GPUs has
# 7.2 million.) Rows of other periods' hours in the range are read and passed over.
SELECT_EVIDENCE_SPAN = "SELECT min(hour_start) AS low, max(hour_start) AS high FROM claims WHERE booking_period = $1"
SELECT_EVIDENCE = """
SELECT * FROM (
    SELECT 0 AS part, gpu_uuid, hour_start, provider, reseller, tenant, sku, service_period, booking_period, bits,
           NULL::text AS returned_in
    FROM claims WHERE hour_start BETWEEN $1 AND $2
    UNION ALL
    SELECT 1, gpu_uuid, hour_start, provider, reseller, tenant, sku, service_period, booking_period, bits, returned_in
    FROM voided_seconds WHERE hour_start BETWEEN $1 AND $2
) AS h
ORDER BY gpu_uuid COLLATE "C", hour_start, part, provider COLLATE "C", reseller COLLATE "C",
         tenant COLLATE "C", sku COLLATE "C", service_period COLLATE "C", booking_period COLLATE "C"
"""


async def read_ahead(cursor, batch: int) -> AsyncIterator[list[asyncpg.Record]]:
    """The cursor's rows in batches, the next batch asked for before this one is handed on:
    the database computes it while the caller works (a query of millions of rows, on two cores)."""
    queue: asyncio.Queue = asyncio.Queue(maxsize=2)

    async def fetch() -> None:
        try:
            while rows := await cursor.fetch(batch):
                await queue.put(rows)
            await queue.put(None)
        except Exception as exc:  # handed to the reader, which raises it
            await queue.put(exc)

    task = asyncio.create_task(fetch())
    try:
        while (rows := await queue.get()) is not None:
            if isinstance(rows, BaseException):
                raise rows
            yield rows
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def void_parts(conn: asyncpg.Connection, returned_in: str | None) -> list[tuple[str, VoidedBits]]:
    return [
        (r["void_id"], VoidedBits(claim_of(r), bits_of(r), r["returned_in"]))
        for r in await conn.fetch(SELECT_VOID_PARTS, returned_in)
    ]


async def claim_bits(conn: asyncpg.Connection, keys: list[ClaimKey]) -> dict[ClaimKey, int]:
    columns = [
        [k.gpu_uuid for k in keys], [k.hour_start for k in keys],
        *([k.attribution[i] for k in keys] for i in range(4)),
        [k.service_period for k in keys], [k.booking_period for k in keys],
    ]
    return {claim_of(r): bits_of(r) for r in await conn.fetch(SELECT_CLAIM_BITS, *columns)}


class EvidenceHours:
    """Groups SELECT_EVIDENCE's rows by GPU-hour and yields the evidence of `period`'s claims
    of each, in the order of the rows."""

    def __init__(self, period: str) -> None:
        self.period = period
        self.rows: list[asyncpg.Record] = []

    def feed(self, rows: list[asyncpg.Record]) -> Iterator[Evidence]:
        # Columns by position (this runs once per claim of a month: millions of times):
        # part, gpu_uuid, hour_start, provider, reseller, tenant, sku, service_period,
        # booking_period, bits, returned_in.
        pending = self.rows
        for row in rows:
            if pending and (row[2] != pending[0][2] or row[1] != pending[0][1]):
                yield from self._hour(pending)
                pending = self.rows = [row]
            else:
                pending.append(row)

    def finish(self) -> Iterator[Evidence]:
        if self.rows:
            yield from self._hour(self.rows)
        self.rows = []

    def _hour(self, rows: list[asyncpg.Record]) -> Iterator[Evidence]:
        period = self.period
        if len(rows) == 1:  # the usual case: one claim, no other period, no void
            row = rows[0]
            if row[8] == period and (bits := int.from_bytes(row[9], "little")):
                yield Evidence(ClaimKey(row[1], row[2], (row[3], row[4], row[5], row[6]), row[7], period), bits, 0)
            return
        voided = [VoidedBits(claim_of(r), bits_of(r), r["returned_in"]) for r in rows if r["part"] == 1]
        claims = [(claim_of(r), bits_of(r)) for r in rows if r["part"] == 0]
        others = [(key, bits) for key, bits in claims if key.booking_period != period]
        for key, bits in claims:
            if key.booking_period == period and (booked := evidence.as_booked(key, bits, voided)):
                yield Evidence(key, booked, evidence.elsewhere(period, others, voided))
