"""What the disputes' use cases need from the store (`ledger.service.disputes`), as the
ports of `ledger.domain.ports` are: Protocols whose docstrings are their contracts, held
to both stores by `tests/postgres/test_store_contract.py`.

A dispute transaction is an intake transaction too: accepting a dispute voids its
seconds (`ledger.service.corrections.take`) in the transaction that appends the move, so
the void and the acceptance commit together or not at all.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from ledger.domain.correction_records import DisputeMove, DisputeRow, NewDispute
from ledger.domain.ports import IntakeTransaction, Store


class DisputeTransaction(IntakeTransaction, Protocol):
    """Opening, moving and reading disputes, in one transaction."""

    async def now(self) -> int:
        """The store's clock, Unix seconds (floored): windows are decided by it."""

    async def open_dispute(self, dispute: NewDispute) -> str:
        """Store a new dispute; returns its id, `dispute-N` (N counts up from 1)."""

    async def dispute(self, dispute_id: str, *, lock: bool = False) -> DisputeRow | None:
        """The dispute and its moves (None: no such id). `lock`: hold it until commit, so
        the moves of one dispute are decided one at a time (a second caller waits here,
        then reads the first's move)."""

    async def disputes(self, member: str | None = None) -> list[DisputeRow]:
        """The disputes `member` is the provider or the reseller of (None: all), in the
        order they were opened."""

    async def append_move(self, dispute_id: str, seq: int, move: DisputeMove) -> None:
        """Append a dispute's `seq`-th move (1: the first after opening). Refused, nothing
        stored: a seq taken already; an action that does not lead to its state; voided
        seconds or a void on a move that is not an acceptance; a rejection by the provider
        without a note; a second answer by the provider, a second escalation, or a second
        final move (accepted, withdrawn, decided)."""


class DisputeStore(Store, Protocol):
    """A store that keeps disputes (both stores do)."""

    def disputes(self) -> AbstractAsyncContextManager[DisputeTransaction]:
        """A transaction over disputes (and, for an acceptance's void, the usage)."""
