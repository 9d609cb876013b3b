"""Qualified invoices (適格請求書) as content: what each invoice of a statement says.

SPEC.md "Invoices" and "Credits": a tenant invoice (reseller -> tenant) and a member
invoice (provider -> reseller) per booking period. Pure: from the statement (a
`ledger.domain.statement.Statement`), the catalog and when the period was closed, the figures and parties an invoice
carries; `ledger.documents` lays them out. Every amount is the statement's own, and what
an invoice adds up (its lines, its credits) is checked against the statement: an invoice
that would not reconcile to the yen is refused (`VerificationFailed`), never printed.

What the qualified-invoice rules ask for, and where it comes from: the issuer's name and
registration number (the catalog's member), the date of issue (the period's close in the
catalog's timezone; an open period's invoice is a draft), the service period, the lines,
the credits, the subtotal per tax rate, the rate, the tax (rounded once per invoice, as
the statement does), the total, and the recipient.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from ledger.domain.catalog import Catalog, units_to_price
from ledger.domain.errors import VerificationFailed
from ledger.domain.instants import format_utc
from ledger.domain.statement import MemberInvoice, Statement, TenantInvoice, printed_instant

KINDS = ("tenant_invoice", "member_invoice", "settlement_report", "capacity_report")
NUMBER_PREFIX = {"tenant_invoice": "TI", "member_invoice": "MI"}
# Where each kind's files go, relative to the documents' folder (and to /v1/documents/P/).
PATHS = {
    "tenant_invoice": "tenant-invoices/", "member_invoice": "member-invoices/",
    "settlement_report": "settlement-reports/", "capacity_report": "capacity-report",
}
HOURS_PLACES = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Planned:
    """One document of a period: what the manifest lists of it, and where its files go."""

    kind: str
    issuer: str | None  # a member (null for the alliance's capacity report)
    recipient: str | None  # a tenant of the issuer, a member, or null for reports
    total_yen: int | None  # an invoice's total; null for reports
    stem: str  # relative path without its suffix: a safe file name (tenant ids are not)

    def entry(self) -> dict:
        return {
            "kind": self.kind, "issuer": self.issuer, "recipient": self.recipient,
            "total_yen": self.total_yen, "html": f"{self.stem}.html", "pdf": f"{self.stem}.pdf",
        }


@dataclass(frozen=True, slots=True)
class Issue:
    """When a period's documents are dated: its close (None while the period is open: a
    draft, dated by when it was made)."""

    closed_at: int | None
    made_at: int

    def content(self, catalog: Catalog) -> dict:
        instant = self.made_at if self.closed_at is None else self.closed_at
        return {
            "draft": self.closed_at is None,
            "date": None if self.closed_at is None else local_date(catalog, self.closed_at),
            "created": format_utc(instant),
        }


def document_number(kind: str, period: str, issuer: str, recipient: str) -> str:
    """A stable number that finance teams file by: the same period, issuer and recipient
    always give the same number; `KDDI-202610-TI-1A2B3C4D`."""
    digest = hashlib.sha256("\x1f".join((kind, period, issuer, recipient)).encode()).hexdigest()[:8]
    return f"{issuer.upper()}-{period.replace('-', '')}-{NUMBER_PREFIX[kind]}-{digest.upper()}"


def plan(statement: Statement) -> list[Planned]:
    """Every document of a statement's period, in manifest order: tenant invoices, member
    invoices (both in the statement's order), a report per member, the capacity report."""
    period = statement.period
    found = []
    for invoice in statement.tenant_invoices:
        issuer, recipient = invoice.reseller, invoice.tenant
        number = document_number("tenant_invoice", period, issuer, recipient)
        found.append(Planned("tenant_invoice", issuer, recipient, invoice.total_yen, PATHS["tenant_invoice"] + number))
    for member_invoice in statement.member_invoices:
        issuer, recipient = member_invoice.provider, member_invoice.reseller
        number = document_number("member_invoice", period, issuer, recipient)
        found.append(Planned("member_invoice", issuer, recipient, member_invoice.total_yen, PATHS["member_invoice"] + number))
    for member in sorted(statement.net_yen):
        found.append(Planned("settlement_report", member, None, None, PATHS["settlement_report"] + member))
    found.append(Planned("capacity_report", None, None, None, PATHS["capacity_report"]))
    return found


# -- shared pieces ------------------------------------------------------------------------


def local_date(catalog: Catalog, instant: int) -> str:
    """The calendar date of an instant in the catalog's timezone, `YYYY-MM-DD`."""
    return datetime.fromtimestamp(instant, catalog.calendar.zone).date().isoformat()


def period_dates(catalog: Catalog, period: str) -> dict:
    """The first and last day of a period, `YYYY-MM-DD`."""
    start, end = catalog.calendar.bounds(period)
    return {"period": period, "first_day": local_date(catalog, start), "last_day": local_date(catalog, end - 1)}


def party(catalog: Catalog, member: str) -> dict:
    found = catalog.members.get(member)
    return {
        "id": member,
        "name": found.name if found else member,
        "registration": found.invoice_registration if found else None,
    }


def gpu_hours(seconds: int) -> str:
    """GPU-seconds as GPU-hours, 4 decimal places (display only: amounts use seconds)."""
    return str((Decimal(seconds) / 3600).quantize(HOURS_PLACES, rounding=ROUND_HALF_UP))


def sku_description(catalog: Catalog, sku: str) -> str:
    found = catalog.skus.get(sku)
    return found.description if found else ""


def _reconcile(number: str, what: str, shown: int, statement: int) -> None:
    if shown != statement:
        raise VerificationFailed(f"invoice {number}: {what} adds up to {shown} yen, the statement says {statement}")


def _header(catalog: Catalog, statement: Statement, issue: Issue, kind: str, issuer: str, recipient: dict) -> dict:
    number = document_number(kind, statement.period, issuer, recipient["id"])
    seller = party(catalog, issuer)
    return {
        "kind": kind, "number": number, "issue": issue.content(catalog),
        "service": period_dates(catalog, statement.period),
        "issuer": seller, "recipient": recipient, "qualified": seller["registration"] is not None,
        "currency": statement.currency, "tax_rate_percent": catalog.tax_rate_percent,
    }


def _totals(invoice: TenantInvoice | MemberInvoice) -> dict:
    return {"subtotal_yen": invoice.subtotal_yen, "tax_yen": invoice.tax_yen, "total_yen": invoice.total_yen}


# -- tenant invoices ---------------------------------------------------------------------


def tenant_invoice(statement: Statement, catalog: Catalog, issue: Issue, reseller: str, tenant: str) -> dict:
    """The reseller's invoice to its tenant: one row per statement line (each floored on
    its own, so every row recomputes as floor(GPU-seconds x price / 3600)), the credits
    grants drew on them, and the statement's subtotal, tax and total."""
    invoice = next((i for i in statement.tenant_invoices if (i.reseller, i.tenant) == (reseller, tenant)), None)
    if invoice is None:
        raise VerificationFailed(f"{statement.period} has no invoice of {reseller} to this tenant")
    document = _header(catalog, statement, issue, "tenant_invoice", reseller, {"id": tenant, "name": tenant, "registration": None})
    lines = [
        {
            "sku": line.sku, "description": sku_description(catalog, line.sku),
            "provider": party(catalog, line.provider),
            "service_period": line.service_period, "prior": line.service_period != statement.period,
            "gpu_seconds": line.gpu_seconds, "gpu_hours": gpu_hours(line.gpu_seconds),
            "unit_price": line.retail_yen_per_gpu_hour, "amount_yen": line.retail_yen,
        }
        for line in statement.lines
        if (line.reseller, line.tenant) == (reseller, tenant)
    ]
    credits = [
        {"grant": d.grant, "funder": party(catalog, d.funder), "amount_yen": d.amount_yen}
        for d in statement.draws
        if (d.reseller, d.tenant) == (reseller, tenant)
    ]
    retail, credit = invoice.retail, invoice.credit
    _reconcile(document["number"], "its lines", sum(line["amount_yen"] for line in lines), retail)
    _reconcile(document["number"], "its credits", sum(c["amount_yen"] for c in credits), credit)
    _reconcile(document["number"], "retail less credit", retail - credit, invoice.subtotal_yen)
    return {**document, "lines": _numbered(lines), "credits": credits, "retail_yen": retail, "credit_yen": credit, **_totals(invoice)}


def _numbered(lines: list[dict]) -> list[dict]:
    return [{"no": index, **line} for index, line in enumerate(lines, start=1)]


# -- member invoices ---------------------------------------------------------------------


def agreement_terms(catalog: Catalog, reseller: str, provider: str, sku: str, agreement_from: int | None) -> dict | None:
    """The terms of the agreement version a line used: a fixed wholesale price per GPU-hour,
    or a share of the reseller's retail amount (the retail price itself is not shown)."""
    printed = printed_instant(agreement_from)
    for version in catalog.agreements.get((reseller, provider, sku), ()):
        if version.effective_from == agreement_from:
            if version.share_bps is not None:
                return {"share_percent": f"{Decimal(version.share_bps) / 100:.2f}", "unit_price": None, "from": printed}
            return {"share_percent": None, "unit_price": units_to_price(version.wholesale_units), "from": printed}
    return None


def member_invoice(statement: Statement, catalog: Catalog, issue: Issue, provider: str, reseller: str) -> dict:
    """The provider's invoice to the reseller: its lines summed per SKU, service period and
    agreement version (the reseller's tenants are not the provider's to see), each row the
    sum of the statement lines' floored wholesale amounts."""
    invoice = next((i for i in statement.member_invoices if (i.provider, i.reseller) == (provider, reseller)), None)
    if invoice is None:
        raise VerificationFailed(f"{statement.period} has no invoice of {provider} to {reseller}")
    document = _header(catalog, statement, issue, "member_invoice", provider, party(catalog, reseller))
    rows: dict[tuple, dict] = {}
    for line in statement.lines:
        if (line.provider, line.reseller) != (provider, reseller):
            continue
        key = (line.sku, line.service_period, printed_instant(line.agreement_from) or "")
        row = rows.setdefault(key, {
            "sku": line.sku, "description": sku_description(catalog, line.sku),
            "service_period": line.service_period, "prior": line.service_period != statement.period,
            "terms": agreement_terms(catalog, reseller, provider, line.sku, line.agreement_from),
            "gpu_seconds": 0, "amount_yen": 0, "statement_lines": 0,
        })
        row["gpu_seconds"] += line.gpu_seconds
        row["amount_yen"] += line.wholesale_yen
        row["statement_lines"] += 1
    lines = [{**row, "gpu_hours": gpu_hours(row["gpu_seconds"])} for _, row in sorted(rows.items())]
    _reconcile(document["number"], "its lines", sum(row["amount_yen"] for row in lines), invoice.subtotal_yen)
    return {**document, "lines": _numbered(lines), "credits": [], "retail_yen": None, "credit_yen": 0, **_totals(invoice)}
