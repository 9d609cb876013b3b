"""A member's settlement report for a booking period, as content.

Both sides of the member (what it resold and billed its tenants; what it provided and
billed other resellers; what it was billed), the grants it funded and those its tenants
drew, the returns of its lines, how its net follows from them, and its transfers, all
reconciled to the statement to the yen: a report whose figures would not add up to the
statement's net is refused (`VerificationFailed`). It is the member's own: other
resellers' tenants appear only as the member's pseudonyms
(`ledger.domain.access.provider_side`, as in the member's view of the statement), and
other members' prices and invoices not at all. Beside the statement it lists the
member's voids, open disputes and payments as of its date (`ledger.domain.report_activity`).
"""

from __future__ import annotations

from collections.abc import Iterable

from ledger.domain import daily
from ledger.domain.access import provider_side
from ledger.domain.catalog import Catalog
from ledger.domain.errors import VerificationFailed
from ledger.domain.invoices import Issue, document_number, gpu_hours, party, period_dates
from ledger.domain.rating import HourUsage
from ledger.domain.report_activity import NO_ACTIVITY, Activity, activity_content
from ledger.domain.statement import Statement

OWN = "own"  # the counterpart of a member reselling its own GPUs
TENANTS = "tenants"  # the counterpart of a reseller's tenant revenue


def _sums(rows: list[dict], *keys: str) -> dict:
    return {key: sum(row[key] for row in rows) for key in keys}


def _invoices(statement: Statement, member: str) -> dict:
    period = statement.period
    tenants = [
        {**i.to_document(), "number": document_number("tenant_invoice", period, member, i.tenant),
         "retail_yen": i.retail, "credit_yen": i.credit}
        for i in statement.tenant_invoices if i.reseller == member
    ]
    issued = [
        {**i.to_document(), "number": document_number("member_invoice", period, member, i.reseller), "counterpart": i.reseller}
        for i in statement.member_invoices if i.provider == member
    ]
    received = [
        {**i.to_document(), "number": document_number("member_invoice", period, i.provider, member), "counterpart": i.provider}
        for i in statement.member_invoices if i.reseller == member
    ]
    amounts = ("subtotal_yen", "tax_yen", "total_yen")
    return {
        "tenant_invoices": tenants, "tenant_totals": _sums(tenants, "retail_yen", "credit_yen", *amounts),
        "issued": issued, "issued_totals": _sums(issued, *amounts),
        "received": received, "received_totals": _sums(received, *amounts),
    }


def coverage(grant) -> str:
    """What a grant pays for, as its funder declared it: SKUs and whose GPUs."""
    skus = "all SKUs" if grant.skus is None else ", ".join(sorted(grant.skus))
    gpus = "any provider's GPUs" if grant.providers is None else "GPUs of " + ", ".join(sorted(grant.providers))
    return f"{skus}; {gpus}"


def _grants(statement: Statement, member: str, balances: dict[str, int], catalog: Catalog) -> dict:
    """Grants the member funded and grants its tenants drew; balances after this period."""
    funded, drawn = [], []
    for draw in statement.draws:
        if member not in (draw.funder, draw.reseller):
            continue
        grant = catalog.grants.get(draw.grant)
        row = {**draw.to_document(), "restored_yen": draw.restored,
               "balance_yen": balances.get(draw.grant, 0) - draw.amount_yen + draw.restored,
               "reimbursed": draw.reimbursed, "coverage": coverage(grant) if grant is not None else ""}
        if draw.funder == member:
            funded.append(row)
        if draw.reseller == member:
            drawn.append(row)
    # SPEC.md: a reimbursement is the period's draws less its restorations (may be negative)
    owes = sum(r["amount_yen"] - r["restored_yen"] for r in funded if r["reimbursed"])
    owed = sum(r["amount_yen"] - r["restored_yen"] for r in drawn if r["reimbursed"])
    return {"funded": funded, "drawn": drawn, "reimbursements_owed_yen": owes, "reimbursements_due_yen": owed}


def _net(member: str, statement: Statement, invoices: dict, grants: dict) -> dict:
    parts = {
        "issued_yen": invoices["issued_totals"]["total_yen"],
        "received_yen": invoices["received_totals"]["total_yen"],
        "reimbursements_due_yen": grants["reimbursements_due_yen"],
        "reimbursements_owed_yen": grants["reimbursements_owed_yen"],
    }
    net = parts["issued_yen"] - parts["received_yen"] + parts["reimbursements_due_yen"] - parts["reimbursements_owed_yen"]
    stated = statement.net_yen.get(member, 0)
    if net != stated:
        raise VerificationFailed(f"{member}'s report of {statement.period} nets {net} yen, the statement {stated}")
    return {**parts, "net_yen": net, "statement_net_yen": stated}


def _transfers(statement: Statement, member: str, net: int, catalog: Catalog) -> list[dict]:
    found = [
        {"pays": t.payer == member, "counterpart": party(catalog, t.payee if t.payer == member else t.payer),
         "amount_yen": t.amount_yen}
        for t in statement.transfers if member in (t.payer, t.payee)
    ]
    if sum(t["amount_yen"] * (-1 if t["pays"] else 1) for t in found) != net:
        raise VerificationFailed(f"{member}'s transfers of {statement.period} do not settle its net of {net} yen")
    return found


def _usage_tables(statement: Statement, member: str, key: bytes) -> dict:
    """Lines by side: as reseller per provider and SKU; as provider per reseller and SKU,
    and those lines one by one with the tenants as the member's pseudonyms."""
    resold: dict[tuple, dict] = {}
    provided: dict[tuple, dict] = {}
    detail = []
    for line in statement.lines:
        if line.reseller == member:
            row = resold.setdefault((line.provider, line.sku), {"provider": line.provider, "sku": line.sku, "gpu_seconds": 0, "retail_yen": 0, "wholesale_yen": 0})
            row["retail_yen"] += line.retail_yen
        elif line.provider == member:
            row = provided.setdefault((line.reseller, line.sku), {"reseller": line.reseller, "sku": line.sku, "gpu_seconds": 0, "wholesale_yen": 0})
            detail.append({**provider_side(line, member, key), "gpu_hours": gpu_hours(line.gpu_seconds)})
        else:
            continue
        row["gpu_seconds"] += line.gpu_seconds
        row["wholesale_yen"] += line.wholesale_yen
    with_hours = [[{**r, "gpu_hours": gpu_hours(r["gpu_seconds"])} for _, r in sorted(rows.items())] for rows in (resold, provided)]
    return {"resold": with_hours[0], "provided": with_hours[1], "provided_lines": detail}


def _returns(statement: Statement, member: str, key: bytes) -> dict:
    """The period's returns of the member's lines: as reseller (its own tenants: retail,
    wholesale, the tenant's refund and the credit restored) and as provider for other
    resellers (their tenants as pseudonyms; wholesale only)."""
    as_reseller, as_provider = [], []
    for entry in statement.returns or ():
        if entry.reseller == member:
            as_reseller.append({**entry.to_document(), "gpu_hours": gpu_hours(entry.gpu_seconds)})
        elif entry.provider == member:
            as_provider.append({**provider_side(entry, member, key), "gpu_hours": gpu_hours(entry.gpu_seconds)})
    return {
        "as_reseller": as_reseller,
        "as_reseller_totals": _sums(as_reseller, "gpu_seconds", "retail_yen", "wholesale_yen", "tenant_refund_yen", "credit_restored_yen"),
        "as_provider": as_provider, "as_provider_totals": _sums(as_provider, "gpu_seconds", "wholesale_yen"),
    }


def _counterpart(usage: HourUsage, member: str) -> str:
    if usage.provider == usage.reseller == member:
        return OWN
    return usage.provider if usage.reseller == member else usage.reseller


def _daily(catalog: Catalog, period: str, member: str, usages: Iterable[HourUsage]) -> dict:
    mine = [u for u in usages if member in (u.provider, u.reseller)]
    current = [u for u in mine if u.service_period == period]
    by_sku = daily.series(catalog, period, ((u.sku, u.hour_start, u.seconds) for u in current), sorted(catalog.skus))
    by_counterpart = daily.series(
        catalog, period, ((_counterpart(u, member), u.hour_start, u.seconds) for u in current), [OWN]
    )
    prior = sum(u.seconds for u in mine if u.service_period != period)
    return {"by_sku": by_sku, "by_counterpart": by_counterpart, "prior_gpu_hours": gpu_hours(prior)}


def _revenue_and_cost(invoices: dict, grants: dict) -> list[dict]:
    """Per counterpart, excluding tax: tenants' and resellers' invoices and grant
    reimbursements due as revenue; providers' invoices and reimbursements owed as cost."""
    rows: dict[str, dict] = {}

    def add(counterpart: str, revenue: int = 0, cost: int = 0) -> None:
        row = rows.setdefault(counterpart, {"counterpart": counterpart, "revenue_yen": 0, "cost_yen": 0})
        row["revenue_yen"] += revenue
        row["cost_yen"] += cost

    if invoices["tenant_invoices"]:
        add(TENANTS, revenue=invoices["tenant_totals"]["subtotal_yen"])
    for invoice in invoices["issued"]:
        add(invoice["counterpart"], revenue=invoice["subtotal_yen"])
    for invoice in invoices["received"]:
        add(invoice["counterpart"], cost=invoice["subtotal_yen"])
    for draw in grants["drawn"]:
        if draw["reimbursed"]:
            add(draw["funder"], revenue=draw["amount_yen"] - draw["restored_yen"])
    for draw in grants["funded"]:
        if draw["reimbursed"]:
            add(draw["reseller"], cost=draw["amount_yen"] - draw["restored_yen"])
    return [rows[k] for k in sorted(rows, key=lambda k: (k != TENANTS, k))]


def month_figures(statement: Statement, member: str) -> dict:
    """One month of a member, excluding tax: tenant revenue, wholesale revenue and cost, net."""
    return {
        "period": statement.period,
        "tenant_revenue_yen": sum(i.subtotal_yen for i in statement.tenant_invoices if i.reseller == member),
        "wholesale_revenue_yen": sum(i.subtotal_yen for i in statement.member_invoices if i.provider == member),
        "wholesale_cost_yen": sum(i.subtotal_yen for i in statement.member_invoices if i.reseller == member),
        "net_yen": statement.net_yen.get(member, 0),
    }


def settlement_report(
    statement: Statement, catalog: Catalog, member: str, key: bytes, issue: Issue,
    earlier: list[Statement], usages: Iterable[HourUsage], balances: dict[str, int], activity: Activity = NO_ACTIVITY,
) -> dict:
    """The report of `member` for the statement's period. `earlier`: statements of the
    months before (oldest first); `usages`: the booking period's billed seconds by hour or day; `balances`:
    each grant's balance at the start of the period; `activity`: voids, disputes,
    transfers and payments, read as of the report's date (`ledger.domain.report_activity`)."""
    period = statement.period
    invoices = _invoices(statement, member)
    grants = _grants(statement, member, balances, catalog)
    net = _net(member, statement, invoices, grants)
    return {
        "kind": "settlement_report", "member": party(catalog, member), "issue": issue.content(catalog),
        "service": period_dates(catalog, period), "closed": statement.closed, **invoices,
        "grants": grants, "net": net, "transfers": _transfers(statement, member, net["net_yen"], catalog),
        **_usage_tables(statement, member, key), "daily": _daily(catalog, period, member, usages),
        "revenue_and_cost": _revenue_and_cost(invoices, grants), "returns": _returns(statement, member, key),
        "activity": activity_content(catalog, period, member, key, activity, issue.as_of),
        "history": [month_figures(s, member) for s in [*earlier, statement]],
        "names": {m: party(catalog, m)["name"] for m in catalog.members},
    }
