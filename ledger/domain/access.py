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


def _provider_side(row: dict, member: str, key: bytes, extra: tuple[str, ...] = ()) -> dict:
    """A line (or a return) of another reseller on `member`'s GPUs, as `member` sees it: the
    tenant as a pseudonym, no retail price, no retail amounts."""
    seen = {
        "reseller": row["reseller"],
        "tenant": pseudonym(key, member, row["reseller"], row["tenant"]),
        "provider": row["provider"],
        "sku": row["sku"],
        "service_period": row["service_period"],
    }
    seen.update({name: row[name] for name in extra})
    seen.update(agreement_from=row["agreement_from"], gpu_seconds=row["gpu_seconds"], wholesale_yen=row["wholesale_yen"])
    return seen


def _members_rows(rows: list[dict], member: str, key: bytes, extra: tuple[str, ...] = ()) -> list[dict]:
    return [
        row if row["reseller"] == member else _provider_side(row, member, key, extra)
        for row in rows
        if member in (row["reseller"], row["provider"])
    ]


def member_view(statement: dict, member: str, key: bytes) -> dict:
    """A member's side of a statement: its own lines and invoices, nothing of others'."""
    lines = _members_rows(statement["lines"], member, key)
    view = {
        "period": statement["period"],
        "currency": statement["currency"],
        "closed": statement["closed"],
        "member": member,
        "lines": lines,
        "tenant_invoices": [i for i in statement["tenant_invoices"] if i["reseller"] == member],
        "member_invoices": [
            i for i in statement["member_invoices"] if member in (i["provider"], i["reseller"])
        ],
        "grant_draws": [d for d in statement.get("grant_draws", []) if member in (d["funder"], d["reseller"])],
        "net_yen": {member: statement["net_yen"].get(member, 0)},
        "transfers": [t for t in statement["transfers"] if member in (t["from"], t["to"])],
    }
    if "returns" not in statement:  # closed before SPEC.md's change of 2026-12-07
        return view
    ordered = {}
    for name, value in view.items():
        ordered[name] = value
        if name == "member_invoices":
            ordered["returns"] = _members_rows(statement["returns"], member, key, ("booking_period",))
    return ordered


def sees_document(caller: Caller, kind: str, issuer: str | None, recipient: str | None) -> bool:
    """Which documents of a period a caller may read: a member the invoices it issued or
    received, its own settlement report and the capacity report; an auditor or admin all."""
    if caller.member is None or kind == "capacity_report":
        return True
    if kind == "member_invoice":
        return caller.member in (issuer, recipient)
    return issuer == caller.member  # its tenant invoices, its own settlement report
