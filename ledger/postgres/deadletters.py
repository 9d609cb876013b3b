"""The dead letters' tables: listing, what a replay request names, their bytes."""

from __future__ import annotations

import asyncpg

from ledger.domain.ports import DeadLetterFilter, DeadLetterRef

# A dead letter's bytes are its own or those of the one it refers to (raw_of); rows from
# before migration 0010 have no raw_bytes or raw_sha256 and keep their bytes whole.
SELECT_PAGE = """
SELECT d.id, d.reason, d.detail, d.received_ms, d.provider, d.reseller, d.ingest_id,
       substring(coalesce(o.raw, d.raw) FROM 1 FOR $7) AS raw_head,
       coalesce(d.raw_bytes, length(d.raw)) AS raw_bytes,
       coalesce(d.raw_sha256, sha256(d.raw)) AS raw_sha256,
       length(coalesce(o.raw, d.raw)) = coalesce(d.raw_bytes, length(d.raw)) AS raw_whole,
       r.dead_letter_id IS NOT NULL AS replayed, r.outcome AS replay_outcome
FROM dead_letters d
LEFT JOIN dead_letters o ON o.id = d.raw_of
LEFT JOIN dead_letter_replays r ON r.dead_letter_id = d.id
WHERE ($1::text IS NULL OR d.provider = $1 OR d.reseller = $1)
  AND ($2::text IS NULL OR d.reason = $2)
  AND ($3::bigint IS NULL OR d.received_ms >= $3)
  AND ($4::bigint IS NULL OR d.received_ms < $4)
  AND d.id > $5
ORDER BY d.id
LIMIT $6
"""

SELECT_REFS = """
SELECT d.id, d.provider, d.reseller, r.dead_letter_id IS NOT NULL AS replayed,
       length(coalesce(o.raw, d.raw)) = coalesce(d.raw_bytes, length(d.raw)) AS whole
FROM dead_letters d
LEFT JOIN dead_letters o ON o.id = d.raw_of
LEFT JOIN dead_letter_replays r ON r.dead_letter_id = d.id
WHERE d.id = ANY($1::bigint[])
"""

# The filter of a replay request: the member as provider (a member replays its own GPUs).
FILTER = """
FROM dead_letters d
LEFT JOIN dead_letters o ON o.id = d.raw_of
LEFT JOIN dead_letter_replays r ON r.dead_letter_id = d.id
WHERE ($1::text IS NULL OR d.provider = $1)
  AND ($2::text IS NULL OR d.reason = $2)
  AND ($3::bigint IS NULL OR d.received_ms >= $3)
  AND ($4::bigint IS NULL OR d.received_ms < $4)
"""
WHOLE = "length(coalesce(o.raw, d.raw)) = coalesce(d.raw_bytes, length(d.raw))"
SELECT_UNREPLAYED = (
    "SELECT d.id" + FILTER + f"  AND r.dead_letter_id IS NULL AND {WHOLE}\nORDER BY d.id\nLIMIT $5\n"
)
COUNT_REPLAYED = "SELECT count(*)" + FILTER + "  AND r.dead_letter_id IS NOT NULL\n"
COUNT_NOT_REPLAYABLE = "SELECT count(*)" + FILTER + f"  AND r.dead_letter_id IS NULL AND NOT {WHOLE}\n"


def _where(where: DeadLetterFilter) -> tuple:
    return (where.member, where.reason, where.since_ms, where.until_ms)


async def page(conn: asyncpg.Connection, where: DeadLetterFilter, after_id: int, limit: int, preview: int) -> list[dict]:
    return [dict(r) for r in await conn.fetch(SELECT_PAGE, *_where(where), after_id, limit, preview)]


async def refs(conn: asyncpg.Connection, ids: list[int]) -> dict[int, DeadLetterRef]:
    rows = await conn.fetch(SELECT_REFS, ids)
    return {r["id"]: DeadLetterRef(r["provider"], r["reseller"], r["replayed"], r["whole"]) for r in rows}


async def unreplayed(conn: asyncpg.Connection, where: DeadLetterFilter, limit: int) -> list[int]:
    return [r["id"] for r in await conn.fetch(SELECT_UNREPLAYED, *_where(where), limit)]


async def count_replayed(conn: asyncpg.Connection, where: DeadLetterFilter) -> int:
    return await conn.fetchval(COUNT_REPLAYED, *_where(where))



async def count_not_replayable(conn: asyncpg.Connection, where: DeadLetterFilter) -> int:
    return await conn.fetchval(COUNT_NOT_REPLAYABLE, *_where(where))
