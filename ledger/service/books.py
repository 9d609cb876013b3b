"""The books: statements, closing periods, and checking the journal.

A statement is computed from the billed seconds when asked (prices and agreements are
looked up then, so a later catalog version reprices open periods). Closing a period
stores the statement of every period from the first booked usage through it, and posts
their journal entries, in one transaction that holds the books exclusively: every
GPU-second lands in exactly one statement. A closed period always prints its stored
bytes.
"""

from __future__ import annotations

from collections import defaultdict

import orjson

from ledger.domain import journal, rating
from ledger.domain.catalog import Catalog
from ledger.domain.errors import PeriodError, VerificationFailed
from ledger.domain.instants import format_utc
from ledger.domain.periods import next_period, parse_period
from ledger.domain.ports import BooksReader, BooksWriter, Store


def render(document: dict) -> bytes:
    """A statement's bytes: compact JSON, keys in SPEC.md's order."""
    return orjson.dumps(document)


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
        return render(await _compute(books, period, catalog, closed=False))


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


async def _compute(books: BooksReader, period: str, catalog: Catalog, closed: bool) -> dict:
    usages = await books.hour_usages(period, sorted(rating.split_hours(catalog)))
    return rating.statement(period, catalog, rating.rate(catalog, usages), closed)


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
        document = await _compute(books, current, catalog, closed=True)
        await books.store_closed_statement(current, render(document))
        await _post_journal(books, current, document)
        current = next_period(current)
    await books.record_close(period, sorted(catalog.members))
    return period


async def _post_journal(books: BooksWriter, period: str, document: dict) -> None:
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
    document["net_yen"] = dict.fromkeys(sorted(member_ids or []), 0)
    return render(document)


async def verify(store: Store, anchors: list[tuple[str, int, str]] = ()) -> dict:
    """Walk the journal's chain and postings; check every closed period's entries against
    its stored statement, and the chain against signed heads auditors hold (`anchors`:
    (where it comes from, seq, hash hex)); raise VerificationFailed naming the first break.

    The anchors are what catches a superuser who rewrote the whole chain consistently:
    the heads already handed out in signed bundles must still be in it."""
    async with store.snapshot() as books:
        entries = [entry async for entry in books.journal()]
        statements = _parsed(await books.closed_statements())
    try:
        head_seq, head_hash = journal.check_chain(entries)
    except ValueError as exc:
        raise VerificationFailed(str(exc)) from exc
    _check_anchors(entries, anchors)
    by_period: dict[str, list] = defaultdict(list)
    balances: dict[str, int] = defaultdict(int)
    for entry in entries:
        by_period[entry.period].append(entry)
        for account, amount in entry.postings:
            balances[account] += amount
    _check_statements(by_period, statements)
    trial_balance = sum(balances.values())
    if trial_balance != 0:
        raise VerificationFailed(f"the trial balance of all accounts is {trial_balance} yen, not 0")
    return {
        "entries": len(entries),
        "anchors_checked": len(anchors),
        "head": {"seq": head_seq, "hash": head_hash.hex()},
        "closed_periods": sorted(statements),
        "accounts": len(balances),
        "trial_balance_yen": trial_balance,
    }


def _parsed(stored: dict[str, bytes]) -> dict[str, dict]:
    statements = {}
    for period, document in stored.items():
        try:
            statements[period] = orjson.loads(document)
        except orjson.JSONDecodeError as exc:
            raise VerificationFailed(f"the closed statement of {period} is not JSON: {exc}") from exc
    return statements


def _check_anchors(entries: list[journal.ChainedEntry], anchors) -> None:
    by_seq = {entry.seq: entry for entry in entries}
    for source, seq, digest in anchors:
        entry = by_seq.get(seq)
        if entry is None or entry.hash.hex() != digest:
            raise VerificationFailed(
                f"journal entry {seq} is not the one signed in {source}: "
                "the chain was rewritten after that bundle was exported"
            )


def _check_statements(by_period: dict[str, list], statements: dict[str, dict]) -> None:
    for period, document in sorted(statements.items()):
        try:
            implied = journal.entries_for_statement(document)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise VerificationFailed(f"the closed statement of {period} is not a statement ({exc!r})") from exc
        for entry in journal.unbalanced(implied):
            raise VerificationFailed(
                f"the closed statement of {period} does not add up: its {entry.kind} entry "
                f"{entry.reference} does not balance (was the stored statement edited?)"
            )
        stored = by_period.get(period, [])
        got = [journal.Entry(e.kind, e.reference, [tuple(p) for p in e.postings]) for e in stored]
        want = [journal.Entry(e.kind, e.reference, [tuple(p) for p in e.postings]) for e in implied]
        if got != want:
            first = next(
                (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                min(len(got), len(want)),
            )
            where = f"entry {stored[first].seq}" if first < len(stored) else "its last entries"
            raise VerificationFailed(f"the journal of {period} does not match its closed statement at {where}")
    for period in by_period:
        if period not in statements:
            raise VerificationFailed(f"journal entries for {period}, which has no closed statement")
