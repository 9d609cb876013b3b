"""Payments on a MemoryStore's state (`PaymentsTransaction`), refusing what PostgreSQL refuses
(migration 0013): a payment of no transfer, one over its transfer, a second decision, a
rejection without a note, a confirmation that does not name its own journal entry."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

from ledger.domain.catalog import Catalog
from ledger.domain.errors import LedgerError
from ledger.domain.journal import ChainedEntry
from ledger.domain.payment_journal import PAYMENT
from ledger.domain.payments import (
    CONFIRMED,
    DECISIONS,
    MAX_NOTE_CHARS,
    RECORDED,
    Payment,
    Transfer,
    transfers_in,
)


def transfers(state, period: str | None = None) -> list[Transfer]:
    """The transfers of the stored statements, as PostgreSQL derives them (statement_transfers)."""
    found = []
    for stored_period, document in sorted(state.closed_statements.items()):
        if period is None or stored_period == period:
            found.extend(transfers_in(stored_period, json.loads(document)))
    return found


def payments(state, period: str | None = None, payment_id: str | None = None) -> list[Payment]:
    return [p for p in state.payments if period in (None, p.period) and payment_id in (None, p.id)]


class MemoryPayments:
    def __init__(self, state, clock: Callable[[], float], books) -> None:
        self.state = state
        self.clock = clock
        self.books = books  # a MemoryBooks on the same state: the books' reads and the journal

    async def now(self) -> int:
        return int(self.clock())

    async def catalog(self) -> Catalog:
        return self.state.catalog

    async def closed_through(self) -> str | None:
        return self.state.closed_through

    async def transfers(self, period: str | None = None) -> list[Transfer]:
        return transfers(self.state, period)

    async def payments(self, period: str | None = None, payment_id: str | None = None) -> list[Payment]:
        return payments(self.state, period, payment_id)

    async def lock_transfer(self, transfer: Transfer) -> None:
        """Transactions are serialized already."""

    async def insert_payment(self, payment: Payment) -> Payment:
        transfer = next((t for t in transfers(self.state, payment.period) if t.key == payment.transfer_key), None)
        if transfer is None:
            raise LedgerError(f"payments: no transfer {payment.payer} -> {payment.payee} in {payment.period}")
        if not 1 <= len(payment.reference) <= 200 or payment.amount_yen <= 0:
            raise LedgerError("payments: a reference of 1-200 characters and an amount over 0")
        held = sum(p.amount_yen for p in self.state.payments if p.transfer_key == transfer.key and p.state != "rejected")
        if held + payment.amount_yen > transfer.amount_yen:
            raise LedgerError(f"payments: {payment.amount_yen} yen more would exceed the transfer ({held} held)")
        stored = replace(payment, id=f"pay-{len(self.state.payments) + 1}", state=RECORDED,
                         recorded_at=int(self.clock()), note="", decided_by=None, decided_at=None)
        self.state.payments.append(stored)
        return stored

    async def decide(self, payment_id: str, state: str, note: str, decided_by: str, journal_seq: int | None) -> None:
        index = next((i for i, p in enumerate(self.state.payments) if p.id == payment_id), None)
        if index is None or self.state.payments[index].state != RECORDED:
            raise LedgerError(f"payment_decisions: {payment_id} does not exist or is decided already")
        if state not in DECISIONS or len(note) > MAX_NOTE_CHARS or (state != CONFIRMED and not note.strip()):
            raise LedgerError("payment_decisions: a decision is confirmed, or rejected with a note")
        entry = next((e for e in self.state.journal if e.seq == journal_seq), None)
        posted = entry is not None and entry.kind == PAYMENT and entry.reference.get("payment") == payment_id
        if (state == CONFIRMED) != posted or (state != CONFIRMED and journal_seq is not None):
            raise LedgerError(f"payment_decisions: journal entry {journal_seq} is not the entry of payment {payment_id}")
        self.state.payments[index] = replace(
            self.state.payments[index], state=state, note=note, decided_by=decided_by, decided_at=int(self.clock()),
        )

    async def transfer_entry_kinds(self, period: str, index: int) -> list[str]:
        return [e.kind for e in self.state.journal if e.period == period and e.reference == {"transfer": index}]

    async def journal_head(self) -> tuple[int, bytes]:
        return await self.books.journal_head()

    async def append_journal(self, entries: list[ChainedEntry]) -> None:
        await self.books.append_journal(entries)
