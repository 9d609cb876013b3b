"""journal.ndjson: the hash chain, and the entries the verified statement implies.

docs/auditor-bundle.md, "journal.ndjson". The entries of a period are small in number
(a few per invoice and transfer), so they are read whole.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from auditor.errors import VerificationError
from auditor.settlement import Invoice
from auditor.statement import Statement
from auditor.strictjson import JSONProblem, canonical, is_int, parse, same, show

FILE = "journal.ndjson"
TRANSFER_OWED, TRANSFER_PAID = "transfer_owed", "transfer"
KEYS = frozenset({"seq", "period", "kind", "reference", "postings", "prev_hash", "hash"})
_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass
class Entry:
    number: int  # 1-based line of journal.ndjson
    seq: int
    period: str
    kind: str
    reference: Any
    postings: list[tuple[str, int]]
    prev_hash: str
    hash: str


@dataclass
class Implied:
    kind: str
    reference: Any
    postings: list[tuple[str, int]]
    about: str  # what it books, for messages


def _fail(number: int | None, what: str) -> VerificationError:
    return VerificationError(f"{FILE}{'' if number is None else f' line {number}'}: {what}")


def _read(data: bytes) -> list[Entry]:
    if data and not data.endswith(b"\n"):
        raise _fail(data.count(b"\n") + 1, "does not end with a newline")
    entries: list[Entry] = []
    previous: Entry | None = None
    for number, raw in enumerate(data.split(b"\n")[:-1], start=1):
        document = _document(number, raw)
        entry = _entry(number, document)
        _check_link(entry, previous, document)
        entries.append(entry)
        previous = entry
    return entries


def _document(number: int, raw: bytes) -> dict:
    """A line as a JSON object of exactly the entry keys."""
    try:
        document = parse(raw)
    except JSONProblem as exc:
        raise _fail(number, str(exc)) from None
    if not isinstance(document, dict):
        raise _fail(number, "is not a JSON object")
    if document.keys() != KEYS:
        missing, extra = sorted(KEYS - document.keys()), sorted(document.keys() - KEYS)
        raise _fail(number, f"the key {missing[0]!r} is missing" if missing else f"unexpected key {extra[0]!r}")
    return document


def _entry(number: int, document: dict) -> Entry:
    seq = document["seq"]
    if not is_int(seq) or seq < 0:
        raise _fail(number, "seq is not an integer >= 0")
    for name in ("period", "kind"):
        if not isinstance(document[name], str):
            raise _fail(number, f"{name} is not a string")
    for name in ("prev_hash", "hash"):
        if not isinstance(document[name], str) or _HASH.fullmatch(document[name]) is None:
            raise _fail(number, f"{name} is not 64 lowercase hex digits")
    postings = document["postings"]
    if not isinstance(postings, list):
        raise _fail(number, "postings is not a list")
    pairs = []
    for index, posting in enumerate(postings, start=1):
        if (
            not isinstance(posting, dict)
            or posting.keys() != {"account", "amount_yen"}
            or not isinstance(posting["account"], str)
            or not posting["account"]
            or not is_int(posting["amount_yen"])
        ):
            raise _fail(number, f"posting {index} is not {{\"account\": text, \"amount_yen\": integer}}")
        pairs.append((posting["account"], posting["amount_yen"]))
    return Entry(number, seq, document["period"], document["kind"], document["reference"], pairs,
                 document["prev_hash"], document["hash"])


def _check_link(entry: Entry, previous: Entry | None, document: dict) -> None:
    """The chain: no gap in seq, each prev_hash the previous line's hash, each hash its own."""
    number = entry.number
    if previous is not None:
        if entry.seq != previous.seq + 1:
            raise _fail(
                number,
                f"seq is {entry.seq} after line {previous.number}'s {previous.seq}: the sequence must "
                "go up by 1 (an entry is missing, added or moved)",
            )
        if entry.prev_hash != previous.hash:
            raise _fail(number, f"prev_hash does not match line {previous.number}'s hash")
    try:
        body = canonical({name: document[name] for name in ("seq", "period", "kind", "reference", "postings")})
    except JSONProblem as exc:
        raise _fail(number, str(exc)) from None
    recomputed = hashlib.sha256(bytes.fromhex(entry.prev_hash) + body).hexdigest()
    if recomputed != entry.hash:
        raise _fail(number, f"hash does not match the entry's content (recomputed {recomputed})")


def implied_entries(statement: Statement, transfers_owed: bool = True) -> list[Implied]:
    """The entries of a closed period, in order, as docs/auditor-bundle.md lists them:
    tenant invoices, member invoices, grant reimbursements, the netting, transfers (as
    owed, or, `transfers_owed` False, as paid in cash at the close)."""
    # The statement's line indexes (0-based, ascending) behind each invoice.
    tenant_refs, member_refs = _references(statement)
    implied = [_tenant_invoice_entry(invoice, tenant_refs.get(invoice.pair, {"lines": []}))
               for invoice in statement.tenant_invoices]
    for invoice in statement.member_invoices:
        implied.extend(_member_invoice_entries(invoice, member_refs.get(invoice.pair, {"lines": []})))
    reimbursements = _reimbursements(statement)
    implied.extend(_reimbursement_entry(draw) for draw in reimbursements)
    if statement.member_invoices or reimbursements:
        implied.append(_netting_entry(statement, reimbursements))
    for index, transfer in enumerate(statement.transfers):
        implied.append(_transfer_entry(index, *transfer, owed=transfers_owed))
    return implied


def _references(statement: Statement) -> tuple[dict[tuple[str, str], dict], dict[tuple[str, str], dict]]:
    """The statement's line indexes (0-based, ascending) behind each tenant and member
    invoice, and, when it has any, its returns' indexes: {"lines": [...], "returns": [...]}."""
    tenant: dict[tuple[str, str], dict] = {}
    member: dict[tuple[str, str], dict] = {}
    for name, items in (("lines", statement.lines), ("returns", statement.returns or ())):
        for index, item in enumerate(items):
            for refs, pair in ((tenant, (item.reseller, item.tenant)), (member, (item.provider, item.reseller))):
                refs.setdefault(pair, {"lines": []}).setdefault(name, []).append(index)
    return tenant, member


def _tenant_invoice_entry(invoice: Invoice, refs: dict) -> Implied:
    """Revenue at retail; a credit, when there is one, is the reseller's discount."""
    reseller, tenant = invoice.issuer, invoice.recipient
    # A statement closed before credits existed carries no retail_yen: its retail is its subtotal.
    retail = invoice.subtotal_yen if invoice.retail_yen is None else invoice.retail_yen
    postings = [(f"{reseller}/receivable/tenant/{tenant}", invoice.total_yen),
                (f"{reseller}/revenue/retail", -retail)]
    if invoice.credit_yen:
        postings.append((f"{reseller}/discount/grants", invoice.credit_yen))
    postings.append((f"{reseller}/tax/output", -invoice.tax_yen))
    return Implied(
        "tenant_invoice",
        {"tenant_invoice": {"reseller": reseller, "tenant": tenant}, **refs},
        postings,
        f"the tenant invoice ({reseller} {tenant})",
    )


def _reimbursements(statement: Statement) -> list[tuple[str, str, str, str, int]]:
    """The statement's grant draws that a funder other than the reseller owes the reseller,
    each at its draws less its restorations (negative: the reseller owes the funder)."""
    return [(*draw[:4], draw[4] - statement.restored.get(draw[0], 0))
            for draw in statement.grant_draws or [] if draw[1] != draw[2]]


def _reimbursement_entry(draw: tuple[str, str, str, str, int]) -> Implied:
    """The funder's expense and payable, the reseller's receivable, its discount taken back."""
    grant, funder, reseller, _, amount = draw
    return Implied(
        "grant_reimbursement",
        {"grant": grant},
        [(f"{funder}/expense/grants", amount), (f"{funder}/payable/grants/{reseller}", -amount),
         (f"{reseller}/receivable/grants/{funder}", amount), (f"{reseller}/discount/grants", -amount)],
        f"the reimbursement of grant {grant} ({funder} -> {reseller} {amount} yen)",
    )


def _member_invoice_entries(invoice: Invoice, refs: dict) -> list[Implied]:
    """A member invoice is booked twice: once by the reseller, once by the provider."""
    provider, reseller = invoice.issuer, invoice.recipient
    reference = {"member_invoice": {"provider": provider, "reseller": reseller}, **refs}
    about = f"the member invoice ({provider} {reseller})"
    subtotal, tax, total = invoice.subtotal_yen, invoice.tax_yen, invoice.total_yen
    return [
        Implied(
            "member_invoice_reseller", reference,
            [(f"{reseller}/cost/wholesale", subtotal), (f"{reseller}/tax/input", tax),
             (f"{reseller}/payable/member/{provider}", -total)],
            about,
        ),
        Implied(
            "member_invoice_provider", reference,
            [(f"{provider}/receivable/member/{reseller}", total),
             (f"{provider}/revenue/wholesale", -subtotal), (f"{provider}/tax/output", -tax)],
            about,
        ),
    ]


def _netting_entry(statement: Statement, reimbursements: list[tuple[str, str, str, str, int]]) -> Implied:
    """Every member invoice, then every reimbursement, settled through the clearing accounts."""
    postings = []
    for invoice in statement.member_invoices:
        provider, reseller = invoice.issuer, invoice.recipient
        postings.append((f"{reseller}/payable/member/{provider}", invoice.total_yen))
        postings.append((f"{provider}/receivable/member/{reseller}", -invoice.total_yen))
    for _, funder, reseller, _, amount in reimbursements:
        postings.append((f"{funder}/payable/grants/{reseller}", amount))
        postings.append((f"{reseller}/receivable/grants/{funder}", -amount))
    for member, net in statement.net_yen.items():
        if net:
            postings.append((f"{member}/settlement/clearing", net))
    reference: dict[str, Any] = {
        "member_invoices": [[invoice.issuer, invoice.recipient] for invoice in statement.member_invoices]
    }
    if reimbursements:
        reference["grant_reimbursements"] = [draw[0] for draw in reimbursements]
    return Implied("netting", reference, postings, "the netting")


def _transfer_entry(index: int, payer: str, payee: str, amount: int, owed: bool) -> Implied:
    """The nets leave the clearing accounts: into what the payer owes the payee (owed:
    `transfer_owed`, cleared by payments later), or into cash at the close (`transfer`, as
    periods closed before payments existed posted it)."""
    if owed:
        middle = [(f"{payer}/payable/transfer/{payee}", -amount), (f"{payee}/receivable/transfer/{payer}", amount)]
    else:
        middle = [(f"{payer}/cash", -amount), (f"{payee}/cash", amount)]
    return Implied(
        TRANSFER_OWED if owed else TRANSFER_PAID,
        {"transfer": index},
        [(f"{payer}/settlement/clearing", amount), *middle, (f"{payee}/settlement/clearing", -amount)],
        f"transfer {index + 1} ({payer} -> {payee} {amount} yen)",
    )


def _posting(posting: tuple[str, int]) -> str:
    return f"{posting[0]} {posting[1]:+d}"


def check_journal(data: bytes, statement: Statement, chain_head: dict | None) -> None:
    entries = _read(data)
    _check_chain_head(entries, chain_head)
    for entry in entries:
        total = sum(amount for _, amount in entry.postings)
        if total:
            raise _fail(entry.number, f"the postings sum to {total}, not 0")
    _check_implied(entries, statement)
    _check_balances(entries)
    _check_member_invoice_sides(entries, statement)
    _check_reimbursement_sides(entries, statement)


def _check_chain_head(entries: list[Entry], chain_head: dict | None) -> None:
    """The last entry is the manifest's (signed) chain head."""
    if not entries:
        if chain_head is not None:
            raise _fail(None, f"is empty, but the manifest's chain_head is seq {chain_head['seq']}")
        return
    last = entries[-1]
    if chain_head is None:
        raise _fail(last.number, "the manifest's chain_head is null, but the journal has entries")
    if (last.seq, last.hash) != (chain_head["seq"], chain_head["hash"]):
        raise _fail(
            last.number,
            f"the last entry (seq {last.seq}, hash {last.hash}) is not the manifest's chain_head "
            f"(seq {chain_head['seq']}, hash {chain_head['hash']})",
        )


def _check_implied(entries: list[Entry], statement: Statement) -> None:
    """Exactly the entries the statement implies, in order: its transfers all posted one
    way, as owed unless the bundle posts them as paid at the close (`transfer`)."""
    implied = implied_entries(statement, transfers_owed=not any(e.kind == TRANSFER_PAID for e in entries))
    for entry, expected in zip(entries, implied, strict=False):
        _compare_entry(entry, expected, statement.period)
    if len(entries) > len(implied):
        raise _fail(entries[len(implied)].number, "is an entry the statement does not imply")
    if len(entries) < len(implied):
        missing = implied[len(entries)]
        raise _fail(
            None,
            f"ends after {len(entries)} entries; the statement implies {len(implied)} "
            f"(next: {missing.kind} for {missing.about})",
        )


def _compare_entry(entry: Entry, expected: Implied, period: str) -> None:
    number = entry.number
    if entry.period != period:
        raise _fail(number, f"period is {entry.period!r}, the bundle's is {period}")
    if entry.kind != expected.kind:
        raise _fail(number, f"kind is {entry.kind!r}, the statement implies {expected.kind} for {expected.about}")
    if not same(entry.reference, expected.reference):
        raise _fail(
            number,
            f"reference is {show(entry.reference)}, the statement implies {show(expected.reference)}",
        )
    for index, (mine, theirs) in enumerate(zip(entry.postings, expected.postings, strict=False), start=1):
        if mine != theirs:
            raise _fail(
                number,
                f"posting {index} is {_posting(mine)}, the statement implies {_posting(theirs)} "
                f"({expected.about})",
            )
    if len(entry.postings) != len(expected.postings):
        raise _fail(
            number,
            f"has {len(entry.postings)} postings, the statement implies {len(expected.postings)} "
            f"({expected.about})",
        )


def _check_balances(entries: list[Entry]) -> None:
    """The trial balance, and every clearing account settled, from the postings."""
    balances: dict[str, int] = {}
    for entry in entries:
        for account, amount in entry.postings:
            balances[account] = balances.get(account, 0) + amount
    if sum(balances.values()):
        raise _fail(None, f"the trial balance sums to {sum(balances.values())}, not 0")
    for account, balance in sorted(balances.items()):
        if account.endswith("/settlement/clearing") and balance:
            raise _fail(None, f"{account} is {balance} after the transfers, not 0")


def _check_member_invoice_sides(entries: list[Entry], statement: Statement) -> None:
    """Both sides of every member invoice, from the two entries that book it."""
    sides: dict[str, tuple[str, tuple[str, str]]] = {}
    for invoice in statement.member_invoices:
        provider, reseller = invoice.issuer, invoice.recipient
        sides[f"{provider}/receivable/member/{reseller}"] = ("receivable", invoice.pair)
        sides[f"{reseller}/payable/member/{provider}"] = ("payable", invoice.pair)
    receivable: dict[tuple[str, str], int] = {}
    payable: dict[tuple[str, str], int] = {}
    for entry in entries:
        if entry.kind not in ("member_invoice_reseller", "member_invoice_provider"):
            continue
        for account, amount in entry.postings:
            side = sides.get(account)
            if side is not None:
                book = receivable if side[0] == "receivable" else payable
                book[side[1]] = book.get(side[1], 0) + amount
    for invoice in statement.member_invoices:
        if receivable.get(invoice.pair, 0) != -payable.get(invoice.pair, 0):
            provider, reseller = invoice.issuer, invoice.recipient
            raise _fail(
                None,
                f"the member invoice ({provider} {reseller}): {provider}/receivable/member/{reseller} "
                f"is {receivable.get(invoice.pair, 0)}, {reseller}/payable/member/{provider} is "
                f"{payable.get(invoice.pair, 0)}; the two sides disagree",
            )


def _check_reimbursement_sides(entries: list[Entry], statement: Statement) -> None:
    """Both sides of every grant reimbursement, from the entries that book them: what each
    funder owes a reseller is what that reseller is owed."""
    sides: dict[str, tuple[int, tuple[str, str]]] = {}
    for _, funder, reseller, _, _ in _reimbursements(statement):
        sides[f"{funder}/payable/grants/{reseller}"] = (0, (funder, reseller))
        sides[f"{reseller}/receivable/grants/{funder}"] = (1, (funder, reseller))
    booked: dict[tuple[str, str], list[int]] = {pair: [0, 0] for _, pair in sides.values()}
    for entry in entries:
        if entry.kind != "grant_reimbursement":
            continue
        for account, amount in entry.postings:
            if account in sides:
                side, pair = sides[account]
                booked[pair][side] += amount
    for (funder, reseller), (payable, receivable) in sorted(booked.items()):
        if receivable != -payable:
            raise _fail(
                None,
                f"the grant reimbursements ({funder} -> {reseller}): {funder}/payable/grants/{reseller} "
                f"is {payable}, {reseller}/receivable/grants/{funder} is {receivable}; the two sides disagree",
            )
