"""What a statement's lines imply: its invoices, each member's net and the transfers.

SPEC.md, "Invoices" and "Settlement between members". The statement check
(auditor.statement) hands the verified lines' subtotals (and the grants' draws, with the
reimbursements funders owe resellers) in and the stated invoices, nets and transfers to
compare; what differs is reported against statement.json.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from auditor.errors import VerificationError

FILE = "statement.json"  # every number checked here is one of the statement's


@dataclass(frozen=True)
class Invoice:
    issuer: str  # the reseller of a tenant invoice, the provider of a member invoice
    recipient: str  # the tenant, or the reseller
    subtotal_yen: int
    tax_yen: int
    total_yen: int
    retail_yen: int | None = None  # tenant invoices of statements with credits
    credit_yen: int | None = None

    @property
    def pair(self) -> tuple[str, str]:
        return (self.issuer, self.recipient)


def _fail(what: str) -> VerificationError:
    return VerificationError(f"{FILE}: {what}")


def _tax(subtotal: int, rate_percent: int) -> int:
    """Rounded toward zero: a refund's tax is the tax of its amount, negated."""
    tax = abs(subtotal) * rate_percent // 100
    return tax if subtotal >= 0 else -tax


def invoices_of(subtotals: dict[tuple[str, str], int], rate_percent: int) -> list[Invoice]:
    """One invoice per (issuer, recipient), in that order: the subtotal, its tax, the total."""
    return [
        Invoice(issuer, recipient, subtotal, _tax(subtotal, rate_percent),
                subtotal + _tax(subtotal, rate_percent))
        for (issuer, recipient), subtotal in sorted(subtotals.items())
    ]


def subtotals_of(lines: Iterable) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """The subtotals of the tenant invoices (their retail) and of the member invoices the
    (verified) statement lines add up to."""
    tenant: dict[tuple[str, str], int] = {}
    member: dict[tuple[str, str], int] = {}
    for line in lines:
        pair = (line.reseller, line.tenant)
        tenant[pair] = tenant.get(pair, 0) + line.retail_yen
        # A member reselling its own GPU does not invoice itself.
        if line.provider != line.reseller:
            pair = (line.provider, line.reseller)
            member[pair] = member.get(pair, 0) + line.wholesale_yen
    return tenant, member


def without_credits(
    grant_draws: list[tuple[str, str, str, str, int]], invoices: list[Invoice]
) -> list[Invoice]:
    """Tenant invoices of a statement with credits, in a bundle that carries no grants (/1)."""
    # Without grants nothing may have drawn, so each invoice's retail is its subtotal.
    if grant_draws:
        grant = grant_draws[0][0]
        raise _fail(f"grant_draws lists {grant!r}, but the bundle carries no grants")
    return [
        Invoice(i.issuer, i.recipient, i.subtotal_yen, i.tax_yen, i.total_yen, i.subtotal_yen, 0)
        for i in invoices
    ]


def tenant_invoices_of(
    retail: dict[tuple[str, str], int], credits: dict[tuple[str, str], int], rate_percent: int
) -> list[Invoice]:
    """One tenant invoice per (reseller, tenant): retail less credit is the subtotal, taxed."""
    invoices = []
    for pair, amount in sorted(retail.items()):
        credit = credits.get(pair, 0)
        subtotal = amount - credit
        tax = _tax(subtotal, rate_percent)
        invoices.append(Invoice(*pair, subtotal, tax, subtotal + tax, amount, credit))
    return invoices


def compare_invoices(
    stated: list[Invoice], recomputed: list[Invoice], label: str, section: str, credit_note: str = ""
) -> None:
    """The stated invoices against the recomputed ones; `credit_note` says where credits come from."""
    i = j = 0
    while i < len(stated) or j < len(recomputed):
        mine = stated[i] if i < len(stated) else None
        theirs = recomputed[j] if j < len(recomputed) else None
        if theirs is None or (mine is not None and mine.pair < theirs.pair):
            raise _fail(
                f"{label} {i + 1} ({mine.issuer} {mine.recipient}): no line of the statement is "
                "behind it"
            )
        if mine is None or theirs.pair < mine.pair:
            raise _fail(
                f"{section} lacks the invoice ({theirs.issuer} {theirs.recipient}) of "
                f"total_yen {theirs.total_yen} recomputed from the lines"
            )
        where = f"{label} {i + 1} ({mine.issuer} {mine.recipient})"
        for name in ("retail_yen", "credit_yen", "subtotal_yen", "tax_yen", "total_yen"):
            if getattr(mine, name) is None and getattr(theirs, name) is None:
                continue
            if getattr(mine, name) != getattr(theirs, name):
                note = credit_note if name == "credit_yen" else ""
                raise _fail(f"{where}: {name} is {getattr(mine, name)}, recomputed {getattr(theirs, name)}{note}")
        i += 1
        j += 1


def check_nets(
    stated: dict[str, int],
    parties: Iterable[str],
    member_invoices: list[Invoice],
    reimbursements: Iterable[tuple[str, str, str, int]] = (),
) -> None:
    """net_yen: every party to a line or funder listed, each net what the member invoices and
    the reimbursements, (grant, funder, reseller, yen) the funder owes the reseller, make it."""
    nets: dict[str, int] = {}
    for invoice in member_invoices:
        nets[invoice.issuer] = nets.get(invoice.issuer, 0) + invoice.total_yen
        nets[invoice.recipient] = nets.get(invoice.recipient, 0) - invoice.total_yen
    funders: dict[str, str] = {}
    for grant, funder, reseller, amount in reimbursements:
        nets[funder] = nets.get(funder, 0) - amount
        nets[reseller] = nets.get(reseller, 0) + amount
        funders.setdefault(funder, grant)
    for member in parties:
        if member not in stated:
            raise _fail(
                f"net_yen omits {member}, a party to the statement's lines "
                f"(recomputed net {nets.get(member, 0)})"
            )
    for member, grant in funders.items():
        if member not in stated:
            raise _fail(
                f"net_yen omits {member}, the funder of grant {grant} (recomputed net {nets[member]})"
            )
    for member, amount in stated.items():
        if amount != nets.get(member, 0):
            raise _fail(f"net_yen[{member!r}] is {amount}, recomputed {nets.get(member, 0)}")


def transfers_of(nets: dict[str, int]) -> list[tuple[str, str, int]]:
    """SPEC.md's netting: the largest debtor pays the largest creditor; ties by member id."""
    open_nets = {member: net for member, net in nets.items() if net}
    transfers = []
    while open_nets:
        debtor = min(open_nets, key=lambda m: (open_nets[m], m))
        creditor = min(open_nets, key=lambda m: (-open_nets[m], m))
        if open_nets[debtor] >= 0 or open_nets[creditor] <= 0:
            raise AssertionError("nets that do not sum to zero")  # cannot happen: invoices balance
        amount = min(-open_nets[debtor], open_nets[creditor])
        transfers.append((debtor, creditor, amount))
        for member, change in ((debtor, amount), (creditor, -amount)):
            open_nets[member] += change
            if not open_nets[member]:
                del open_nets[member]
    return transfers


def check_transfers(stated: list[tuple[str, str, int]], net_yen: dict[str, int]) -> None:
    """The transfers, against the netting of the (verified) nets, one by one."""
    expected = transfers_of({m: net_yen[m] for m in sorted(net_yen)})
    for index, (mine, theirs) in enumerate(zip(stated, expected, strict=False)):
        if mine != theirs:
            raise _fail(
                f"transfer {index + 1} is {mine[0]} -> {mine[1]} {mine[2]} yen, recomputed "
                f"{theirs[0]} -> {theirs[1]} {theirs[2]} yen"
            )
    if len(stated) > len(expected):
        extra = stated[len(expected)]
        raise _fail(
            f"transfer {len(expected) + 1} ({extra[0]} -> {extra[1]} {extra[2]} yen) is one too "
            f"many: the netting recomputes {len(expected)}"
        )
    if len(stated) < len(expected):
        missing = expected[len(stated)]
        raise _fail(
            f"transfers end after {len(stated)}; the netting recomputes "
            f"{len(expected)} (next: {missing[0]} -> {missing[1]} {missing[2]} yen)"
        )
