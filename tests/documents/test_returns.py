"""Documents of a period with returns, disputes and payments (tests/documents/returns_ledger.py,
through the services on the in-memory store; no stack).

Given November 2026, which returns an hour of acme's October usage that sakura voided after
October closed, when its documents are gathered and rendered, then acme's invoice and
sakura's invoice to kddi are also return invoices that add up to the statement (lines
less returns, credits less restorations, sales tax less returns tax = the invoice's tax),
say a net refund plainly, and their PDFs show the original period and the returned tax;
each member's report shows its own returns, voids, open disputes (with their age) and
payments as of the close, and nothing of disputes or payments it is no party to; a
report stays the same after the disputes and payments move on. alliance-2026-q4's
November (returns on six invoices) reconciles too.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from ledger.documents import output
from ledger.domain import invoices
from ledger.domain.access import OPERATOR
from ledger.domain.invoice_returns import tax_of, tax_split
from ledger.service import documents
from tests.documents.returns_ledger import KDDI, after_the_close, returns_ledger
from tests.documents.stackless import period_documents
from tests.documents.test_render import pdf_text

ACME = ("tenant_invoice", "kddi", "acme")
SAKURA_TO_KDDI = ("member_invoice", "sakura", "kddi")


@pytest.fixture(scope="module")
def november():
    """The ledger at November's close and the operator's documents of November."""
    store, clock = asyncio.run(returns_ledger())
    return store, clock, asyncio.run(documents.gather(store, "2026-11", OPERATOR))


def content(found, kind, issuer, recipient=None):
    planned = next(p for p in found.planned if (p.kind, p.issuer, p.recipient) == (kind, issuer, recipient))
    return planned, found.content(planned)


def test_a_tenant_invoice_with_a_return_is_a_return_invoice_that_reconciles(november):
    _, _, found = november
    [statement_invoice] = [i for i in found.statement.tenant_invoices if (i.reseller, i.tenant) == ("kddi", "acme")]
    _, doc = content(found, *ACME)
    [returned] = doc["returns"]
    assert (returned["booking_period"], returned["service_period"], returned["gpu_seconds"]) == ("2026-10", "2026-10", 3600)
    assert (returned["amount_yen"], returned["tenant_refund_yen"], returned["credit_restored_yen"]) == (780, 560, 220)
    assert returned["original_invoice"] == invoices.document_number("tenant_invoice", "2026-10", "kddi", "acme")
    assert doc["lines_yen"] - doc["returns_yen"] == statement_invoice.retail == 390 - 780
    assert doc["drawn_yen"] - doc["restored_yen"] == statement_invoice.credit == -220
    assert (doc["subtotal_yen"], doc["tax_yen"], doc["total_yen"]) == (-170, -17, -187)
    assert doc["tax_split"] == {"sales_yen": 390, "sales_tax_yen": 39, "returns_yen": 560, "returns_tax_yen": 56,
                                "net_yen": -170, "net_tax_yen": -17}
    assert doc["issue"]["date"] == "2026-12-03"  # the date of the return


def test_a_member_invoice_with_a_return_carries_its_wholesale_and_no_tenant(november):
    _, _, found = november
    _, doc = content(found, *SAKURA_TO_KDDI)
    [returned] = doc["returns"]
    assert "tenant" not in returned
    assert (returned["booking_period"], returned["amount_yen"], returned["statement_returns"]) == ("2026-10", 520, 1)
    assert (doc["lines_yen"], doc["returns_yen"], doc["subtotal_yen"], doc["tax_yen"]) == (260, 520, -260, -26)
    assert doc["tax_split"]["sales_tax_yen"] - doc["tax_split"]["returns_tax_yen"] == doc["tax_yen"]


@pytest.mark.parametrize("sales, returns, rate", [(1851, 399, 10), (2685, 578, 10), (0, 926, 10), (390, 560, 8), (7, 7, 10)])
def test_sales_tax_less_returns_tax_is_the_invoices_tax(sales, returns, rate):
    split = tax_split(sales, returns, tax_of(sales - returns, rate), rate)
    assert split["sales_tax_yen"] - split["returns_tax_yen"] == tax_of(sales - returns, rate)
    assert abs(split["returns_tax_yen"] - tax_of(returns, rate)) <= 1  # never far from the returns' own tax


def test_every_invoice_of_q4s_november_reconciles_to_the_statement():
    found = period_documents("2026-11")
    statement = found.statement
    wanted = {("tenant_invoice", i.reseller, i.tenant): i for i in statement.tenant_invoices}
    wanted |= {("member_invoice", i.provider, i.reseller): i for i in statement.member_invoices}
    with_returns = 0
    for planned in found.planned:
        if planned.kind not in ("tenant_invoice", "member_invoice"):
            continue
        doc, invoice = found.content(planned), wanted.pop((planned.kind, planned.issuer, planned.recipient))
        assert (doc["subtotal_yen"], doc["tax_yen"], doc["total_yen"]) == (invoice.subtotal_yen, invoice.tax_yen, invoice.total_yen)
        assert doc["lines_yen"] - doc["returns_yen"] == getattr(invoice, "retail", invoice.subtotal_yen)
        if doc["returns"]:
            with_returns += 1
            assert doc["tax_split"]["sales_tax_yen"] - doc["tax_split"]["returns_tax_yen"] == invoice.tax_yen
    assert not wanted and with_returns == 5 + 3  # six returns on five tenant and three member invoices
    for planned in found.planned:  # and each report reconciles to its net (reimbursements less restorations)
        if planned.kind == "settlement_report":
            assert found.content(planned)["net"]["net_yen"] == statement.net_yen[planned.issuer]


def test_a_members_report_shows_its_returns_voids_disputes_and_payments(november):
    _, _, found = november
    _, kddi = content(found, "settlement_report", "kddi")
    [returned] = kddi["returns"]["as_reseller"]
    assert (returned["tenant"], returned["tenant_refund_yen"], returned["credit_restored_yen"]) == ("acme", 560, 220)
    activity = kddi["activity"]
    assert [(v["id"], v["dispute"], v["returned_in"]) for v in activity["voids"]] == [("void-1", "dispute-1", "2026-11")]
    assert [(d["id"], d["opened_by_you"], d["age_days"]) for d in activity["disputes"]] == [("dispute-2", True, 23)]
    rows = {(t["period"], t["from"], t["to"]): t for t in activity["payments"]["transfers"]}
    assert set(rows) == {("2026-10", "kddi", "sakura"), ("2026-11", "sakura", "kddi")}
    overdue = rows["2026-10", "kddi", "sakura"]
    assert (overdue["status"], overdue["days_overdue"], overdue["pending_yen"], overdue["paid_yen"]) == ("overdue", 3, 56, 0)
    assert activity["payments"]["overdue_payable_yen"] == 56
    assert [p["reference"] for p in activity["payments"]["payments"]] == ["BANK-KDDI-1"]


def test_a_report_never_shows_what_its_member_is_no_party_to(november):
    _, _, found = november
    _, highreso = content(found, "settlement_report", "highreso")
    _, sakura = content(found, "settlement_report", "sakura")
    assert highreso["activity"]["voids"] == [] and highreso["returns"]["as_reseller"] == []
    assert [d["id"] for d in highreso["activity"]["disputes"]] == ["dispute-3"]
    assert {(t["from"], t["to"]) for t in highreso["activity"]["payments"]["transfers"]} == {("highreso", "sakura"), ("sakura", "highreso")}
    assert [p["reference"] for p in highreso["activity"]["payments"]["payments"]] == ["BANK-HIGH-1"]
    # the provider sees both disputes against it, and kddi's tenants only as pseudonyms
    assert [d["id"] for d in sakura["activity"]["disputes"]] == ["dispute-2", "dispute-3"]
    assert all(d["tenant"].startswith("tenant-") for d in sakura["activity"]["disputes"])
    assert [r["tenant"][:7] for r in sakura["returns"]["as_provider"]] == ["tenant-"]
    assert sakura["activity"]["payments"]["overdue_receivable_yen"] == 56 + 550


def test_a_member_gathers_the_same_report_as_the_operator(november):
    store, _, found = november
    own = asyncio.run(documents.gather(store, "2026-11", KDDI))
    assert {p.kind for p in own.planned} == {"tenant_invoice", "member_invoice", "settlement_report", "capacity_report"}
    assert all("kddi" in (p.issuer, p.recipient) for p in own.planned if p.kind != "capacity_report")
    [report] = [p for p in own.planned if p.kind == "settlement_report"]
    _, operators = content(found, "settlement_report", "kddi")
    mine = own.content(report)
    assert mine["activity"] == operators["activity"] and mine["returns"] == operators["returns"]


def test_a_closed_periods_report_stays_as_it_was_at_the_close(november):
    store, clock, found = november
    before = {p.stem: found.content(p) for p in found.planned if p.kind == "settlement_report"}
    asyncio.run(after_the_close(store, clock))
    again = asyncio.run(documents.gather(store, "2026-11", OPERATOR))
    assert {p.stem: again.content(p) for p in again.planned if p.kind == "settlement_report"} == before
    december = asyncio.run(documents.gather(store, "2026-12", OPERATOR))  # the draft of the open month moved on
    _, kddi = content(december, "settlement_report", "kddi")
    assert kddi["activity"]["disputes"] == []  # dispute-2 was rejected
    assert "2026-10" not in {t["period"] for t in kddi["activity"]["payments"]["transfers"]}  # paid before December


@pytest.fixture(scope="module")
def written(november, tmp_path_factory):
    _, _, found = november
    folder = tmp_path_factory.mktemp("returns")
    return found, output.write(found, folder), folder


def entry(manifest, kind, issuer, recipient=None):
    return next(e for e in manifest["documents"] if (e["kind"], e["issuer"], e["recipient"]) == (kind, issuer, recipient))


@pytest.mark.heavy  # PDFs through WeasyPrint and pdftotext
def test_a_return_invoices_pdf_shows_the_original_period_the_returned_tax_and_the_refund(written):
    found, manifest, folder = written
    text = pdf_text(folder / entry(manifest, *ACME)["pdf"])
    assert "適格請求書 兼" in text and "適格返還請求書" in text and "返還日 Date of return 2026年12月3日" in text
    assert re.search(r"R1 H200 2026-10 2026-10 1\.0000 780 -780 560 220", text), text
    assert invoices.document_number("tenant_invoice", "2026-10", "kddi", "acme") in text
    assert re.search(r"返還分 Returns \(refunded to you\) -¥560 -¥56", text), text
    assert re.search(r"売上分 Sales \(lines less credits\) ¥390 ¥39", text)
    assert "返金額（税込）" in text and "¥187" in text  # a net refund, said plainly
    assert re.search(r"消費税（10%） Consumption tax at 10% -¥17", text)
    assert re.search(r"合計（税込） Total, tax included -¥187", text)
    html = (folder / entry(manifest, *ACME)["html"]).read_text()
    assert "返還明細" in html and "-¥187" in html


@pytest.mark.heavy  # PDFs through WeasyPrint and pdftotext
def test_a_member_return_invoices_pdf_sums_to_the_statement(written):
    found, manifest, folder = written
    text = pdf_text(folder / entry(manifest, *SAKURA_TO_KDDI)["pdf"])
    [invoice] = [i for i in found.statement.member_invoices if (i.provider, i.reseller) == ("sakura", "kddi")]
    assert re.search(rf"合計（税込） Total, tax included -¥{-invoice.total_yen:,}", text)
    assert re.search(r"返還分 Returns -¥520 -¥52", text) and "2026-10" in text
    assert invoices.document_number("member_invoice", "2026-10", "sakura", "kddi") in text


@pytest.mark.heavy  # PDFs through WeasyPrint and pdftotext
def test_a_reports_pdf_lists_its_voids_disputes_and_overdue_transfers(written):
    _, manifest, folder = written
    text = pdf_text(folder / entry(manifest, "settlement_report", "kddi")["pdf"])
    for needle in ("void-1", "dispute-2", "BANK-KDDI-1", "期日超過", "Open disputes", "Returns"):
        assert needle in text, needle
    assert "dispute-3" not in text and "BANK-HIGH" not in text
