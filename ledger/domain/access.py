"""Who is asking, and what of the ledger they may see.

A member sees what it resold (its tenants, its retail prices), and the usage that ran on
its GPUs for other resellers with their tenants as pseudonyms and without their prices;
an auditor sees everything and writes nothing; an admin (the operator) does both. What a
caller may not see is reported exactly like what does not exist. Pure: the services and
the API ask these functions, and nothing else decides.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from ledger.domain.statement import Return, Statement, StatementLine, printed_instant

ROLES = ("member", "auditor", "admin")


@dataclass(frozen=True)
class Caller:
    """Who is asking: a member (scoped to itself), an auditor (reads all) or an admin."""

    token_id: str
    role: str
    member: str | None

    @property
    def can_write_ledger(self) -> bool:
        return self.role == "admin"


OPERATOR = Caller(token_id="cli", role="admin", member=None)


def pseudonym(key: bytes, viewer: str, reseller: str, tenant: str) -> str:
    """A stable stand-in for another reseller's tenant, as one provider sees it.

    Keyed by viewer and reseller too, so the same tenant id of two resellers, or one
    tenant seen by two providers, cannot be linked.
    """
    message = "\x1f".join((viewer, reseller, tenant)).encode()
    return "tenant-" + hmac.new(key, message, hashlib.sha256).hexdigest()[:20]


def provider_side(row: StatementLine | Return, member: str, key: bytes) -> dict:
    """A line (or a return) of another reseller on `member`'s GPUs, as `member` sees it: the
    tenant as a pseudonym, no retail price, no retail amounts."""
    seen = {
        "reseller": row.reseller,
        "tenant": pseudonym(key, member, row.reseller, row.tenant),
        "provider": row.provider,
        "sku": row.sku,
        "service_period": row.service_period,
    }
    if isinstance(row, Return):
        seen["booking_period"] = row.booking_period
    seen.update(agreement_from=printed_instant(row.agreement_from), gpu_seconds=row.gpu_seconds, wholesale_yen=row.wholesale_yen)
    return seen


def _members_rows(rows: tuple[StatementLine, ...] | tuple[Return, ...], member: str, key: bytes) -> list[dict]:
    return [
        row.to_document() if row.reseller == member else provider_side(row, member, key)
        for row in rows
        if member in (row.reseller, row.provider)
    ]


def member_view(statement: Statement, member: str, key: bytes) -> dict:
    """A member's side of a statement, as the API answers it: its own lines and invoices,
    nothing of others'. In the statement's JSON form, section by section (a statement
    closed before a section existed shows none of it, except `grant_draws`: empty)."""
    view = {
        "period": statement.period,
        "currency": statement.currency,
        "closed": statement.closed,
        "member": member,
        "lines": _members_rows(statement.lines, member, key),
        "tenant_invoices": [i.to_document() for i in statement.tenant_invoices if i.reseller == member],
        "member_invoices": [
            i.to_document() for i in statement.member_invoices if member in (i.provider, i.reseller)
        ],
    }
    if statement.returns is not None:  # None: closed before SPEC.md's change of 2026-12-07
        view["returns"] = _members_rows(statement.returns, member, key)
    view["grant_draws"] = [d.to_document() for d in statement.draws if member in (d.funder, d.reseller)]
    view["net_yen"] = {member: statement.net_yen.get(member, 0)}
    view["transfers"] = [t.to_document() for t in statement.transfers if member in (t.payer, t.payee)]
    return view


def sees_document(caller: Caller, kind: str, issuer: str | None, recipient: str | None) -> bool:
    """Which documents of a period a caller may read: a member the invoices it issued or
    received, its own settlement report and the capacity report; an auditor or admin all."""
    if caller.member is None or kind == "capacity_report":
        return True
    if kind == "member_invoice":
        return caller.member in (issuer, recipient)
    return issuer == caller.member  # its tenant invoices, its own settlement report
