"""What each document says, from the public scenario's statements, with no stack.

Given alliance-2026-q4's expected statements and catalog, then every invoice carries the
statement's figures and adds up to them; numbers are stable; each member's report is its
own, reconciles to its net, and names other resellers' tenants only by its pseudonyms.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from ledger.domain import invoices
from ledger.domain.access import Caller, sees_document
from ledger.domain.catalog import Member
from ledger.domain.errors import VerificationFailed
from tests.documents.stackless import period_documents

PERIODS = ("2026-09", "2026-10")


def contents(documents, kind):
    return [(p, documents.content(p)) for p in documents.planned if p.kind == kind]


@pytest.mark.parametrize("period", PERIODS)
def test_every_invoice_carries_the_statements_figures(period):
    documents = period_documents(period)
    statement = documents.statement
    tenant = {(i.reseller, i.tenant): i for i in statement.tenant_invoices}
    member = {(i.provider, i.reseller): i for i in statement.member_invoices}
    seen = 0
    for planned, content in contents(documents, "tenant_invoice") + contents(documents, "member_invoice"):
        wanted = (tenant if planned.kind == "tenant_invoice" else member)[(planned.issuer, planned.recipient)]
        for key in ("subtotal_yen", "tax_yen", "total_yen"):
            assert content[key] == getattr(wanted, key)
        assert content["total_yen"] == planned.total_yen
        assert content["issuer"]["registration"] == documents.catalog.members[planned.issuer].invoice_registration
        assert content["qualified"] and content["issue"]["date"] is not None
        assert content["tax_rate_percent"] == 10
        assert sum(line["amount_yen"] for line in content["lines"]) == getattr(wanted, "retail", wanted.subtotal_yen)
        assert sum(c["amount_yen"] for c in content["credits"]) == getattr(wanted, "credit", 0)
        seen += 1
    assert seen == len(tenant) + len(member) > 0


def test_an_invoice_that_would_not_add_up_is_refused():
    documents = period_documents("2026-10")
    invoice = documents.statement.tenant_invoices[0]
    lines = list(documents.statement.lines)
    lines.remove(next(line for line in lines if (line.reseller, line.tenant) == (invoice.reseller, invoice.tenant)))
    edited = replace(documents.statement, lines=tuple(lines))
    with pytest.raises(VerificationFailed):
        invoices.tenant_invoice(edited, documents.catalog, documents.issue, invoice.reseller, invoice.tenant)


def test_document_numbers_are_stable_and_distinct():
    first = [p.stem for p in period_documents("2026-10").planned]
    assert first == [p.stem for p in period_documents("2026-10").planned]
    assert len(set(first)) == len(first)
    assert invoices.document_number("tenant_invoice", "2026-10", "kddi", "acme") == "KDDI-202610-TI-" + \
        invoices.document_number("tenant_invoice", "2026-10", "kddi", "acme").rsplit("-", 1)[1]
    assert invoices.document_number("tenant_invoice", "2026-10", "kddi", "acme") != \
        invoices.document_number("tenant_invoice", "2026-11", "kddi", "acme")
    assert all(re.fullmatch(r"[a-z-]+/[A-Z0-9-]+|settlement-reports/[a-z0-9-]+|capacity-report", s) for s in first)


def test_the_plan_lists_every_invoice_a_report_per_member_and_the_capacity_report():
    documents = period_documents("2026-10")
    kinds = [p.kind for p in documents.planned]
    statement = documents.statement
    assert kinds.count("tenant_invoice") == len(statement.tenant_invoices) == 12
    assert kinds.count("member_invoice") == len(statement.member_invoices) == 5
    assert [p.issuer for p in documents.planned if p.kind == "settlement_report"] == sorted(statement.net_yen)
    assert kinds[-1] == "capacity_report"
    assert documents.manifest()["documents"][0]["html"].endswith(".html")


@pytest.mark.parametrize("member", ("kddi", "sakura", "highreso"))
def test_a_member_sees_the_invoices_it_issued_or_received_its_report_and_capacity(member):
    documents = period_documents("2026-10", Caller("t", "member", member))
    for planned in documents.planned:
        if planned.kind == "tenant_invoice":
            assert planned.issuer == member
        elif planned.kind == "member_invoice":
            assert member in (planned.issuer, planned.recipient)
        elif planned.kind == "settlement_report":
            assert planned.issuer == member
    every = period_documents("2026-10").planned
    assert len(documents.planned) == sum(sees_document(Caller("t", "member", member), p.kind, p.issuer, p.recipient) for p in every)
    assert {p.kind for p in documents.planned} == set(invoices.KINDS)


@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize("member", ("kddi", "sakura", "highreso"))
def test_a_members_report_reconciles_to_its_net_and_transfers(period, member):
    documents = period_documents(period)
    report = documents.content(next(p for p in documents.planned if p.kind == "settlement_report" and p.issuer == member))
    statement = documents.statement
    assert report["net"]["net_yen"] == report["net"]["statement_net_yen"] == statement.net_yen[member]
    issued = [i for i in statement.member_invoices if i.provider == member]
    assert report["net"]["issued_yen"] == sum(i.total_yen for i in issued)
    paid = sum(t.amount_yen for t in statement.transfers if t.payer == member)
    got = sum(t.amount_yen for t in statement.transfers if t.payee == member)
    assert sum(-t["amount_yen"] if t["pays"] else t["amount_yen"] for t in report["transfers"]) == got - paid
    assert report["tenant_totals"]["total_yen"] == sum(
        i.total_yen for i in statement.tenant_invoices if i.reseller == member)
    assert [m["period"] for m in report["history"]][-1] == period


def raw_ids(text: str, ids) -> set[str]:
    return {i for i in ids if re.search(rf"(?<![\w-]){re.escape(i)}(?![\w-])", text)}


@pytest.mark.parametrize("member", ("kddi", "sakura", "highreso"))
def test_a_providers_report_shows_other_resellers_tenants_only_as_pseudonyms(member):
    documents = period_documents("2026-10")
    report = documents.content(next(p for p in documents.planned if p.kind == "settlement_report" and p.issuer == member))
    others = {line.tenant for line in documents.statement.lines if line.reseller != member}
    funded = {g.tenant for g in documents.catalog.grants.values() if g.funder == member}  # named in its own grants
    text = repr(report)
    assert raw_ids(text, others - funded) == set()
    provided = report["provided_lines"]
    assert provided and all(line["tenant"].startswith("tenant-") for line in provided)
    assert all("retail_yen" not in line for line in provided)


def test_a_members_report_holds_no_invoice_between_two_other_members():
    documents = period_documents("2026-10")
    report = documents.content(next(p for p in documents.planned if p.kind == "settlement_report" and p.issuer == "highreso"))
    text = repr(report)
    for planned in documents.planned:
        if planned.kind == "member_invoice" and "highreso" not in (planned.issuer, planned.recipient):
            assert planned.stem.rsplit("/", 1)[1] not in text
        if planned.kind == "tenant_invoice" and planned.issuer != "highreso":
            assert planned.stem.rsplit("/", 1)[1] not in text


def test_an_issuer_without_a_registration_number_issues_a_plain_invoice():
    documents = period_documents("2026-10")
    members = dict(documents.catalog.members, kddi=Member("kddi", "KDDI", None))
    documents.catalog = replace(documents.catalog, members=members)
    planned = next(p for p in documents.planned if p.kind == "tenant_invoice" and p.issuer == "kddi")
    content = documents.content(planned)
    assert content["qualified"] is False and content["issuer"]["registration"] is None


def test_an_open_periods_documents_are_drafts_dated_when_made():
    documents = period_documents("2026-10", closed=False)
    content = documents.content(documents.planned[0])
    assert content["issue"] == {"draft": True, "date": None, "created": "2026-11-30T00:53:20Z"}
    closed = period_documents("2026-10").content(documents.planned[0])["issue"]
    assert closed == {"draft": False, "date": "2026-11-01", "created": "2026-11-01T02:26:40Z"}


def test_member_invoice_rows_sum_lines_per_sku_service_period_and_agreement():
    documents = period_documents("2026-10")
    planned = next(p for p in documents.planned if (p.kind, p.issuer, p.recipient) == ("member_invoice", "sakura", "kddi"))
    content = documents.content(planned)
    keys = [(r["sku"], r["service_period"], r["terms"]["from"]) for r in content["lines"]]
    assert len(keys) == len(set(keys))
    terms = {(r["sku"], r["terms"]["share_percent"], r["terms"]["unit_price"]) for r in content["lines"]}
    assert ("H200", "70.00", None) in terms and ("H200", "68.00", None) in terms  # renegotiated mid-October
    assert ("B200", None, "826") in terms
    assert "tenant" not in repr(content["lines"])
