"""The typed statement and its one JSON form: every form a statement was ever stored in
reads back and writes the same bytes (a closed period prints its stored bytes)."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import orjson
import pytest

from ledger.domain.access import member_view, pseudonym
from ledger.domain.statement import (
    GrantDraw,
    Return,
    Statement,
    StatementLine,
    TenantInvoice,
    Transfer,
)
from tests.domain.test_rating import SPEC_CATALOG, bill
from tests.factories import new_ledger

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"

SPEC_STATEMENT = {  # SPEC.md, "Settlement statement (JSON)", as of 2026-12-07
    "period": "2026-10", "currency": "JPY", "closed": False,
    "lines": [{"reseller": "kddi", "tenant": "acme", "provider": "sakura", "sku": "H200",
               "service_period": "2026-10", "retail_price_from": "2025-12-31T15:00:00Z",
               "agreement_from": "2025-12-31T15:00:00Z", "gpu_seconds": 7200,
               "retail_yen_per_gpu_hour": "780", "retail_yen": 1560, "wholesale_yen": 1040}],
    "tenant_invoices": [{"reseller": "kddi", "tenant": "acme", "retail_yen": 1560,
                         "credit_yen": 0, "subtotal_yen": 1560, "tax_yen": 156, "total_yen": 1716}],
    "member_invoices": [{"provider": "sakura", "reseller": "kddi",
                         "subtotal_yen": 1040, "tax_yen": 104, "total_yen": 1144}],
    "returns": [],
    "grant_draws": [],
    "net_yen": {"highreso": 0, "kddi": -1144, "sakura": 1144},
    "transfers": [{"from": "kddi", "to": "sakura", "amount_yen": 1144}],
}
DRAW = {"grant": "poc-acme-2026", "funder": "sakura", "reseller": "kddi", "tenant": "acme",
        "amount_yen": 1560, "restored_yen": 40}
RETURN = {"reseller": "kddi", "tenant": "acme", "provider": "sakura", "sku": "H200",
          "service_period": "2026-10", "booking_period": "2026-10",
          "retail_price_from": "2025-12-31T15:00:00Z", "agreement_from": "2025-12-31T15:00:00Z",
          "gpu_seconds": 3600, "retail_yen_per_gpu_hour": "780", "retail_yen": 780,
          "wholesale_yen": 520, "tenant_refund_yen": 780, "credit_restored_yen": 0}


def round_trip(document: dict) -> bytes:
    return orjson.dumps(Statement.from_document(orjson.loads(orjson.dumps(document))).to_document())


def before_returns(document: dict) -> dict:
    """As stored from 2026-11-30 to 2026-12-07: no returns, no restorations."""
    old = copy.deepcopy(document)
    del old["returns"]
    for draw in old["grant_draws"]:
        del draw["restored_yen"]
    return old


def before_credits(document: dict) -> dict:
    """As stored before 2026-11-30: no grant draws, no retail or credit on tenant invoices."""
    old = before_returns(document)
    del old["grant_draws"]
    for invoice in old["tenant_invoices"]:
        del invoice["retail_yen"], invoice["credit_yen"]
    return old


def scenario_statements() -> list[tuple[str, dict]]:
    found = []
    for expected in sorted(SCENARIOS.glob("*/expected.json")):
        for step, answer in json.loads(expected.read_text(encoding="utf-8")).items():
            if isinstance(answer, dict) and "lines" in answer and "transfers" in answer:
                found.append((f"{expected.parent.name}/{step}", answer))
    return found


def test_specs_example_reads_back_typed_and_writes_the_same_bytes():
    statement = Statement.from_document(SPEC_STATEMENT)
    assert statement.lines[0] == StatementLine(
        "kddi", "acme", "sakura", "H200", "2026-10", 1767193200, 1767193200, 7200, "780", 1560, 1040,
    )
    assert statement.tenant_invoices[0] == TenantInvoice("kddi", "acme", 1560, 0, 1560, 156, 1716)
    assert statement.returns == () and statement.grant_draws == ()
    assert statement.transfers == (Transfer("kddi", "sakura", 1144),)
    assert list(statement.to_document()) == list(SPEC_STATEMENT)  # SPEC's order
    assert round_trip(SPEC_STATEMENT) == orjson.dumps(SPEC_STATEMENT)


@pytest.mark.parametrize(("step", "document"), scenario_statements(), ids=[s for s, _ in scenario_statements()])
def test_every_statement_of_the_public_scenarios_writes_its_own_bytes(step, document):
    assert round_trip(document) == orjson.dumps(document), step


@pytest.mark.parametrize("form", [before_returns, before_credits], ids=["2026-11-30", "before-2026-11-30"])
def test_a_statement_stored_in_an_older_form_writes_exactly_that_form_back(form):
    current = copy.deepcopy(SPEC_STATEMENT)
    current["grant_draws"] = [DRAW]
    current["tenant_invoices"][0].update(credit_yen=1560, subtotal_yen=0, tax_yen=0, total_yen=0)
    old = form(current)
    statement = Statement.from_document(old)
    assert statement.returns is None  # absent, not empty
    if form is before_credits:
        assert statement.grant_draws is None and statement.draws == ()
        assert statement.tenant_invoices[0].retail_yen is None and statement.tenant_invoices[0].credit_yen is None
        assert (statement.tenant_invoices[0].retail, statement.tenant_invoices[0].credit) == (0, 0)  # its subtotal
    else:
        assert statement.grant_draws[0].restored_yen is None and statement.grant_draws[0].restored == 0
    assert round_trip(old) == orjson.dumps(old)


def test_returns_and_restorations_read_back_typed():
    document = copy.deepcopy(SPEC_STATEMENT)
    document["returns"], document["grant_draws"] = [RETURN], [DRAW]
    statement = Statement.from_document(document)
    assert statement.returns == (Return(
        "kddi", "acme", "sakura", "H200", "2026-10", "2026-10", 1767193200, 1767193200,
        3600, "780", 780, 520, 780, 0,
    ),)
    assert statement.grant_draws == (GrantDraw("poc-acme-2026", "sakura", "kddi", "acme", 1560, 40),)
    assert round_trip(document) == orjson.dumps(document)


def test_a_line_on_the_resellers_own_gpu_has_no_agreement():
    document = copy.deepcopy(SPEC_STATEMENT)
    document["lines"][0].update(provider="kddi", agreement_from=None, wholesale_yen=0)
    assert Statement.from_document(document).lines[0].agreement_from is None
    assert round_trip(document) == orjson.dumps(document)


def test_rating_builds_the_statement_its_document_reads_back_as():
    ledger = new_ledger(SPEC_CATALOG)
    bill(ledger, time="2026-10-03T12:00:00Z", seconds=7200, gpu_uuid="GPU-5f1c")
    document = ledger.settle("2026-10")  # rating.statement(...).to_document()
    assert document == SPEC_STATEMENT
    statement = Statement.from_document(document)
    assert Statement.from_document(statement.to_document()) == statement


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s["lines"][0].pop("gpu_seconds"),
        lambda s: s.pop("transfers"),
        lambda s: s["lines"][0].update(retail_price_from="2026-01-01T00:00:00+09:00"),  # not as printed
        lambda s: s["lines"][0].update(agreement_from="yesterday"),
    ],
)
def test_a_document_that_is_not_a_statement_is_refused(change):
    document = copy.deepcopy(SPEC_STATEMENT)
    change(document)
    with pytest.raises((KeyError, ValueError)):
        Statement.from_document(document)


def test_a_statement_is_frozen():
    statement = Statement.from_document(SPEC_STATEMENT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        statement.closed = True
    with pytest.raises(dataclasses.FrozenInstanceError):
        statement.lines[0].gpu_seconds = 1


def test_the_member_view_of_an_older_statement_shows_the_sections_it_had():
    """Before 2026-12-07 no `returns` (none shown); before 2026-11-30 no `grant_draws` (an
    empty list shown) and tenant invoices as stored, without retail or credit."""
    current = copy.deepcopy(SPEC_STATEMENT)
    current["returns"], current["grant_draws"] = [RETURN], [DRAW]
    key = b"k" * 32
    view = member_view(Statement.from_document(current), "sakura", key)
    assert list(view) == ["period", "currency", "closed", "member", "lines", "tenant_invoices",
                          "member_invoices", "returns", "grant_draws", "net_yen", "transfers"]
    assert view["returns"] == [{
        "reseller": "kddi", "tenant": pseudonym(key, "sakura", "kddi", "acme"), "provider": "sakura",
        "sku": "H200", "service_period": "2026-10", "booking_period": "2026-10",
        "agreement_from": "2025-12-31T15:00:00Z", "gpu_seconds": 3600, "wholesale_yen": 520,
    }]
    assert member_view(Statement.from_document(current), "kddi", key)["returns"] == [RETURN]
    old = member_view(Statement.from_document(before_credits(current)), "kddi", key)
    assert "returns" not in old and old["grant_draws"] == []
    assert old["tenant_invoices"] == [{"reseller": "kddi", "tenant": "acme", "subtotal_yen": 1560,
                                       "tax_yen": 156, "total_yen": 1716}]
    between = member_view(Statement.from_document(before_returns(current)), "kddi", key)
    assert "returns" not in between and between["grant_draws"] == [{k: v for k, v in DRAW.items() if k != "restored_yen"}]
