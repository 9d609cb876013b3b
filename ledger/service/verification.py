"""Checking the books: everything the ledger derives, against what it derives it from.

`gpuledger verify --db` runs `verify`, on one snapshot: the hourly rollups against the
billed seconds; every closed period has its stored statement, and nothing else has one;
each stored statement against a recomputation from the ledger (its booked seconds, the
catalog, the grants' balances: the code that computes an open statement); the journal's
hash chain, its entries against the statements and its trial balance; the voids against
the claims and closes (`ledger.service.void_checks`); the payments against their transfers and the entries their confirmations posted; and the chain heads
auditors hold. Each check names the first thing that breaks it.
"""

from __future__ import annotations

from collections import defaultdict

import orjson

from ledger.domain import journal, payment_journal
from ledger.domain.errors import VerificationFailed
from ledger.domain.instants import format_utc
from ledger.domain.payments import Payment, Transfer, transfers_in
from ledger.domain.periods import next_period
from ledger.domain.ports import BooksReader, RollupCheck, Store
from ledger.domain.statement import Statement
from ledger.domain.stored_statements import comparable, first_difference
from ledger.service.books import compute_statement, render
from ledger.service.void_checks import check_voids

ROLLUP_DIFFERENCES_SHOWN = 3


async def verify(store: Store, anchors: list[tuple[str, int, str]] = ()) -> dict:
    """Check the books (see the module docstring) and the chain against signed heads
    auditors hold (`anchors`: (where it comes from, seq, hash hex)); raise
    VerificationFailed naming the first break.

    The anchors are what catches a superuser who rewrote the whole chain consistently:
    the heads already handed out in signed bundles must still be in it."""
    async with store.snapshot() as books:
        rollups = await books.check_rollups(ROLLUP_DIFFERENCES_SHOWN)
        _check_rollups(rollups)
        closed_through = await books.closed_through()
        stored = await books.closed_statements()
        await _check_closed_periods(books, closed_through, stored)
        statements = _parsed(stored)
        voids = await check_voids(books)
        await _check_recomputed(books, stored, statements)
        entries = [entry async for entry in books.journal()]
        payments = await books.payments()
        transfers = await books.transfers()
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
    _check_payments(by_period, statements, payments, transfers)
    trial_balance = sum(balances.values())
    if trial_balance != 0:
        raise VerificationFailed(f"the trial balance of all accounts is {trial_balance} yen, not 0")
    return {
        "entries": len(entries),
        "anchors_checked": len(anchors),
        "head": {"seq": head_seq, "hash": head_hash.hex()},
        "closed_through": closed_through,
        "closed_periods": sorted(statements),
        "statements_recomputed": len(statements),
        "payments": len(payments),
        "voids": voids,
        "rollups": {"rows": rollups.rows, "gpu_seconds": rollups.gpu_seconds},
        "accounts": len(balances),
        "trial_balance_yen": trial_balance,
    }


def _check_rollups(check: RollupCheck) -> None:
    """The hourly rollups are the billed seconds summed: statements, the usage API and the
    capacity report read them, so an edit of them would reprice what they show."""
    if not check.differences:
        return
    shown = "; ".join(
        f"{format_utc(d.hour_start)} {'/'.join(d.attribution)} service {d.service_period} booked "
        f"{d.booking_period} region {d.region or '-'}: {d.rolled_seconds} rolled up, {d.billed_seconds} billed"
        for d in check.differences
    )
    total = check.differences_total
    more = total - len(check.differences)
    raise VerificationFailed(
        f"the hourly rollups (usage_hours) differ from the billed seconds in {total} row{'s' if total > 1 else ''}: "
        f"{shown}{f' (and {more} more)' if more else ''}"
    )


async def _check_closed_periods(books: BooksReader, closed_through: str | None, stored: dict[str, bytes]) -> None:
    """Every closed period from the first stored statement on has its statement, every
    billed second of a closed period is on one, and no open period has one: a close
    stores the statement of each period it closes, and nothing else stores any."""
    opened = sorted(p for p in stored if closed_through is None or p > closed_through)
    if opened:
        raise VerificationFailed(
            f"a statement is stored for {opened[0]}, which is not closed (the books are closed "
            f"through {closed_through or 'no period'})"
        )
    if closed_through is None:
        return
    earliest = await books.earliest_booking_period()
    period = min([closed_through, *stored, *([earliest] if earliest and earliest <= closed_through else [])])
    while period <= closed_through:
        if period not in stored:
            seconds = sum(u.seconds for u in await books.hour_usages(period, []))
            raise VerificationFailed(
                f"{period} is closed (the books are closed through {closed_through}) but has no stored "
                f"statement: its {seconds:,} billed GPU-seconds are on no statement"
            )
        period = next_period(period)


async def _check_recomputed(books: BooksReader, stored: dict[str, bytes], statements: dict[str, dict]) -> None:
    """Every closed statement is what its billed seconds, the catalog and the grants'
    balances give: billed seconds of a closed booking period never change, and no catalog
    version or grant can start inside one, so any difference is an edit of the stored bytes."""
    catalog = await books.catalog()
    for period in sorted(stored):
        recomputed = await compute_statement(books, period, catalog, closed=True)
        found = statements[period]
        document = comparable(recomputed, found, await books.members_at_close(period) or [])
        if render(document) != stored[period]:
            raise VerificationFailed(
                f"the closed statement of {period} is not what its billed seconds and the catalog "
                f"give (first difference: {first_difference(document, found)}): the stored statement was edited"
            )


def _parsed(stored: dict[str, bytes]) -> dict[str, dict]:
    statements = {}
    for period, document in stored.items():
        try:
            statements[period] = orjson.loads(document)
        except orjson.JSONDecodeError as exc:
            raise VerificationFailed(f"the closed statement of {period} is not JSON: {exc}") from exc
        if not isinstance(statements[period], dict):
            raise VerificationFailed(f"the closed statement of {period} is not a statement (not a JSON object)")
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


def _closing(entries: list) -> list:
    """A period's entries its close posted (those its payments posted later left out)."""
    return [entry for entry in entries if entry.kind not in payment_journal.POSTED_AFTER_CLOSE]


def _check_statements(by_period: dict[str, list], statements: dict[str, dict]) -> None:
    """Each closed period's close posted exactly the entries its statement implies (its
    transfers as owed, or as paid at the close by periods closed before payments)."""
    for period, document in sorted(statements.items()):
        stored = _closing(by_period.get(period, []))
        try:
            implied = journal.entries_for_statement(
                Statement.from_document(document), payment_journal.closing_form(stored))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise VerificationFailed(f"the closed statement of {period} is not a statement ({exc!r})") from exc
        for entry in journal.unbalanced(implied):
            raise VerificationFailed(
                f"the closed statement of {period} does not add up: its {entry.kind} entry "
                f"{entry.reference} does not balance (was the stored statement edited?)"
            )
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


def _check_payments(
    by_period: dict[str, list], statements: dict[str, dict], payments: list[Payment], transfers: list[Transfer]
) -> None:
    """Payments pay transfers of closed statements and never exceed them, the transfers the
    store derived from each statement are the statement's, and the entries posted after
    each close are exactly what its payments' confirmations posted."""
    for payment in payments:
        if payment.period not in statements:
            raise VerificationFailed(f"payment {payment.id} pays a transfer of {payment.period}, which has no closed statement")
    for period, document in sorted(statements.items()):
        try:
            owed = transfers_in(period, document)
        except (KeyError, TypeError, AttributeError) as exc:
            raise VerificationFailed(f"the closed statement of {period} has no readable transfers ({exc!r})") from exc
        if [t for t in transfers if t.period == period] != owed:
            raise VerificationFailed(f"the transfers stored for the payments of {period} are not its statement's")
        entries = by_period.get(period, [])
        later = [entry for entry in entries if entry.kind in payment_journal.POSTED_AFTER_CLOSE]
        try:
            payment_journal.check_posted(
                period, owed, payment_journal.closing_form(_closing(entries)), later,
                [p for p in payments if p.period == period],
            )
        except ValueError as exc:
            raise VerificationFailed(str(exc)) from exc
