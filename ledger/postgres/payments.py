"""Payments on PostgreSQL: the transfers closed statements owe, payments, their decisions.

Tables of migration 0013: `statement_transfers` (written by the database from each stored
statement), `payments` and `payment_decisions` (append-only). The database itself refuses
a payment that would exceed its transfer, under the transfer's lock
(`ledger_lock_transfer`), a second decision, a rejection without a note, and a
confirmation that does not name its own `payment` journal entry.
"""

from __future__ import annotations

import json

import asyncpg

from ledger.domain.catalog import Catalog
from ledger.domain.journal import ChainedEntry
from ledger.domain.payments import Payment, Transfer
from ledger.domain.ports import BooksWriter
from ledger.postgres.errors import translating

SELECT_TRANSFERS = """
SELECT period, idx, payer, payee, amount_yen FROM statement_transfers
WHERE $1::text IS NULL OR period = $1
ORDER BY period, idx
"""

SELECT_PAYMENTS = """
SELECT p.id, p.period, p.payer, p.payee, p.amount_yen, p.paid_on, p.reference,
       coalesce(d.state, 'recorded') AS state, p.recorded_by,
       floor(extract(epoch FROM p.recorded_at))::bigint AS recorded_at,
       coalesce(d.note, '') AS note, d.decided_by,
       floor(extract(epoch FROM d.decided_at))::bigint AS decided_at
FROM payments p LEFT JOIN payment_decisions d ON d.payment_id = p.id
WHERE ($1::text IS NULL OR p.period = $1) AND ($2::text IS NULL OR p.id = $2)
ORDER BY substr(p.id, 5)::bigint  -- payments_by_number
"""

LOCK_TRANSFER = "SELECT ledger_lock_transfer($1, $2, $3)"

INSERT_PAYMENT = """
INSERT INTO payments (period, payer, payee, amount_yen, paid_on, reference, recorded_by)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id
"""

INSERT_DECISION = """
INSERT INTO payment_decisions (payment_id, state, note, decided_by, journal_seq) VALUES ($1, $2, $3, $4, $5)
"""

SELECT_TRANSFER_ENTRY_KINDS = """
SELECT kind FROM journal_entries WHERE period = $1 AND reference = $2::jsonb ORDER BY seq
"""


async def transfers(conn: asyncpg.Connection, period: str | None = None) -> list[Transfer]:
    rows = await conn.fetch(SELECT_TRANSFERS, period)
    return [Transfer(r["period"], r["payer"], r["payee"], r["amount_yen"], r["idx"]) for r in rows]


async def payments(conn: asyncpg.Connection, period: str | None = None, payment_id: str | None = None) -> list[Payment]:
    return [Payment(**dict(row)) for row in await conn.fetch(SELECT_PAYMENTS, period, payment_id)]


class PgPayments:
    """`PaymentsTransaction` on one connection inside one transaction; `books` (a
    `PgBooks` on the same connection) reads the books and appends to the journal, as a
    close does."""

    def __init__(self, conn: asyncpg.Connection, books: BooksWriter) -> None:
        self.conn = conn
        self.books = books

    async def now(self) -> int:
        return await self.books.now()

    async def catalog(self) -> Catalog:
        return await self.books.catalog()

    async def closed_through(self) -> str | None:
        return await self.books.closed_through()

    @translating
    async def transfers(self, period: str | None = None) -> list[Transfer]:
        return await transfers(self.conn, period)

    @translating
    async def payments(self, period: str | None = None, payment_id: str | None = None) -> list[Payment]:
        return await payments(self.conn, period, payment_id)

    @translating
    async def lock_transfer(self, transfer: Transfer) -> None:
        await self.conn.execute(LOCK_TRANSFER, transfer.period, transfer.payer, transfer.payee)

    @translating
    async def insert_payment(self, payment: Payment) -> Payment:
        payment_id = await self.conn.fetchval(
            INSERT_PAYMENT, payment.period, payment.payer, payment.payee, payment.amount_yen,
            payment.paid_on, payment.reference, payment.recorded_by,
        )
        return (await payments(self.conn, payment_id=payment_id))[0]

    @translating
    async def decide(self, payment_id: str, state: str, note: str, decided_by: str, journal_seq: int | None) -> None:
        await self.conn.execute(INSERT_DECISION, payment_id, state, note, decided_by, journal_seq)

    @translating
    async def transfer_entry_kinds(self, period: str, index: int) -> list[str]:
        rows = await self.conn.fetch(SELECT_TRANSFER_ENTRY_KINDS, period, json.dumps({"transfer": index}))
        return [row["kind"] for row in rows]

    async def journal_head(self) -> tuple[int, bytes]:
        return await self.books.journal_head()

    async def append_journal(self, entries: list[ChainedEntry]) -> None:
        await self.books.append_journal(entries)
