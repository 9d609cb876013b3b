"""Disputes on a MemoryStore's working state (`DisputeTransaction`), refusing what
migration 0014's keys and checks refuse in PostgreSQL."""

from __future__ import annotations

import re

from ledger.domain.correction_records import DisputeMove, DisputeRow, NewDispute
from ledger.domain.disputes import ACTIONS, MAX_INTERVAL_SECONDS, MAX_NOTE_CHARS, REASONS
from ledger.domain.errors import LedgerError
from ledger.memory.intake import MemoryIntake

ACTOR = re.compile(r"operator|[a-z][a-z0-9-]{1,31}")
ANSWERS, ENDS = ("accept", "reject"), ("accept", "withdraw", "decide_accept", "decide_reject")


def _refuse(table: str, why: str) -> LedgerError:
    return LedgerError(f"{table}: {why}")


class MemoryDisputes(MemoryIntake):
    """An intake transaction that keeps disputes too; the store runs one at a time, so a
    dispute needs no lock of its own."""

    async def now(self) -> int:
        return int(self.clock())

    async def open_dispute(self, dispute: NewDispute) -> str:
        provider, reseller, tenant, sku = dispute.attribution
        catalog = self.state.catalog
        if any("\x00" in text for text in (dispute.gpu_uuid, tenant, dispute.note)):
            raise _refuse("disputes", "a NUL character")
        if provider not in catalog.members or reseller not in catalog.members or sku not in catalog.skus:
            raise _refuse("disputes", "provider, reseller and sku must be in the catalog")
        if provider == reseller or dispute.opened_by != reseller:
            raise _refuse("disputes", "opened by its reseller, which is not its provider")
        if dispute.reason not in REASONS or len(dispute.note) > MAX_NOTE_CHARS:
            raise _refuse("disputes", "a reason of SPEC.md and a note of at most 2,000 characters")
        span = dispute.end - dispute.start
        if not (0 < span <= MAX_INTERVAL_SECONDS and 0 < dispute.gpu_seconds <= span):
            raise _refuse("disputes", "an interval of at most 45 days with billed seconds in it")
        self.state.disputes.append(dispute)
        dispute_id = f"dispute-{len(self.state.disputes)}"
        self.state.dispute_moves[dispute_id] = {}
        return dispute_id

    def _row(self, dispute_id: str) -> DisputeRow:
        number = int(dispute_id.removeprefix("dispute-"))
        moves = self.state.dispute_moves[dispute_id]
        return DisputeRow(dispute_id, self.state.disputes[number - 1], tuple(moves[seq] for seq in sorted(moves)))

    async def dispute(self, dispute_id: str, *, lock: bool = False) -> DisputeRow | None:
        if dispute_id not in self.state.dispute_moves:
            return None
        return self._row(dispute_id)

    async def disputes(self, member: str | None = None) -> list[DisputeRow]:
        rows = [self._row(f"dispute-{n}") for n in range(1, len(self.state.disputes) + 1)]
        return [row for row in rows if member is None or member in row.dispute.attribution[:2]]

    async def append_move(self, dispute_id: str, seq: int, move: DisputeMove) -> None:
        moves = self.state.dispute_moves.get(dispute_id)
        if moves is None:
            raise _refuse("dispute_moves", f"no dispute {dispute_id}")
        if seq < 1 or seq in moves:
            raise _refuse("dispute_moves", f"move {seq} of {dispute_id} is taken")
        _check_move(move, {v.id for v in self.state.voids})
        for actions, what in ((ANSWERS, "answer"), (("escalate",), "escalation"), (ENDS, "final move")):
            if move.action in actions and any(m.action in actions for m in moves.values()):
                raise _refuse("dispute_moves", f"a second {what} of {dispute_id}")
        moves[seq] = move


def _check_move(move: DisputeMove, void_ids: set[str]) -> None:
    if move.action not in ACTIONS or ACTIONS[move.action][2] != move.state:
        raise _refuse("dispute_moves", f"{move.action} does not lead to {move.state}")
    if not ACTOR.fullmatch(move.actor) or len(move.note) > MAX_NOTE_CHARS or "\x00" in move.note:
        raise _refuse("dispute_moves", "an actor and a note of at most 2,000 characters")
    if (move.void_id is None) != (move.voided_gpu_seconds == 0) or move.voided_gpu_seconds < 0:
        raise _refuse("dispute_moves", "voided seconds come with their void")
    if move.void_id is not None and (move.state != "accepted" or move.void_id not in void_ids):
        raise _refuse("dispute_moves", "only an acceptance names a void, one that exists")
    if move.action == "reject" and not move.note:
        raise _refuse("dispute_moves", "the provider's rejection carries a note")
