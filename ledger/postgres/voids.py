"""Voids in PostgreSQL (migration 0012): what they took from which claims, and where it went."""

from __future__ import annotations

from collections import defaultdict

import asyncpg

from ledger.domain.metering import HOUR_BITS_BYTES, ClaimKey
from ledger.domain.ports import NewVoid, VoidedBits, VoidRow

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


async def voids(conn: asyncpg.Connection, member: str | None, limit: int) -> list[VoidRow]:
    return [
        VoidRow(
            r["id"],
            NewVoid(r["gpu_uuid"], r["start_at"], r["end_at"], (r["provider"], r["reseller"], r["tenant"], r["sku"]),
                    r["reason"], r["dispute_id"], r["actor"], r["gpu_seconds"], r["closed_through"]),
            r["made_at"], r["returned_in"],
        )
        for r in await conn.fetch(SELECT_VOIDS, member, limit)
    ]
