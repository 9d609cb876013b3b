"""SPEC.md, "Credits (grants)": what grants draw, in which order, and who owes whom.

Each case is one a finance team asks about, through the in-memory ledger (tests/model.py).
Retail is 780 yen per H200-hour (kddi's price), so one hour of kddi's tenant acme on
sakura's GPU is a line of 780 yen retail and 520 yen wholesale.
"""

from __future__ import annotations

from tests.domain.test_rating import bill
from tests.domain.test_registry import grant
from tests.factories import agreement, catalog_text, new_ledger, price

VERSIONS = (
    price("kddi", "H200", "780"),
    price("kddi", "H100", "510"),
    agreement("kddi", "sakura", "H200", wholesale="520"),
)


def ledger_with(*grants: str):
    return new_ledger(catalog_text(*VERSIONS, *grants))


def invoice(statement: dict, tenant: str = "acme") -> dict:
    return next(i for i in statement["tenant_invoices"] if i["tenant"] == tenant)


def test_a_grant_exhausted_in_the_middle_of_a_line_covers_only_what_it_has():
    ledger = ledger_with(grant(amount=300))
    bill(ledger, time="2026-10-03T00:00:00Z", seconds=3600)  # 780 yen
    october = ledger.settle("2026-10")
    assert invoice(october) == {"reseller": "kddi", "tenant": "acme", "retail_yen": 780, "credit_yen": 300,
                                "subtotal_yen": 480, "tax_yen": 48, "total_yen": 528}
    assert october["grant_draws"] == [
        {"grant": "poc-acme", "funder": "sakura", "reseller": "kddi", "tenant": "acme", "amount_yen": 300,
         "restored_yen": 0}]


def test_a_grant_listing_providers_covers_only_usage_on_their_gpus():
    """sakura funds acme's credit for sakura's GPUs only: acme's usage on kddi's own GPUs,
    which kddi alone vouches for, draws nothing from it."""
    ledger = ledger_with(grant(amount=10_000, providers=["sakura"]))
    bill(ledger, time="2026-10-03T00:00:00Z", seconds=3600)  # on sakura's GPU: 780 yen
    bill(ledger, time="2026-10-04T00:00:00Z", seconds=3600, provider="kddi", gpu_uuid="GPU-kddi-own")
    october = ledger.settle("2026-10")
    assert invoice(october)["retail_yen"] == 780 * 2 and invoice(october)["credit_yen"] == 780
    assert [d["amount_yen"] for d in october["grant_draws"]] == [780]
    assert october["net_yen"]["sakura"] == 520 * 110 // 100 - 780  # its wholesale, less the credit it pays


def test_a_grant_without_providers_covers_usage_on_any_gpu():
    ledger = ledger_with(grant(amount=10_000))
    bill(ledger, time="2026-10-03T00:00:00Z", seconds=3600)
    bill(ledger, time="2026-10-04T00:00:00Z", seconds=3600, provider="kddi", gpu_uuid="GPU-kddi-own")
    assert invoice(ledger.settle("2026-10"))["credit_yen"] == 780 * 2


def test_two_grants_on_one_line_the_one_ending_first_draws_first_whatever_its_id():
    ledger = ledger_with(grant("a-long", amount=1000, last="2026-12"), grant("z-short", amount=500, last="2026-10"))
    bill(ledger, time="2026-10-03T00:00:00Z", seconds=3600)
    draws = {d["grant"]: d["amount_yen"] for d in ledger.settle("2026-10")["grant_draws"]}
    assert draws == {"z-short": 500, "a-long": 280}


def test_a_late_line_draws_by_its_service_period_in_the_period_it_is_booked_into():
    ledger = ledger_with(grant(amount=10_000, first="2026-09", last="2026-09"))
    bill(ledger, time="2026-09-20T00:00:00Z", seconds=3600)
    september = ledger.settle("2026-09", close=True)
    assert invoice(september)["credit_yen"] == 780
    bill(ledger, time="2026-09-21T00:00:00Z", seconds=3600, gpu_uuid="GPU-late")  # after the close
    bill(ledger, time="2026-10-05T00:00:00Z", seconds=3600, gpu_uuid="GPU-oct")  # not covered
    october = ledger.settle("2026-10")
    assert invoice(october)["retail_yen"] == 1560 and invoice(october)["credit_yen"] == 780
    assert october["grant_draws"][0]["amount_yen"] == 780


def test_balances_carry_from_one_booking_period_to_the_next():
    ledger = ledger_with(grant(amount=1000, first="2026-09", last="2026-10"))
    bill(ledger, time="2026-09-20T00:00:00Z", seconds=3600)
    bill(ledger, time="2026-10-05T00:00:00Z", seconds=3600)
    assert invoice(ledger.settle("2026-09"))["credit_yen"] == 780  # open September counts
    assert invoice(ledger.settle("2026-10"))["credit_yen"] == 220
    assert invoice(ledger.settle("2026-09", close=True))["credit_yen"] == 780
    assert invoice(ledger.settle("2026-10"))["credit_yen"] == 220


def test_a_funder_other_than_the_reseller_owes_it_the_draw_without_tax():
    ledger = ledger_with(grant(funder="highreso", amount=100_000))
    bill(ledger, time="2026-10-03T00:00:00Z", seconds=3600)
    october = ledger.settle("2026-10")
    # sakura is owed 520 + 52 by kddi; kddi is owed 780 by highreso (no tax on a subsidy).
    assert october["net_yen"] == {"highreso": -780, "kddi": 780 - 572, "sakura": 572}
    assert sum(october["net_yen"].values()) == 0
    assert october["transfers"] == [{"from": "highreso", "to": "sakura", "amount_yen": 572},
                                    {"from": "highreso", "to": "kddi", "amount_yen": 208}]


def test_a_grant_the_reseller_funds_is_a_plain_discount():
    ledger = ledger_with(grant(funder="kddi", amount=100_000))
    bill(ledger, time="2026-10-03T00:00:00Z", seconds=3600)
    october = ledger.settle("2026-10")
    assert invoice(october)["total_yen"] == 0
    assert october["net_yen"] == {"highreso": 0, "kddi": -572, "sakura": 572}  # the member invoice alone


def test_a_grant_limited_to_skus_leaves_the_others_and_other_tenants_alone():
    ledger = ledger_with(grant(amount=100_000, skus=["H100"]))
    bill(ledger, time="2026-10-03T00:00:00Z", seconds=3600)  # H200: not covered
    bill(ledger, time="2026-10-03T00:00:00Z", seconds=3600, sku="H100", provider="kddi", gpu_uuid="G-2")
    bill(ledger, time="2026-10-03T00:00:00Z", seconds=3600, sku="H100", provider="kddi", tenant="beta", gpu_uuid="G-3")
    october = ledger.settle("2026-10")
    assert invoice(october)["credit_yen"] == 510 and invoice(october, "beta")["credit_yen"] == 0


def test_a_statement_without_grants_has_no_draws_and_zero_credits():
    ledger = ledger_with()
    bill(ledger, time="2026-10-03T00:00:00Z", seconds=3600)
    october = ledger.settle("2026-10")
    assert october["grant_draws"] == [] and invoice(october)["credit_yen"] == 0


def test_the_worked_example_of_the_readme():
    ledger = ledger_with(grant(funder="highreso", amount=1000, first="2026-09", last="2026-10"))
    bill(ledger, time="2026-09-10T00:00:00Z", seconds=3600)
    bill(ledger, time="2026-10-10T00:00:00Z", seconds=3600, gpu_uuid="GPU-2")
    september, october = ledger.settle("2026-09"), ledger.settle("2026-10")
    shown = [(i["retail_yen"], i["credit_yen"], i["subtotal_yen"], i["tax_yen"], i["total_yen"])
             for i in (invoice(september), invoice(october))]
    assert shown == [(780, 780, 0, 0, 0), (780, 220, 560, 56, 616)]
    assert september["net_yen"] == {"highreso": -780, "kddi": 208, "sakura": 572}
    assert october["net_yen"] == {"highreso": -220, "kddi": -352, "sakura": 572}
    assert [(t["from"], t["to"], t["amount_yen"]) for t in september["transfers"]] == [
        ("highreso", "sakura", 572), ("highreso", "kddi", 208)]
    assert [(t["from"], t["to"], t["amount_yen"]) for t in october["transfers"]] == [
        ("kddi", "sakura", 352), ("highreso", "sakura", 220)]
