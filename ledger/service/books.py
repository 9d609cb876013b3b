"""The books: statements, closing periods, and checking the journal.

A statement is computed from the billed seconds when asked (prices and agreements are
looked up then, so a later catalog version reprices open periods). Closing a period
stores the statement of every period from the first booked usage through it, and posts
their journal entries, in one transaction that holds the books exclusively: every
GPU-second lands in exactly one statement. A closed period always prints its stored
bytes.
"""

from __future__ import annotations

from dataclasses import replace

import orjson

from ledger.domain import credits, journal, rating
from ledger.domain.catalog import Catalog
from ledger.domain.errors import PeriodError
from ledger.domain.instants import format_utc
from ledger.domain.periods import next_period, parse_period
from ledger.domain.ports import BooksReader, BooksWriter, Store
from ledger.domain.statement import Statement
from ledger.service.credit_history import History, lines_of


def render(statement: Statement) -> bytes:
    """A statement's bytes: compact JSON, keys in SPEC.md's order (what a close stores)."""
    return orjson.dumps(statement.to_document())


def read(document: bytes) -> Statement:
    """A statement's bytes (a closed period's, as stored) read back."""
    return Statement.from_document(orjson.loads(document))


async def statement(store: Store, period: str, close: bool = False) -> bytes:
    """The statement of `period`; with `close`, close the books through it first."""
    parse_period(period)
    async with store.books(close=close) as books:
        closed_through = await books.closed_through()
        catalog = await books.catalog()
        if close and (closed_through is None or period > closed_through):
            closed_through = await _close_through(books, period, closed_through, catalog)
        if closed_through is not None and period <= closed_through:
            return await closed_document(books, period, catalog)
        return render(await compute_statement(books, period, catalog, closed=False))


async def closed_through_end(store: Store) -> int | None:
    """The end of the last closed period in Unix seconds (None while nothing is closed):
    how far behind the monthly close is, for the operators' alert."""
    async with store.snapshot() as snapshot:
        closed = await snapshot.closed_through()
        if closed is None:
            return None
        catalog = await snapshot.catalog()
    return catalog.calendar.bounds(closed)[1]


async def closed_statement(books: BooksReader, period: str) -> bytes | None:
    """The bytes a closed period prints, or None if the period is open."""
    parse_period(period)
    closed_through = await books.closed_through()
    if closed_through is None or period > closed_through:
        return None
    return await closed_document(books, period, await books.catalog())


async def closed_document(books: BooksReader, period: str, catalog: Catalog) -> bytes:
    document = await books.closed_statement(period)
    if document is not None:
        return document
    return await _empty_closed_statement(books, period, catalog)


async def compute_statement(books: BooksReader, period: str, catalog: Catalog, closed: bool) -> Statement:
    """A booking period's statement from the books as they stand: its lines, what grants
    draw on them from their balances at its start, and its returns."""
    history = await History.through(books, period, catalog)
    balances = dict(await history.walk_to(period))
    lines = await lines_of(books, period, catalog)
    draws = credits.draw(lines, catalog.grants, balances)
    return rating.statement(period, catalog, lines, closed, draws, history.returns_in(period))


async def balances_at(books: BooksReader, period: str, catalog: Catalog) -> dict[str, int]:
    """Each grant's balance at the start of a booking period: its amount less its draws
    plus its restorations in every booking period before (closed or open, as they stand now)."""
    history = await History.through(books, period, catalog)
    return dict(await history.walk_to(period))


async def _close_through(books: BooksWriter, period: str, closed_through: str | None, catalog: Catalog) -> str:
    """Close every open period up to `period` (the books are held exclusively)."""
    _, end = catalog.calendar.bounds(period)
    if await books.now() < end:
        raise PeriodError(f"{period} cannot be closed before it ends at {format_utc(end)}")
    if closed_through is not None:
        current = next_period(closed_through)
    else:
        earliest = await books.earliest_booking_period()
        current = min(earliest, period) if earliest else period
    while current <= period:
        document = await compute_statement(books, current, catalog, closed=True)
        await books.store_closed_statement(current, render(document))
        await _post_journal(books, current, document)
        current = next_period(current)
    await books.record_close(period, sorted(catalog.members))
    return period


async def _post_journal(books: BooksWriter, period: str, document: Statement) -> None:
    """Post a closing period's entries after the chain's head."""
    last_seq, last_hash = await books.journal_head()
    planned = journal.entries_for_statement(document)
    assert not journal.unbalanced(planned), f"a computed statement of {period} gives unbalanced entries"
    entries = journal.chain(period, planned, last_seq, last_hash)
    if entries:
        await books.append_journal(entries)


async def _empty_closed_statement(books: BooksReader, period: str, catalog: Catalog) -> bytes:
    """A closed period that had no usage when it was closed: nothing, zeros, no transfers.

    Its zero nets list the members known at the close that covered it, so it prints the
    same bytes however many members join later.
    """
    member_ids = await books.members_at_close(period)
    document = rating.statement(period, catalog, [], closed=True)
    return render(replace(document, net_yen=dict.fromkeys(sorted(member_ids or []), 0)))
