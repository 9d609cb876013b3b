"""Disputes between members (SPEC.md, "Disputes"): opened by a reseller, answered by the
provider, escalated to the alliance operator, whose decision is final.

Opening is one store transaction (`store.disputes()`):

1. Who: the caller's member is the interval's reseller and not its provider, with a
   reason and a note SPEC.md allows (refused before the store is touched).
2. The window: the interval's service periods ended at most the catalog's
   `dispute_window_days` before now, by the store's clock (the database's).
3. The seconds billed now with the attribution in the interval: none, refused.
4. Store the dispute with that count (its `gpu_seconds`). Commit.

A move (accept, reject, escalate, withdraw, decide) is one transaction too:

1. Lock the dispute and read its moves: a concurrent move of the same dispute waits
   here, then reads this one's (so two acceptances cannot both void). No such dispute,
   or a member that is no party to it: not found, as if it did not exist.
2. Decide the move (`ledger.domain.disputes.next_state`) at the store's clock.
3. An acceptance voids the seconds of the dispute's GPU, interval and attribution still
   billed (`corrections.take`, in this transaction), with the dispute's id and reason;
   none left: it voids nothing.
4. Append the move, with the void's id and seconds. Commit: the void and the move
   together, or neither (a failure anywhere leaves the dispute and the usage as they
   were, and the action can be repeated).
"""

from __future__ import annotations

import re

from ledger.domain import disputes
from ledger.domain.access import Caller
from ledger.domain.correction_records import DisputeMove, DisputeRow, NewDispute
from ledger.domain.dispute_ports import DisputeStore, DisputeTransaction
from ledger.domain.disputes import (
    ACCEPTED,
    ESCALATION_WINDOW_SECONDS,
    OPEN,
    REJECTED,
    DisputeRefused,
    Interval,
)
from ledger.domain.errors import Forbidden, InputError, NotFound
from ledger.domain.instants import format_utc
from ledger.service import corrections

OPERATOR = corrections.OPERATOR  # how the alliance operator is named as an actor
DECISIONS = ("accept", "reject")
DISPUTE_ID = re.compile(r"dispute-[1-9][0-9]{0,17}")  # what the stores make; anything else is no dispute
MOVES = ("accept", "reject", "escalate", "withdraw", *(f"decide_{d}" for d in DECISIONS))


async def open_dispute(store: DisputeStore, caller: Caller, interval: Interval, reason: str, note: str = "") -> dict:
    """Open a dispute of the interval's seconds as its reseller; the dispute as printed."""
    disputes.check_opener(interval, caller.member)  # 1.
    disputes.check_reason(reason)
    disputes.check_note(note)
    async with store.disputes() as tx:
        catalog, _ = await tx.catalog()
        now = await tx.now()
        disputes.check_window(interval, catalog.calendar, catalog.dispute_window_days, now)  # 2.
        billed = await corrections.billed_in(tx, interval)  # 3.
        if not billed:
            raise DisputeRefused(
                "no second of this GPU in that interval is billed with that attribution: nothing to dispute",
                code="nothing_billed",
            )
        opened = NewDispute(interval.gpu_uuid, interval.start, interval.end, interval.attribution, reason, note,
                            billed, interval.reseller, now)
        row = await tx.dispute(await tx.open_dispute(opened))  # 4.
    return document(row)


async def move(store: DisputeStore, caller: Caller, dispute_id: str, action: str, note: str = "") -> dict:
    """Make one move of `MOVES` as the caller; the dispute as it then is."""
    assert action in MOVES, action
    if caller.member is None and not caller.can_write_ledger:
        raise Forbidden("an auditor reads disputes and moves none")
    disputes.check_note(note)
    async with store.disputes() as tx:
        row = await tx.dispute(dispute_id, lock=True) if DISPUTE_ID.fullmatch(dispute_id) else None  # 1.
        if row is None:
            raise NotFound("no such dispute")
        provider, reseller, _, _ = row.dispute.attribution
        party = disputes.party_of(caller.member, provider, reseller)
        now = await tx.now()
        state = disputes.next_state(action, state_of(row), party, rejected_at(row), escalations(row), now)  # 2.
        if action == "reject" and not note.strip():
            raise InputError("a rejection carries a note saying why (--note)", code="note_required")
        actor = OPERATOR if caller.member is None else caller.member
        voided = await _void_if_accepted(tx, caller, row, state)  # 3.
        await tx.append_move(row.id, len(row.moves) + 1, DisputeMove(action, state, actor, note, now, *voided))  # 4.
        row = await tx.dispute(row.id)
    return document(row)


async def _void_if_accepted(tx: DisputeTransaction, caller: Caller, row: DisputeRow,
                            state: str) -> tuple[int, str | None]:
    """(seconds voided, void id): what accepting took back; (0, None) for other moves."""
    if state != ACCEPTED:
        return 0, None
    opened = row.dispute
    interval = Interval(opened.gpu_uuid, opened.start, opened.end, *opened.attribution)
    try:
        made = await corrections.take(tx, corrections.actor_of(caller, interval), interval, opened.reason, row.id)
    except corrections.NothingToVoid:
        return 0, None  # voided by other means since it was opened: accepted, nothing to take back
    return made["gpu_seconds"], made["void"]


async def listing(store: DisputeStore, caller: Caller) -> dict:
    """{"disputes": [...]}: those the caller's member is the provider or the reseller of
    (the operator and auditors: all), in the order they were opened."""
    async with store.disputes() as tx:
        rows = await tx.disputes(caller.member)
    return {"disputes": [document(row) for row in rows]}


async def show(store: DisputeStore, caller: Caller, dispute_id: str) -> dict:
    """One dispute as printed; not found for a member that is no party to it."""
    if not DISPUTE_ID.fullmatch(dispute_id):
        raise NotFound("no such dispute")
    async with store.disputes() as tx:
        row = await tx.dispute(dispute_id)
    if row is None or (caller.member is not None and caller.member not in row.dispute.attribution[:2]):
        raise NotFound("no such dispute")
    return document(row)


def state_of(row: DisputeRow) -> str:
    return row.moves[-1].state if row.moves else OPEN


def rejected_at(row: DisputeRow) -> int | None:
    """When the provider rejected it (None: it did not)."""
    return next((m.at for m in row.moves if m.action == "reject"), None)


def escalations(row: DisputeRow) -> int:
    return sum(1 for m in row.moves if m.action == "escalate")


def document(row: DisputeRow) -> dict:
    """A dispute as printed (SPEC.md's fields first), with its notes and history."""
    opened = row.dispute
    provider, reseller, tenant, sku = opened.attribution
    accepted = next((m for m in row.moves if m.state == ACCEPTED), None)
    state = state_of(row)
    deadline = None
    if state == REJECTED and not escalations(row):
        deadline = format_utc(rejected_at(row) + ESCALATION_WINDOW_SECONDS)
    opening = {"action": "open", "state": OPEN, "by": opened.opened_by, "at": format_utc(opened.opened_at),
               "note": opened.note, "voided_gpu_seconds": 0, "void": None}
    return {
        "id": row.id, "state": state, "provider": provider, "reseller": reseller, "tenant": tenant, "sku": sku,
        "gpu_uuid": opened.gpu_uuid, "from": format_utc(opened.start), "to": format_utc(opened.end),
        "reason": opened.reason, "gpu_seconds": opened.gpu_seconds,
        "voided_gpu_seconds": accepted.voided_gpu_seconds if accepted else 0,
        "void": accepted.void_id if accepted else None,
        "note": opened.note, "opened_by": opened.opened_by, "opened_at": format_utc(opened.opened_at),
        "escalation_deadline": deadline,
        "history": [opening, *(
            {"action": m.action, "state": m.state, "by": m.actor, "at": format_utc(m.at), "note": m.note,
             "voided_gpu_seconds": m.voided_gpu_seconds, "void": m.void_id}
            for m in row.moves
        )],
    }
