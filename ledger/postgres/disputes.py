"""Disputes in PostgreSQL (migration 0014): what was opened, and its moves, appended.

`PgDisputeTransaction` is an intake transaction (`ledger.postgres.intake`) that also
keeps disputes, so an acceptance's void commits with its move.
"""

from __future__ import annotations

from collections import defaultdict

import asyncpg

from ledger.domain.correction_records import DisputeMove, DisputeRow, NewDispute
from ledger.postgres.errors import translating
from ledger.postgres.intake import PgIntakeTransaction

# pg_advisory_xact_lock(class, key) space of disputes (replays use 0x67706C72).
DISPUTE_LOCK_CLASS = 0x67706C64
LOCK_DISPUTE = "SELECT pg_advisory_xact_lock($1, hashtext($2))"

SELECT_NOW = "SELECT floor(extract(epoch FROM now()))::bigint"

NEXT_DISPUTE = "SELECT 'dispute-' || nextval('dispute_numbers')"
INSERT_DISPUTE = """
INSERT INTO disputes (id, gpu_uuid, start_at, end_at, provider, reseller, tenant, sku, reason, note,
                      gpu_seconds, opened_by, opened_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
"""

# Ids are `dispute-N`: by length, then text, is by N, the order they were opened in.
SELECT_DISPUTES = """
SELECT id, gpu_uuid, start_at, end_at, provider, reseller, tenant, sku, reason, note, gpu_seconds,
       opened_by, opened_at
FROM disputes
WHERE ($1::text IS NULL OR provider = $1 OR reseller = $1) AND ($2::text IS NULL OR id = $2)
ORDER BY length(id), id
"""

SELECT_MOVES = """
SELECT dispute_id, action, state, actor, note, at, voided_gpu_seconds, void_id
FROM dispute_moves
WHERE dispute_id = ANY($1::text[])
ORDER BY dispute_id, seq
"""

INSERT_MOVE = """
INSERT INTO dispute_moves (dispute_id, seq, action, state, actor, note, at, voided_gpu_seconds, void_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""


def _opened(row: asyncpg.Record) -> NewDispute:
    return NewDispute(
        row["gpu_uuid"], row["start_at"], row["end_at"], (row["provider"], row["reseller"], row["tenant"], row["sku"]),
        row["reason"], row["note"], row["gpu_seconds"], row["opened_by"], row["opened_at"],
    )


async def _rows(conn: asyncpg.Connection, member: str | None, dispute_id: str | None) -> list[DisputeRow]:
    opened = await conn.fetch(SELECT_DISPUTES, member, dispute_id)
    moves: dict[str, list[DisputeMove]] = defaultdict(list)
    for row in await conn.fetch(SELECT_MOVES, [r["id"] for r in opened]):
        moves[row["dispute_id"]].append(DisputeMove(
            row["action"], row["state"], row["actor"], row["note"], row["at"], row["voided_gpu_seconds"], row["void_id"],
        ))
    return [DisputeRow(r["id"], _opened(r), tuple(moves[r["id"]])) for r in opened]


async def rows(conn: asyncpg.Connection) -> list[DisputeRow]:
    """Every dispute with its moves, in the order they were opened."""
    return await _rows(conn, None, None)


class PgDisputeTransaction(PgIntakeTransaction):
    """`ledger.domain.dispute_ports.DisputeTransaction` on one connection in one transaction."""

    @translating
    async def now(self) -> int:
        return await self.conn.fetchval(SELECT_NOW)

    @translating
    async def open_dispute(self, dispute: NewDispute) -> str:
        dispute_id = await self.conn.fetchval(NEXT_DISPUTE)
        await self.conn.execute(
            INSERT_DISPUTE, dispute_id, dispute.gpu_uuid, dispute.start, dispute.end, *dispute.attribution,
            dispute.reason, dispute.note, dispute.gpu_seconds, dispute.opened_by, dispute.opened_at,
        )
        return dispute_id

    @translating
    async def dispute(self, dispute_id: str, *, lock: bool = False) -> DisputeRow | None:
        if lock:  # before reading: a second mover reads the moves the first committed
            await self.conn.execute(LOCK_DISPUTE, DISPUTE_LOCK_CLASS, dispute_id)
        found = await _rows(self.conn, None, dispute_id)
        return found[0] if found else None

    @translating
    async def disputes(self, member: str | None = None) -> list[DisputeRow]:
        return await _rows(self.conn, member, None)

    @translating
    async def append_move(self, dispute_id: str, seq: int, move: DisputeMove) -> None:
        await self.conn.execute(
            INSERT_MOVE, dispute_id, seq, move.action, move.state, move.actor, move.note, move.at,
            move.voided_gpu_seconds, move.void_id,
        )
