"""The port of payments (SPEC.md "Payments"): what `ledger.service.payments` needs of a store.

Part of `ledger.domain.ports` (`Store.payments()` opens one), kept in its own module; the
same rules hold: a method's docstring is its contract, and
`tests/postgres/test_store_contract.py` holds both stores to it.
"""

from __future__ import annotations

from typing import Protocol

from ledger.domain.catalog import Catalog
from ledger.domain.journal import ChainedEntry
from ledger.domain.payments import Payment, Transfer


class PaymentsTransaction(Protocol):
    """Payments of closed periods' transfers, in one transaction (`Store.payments()`)."""

    async def now(self) -> int:
        """The store's clock, Unix seconds: "today" is decided by it."""

    async def catalog(self) -> Catalog: ...

    async def closed_through(self) -> str | None: ...

    async def transfers(self, period: str | None = None) -> list[Transfer]:
        """The transfers of the stored statements of closed periods (of one period, or
        all), periods ascending, each period's in its statement's order, with their index."""

    async def payments(self, period: str | None = None, payment_id: str | None = None) -> list[Payment]:
        """Payments (of one period, or the one with that id, or all) with their state
        (`recorded` until a decision is stored), in recording order."""

    async def lock_transfer(self, transfer: Transfer) -> None:
        """Hold this transfer until commit: its payments are recorded and decided one at a time."""

    async def insert_payment(self, payment: Payment) -> Payment:
        """Store a recorded payment; returns it with its new id (`pay-N`, numbered in
        recording order) and `recorded_at`. Refused (LedgerError) if its transfer does not
        exist, or if its transfer's recorded and confirmed payments would exceed it."""

    async def decide(self, payment_id: str, state: str, note: str, decided_by: str, journal_seq: int | None) -> None:
        """Store the one decision of a payment: `confirmed` with the seq of the `payment`
        journal entry that posts it (appended in this transaction), or `rejected` with a
        note. A second decision, a rejection without a note, or a confirmation without its
        entry is refused (LedgerError)."""

    async def transfer_entry_kinds(self, period: str, index: int) -> list[str]:
        """The kinds of the journal entries of `period` that reference transfer `index`
        alone (its close's `transfer` or `transfer_owed`, a `transfer_restated`)."""

    async def journal_head(self) -> tuple[int, bytes]:
        """As `BooksWriter.journal_head` (held until commit)."""

    async def append_journal(self, entries: list[ChainedEntry]) -> None:
        """As `BooksWriter.append_journal`."""

