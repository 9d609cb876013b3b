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

An invoice whose pair has returns in the period (SPEC.md "Corrections") is also a return
invoice (適格返還請求書): its return lines name the original booking period (and its
invoice), the service period, the seconds and the returned amounts; its date of issue is
the date of the return; its tax is split into sales and returns
(`ledger.domain.invoice_returns`). A subtotal below zero is a net refund.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from ledger.domain.catalog import Catalog, units_to_price
from ledger.domain.errors import VerificationFailed
from ledger.domain.instants import format_utc
from ledger.domain.invoice_returns import returns_of_pair, returns_of_tenant, tax_split
from ledger.domain.statement import MemberInvoice, Return, Statement, TenantInvoice, printed_instant

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

    @property
    def as_of(self) -> int:
        """The instant a document speaks for: the close, or for a draft when it was made."""
        return self.made_at if self.closed_at is None else self.closed_at

    def content(self, catalog: Catalog) -> dict:
        instant = self.as_of
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
    its own, so every row recomputes as floor(GPU-seconds x price / 3600)), one return line
    per statement return, the credits grants drew on them and what returns gave back to
    the grants, and the statement's subtotal, tax and total."""
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
    returned = _tenant_return_rows(catalog, returns_of_tenant(statement, reseller, tenant))
    credits = [
        {"grant": d.grant, "funder": party(catalog, d.funder), "amount_yen": d.amount_yen, "restored_yen": d.restored}
        for d in statement.draws
        if (d.reseller, d.tenant) == (reseller, tenant)
    ]
    sums = _tenant_sums(document["number"], invoice, lines, returned, credits)
    split = tax_split(sums["lines_yen"] - sums["drawn_yen"], sums["refund_yen"], invoice.tax_yen, catalog.tax_rate_percent)
    return {
        **document, "lines": _numbered(lines), "returns": _numbered(returned), "credits": credits, **sums,
        "retail_yen": invoice.retail, "credit_yen": invoice.credit, **_totals(invoice),
        "tax_split": split if returned else None,
    }


def _tenant_sums(number: str, invoice: TenantInvoice, lines: list[dict], returned: list[dict], credits: list[dict]) -> dict:
    """What a tenant invoice adds up, each sum checked against the statement's invoice."""
    sums = {
        "lines_yen": sum(line["amount_yen"] for line in lines),
        "returns_yen": sum(r["amount_yen"] for r in returned),
        "refund_yen": sum(r["tenant_refund_yen"] for r in returned),
        "drawn_yen": sum(c["amount_yen"] for c in credits),
        "restored_yen": sum(c["restored_yen"] for c in credits),
    }
    _reconcile(number, "its lines less its returns", sums["lines_yen"] - sums["returns_yen"], invoice.retail)
    _reconcile(number, "its credits less what returns restored", sums["drawn_yen"] - sums["restored_yen"], invoice.credit)
    _reconcile(number, "the credit its returns restored", sum(r["credit_restored_yen"] for r in returned), sums["restored_yen"])
    _reconcile(number, "retail less credit", invoice.retail - invoice.credit, invoice.subtotal_yen)
    return sums


def _tenant_return_rows(catalog: Catalog, entries: list[Return]) -> list[dict]:
    """One row per statement return: what was returned of which original line (its booking
    period's invoice, its service period), and how the returned retail splits into the
    tenant's refund and the credit given back to the grants that paid for it."""
    return [
        {
            "sku": r.sku, "description": sku_description(catalog, r.sku), "provider": party(catalog, r.provider),
            "service_period": r.service_period, "booking_period": r.booking_period,
            "original_invoice": document_number("tenant_invoice", r.booking_period, r.reseller, r.tenant),
            "gpu_seconds": r.gpu_seconds, "gpu_hours": gpu_hours(r.gpu_seconds), "unit_price": r.retail_yen_per_gpu_hour,
            "amount_yen": r.retail_yen, "tenant_refund_yen": r.tenant_refund_yen,
            "credit_restored_yen": r.credit_restored_yen,
        }
        for r in entries
    ]


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
    sum of the statement lines' floored wholesale amounts; its returns summed likewise."""
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
    returned = _member_return_rows(catalog, returns_of_pair(statement, provider, reseller))
    lines_yen, returns_yen = sum(row["amount_yen"] for row in lines), sum(row["amount_yen"] for row in returned)
    _reconcile(document["number"], "its lines less its returns", lines_yen - returns_yen, invoice.subtotal_yen)
    split = tax_split(lines_yen, returns_yen, invoice.tax_yen, catalog.tax_rate_percent)
    return {
        **document, "lines": _numbered(lines), "returns": _numbered(returned), "credits": [],
        "lines_yen": lines_yen, "returns_yen": returns_yen, "retail_yen": None, "credit_yen": 0, **_totals(invoice),
        "tax_split": split if returned else None,
    }


def _member_return_rows(catalog: Catalog, entries: list[Return]) -> list[dict]:
    """A member invoice's return lines: its returns summed per SKU, service period,
    original booking period and agreement version, as its lines are (no tenant named)."""
    rows: dict[tuple, dict] = {}
    for r in entries:
        key = (r.sku, r.service_period, r.booking_period, printed_instant(r.agreement_from) or "")
        row = rows.setdefault(key, {
            "sku": r.sku, "description": sku_description(catalog, r.sku),
            "service_period": r.service_period, "booking_period": r.booking_period,
            "original_invoice": document_number("member_invoice", r.booking_period, r.provider, r.reseller),
            "terms": agreement_terms(catalog, r.reseller, r.provider, r.sku, r.agreement_from),
            "gpu_seconds": 0, "amount_yen": 0, "statement_returns": 0,
        })
        row["gpu_seconds"] += r.gpu_seconds
        row["amount_yen"] += r.wholesale_yen
        row["statement_returns"] += 1
    return [{**row, "gpu_hours": gpu_hours(row["gpu_seconds"])} for _, row in sorted(rows.items())]
