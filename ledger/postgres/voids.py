"""Voids in PostgreSQL (migration 0012): what they took from which claims, and where it went."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator

import asyncpg

from ledger.domain import evidence
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

# The evidence of a booking period (docs/auditor-bundle.md): its claims, each with the other
# claims of its GPU-hour and every void part of that hour (keys joined by U+001F, which no
# key field holds), so that `ledger.domain.evidence` can take voids into account.
_JOINED = "concat_ws(chr(31), {t}.provider, {t}.reseller, {t}.tenant, {t}.sku, {t}.service_period, {t}.booking_period)"
SELECT_EVIDENCE = f"""
SELECT c.gpu_uuid, c.hour_start, c.provider, c.reseller, c.tenant, c.sku, c.service_period,
       c.booking_period, c.bits, o.other_keys, o.other_bits, v.void_keys, v.void_bits
FROM claims c
CROSS JOIN LATERAL (
    SELECT array_agg({_JOINED.format(t="o")}) AS other_keys, array_agg(o.bits) AS other_bits FROM claims o
    WHERE o.gpu_uuid = c.gpu_uuid AND o.hour_start = c.hour_start AND o.booking_period <> c.booking_period
) o
CROSS JOIN LATERAL (
    SELECT array_agg({_JOINED.format(t="v")} || chr(31) || coalesce(v.returned_in, '')) AS void_keys,
           array_agg(v.bits) AS void_bits
    FROM voided_seconds v
    WHERE v.gpu_uuid = c.gpu_uuid AND v.hour_start = c.hour_start
) v
WHERE c.booking_period = $1
ORDER BY c.gpu_uuid COLLATE "C", c.hour_start, c.provider COLLATE "C", c.reseller COLLATE "C",
         c.tenant COLLATE "C", c.sku COLLATE "C", c.service_period COLLATE "C"
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


def _joined_key(gpu_uuid: str, hour_start: int, joined: str) -> tuple[ClaimKey, str | None]:
    provider, reseller, tenant, sku, service_period, booking_period, *rest = joined.split("\x1f")
    returned_in = (rest[0] or None) if rest else None
    return ClaimKey(gpu_uuid, hour_start, (provider, reseller, tenant, sku), service_period, booking_period), returned_in


def evidence_row(row: asyncpg.Record, period: str) -> tuple[ClaimKey, int, int] | None:
    """(claim, bits as its statement holds them, elsewhere) of a SELECT_EVIDENCE row (None:
    nothing of it left on its statement)."""
    if row["void_keys"] is None and row["other_keys"] is None:  # the usual case: no void, no other period
        bits = bits_of(row)
        return (claim_of(row), bits, 0) if bits else None
    gpu, hour = row["gpu_uuid"], row["hour_start"]
    voided = []
    for joined, bits in zip(row["void_keys"] or (), row["void_bits"] or (), strict=True):
        key, returned_in = _joined_key(gpu, hour, joined)
        voided.append(VoidedBits(key, int.from_bytes(bits, "little"), returned_in))
    key = claim_of(row)
    bits = evidence.as_booked(key, bits_of(row), voided)
    if not bits:
        return None
    others = [
        (_joined_key(gpu, hour, joined)[0], int.from_bytes(other, "little"))
        for joined, other in zip(row["other_keys"] or (), row["other_bits"] or (), strict=True)
    ]
    return key, bits, evidence.elsewhere(period, others, voided)
