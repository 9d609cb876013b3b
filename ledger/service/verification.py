"""Checking the books: the journal's hash chain and balances, every closed statement
against its entries and against a recomputation, and the chain heads auditors hold.

`gpuledger verify --db` runs `verify`. Each check names the first thing that breaks it.
"""

from __future__ import annotations

from collections import defaultdict

import orjson

from ledger.domain import journal
from ledger.domain.errors import VerificationFailed
from ledger.domain.ports import BooksReader, Store
from ledger.service.books import compute_statement, render


async def verify(store: Store, anchors: list[tuple[str, int, str]] = ()) -> dict:
    """Walk the journal's chain and postings; check every closed period's entries against
    its stored statement, and the chain against signed heads auditors hold (`anchors`:
    (where it comes from, seq, hash hex)); raise VerificationFailed naming the first break.

    The anchors are what catches a superuser who rewrote the whole chain consistently:
    the heads already handed out in signed bundles must still be in it."""
    async with store.snapshot() as books:
        entries = [entry async for entry in books.journal()]
        stored = await books.closed_statements()
        statements = _parsed(stored)
        await _check_recomputed(books, stored, statements)
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


async def _check_recomputed(books: BooksReader, stored: dict[str, bytes], statements: dict[str, dict]) -> None:
    """Every closed statement is what its billed seconds and the catalog give: billed seconds
    of a closed booking period never change, and no catalog version can start inside one,
    so any difference is an edit of the stored bytes."""
    catalog = await books.catalog()
    for period in sorted(stored):
        document = await compute_statement(books, period, catalog, closed=True)
        members = await books.members_at_close(period)
        document["net_yen"] = {m: document["net_yen"].get(m, 0) for m in sorted(members or [])}
        if "grant_draws" not in statements[period]:  # closed before statements carried credits
            _without_credits(document)
        if "returns" not in statements[period]:  # closed before statements carried returns
            _without_returns(document)
        if render(document) != stored[period]:
            found = statements[period]
            where = next((k for k in document if document[k] != found.get(k)), "its bytes")
            raise VerificationFailed(
                f"the closed statement of {period} is not what its billed seconds and the catalog "
                f"give (first difference: {where}): the stored statement was edited"
            )


def _without_credits(document: dict) -> None:
    document.pop("grant_draws", None)
    for invoice in document["tenant_invoices"]:
        invoice.pop("retail_yen", None)
        invoice.pop("credit_yen", None)


def _without_returns(document: dict) -> None:
    document.pop("returns", None)
    for draw in document.get("grant_draws", ()):
        draw.pop("restored_yen", None)


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
