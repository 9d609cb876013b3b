"""What a confirmed payment posts in the journal, and the check of what was posted.

A close posts each transfer as owed (`transfer_owed`: the payer's payable to the payee,
the payee's receivable from the payer; `ledger.domain.journal`). A confirmed payment
clears that much of both against the members' cash, in one `payment` entry appended in
the transaction that confirms it, under the transfer's period:

    <payer>/payable/transfer/<payee>     +amount
    <payer>/cash                         -amount
    <payee>/cash                         +amount
    <payee>/receivable/transfer/<payer>  -amount

A period closed before payments existed posted its transfers as paid in cash at the
close (`transfer`). The first confirmed payment of such a transfer is preceded, in the
same transaction, by one `transfer_restated` entry that takes that cash back and opens
the payable and receivable, so its payments then post as above:

    <payer>/cash                         +transfer amount
    <payer>/payable/transfer/<payee>     -transfer amount
    <payee>/receivable/transfer/<payer>  +transfer amount
    <payee>/cash                         -transfer amount

These entries come after the close's, so they are not in the period's auditor bundle
(its journal is the close's entries, which the statement implies); `gpuledger verify
--db` checks them against the stored payments (`check_posted`). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable

from ledger.domain.journal import (
    TRANSFER_PAID_AT_CLOSE,
    ChainedEntry,
    Entry,
    payable,
    receivable,
)
from ledger.domain.payments import CONFIRMED, Payment, Transfer

PAYMENT, TRANSFER_RESTATED = "payment", "transfer_restated"
# Entries posted after a period's close, under its period: not the close's.
POSTED_AFTER_CLOSE = frozenset({PAYMENT, TRANSFER_RESTATED})


def payment_entry(payment: Payment, transfer: Transfer) -> Entry:
    payer, payee, amount = transfer.payer, transfer.payee, payment.amount_yen
    return Entry(PAYMENT, {"payment": payment.id, "transfer": transfer.index}, [
        (payable(payer, payee), amount),
        (f"{payer}/cash", -amount),
        (f"{payee}/cash", amount),
        (receivable(payee, payer), -amount),
    ])


def restated_entry(transfer: Transfer) -> Entry:
    payer, payee, amount = transfer.payer, transfer.payee, transfer.amount_yen
    return Entry(TRANSFER_RESTATED, {"transfer": transfer.index}, [
        (f"{payer}/cash", amount),
        (payable(payer, payee), -amount),
        (receivable(payee, payer), amount),
        (f"{payee}/cash", -amount),
    ])


def entries_for_confirmation(payment: Payment, transfer: Transfer, transfer_kinds: Iterable[str]) -> list[Entry]:
    """What confirming `payment` posts, given the kinds of the entries already posted for
    its transfer (its close's `transfer` or `transfer_owed`, a `transfer_restated`)."""
    kinds = set(transfer_kinds)
    restate = TRANSFER_PAID_AT_CLOSE in kinds and TRANSFER_RESTATED not in kinds
    return [*([restated_entry(transfer)] if restate else []), payment_entry(payment, transfer)]


def closing_form(entries: Iterable[ChainedEntry | Entry]) -> bool:
    """Whether a period's close posted its transfers as owed (False: paid at the close)."""
    return not any(entry.kind == TRANSFER_PAID_AT_CLOSE for entry in entries)


def _same(entry: ChainedEntry, expected: Entry) -> bool:
    return (entry.kind, entry.reference, [tuple(p) for p in entry.postings]) == (
        expected.kind, expected.reference, [tuple(p) for p in expected.postings])


def check_posted(
    period: str, transfers: list[Transfer], owed: bool, posted: list[ChainedEntry], payments: list[Payment]
) -> None:
    """The entries posted after a period's close (in seq order) are exactly what its
    payments' confirmations posted; its payments never hold more than their transfers.
    Raises ValueError naming the first difference."""
    by_index = {t.index: t for t in transfers}
    by_key = {t.key: t for t in transfers}
    for payment in payments:
        transfer = by_key.get(payment.transfer_key)
        if transfer is None:
            raise ValueError(f"payment {payment.id} pays no transfer of the statement of {period}")
        held = sum(p.amount_yen for p in payments if p.transfer_key == transfer.key and p.state != "rejected")
        if held > transfer.amount_yen:
            raise ValueError(f"the payments of {period}'s transfer {transfer.payer} -> {transfer.payee} "
                             f"hold {held:,} yen, more than its {transfer.amount_yen:,}")
    confirmed = {p.id: p for p in payments if p.state == CONFIRMED}
    restated: set[int] = set()
    seen: set[str] = set()
    for entry in posted:
        reference = entry.reference if isinstance(entry.reference, dict) else {}
        if entry.kind == TRANSFER_RESTATED and not owed:
            index = reference.get("transfer")
            transfer = by_index.get(index) if isinstance(index, int) else None
            if transfer is None or transfer.index in restated or not _same(entry, restated_entry(transfer)):
                raise ValueError(f"journal entry {entry.seq} ({period}) is not the restatement of a transfer")
            restated.add(transfer.index)
            continue
        payment_id = reference.get("payment")
        payment = confirmed.get(payment_id) if entry.kind == PAYMENT and isinstance(payment_id, str) else None
        if payment is None or payment_id in seen:
            raise ValueError(f"journal entry {entry.seq} ({period}) is no confirmed payment's entry")
        transfer = by_key[payment.transfer_key]
        if not _same(entry, payment_entry(payment, transfer)):
            raise ValueError(f"journal entry {entry.seq} ({period}) is not what payment {payment_id} posts")
        if not owed and transfer.index not in restated:
            raise ValueError(f"journal entry {entry.seq} ({period}) pays a transfer posted as paid at the close "
                             "that was not restated before")
        seen.add(payment_id)
    missing = sorted(set(confirmed) - seen)
    if missing:
        raise ValueError(f"payment {missing[0]} of {period} is confirmed but has no journal entry")
