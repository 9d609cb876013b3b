"""The double-entry journal: what a closed statement posts, and the hash chain over it.

Pure: `entries_for_statement` turns a closed `Statement` into balanced entries (the
scheme is documented in docs/auditor-bundle.md; what a confirmed payment posts later is
`ledger.domain.payment_journal`'s), `chain` numbers and hashes them after
the last entry already stored, and `check_chain` walks stored entries and names the
first one that was changed, removed, inserted or reordered. Amounts are signed yen: a
debit is positive, a credit negative, and every entry sums to zero.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import NamedTuple

from ledger.domain.statement import GrantDraw, Statement

GENESIS_HASH = bytes(32)


class Entry(NamedTuple):
    kind: str
    reference: dict
    postings: list[tuple[str, int]]  # (account, amount_yen)


class ChainedEntry(NamedTuple):
    seq: int
    period: str
    kind: str
    reference: dict
    postings: list[tuple[str, int]]
    prev_hash: bytes
    hash: bytes


# How a close posts each transfer. Since payments (migration 0013) a transfer is owed at
# the close (`transfer_owed`: the payer's payable, the payee's receivable) and confirmed
# payments clear it; periods closed before posted it as paid in cash at the close
# (`transfer`), and read back so.
TRANSFER_PAID_AT_CLOSE, TRANSFER_OWED = "transfer", "transfer_owed"


def entries_for_statement(statement: Statement, transfers_owed: bool = True) -> list[Entry]:
    """The entries a closed statement posts, in the documented order (`transfers_owed`
    False: the transfers as periods closed before payments posted them).

    A statement the ledger computed always gives balanced entries; a stored one that was
    edited may not (`unbalanced` names such entries, for the checks that read it back).
    """
    return [
        *_tenant_invoice_entries(statement),
        *_member_invoice_entries(statement),
        *_reimbursement_entries(statement),
        *_netting_entries(statement),
        *_transfer_entries(statement, transfers_owed),
    ]


def unbalanced(entries: Iterable[Entry]) -> list[Entry]:
    return [entry for entry in entries if sum(amount for _, amount in entry.postings) != 0]


class _LineRefs:
    """The indexes of a statement's lines (and returns) per invoice, by two of their
    fields: found in one pass, not one pass per invoice (a month has thousands of tenant
    invoices and tens of thousands of lines)."""

    def __init__(self, statement: Statement, fields: tuple[str, str]) -> None:
        self.lines = self._indexes(statement.lines, fields)
        self.returns = self._indexes(statement.returns or (), fields)

    @staticmethod
    def _indexes(items, fields: tuple[str, str]) -> dict[tuple[str, str], list[int]]:
        first, second = fields
        found: dict[tuple[str, str], list[int]] = {}
        for i, item in enumerate(items):
            found.setdefault((getattr(item, first), getattr(item, second)), []).append(i)
        return found

    def of(self, values: tuple[str, str]) -> dict:
        """The indexes an invoice sums: its lines, and its returns when it has any."""
        refs: dict = {"lines": list(self.lines.get(values, ()))}
        returned = self.returns.get(values)
        if returned:
            refs["returns"] = list(returned)
        return refs


def _tenant_invoice_entries(statement: Statement) -> list[Entry]:
    entries = []
    by_invoice = _LineRefs(statement, ("reseller", "tenant"))
    for invoice in statement.tenant_invoices:
        reseller, tenant = invoice.reseller, invoice.tenant
        refs = by_invoice.of((reseller, tenant))
        postings = [
            (f"{reseller}/receivable/tenant/{tenant}", invoice.total_yen),
            (f"{reseller}/revenue/retail", -invoice.retail),
        ]
        if invoice.credit:  # statements closed before credits carry none
            postings.append((f"{reseller}/discount/grants", invoice.credit))
        postings.append((f"{reseller}/tax/output", -invoice.tax_yen))
        entries.append(Entry(
            "tenant_invoice", {"tenant_invoice": {"reseller": reseller, "tenant": tenant}, **refs}, postings,
        ))
    return entries


def _reimbursements(statement: Statement) -> list[tuple[GrantDraw, int]]:
    """The grants whose funder, another member than the reseller, owes the reseller their
    draws less what returns restored to them (negative: the reseller owes the funder)."""
    return [(draw, draw.amount_yen - draw.restored) for draw in statement.draws if draw.reimbursed]


def _reimbursement_entries(statement: Statement) -> list[Entry]:
    """A draw funded by another member: the funder's expense and payable, the reseller's
    receivable, and the reseller's discount taken back (it is paid for)."""
    entries = []
    for draw, amount in _reimbursements(statement):
        funder, reseller = draw.funder, draw.reseller
        entries.append(Entry("grant_reimbursement", {"grant": draw.grant}, [
            (f"{funder}/expense/grants", amount),
            (f"{funder}/payable/grants/{reseller}", -amount),
            (f"{reseller}/receivable/grants/{funder}", amount),
            (f"{reseller}/discount/grants", -amount),
        ]))
    return entries


def _member_invoice_entries(statement: Statement) -> list[Entry]:
    """Both sides of each member invoice: the reseller's cost and the provider's revenue."""
    entries = []
    by_invoice = _LineRefs(statement, ("provider", "reseller"))
    for invoice in statement.member_invoices:
        provider, reseller = invoice.provider, invoice.reseller
        total, subtotal, tax = invoice.total_yen, invoice.subtotal_yen, invoice.tax_yen
        refs = by_invoice.of((provider, reseller))
        reference = {"member_invoice": {"provider": provider, "reseller": reseller}, **refs}
        entries.append(Entry("member_invoice_reseller", reference, [
            (f"{reseller}/cost/wholesale", subtotal),
            (f"{reseller}/tax/input", tax),
            (f"{reseller}/payable/member/{provider}", -total),
        ]))
        entries.append(Entry("member_invoice_provider", reference, [
            (f"{provider}/receivable/member/{reseller}", total),
            (f"{provider}/revenue/wholesale", -subtotal),
            (f"{provider}/tax/output", -tax),
        ]))
    return entries


def _netting_entries(statement: Statement) -> list[Entry]:
    """Every member invoice and grant reimbursement settled through the members' clearing
    accounts, at their nets."""
    reimbursements = _reimbursements(statement)
    if not statement.member_invoices and not reimbursements:
        return []
    postings: list[tuple[str, int]] = []
    for invoice in statement.member_invoices:
        provider, reseller, total = invoice.provider, invoice.reseller, invoice.total_yen
        postings.append((f"{reseller}/payable/member/{provider}", total))
        postings.append((f"{provider}/receivable/member/{reseller}", -total))
    for draw, amount in reimbursements:
        funder, reseller = draw.funder, draw.reseller
        postings.append((f"{funder}/payable/grants/{reseller}", amount))
        postings.append((f"{reseller}/receivable/grants/{funder}", -amount))
    for member, net in statement.net_yen.items():
        if net:
            postings.append((f"{member}/settlement/clearing", net))
    reference: dict = {"member_invoices": [[i.provider, i.reseller] for i in statement.member_invoices]}
    if reimbursements:
        reference["grant_reimbursements"] = [draw.grant for draw, _ in reimbursements]
    return [Entry("netting", reference, postings)]


def _transfer_entries(statement: Statement, owed: bool) -> list[Entry]:
    """Each transfer moves the nets out of the clearing accounts: into what the payer owes
    the payee (owed), or, as periods closed before payments posted it, into cash."""
    entries = []
    for index, transfer in enumerate(statement.transfers):
        debtor, creditor, amount = transfer.payer, transfer.payee, transfer.amount_yen
        if owed:
            middle = [(payable(debtor, creditor), -amount), (receivable(creditor, debtor), amount)]
        else:
            middle = [(f"{debtor}/cash", -amount), (f"{creditor}/cash", amount)]
        entries.append(Entry(TRANSFER_OWED if owed else TRANSFER_PAID_AT_CLOSE, {"transfer": index}, [
            (f"{debtor}/settlement/clearing", amount), *middle, (f"{creditor}/settlement/clearing", -amount),
        ]))
    return entries


def payable(payer: str, payee: str) -> str:
    """The account of what `payer` owes `payee` of the transfers between them."""
    return f"{payer}/payable/transfer/{payee}"


def receivable(payee: str, payer: str) -> str:
    return f"{payee}/receivable/transfer/{payer}"


def canonical(seq: int, period: str, kind: str, reference: dict, postings: Iterable[tuple[str, int]]) -> bytes:
    """The bytes an entry's hash covers: sorted keys, no spaces, integer yen."""
    document = {
        "seq": seq,
        "period": period,
        "kind": kind,
        "reference": reference,
        "postings": [{"account": account, "amount_yen": amount} for account, amount in postings],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(prev_hash: bytes, seq: int, period: str, kind: str, reference: dict, postings) -> bytes:
    return hashlib.sha256(prev_hash + canonical(seq, period, kind, reference, postings)).digest()


def chain(period: str, entries: list[Entry], last_seq: int, last_hash: bytes) -> list[ChainedEntry]:
    """Number and hash entries after the last stored one."""
    chained = []
    prev = last_hash
    for offset, entry in enumerate(entries, start=1):
        seq = last_seq + offset
        digest = entry_hash(prev, seq, period, entry.kind, entry.reference, entry.postings)
        chained.append(ChainedEntry(seq, period, entry.kind, entry.reference, entry.postings, prev, digest))
        prev = digest
    return chained


def check_chain(entries: Iterable[ChainedEntry]) -> tuple[int, bytes]:
    """Walk stored entries in seq order; return the head, or raise ValueError at the first break."""
    expected_seq, prev = 1, GENESIS_HASH
    for entry in entries:
        if entry.seq != expected_seq:
            if entry.seq > expected_seq:
                raise ValueError(
                    f"journal entry {expected_seq} is missing (the sequence jumps to {entry.seq})"
                )
            raise ValueError(f"journal entry {entry.seq} appears twice or out of order")
        if entry.prev_hash != prev:
            raise ValueError(
                f"journal entry {entry.seq}: prev_hash does not match entry {entry.seq - 1} "
                "(an entry was inserted, removed or reordered before it)"
            )
        total = sum(amount for _, amount in entry.postings)
        if len(entry.postings) < 2 or total != 0:
            raise ValueError(f"journal entry {entry.seq} does not balance ({total} yen)")
        digest = entry_hash(entry.prev_hash, entry.seq, entry.period, entry.kind, entry.reference, entry.postings)
        if digest != entry.hash:
            raise ValueError(f"journal entry {entry.seq}: its content does not match its hash (changed)")
        expected_seq, prev = entry.seq + 1, entry.hash
    return expected_seq - 1, prev
