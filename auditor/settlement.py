"""What a statement's lines imply: its invoices, each member's net and the transfers.

SPEC.md, "Invoices" and "Settlement between members". The statement check
(auditor.statement) hands the verified lines' subtotals in and the stated invoices,
nets and transfers to compare; what differs is reported against statement.json.
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
    return subtotal * rate_percent // 100


def invoices_of(subtotals: dict[tuple[str, str], int], rate_percent: int) -> list[Invoice]:
    """One invoice per (issuer, recipient), in that order: the subtotal, its tax, the total."""
    return [
        Invoice(issuer, recipient, subtotal, _tax(subtotal, rate_percent),
                subtotal + _tax(subtotal, rate_percent))
        for (issuer, recipient), subtotal in sorted(subtotals.items())
    ]


def compare_invoices(
    stated: list[Invoice], recomputed: list[Invoice], label: str, section: str
) -> None:
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
                raise _fail(f"{where}: {name} is {getattr(mine, name)}, recomputed {getattr(theirs, name)}")
        i += 1
        j += 1


def check_nets(
    stated: dict[str, int], parties: Iterable[str], member_invoices: list[Invoice]
) -> None:
    """net_yen: every party to a line listed, each net what the member invoices make it."""
    nets: dict[str, int] = {}
    for invoice in member_invoices:
        nets[invoice.issuer] = nets.get(invoice.issuer, 0) + invoice.total_yen
        nets[invoice.recipient] = nets.get(invoice.recipient, 0) - invoice.total_yen
    for member in parties:
        if member not in stated:
            raise _fail(
                f"net_yen omits {member}, a party to the statement's lines "
                f"(recomputed net {nets.get(member, 0)})"
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
