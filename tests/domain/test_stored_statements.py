"""A stored closed statement is compared with its recomputation on the fields it has."""

from __future__ import annotations

import copy

import orjson

from ledger.domain.statement import Statement
from ledger.domain.stored_statements import comparable, first_difference

MEMBERS = ["highreso", "kddi", "sakura"]


def statement_now(**changes) -> dict:
    """A statement as computed today (SPEC.md of 2026-12-07), with `changes` applied."""
    document = {
        "period": "2026-10", "currency": "JPY", "closed": True,
        "lines": [{"reseller": "kddi", "tenant": "acme", "provider": "sakura", "sku": "H200",
                   "service_period": "2026-10", "retail_price_from": "2025-12-31T15:00:00Z",
                   "agreement_from": "2025-12-31T15:00:00Z", "gpu_seconds": 7200,
                   "retail_yen_per_gpu_hour": "780", "retail_yen": 1560, "wholesale_yen": 1040}],
        "tenant_invoices": [{"reseller": "kddi", "tenant": "acme", "retail_yen": 1560, "credit_yen": 0,
                             "subtotal_yen": 1560, "tax_yen": 156, "total_yen": 1716}],
        "member_invoices": [{"provider": "sakura", "reseller": "kddi", "subtotal_yen": 1040,
                             "tax_yen": 104, "total_yen": 1144}],
        "returns": [],
        "grant_draws": [],
        "net_yen": {"highreso": 0, "kddi": -1144, "sakura": 1144},
        "transfers": [{"from": "kddi", "to": "sakura", "amount_yen": 1144}],
    }
    document.update(changes)
    return document


def before_credits(document: dict) -> dict:
    """The same statement as stored before 2026-11-30: no credits, no returns."""
    old = copy.deepcopy(document)
    del old["returns"], old["grant_draws"]
    for invoice in old["tenant_invoices"]:
        del invoice["retail_yen"], invoice["credit_yen"]
    return old


def same(recomputed: dict, stored: dict, members=MEMBERS) -> bool:
    """Whether a recomputation (given as its JSON) renders as the stored bytes."""
    shaped = comparable(Statement.from_document(recomputed), stored, members)
    return orjson.dumps(shaped.to_document()) == orjson.dumps(stored)


def named(recomputed: dict, stored: dict) -> str:
    """The field the verification names for a stored statement that differs."""
    return first_difference(comparable(Statement.from_document(recomputed), stored, MEMBERS), stored)


def test_a_statement_of_today_compares_whole():
    assert same(statement_now(), statement_now())
    edited = statement_now()
    edited["tenant_invoices"][0]["total_yen"] += 1
    assert not same(statement_now(), edited)
    assert named(statement_now(), edited) == "tenant_invoices"


def test_a_statement_closed_before_credits_is_compared_on_the_fields_it_has():
    assert same(statement_now(), before_credits(statement_now()))
    edited = before_credits(statement_now())
    edited["lines"][0]["gpu_seconds"] -= 1
    assert not same(statement_now(), edited)


def test_a_statement_closed_between_credits_and_returns_lacks_only_returns_and_restorations():
    draw = {"grant": "poc", "funder": "sakura", "reseller": "kddi", "tenant": "acme",
            "amount_yen": 100, "restored_yen": 0}
    now = statement_now(grant_draws=[draw])
    stored = copy.deepcopy(now)
    del stored["returns"], stored["grant_draws"][0]["restored_yen"]
    assert same(now, stored)


def test_a_field_taken_out_of_a_stored_statement_cannot_hide_an_amount():
    draw = {"grant": "poc", "funder": "sakura", "reseller": "kddi", "tenant": "acme",
            "amount_yen": 100, "restored_yen": 0}
    returned = {"reseller": "kddi", "tenant": "acme", "provider": "sakura", "sku": "H200",
                "service_period": "2026-10", "booking_period": "2026-10",
                "retail_price_from": "2025-12-31T15:00:00Z", "agreement_from": "2025-12-31T15:00:00Z",
                "gpu_seconds": 3600, "retail_yen_per_gpu_hour": "780", "retail_yen": 780,
                "wholesale_yen": 520, "tenant_refund_yen": 780, "credit_restored_yen": 0}
    cases = [  # (recomputed, what the edit takes out of the stored copy, the field named)
        (statement_now(grant_draws=[draw]), lambda d: d.pop("grant_draws"), "grant_draws"),
        (statement_now(returns=[returned]), lambda d: d.pop("returns"), "returns"),
        (statement_now(grant_draws=[dict(draw, restored_yen=40)]), lambda d: d["grant_draws"][0].pop("restored_yen"),
         "grant_draws"),
    ]
    for recomputed, take_out, field in cases:
        stored = copy.deepcopy(recomputed)
        take_out(stored)
        assert not same(recomputed, stored), field
        assert named(recomputed, stored) == field
    credited = statement_now()
    credited["tenant_invoices"][0].update(credit_yen=60, subtotal_yen=1500)
    assert not same(credited, before_credits(credited))


def test_net_yen_lists_the_members_known_at_the_close():
    recomputed = statement_now(net_yen={"highreso": 0, "kddi": -1144, "newcomer": 0, "sakura": 1144})
    assert same(recomputed, statement_now())  # a member that joined later, with nothing
    moved = statement_now(net_yen={"highreso": 0, "kddi": -1144, "newcomer": 5, "sakura": 1139})
    assert not same(moved, statement_now())
    # A stored statement that dropped a member with a net is not what the close recorded.
    dropped = statement_now(net_yen={"kddi": -1144, "sakura": 1144})
    assert not same(statement_now(), dropped)
