"""What the ledger has received, read straight from its `intake_tallies` table.

Owns the benchmarks' SQL over intake_tallies (one row per batch, partition and ingest
id; columns ingest_id, received, accepted, duplicate and one per reject reason, see
ledger/postgres/migrations/0001_ledger.sql). The bench is a measuring harness: it reads
the database directly rather than through the ledger's code, which it measures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg

# The reject reasons, one column each, in the order in which the checks run (SPEC.md).
REASONS = (
    "malformed", "schema", "unknown_member", "unknown_sku", "future", "too_late", "unregistered_gpu",
    "no_price", "no_agreement", "conflict",
)

TOTAL_RECEIVED = "SELECT coalesce(sum(received), 0)::bigint FROM intake_tallies"
RECEIVED_UNDER_INGEST_IDS = TOTAL_RECEIVED + " WHERE ingest_id <> ''"
RECEIVED_UNDER_INGEST_ID = TOTAL_RECEIVED + " WHERE ingest_id = $1"

INGEST_COUNTS = (
    "SELECT coalesce(sum(received), 0)::bigint AS received, "
    "coalesce(sum(accepted), 0)::bigint AS accepted, "
    "coalesce(sum(duplicate), 0)::bigint AS duplicate, "
    + ", ".join(f"coalesce(sum({name}), 0)::bigint AS {name}" for name in REASONS)
    + " FROM intake_tallies WHERE ingest_id = $1"
)

ROWS_BY_INGEST_ID = (
    "SELECT ingest_id, count(*) AS rows, sum(received)::bigint AS events, "
    "max(received) AS max_events, min(received) AS min_events "
    "FROM intake_tallies GROUP BY ingest_id"
)


async def received_under(conn: asyncpg.Connection, ingest_id: str) -> int:
    """Events received under one ingest id so far."""
    return await conn.fetchval(RECEIVED_UNDER_INGEST_ID, ingest_id)


async def ingest_counts(conn: asyncpg.Connection, ingest_id: str) -> dict:
    """SPEC.md's counts for the events of one ingest: received, accepted, duplicate, and
    the rejected by reason (the reasons with none left out)."""
    row = await conn.fetchrow(INGEST_COUNTS, ingest_id)
    return {
        "received": row["received"],
        "accepted": row["accepted"],
        "duplicate": row["duplicate"],
        "rejected": {name: row[name] for name in REASONS if row[name]},
    }


async def rows_by_ingest_id(database_url: str) -> dict[str, dict]:
    """Per ingest id: rows of intake_tallies (one per batch and partition) and their sizes."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(ROWS_BY_INGEST_ID)
    finally:
        await conn.close()
    return {
        row["ingest_id"]: {
            "rows": row["rows"],
            "events": row["events"],
            "max_events_per_row": row["max_events"],
            "min_events_per_row": row["min_events"],
            "mean_events_per_row": round(row["events"] / row["rows"], 1),
        }
        for row in rows
    }
