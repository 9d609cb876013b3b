"""SPEC.md, "Rating", "Invoices", "Settlement between members" and the statement JSON.

Events go through `InMemoryLedger` (tests/model.py), which rates with `ledger.rating`;
the amount and netting rules are also checked on `rating.Line` and `net_transfers`
directly, against the formulas of SPEC.md written out with exact fractions.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.catalog import AgreementVersion, PriceVersion, price_to_units
from ledger.domain.instants import format_utc
from ledger.domain.rating import HourUsage, Line, LineKey, net_transfers, rate, split_hours, tax_yen
from ledger.domain.usage import by_versions, coarsen
from tests.factories import (
    agreement,
    catalog_text,
    instant,
    load,
    new_ledger,
    price,
    send,
    usage_event,
)


def bill(ledger, *, time: str, seconds: int, **fields) -> None:
    """Receive the usage on time, as events of at most 3600 s; each must be accepted."""
    start = instant(time)
    while seconds > 0:
        part = min(seconds, 3600)
        assert (
            send(ledger, usage_event(time=format_utc(start), seconds=part, **fields)) == "accepted"
        )
        start, seconds = start + part, seconds - part


SPEC_CATALOG = catalog_text(
    price("kddi", "H200", "780"),
    agreement("kddi", "sakura", "H200", wholesale="520"),
    skus=("H200",),
)


# -- The example of SPEC.md --------------------------------------------------------------


def test_given_the_example_of_spec_then_the_statement_is_exactly_the_one_printed_there():
    ledger = new_ledger(SPEC_CATALOG)
    bill(ledger, time="2026-10-03T12:00:00Z", seconds=3600, gpu_uuid="GPU-5f1c")
    bill(ledger, time="2026-10-03T13:00:00Z", seconds=3600, gpu_uuid="GPU-5f1c")
    statement = ledger.settle("2026-10")
    expected = {
        "period": "2026-10",
        "currency": "JPY",
        "closed": False,
        "lines": [
            {
                "reseller": "kddi",
                "tenant": "acme",
                "provider": "sakura",
                "sku": "H200",
                "service_period": "2026-10",
                "retail_price_from": "2025-12-31T15:00:00Z",
                "agreement_from": "2025-12-31T15:00:00Z",
                "gpu_seconds": 7200,
                "retail_yen_per_gpu_hour": "780",
                "retail_yen": 1560,
                "wholesale_yen": 1040,
            }
        ],
        "tenant_invoices": [
            {
                "reseller": "kddi",
                "tenant": "acme",
                "retail_yen": 1560,
                "credit_yen": 0,
                "subtotal_yen": 1560,
                "tax_yen": 156,
                "total_yen": 1716,
            }
        ],
        "member_invoices": [
            {
                "provider": "sakura",
                "reseller": "kddi",
                "subtotal_yen": 1040,
                "tax_yen": 104,
                "total_yen": 1144,
            }
        ],
        "returns": [],
        "grant_draws": [],
        "net_yen": {"highreso": 0, "kddi": -1144, "sakura": 1144},
        "transfers": [{"from": "kddi", "to": "sakura", "amount_yen": 1144}],
    }
    assert statement == expected
    assert list(statement) == list(expected)
    assert list(statement["lines"][0]) == list(expected["lines"][0])


def test_given_a_period_without_lines_then_empty_lists_zero_nets_and_no_transfers():
    ledger = new_ledger(SPEC_CATALOG)
    bill(ledger, time="2026-10-03T12:00:00Z", seconds=60)
    assert ledger.settle("2031-02") == {
        "period": "2031-02",
        "currency": "JPY",
        "closed": False,
        "lines": [],
        "tenant_invoices": [],
        "member_invoices": [],
        "returns": [],
        "grant_draws": [],
        "net_yen": {"highreso": 0, "kddi": 0, "sakura": 0},
        "transfers": [],
    }


def test_given_a_member_loaded_later_then_net_yen_lists_it_with_zero():
    ledger = new_ledger(SPEC_CATALOG, catalog_text(members=("nttpc",), skus=()))
    bill(ledger, time="2026-10-03T12:00:00Z", seconds=3600)
    assert ledger.settle("2026-10")["net_yen"] == {
        "highreso": 0,
        "kddi": -572,
        "nttpc": 0,
        "sakura": 572,
    }


# -- Line amounts: exact arithmetic and one floor per line --------------------------------


def exact(price_text: str) -> Fraction:
    return Fraction(price_text)


@pytest.mark.parametrize(
    ("seconds", "retail", "wholesale", "retail_yen", "wholesale_yen"),
    [
        (1, "780", "520", 0, 0),
        (7200, "780", "520", 1560, 1040),
        (100, "860.5", "600.1234", 23, 16),
        (3599, "3600", "3600", 3599, 3599),
        (4, "3591", "3599.9999", 3, 3),
    ],
)
def test_given_a_fixed_rate_agreement_then_each_amount_is_floored_once_per_line(
    seconds, retail, wholesale, retail_yen, wholesale_yen
):
    ledger = new_ledger(
        catalog_text(
            price("kddi", "H200", retail), agreement("kddi", "sakura", "H200", wholesale=wholesale)
        )
    )
    bill(ledger, time="2026-10-03T12:00:00Z", seconds=seconds)
    [line] = ledger.settle("2026-10")["lines"]
    assert (line["gpu_seconds"], line["retail_yen"], line["wholesale_yen"]) == (
        seconds,
        retail_yen,
        wholesale_yen,
    )
    assert retail_yen == math.floor(seconds * exact(retail) / 3600)
    assert wholesale_yen == math.floor(seconds * exact(wholesale) / 3600)


def test_given_a_share_agreement_then_the_share_is_of_the_exact_unfloored_retail_amount():
    """4 s at 3591 yen/h: retail 3.99 yen exactly, floored to 3; a 90% share is
    floor(3.591) = 3, not floor(0.9 * 3) = 2."""
    ledger = new_ledger(
        catalog_text(
            price("kddi", "H200", "3591"), agreement("kddi", "sakura", "H200", share_bps=9000)
        )
    )
    bill(ledger, time="2026-10-03T12:00:00Z", seconds=4)
    [line] = ledger.settle("2026-10")["lines"]
    assert (line["retail_yen"], line["wholesale_yen"]) == (3, 3)


@pytest.mark.parametrize(
    ("seconds", "retail", "bps", "wholesale_yen"),
    [
        (100, "860.5", 7000, 16),  # floor(100 * 860.5 * 7000 / 36000000) = floor(16.73)
        (3600, "780", 7000, 546),
        (3600, "780", 10000, 780),
        (3600, "780", 0, 0),
        (1, "1685.1234", 7250, 0),
        (7, "1685.1234", 7250, 2),  # floor(2.3755...)
    ],
)
def test_given_a_share_agreement_then_wholesale_follows_the_formula_of_spec(
    seconds, retail, bps, wholesale_yen
):
    ledger = new_ledger(
        catalog_text(
            price("kddi", "H200", retail), agreement("kddi", "sakura", "H200", share_bps=bps)
        )
    )
    bill(ledger, time="2026-10-03T12:00:00Z", seconds=seconds)
    [line] = ledger.settle("2026-10")["lines"]
    assert line["wholesale_yen"] == wholesale_yen
    assert wholesale_yen == math.floor(seconds * exact(retail) * bps / 36_000_000)


def test_given_seconds_in_several_hours_and_gpus_then_they_form_one_line_with_one_floor():
    """8 s at 780 yen/h (3 + 3 in two hours of one GPU, 1 + 1 on two others) make one
    line: floor(8 * 780 / 3600) = 1, while flooring per hour or per GPU would give 0."""
    ledger = new_ledger(SPEC_CATALOG)
    bill(ledger, time="2026-10-03T12:59:57Z", seconds=6, gpu_uuid="GPU-1")
    bill(ledger, time="2026-10-03T12:00:00Z", seconds=1, gpu_uuid="GPU-2")
    bill(ledger, time="2026-10-04T12:00:00Z", seconds=1, gpu_uuid="GPU-3")
    [line] = ledger.settle("2026-10")["lines"]
    assert line["gpu_seconds"] == 8
    assert line["retail_yen"] == 1  # floor(8 * 780 / 3600) = floor(1.73)
    assert line["wholesale_yen"] == 1  # floor(8 * 520 / 3600) = floor(1.16)


PRICE_TEXT = st.builds(
    lambda whole, fraction: f"{whole}.{fraction}" if fraction else str(whole),
    st.integers(0, 99_999),
    st.one_of(st.just(""), st.from_regex(r"[0-9]{1,4}", fullmatch=True)),
).filter(lambda text: Fraction(text) > 0)


@settings(max_examples=300, deadline=None)
@given(
    seconds=st.integers(1, 10**9),
    retail=PRICE_TEXT,
    wholesale=PRICE_TEXT,
    bps=st.integers(0, 10_000),
)
def test_property_line_amounts_are_the_exact_formulas_of_spec_floored_once(
    seconds, retail, wholesale, bps
):
    """Given any seconds, prices of up to 4 decimals and share, then retail, fixed and
    share wholesale amounts are SPEC.md's exact formulas with one floor."""
    key = LineKey("kddi", "acme", "sakura", "H200", "2026-10", 0, 0)
    price_version = PriceVersion(0, price_to_units(retail))
    fixed = Line(key, seconds, price_version, AgreementVersion(0, price_to_units(wholesale), None))
    share = Line(key, seconds, price_version, AgreementVersion(0, None, bps))
    own = Line(key, seconds, price_version, None)
    assert fixed.retail_yen == math.floor(seconds * Fraction(retail) / 3600)
    assert fixed.wholesale_yen == math.floor(seconds * Fraction(wholesale) / 3600)
    assert share.wholesale_yen == math.floor(seconds * Fraction(retail) * bps / 36_000_000)
    assert own.wholesale_yen == 0
    assert Fraction(price_version.yen_per_gpu_hour) == Fraction(retail)


# -- Invoices: tax once per invoice --------------------------------------------------------


def test_given_two_lines_of_5_yen_then_tax_is_floored_once_on_the_invoice_subtotal():
    """Per line, floor(0.5) + floor(0.5) = 0; on the invoice, floor(10 * 10%) = 1."""
    ledger = new_ledger(
        catalog_text(
            price("kddi", "H100", "3600"),
            price("kddi", "H200", "3600"),
            agreement("kddi", "sakura", "H100", wholesale="3600"),
            agreement("kddi", "sakura", "H200", share_bps=10000),
        )
    )
    bill(ledger, time="2026-10-03T12:00:00Z", seconds=5, sku="H100", gpu_uuid="GPU-1")
    bill(ledger, time="2026-10-03T12:00:00Z", seconds=5, sku="H200", gpu_uuid="GPU-2")
    statement = ledger.settle("2026-10")
    assert [(line["retail_yen"], line["wholesale_yen"]) for line in statement["lines"]] == [
        (5, 5),
        (5, 5),
    ]
    assert statement["tenant_invoices"] == [
        {"reseller": "kddi", "tenant": "acme", "retail_yen": 10, "credit_yen": 0, "subtotal_yen": 10,
         "tax_yen": 1, "total_yen": 11}
    ]
    assert statement["member_invoices"] == [
        {
            "provider": "sakura",
            "reseller": "kddi",
            "subtotal_yen": 10,
            "tax_yen": 1,
            "total_yen": 11,
        }
    ]


@pytest.mark.parametrize(
    ("rate", "subtotal", "tax"),
    [(10, 1560, 156), (8, 1560, 124), (0, 1560, 0), (10, 9, 0), (10, 19, 1)],
)
def test_given_a_tax_rate_then_tax_is_the_floor_of_subtotal_times_rate(rate, subtotal, tax):
    assert tax_yen(subtotal, rate) == tax


def test_given_a_tax_rate_of_8_percent_in_the_catalog_then_invoices_use_it():
    ledger = new_ledger(
        catalog_text(
            price("kddi", "H200", "780"),
            agreement("kddi", "sakura", "H200", wholesale="520"),
            settings="tax_rate_percent = 8",
        )
    )
    bill(ledger, time="2026-10-03T12:00:00Z", seconds=7200)
    statement = ledger.settle("2026-10")
    assert statement["tenant_invoices"][0]["tax_yen"] == 124  # floor(1560 * 0.08) = floor(124.8)
    assert statement["member_invoices"][0]["tax_yen"] == 83  # floor(1040 * 0.08) = floor(83.2)


@pytest.mark.parametrize(
    ("terms", "seconds"),
    [({"share_bps": 0}, 3600), ({"wholesale": "520"}, 1)],
    ids=["share of 0 bps", "amount floored to 0"],
)
def test_given_a_line_whose_wholesale_is_0_then_the_member_invoice_still_exists(terms, seconds):
    ledger = new_ledger(
        catalog_text(price("kddi", "H200", "780"), agreement("kddi", "sakura", "H200", **terms))
    )
    bill(ledger, time="2026-10-03T12:00:00Z", seconds=seconds)
    statement = ledger.settle("2026-10")
    assert statement["member_invoices"] == [
        {"provider": "sakura", "reseller": "kddi", "subtotal_yen": 0, "tax_yen": 0, "total_yen": 0}
    ]
    assert statement["net_yen"] == {"highreso": 0, "kddi": 0, "sakura": 0}
    assert statement["transfers"] == []


def test_given_a_member_reselling_its_own_gpus_then_wholesale_0_agreement_from_null_and_no_member_invoice():
    ledger = new_ledger(catalog_text(price("kddi", "H200", "780")))
    bill(ledger, time="2026-10-03T12:00:00Z", seconds=3600, provider="kddi", reseller="kddi")
    statement = ledger.settle("2026-10")
    [line] = statement["lines"]
    assert line["agreement_from"] is None
    assert (line["retail_yen"], line["wholesale_yen"]) == (780, 0)
    assert statement["tenant_invoices"] == [
        {"reseller": "kddi", "tenant": "acme", "retail_yen": 780, "credit_yen": 0, "subtotal_yen": 780,
         "tax_yen": 78, "total_yen": 858}
    ]
    assert statement["member_invoices"] == []
    assert statement["net_yen"] == {"highreso": 0, "kddi": 0, "sakura": 0}
    assert statement["transfers"] == []


# -- Versions changing mid-month and mid-hour ----------------------------------------------


@pytest.mark.parametrize(
    ("change", "start", "before", "after"),
    [
        ("2026-10-15T00:00:00+09:00", "2026-10-14T14:30:00Z", 1800, 1800),  # mid-month, on the hour
        ("2026-10-15T12:30:00+09:00", "2026-10-15T03:20:00Z", 600, 3000),  # mid-hour
        ("2026-10-15T12:30:01+09:00", "2026-10-15T03:30:00Z", 1, 3599),  # one second in
    ],
)
def test_given_a_price_change_inside_an_event_then_it_is_split_into_two_lines_with_the_right_versions(
    change, start, before, after
):
    ledger = new_ledger(
        catalog_text(
            price("kddi", "H200", "780"),
            price("kddi", "H200", "900", change),
            agreement("kddi", "sakura", "H200", wholesale="520"),
        )
    )
    bill(ledger, time=start, seconds=3600)
    lines = ledger.settle("2026-10")["lines"]
    change_utc = format_utc(instant(change))
    assert [
        (x["retail_price_from"], x["retail_yen_per_gpu_hour"], x["gpu_seconds"]) for x in lines
    ] == [
        ("2025-12-31T15:00:00Z", "780", before),
        (change_utc, "900", after),
    ]
    assert [x["retail_yen"] for x in lines] == [before * 780 // 3600, after * 900 // 3600]
    assert {x["agreement_from"] for x in lines} == {"2025-12-31T15:00:00Z"}


def test_given_a_price_and_an_agreement_change_inside_one_hour_then_three_lines():
    """[03:20, 03:30) 780 & 520 yen; [03:30, 03:35) 900 & 520 yen; [03:35, 03:40) 900 & 50%."""
    ledger = new_ledger(
        catalog_text(
            price("kddi", "H200", "780"),
            price("kddi", "H200", "900", "2026-10-15T12:30:00+09:00"),
            agreement("kddi", "sakura", "H200", wholesale="520"),
            agreement(
                "kddi", "sakura", "H200", share_bps=5000, effective_from="2026-10-15T12:35:00+09:00"
            ),
        )
    )
    bill(ledger, time="2026-10-15T03:20:00Z", seconds=1200)
    lines = ledger.settle("2026-10")["lines"]
    got = [
        (
            x["retail_price_from"],
            x["agreement_from"],
            x["gpu_seconds"],
            x["retail_yen"],
            x["wholesale_yen"],
        )
        for x in lines
    ]
    assert got == [
        ("2025-12-31T15:00:00Z", "2025-12-31T15:00:00Z", 600, 130, 86),
        ("2026-10-15T03:30:00Z", "2025-12-31T15:00:00Z", 300, 75, 43),
        ("2026-10-15T03:30:00Z", "2026-10-15T03:35:00Z", 300, 75, 37),
    ]
    member = ledger.settle("2026-10")["member_invoices"][0]
    assert member["subtotal_yen"] == 86 + 43 + 37


def test_given_a_version_loaded_later_then_it_reprices_the_open_period_it_covers():
    ledger = new_ledger(SPEC_CATALOG)
    bill(ledger, time="2026-10-20T00:00:00Z", seconds=3600)
    assert ledger.settle("2026-10")["lines"][0]["retail_yen"] == 780
    ledger.load_catalog(
        catalog_text(price("kddi", "H200", "1000", "2026-10-10T00:00:00+09:00")).encode()
    )
    [line] = ledger.settle("2026-10")["lines"]
    assert (line["retail_price_from"], line["retail_yen"]) == ("2026-10-09T15:00:00Z", 1000)


def test_given_an_event_rejected_no_price_when_a_price_is_loaded_later_then_it_stays_unbilled():
    ledger = new_ledger(catalog_text(price("kddi", "H200", "780", "2026-10-10T00:00:00+09:00")))
    event = usage_event(time="2026-10-05T00:00:00Z", seconds=60, provider="kddi")
    assert send(ledger, event) == "no_price"
    ledger.load_catalog(
        catalog_text(price("kddi", "H200", "700", "2026-10-01T00:00:00+09:00")).encode()
    )
    assert ledger.settle("2026-10")["lines"] == []


# -- Months: the JST boundary --------------------------------------------------------------


def test_given_an_event_across_the_jst_month_boundary_then_one_line_in_each_month():
    ledger = new_ledger(SPEC_CATALOG)
    bill(ledger, time="2026-09-30T14:59:30Z", seconds=60)
    september, october = ledger.settle("2026-09"), ledger.settle("2026-10")
    assert [(x["service_period"], x["gpu_seconds"]) for x in september["lines"]] == [
        ("2026-09", 30)
    ]
    assert [(x["service_period"], x["gpu_seconds"]) for x in october["lines"]] == [("2026-10", 30)]


def test_given_usage_at_utc_midnight_of_october_first_then_it_is_october_not_a_new_month():
    ledger = new_ledger(SPEC_CATALOG)
    bill(ledger, time="2026-09-30T23:59:30Z", seconds=60)  # 08:59:30 JST, October 1st
    bill(ledger, time="2026-10-31T23:59:30Z", seconds=60, gpu_uuid="GPU-2")  # November 1st in JST
    assert [x["gpu_seconds"] for x in ledger.settle("2026-10")["lines"]] == [60]
    assert [x["gpu_seconds"] for x in ledger.settle("2026-11")["lines"]] == [60]
    assert ledger.settle("2026-09")["lines"] == []


# -- Late usage after a close: prior-period lines -----------------------------------------

LATE_CATALOG = catalog_text(
    price("kddi", "H200", "780"),
    price("kddi", "H200", "900", "2026-10-01T00:00:00+09:00"),
    agreement("kddi", "sakura", "H200", wholesale="520"),
)


def test_given_september_closed_when_late_september_usage_arrives_then_a_prior_period_line_in_october():
    ledger = new_ledger(LATE_CATALOG)
    bill(ledger, time="2026-09-20T00:00:00Z", seconds=3600, gpu_uuid="GPU-1")
    closed = ledger.settle("2026-09", close=True)
    assert closed["closed"] is True
    bill(ledger, time="2026-09-20T00:00:00Z", seconds=3600, gpu_uuid="GPU-2")  # late
    bill(ledger, time="2026-10-05T00:00:00Z", seconds=3600, gpu_uuid="GPU-3")
    october = ledger.settle("2026-10")
    got = [
        (
            x["service_period"],
            x["retail_price_from"],
            x["retail_yen_per_gpu_hour"],
            x["gpu_seconds"],
            x["retail_yen"],
        )
        for x in october["lines"]
    ]
    assert got == [
        ("2026-09", "2025-12-31T15:00:00Z", "780", 3600, 780),  # priced at September's price
        ("2026-10", "2026-09-30T15:00:00Z", "900", 3600, 900),
    ]
    assert october["tenant_invoices"][0]["subtotal_yen"] == 1680
    assert ledger.settle("2026-09") == closed


def test_given_a_period_closed_when_closed_again_then_nothing_changes():
    ledger = new_ledger(LATE_CATALOG)
    bill(ledger, time="2026-09-20T00:00:00Z", seconds=3600)
    first = ledger.settle("2026-09", close=True)
    bill(ledger, time="2026-09-21T00:00:00Z", seconds=3600)
    assert ledger.settle("2026-09", close=True) == first
    bill(ledger, time="2026-09-22T00:00:00Z", seconds=3600)
    october = ledger.settle("2026-10")
    assert [(x["service_period"], x["gpu_seconds"]) for x in october["lines"]] == [
        ("2026-09", 7200)
    ]
    assert october["closed"] is False


def test_given_october_closed_with_september_open_then_late_september_usage_books_into_november():
    """Closing October closes the books through October: September is closed too."""
    ledger = new_ledger(LATE_CATALOG)
    ledger.settle("2026-10", close=True)
    bill(ledger, time="2026-09-25T00:00:00Z", seconds=3600)
    assert ledger.settle("2026-10")["lines"] == []
    [line] = ledger.settle("2026-11")["lines"]
    assert (line["service_period"], line["retail_yen"]) == ("2026-09", 780)


# -- Sorting ----------------------------------------------------------------------------------


def test_given_many_tenants_and_members_then_lines_and_invoices_sort_by_key_fields_by_code_point():
    ledger = new_ledger(
        catalog_text(
            price("kddi", "H200", "3600"),
            price("sakura", "H200", "3600"),
            agreement("kddi", "sakura", "H200", wholesale="1800"),
            agreement("kddi", "highreso", "H200", wholesale="1800"),
            agreement("sakura", "kddi", "H200", wholesale="1800"),
        )
    )
    gpu = 0
    for reseller, provider in (
        ("sakura", "kddi"),
        ("kddi", "sakura"),
        ("kddi", "highreso"),
        ("kddi", "kddi"),
    ):
        for tenant in ("b", "_x", "a", "B", "Z z"):
            gpu += 1
            bill(
                ledger,
                time="2026-10-03T12:00:00Z",
                seconds=gpu,
                gpu_uuid=f"GPU-{gpu}",
                reseller=reseller,
                provider=provider,
                tenant=tenant,
            )
    statement = ledger.settle("2026-10")
    keys = [(x["reseller"], x["tenant"], x["provider"]) for x in statement["lines"]]
    assert keys == sorted(keys)
    assert [t for r, t, p in keys if r == "kddi" and p == "highreso"] == [
        "B",
        "Z z",
        "_x",
        "a",
        "b",
    ]
    tenants = [(x["reseller"], x["tenant"]) for x in statement["tenant_invoices"]]
    assert tenants == sorted(tenants) and len(tenants) == 10
    members = [(x["provider"], x["reseller"]) for x in statement["member_invoices"]]
    assert members == [("highreso", "kddi"), ("kddi", "sakura"), ("sakura", "kddi")]


# -- Netting ------------------------------------------------------------------------------


def spec_netting(nets: dict[str, int]) -> list[tuple[str, str, int]]:
    """SPEC.md's netting, transcribed: largest debtor pays largest creditor, ties by id."""
    nets = dict(nets)
    transfers = []
    while any(nets.values()):
        debtor = sorted((value, member) for member, value in nets.items() if value < 0)[0][1]
        creditor = sorted((-value, member) for member, value in nets.items() if value > 0)[0][1]
        amount = min(-nets[debtor], nets[creditor])
        transfers.append((debtor, creditor, amount))
        nets[debtor] += amount
        nets[creditor] -= amount
    return transfers


@pytest.mark.parametrize(
    ("nets", "transfers"),
    [
        ({"highreso": 0, "kddi": -1144, "sakura": 1144}, [("kddi", "sakura", 1144)]),
        ({"a": 0, "b": 0}, []),
        ({}, []),
        # Debtors tie at -5: "a" pays first.
        ({"b": -5, "a": -5, "c": 10}, [("a", "c", 5), ("b", "c", 5)]),
        # Creditors tie at 5: "b" is paid first.
        ({"a": -10, "c": 5, "b": 5}, [("a", "b", 5), ("a", "c", 5)]),
        # Largest first: b (-7) pays c (6), then a (-3) pays d (4), then b pays d the rest.
        ({"a": -3, "b": -7, "c": 6, "d": 4}, [("b", "c", 6), ("a", "d", 3), ("b", "d", 1)]),
        ({"x": -1, "y": 1}, [("x", "y", 1)]),
    ],
)
def test_given_nets_then_transfers_follow_spec_largest_first_ties_by_member_id(nets, transfers):
    assert net_transfers(nets) == transfers


def test_given_cross_billing_members_then_nets_are_issued_minus_received_and_sum_to_zero():
    ledger = new_ledger(
        catalog_text(
            price("kddi", "H200", "3600"),
            price("sakura", "H200", "3600"),
            price("highreso", "H200", "3600"),
            agreement("kddi", "sakura", "H200", wholesale="3600"),
            agreement("sakura", "kddi", "H200", wholesale="3600"),
            agreement("highreso", "kddi", "H200", wholesale="3600"),
        )
    )
    # sakura bills kddi 100 (+10 tax), kddi bills sakura 30 (+3), kddi bills highreso 50 (+5).
    bill(
        ledger,
        time="2026-10-03T12:00:00Z",
        seconds=100,
        gpu_uuid="GPU-1",
        provider="sakura",
        reseller="kddi",
    )
    bill(
        ledger,
        time="2026-10-03T12:00:00Z",
        seconds=30,
        gpu_uuid="GPU-2",
        provider="kddi",
        reseller="sakura",
    )
    bill(
        ledger,
        time="2026-10-03T12:00:00Z",
        seconds=50,
        gpu_uuid="GPU-3",
        provider="kddi",
        reseller="highreso",
    )
    statement = ledger.settle("2026-10")
    assert statement["net_yen"] == {"highreso": -55, "kddi": 33 + 55 - 110, "sakura": 110 - 33}
    assert sum(statement["net_yen"].values()) == 0
    assert statement["transfers"] == [
        {"from": "highreso", "to": "sakura", "amount_yen": 55},
        {"from": "kddi", "to": "sakura", "amount_yen": 22},
    ]


MEMBER_IDS = ("kddi", "sakura", "highreso", "nttpc", "gmo", "a1", "zz", "ab-c")


@st.composite
def zero_sum_nets(draw) -> dict[str, int]:
    members = draw(
        st.lists(st.sampled_from(MEMBER_IDS), min_size=1, max_size=len(MEMBER_IDS), unique=True)
    )
    values = draw(
        st.lists(
            st.one_of(st.integers(-3, 3), st.integers(-(10**12), 10**12)),
            min_size=len(members) - 1,
            max_size=len(members) - 1,
        )
    )
    return dict(zip(members, [*values, -sum(values)], strict=True))


@settings(max_examples=300, deadline=None)
@given(nets=zero_sum_nets())
def test_property_transfers_settle_every_net_with_at_most_members_minus_one(nets):
    """Given nets summing to zero, when netted, then every transfer goes from a debtor to a
    creditor, all nets end at zero, there are at most members - 1 transfers, and they are
    the ones of SPEC.md's procedure (largest first, ties by member id)."""
    transfers = net_transfers(nets)
    assert len(transfers) <= len(nets) - 1
    remaining = dict(nets)
    for debtor, creditor, amount in transfers:
        assert amount > 0
        assert nets[debtor] < 0 < nets[creditor]
        remaining[debtor] += amount
        remaining[creditor] -= amount
    assert all(value == 0 for value in remaining.values())
    assert transfers == spec_netting(nets)


THREE_WAY_CATALOG = catalog_text(
    *(
        price(m, "H200", p)
        for m, p in (("kddi", "780"), ("sakura", "815.5"), ("highreso", "800.1234"))
    ),
    agreement("kddi", "sakura", "H200", wholesale="520"),
    agreement("kddi", "highreso", "H200", share_bps=7000),
    agreement("sakura", "kddi", "H200", share_bps=6800),
    agreement("sakura", "highreso", "H200", wholesale="600.5"),
    agreement("highreso", "kddi", "H200", wholesale="610"),
    agreement("highreso", "sakura", "H200", share_bps=7250),
)


@settings(max_examples=40, deadline=None)
@given(
    usages=st.lists(
        st.tuples(
            st.sampled_from(("kddi", "sakura", "highreso")),
            st.sampled_from(("kddi", "sakura", "highreso")),
            st.integers(1, 3600),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_property_statement_nets_sum_to_zero_and_transfers_settle_them(usages):
    """Given usage between any members, then each net is issued minus received member
    invoice totals, nets sum to zero, tax is floored per invoice, and the transfers (at
    most members - 1) settle every net."""
    ledger = new_ledger(THREE_WAY_CATALOG)
    for index, (provider, reseller, seconds) in enumerate(usages):
        bill(
            ledger,
            time="2026-10-03T12:00:00Z",
            seconds=seconds,
            gpu_uuid=f"GPU-{index}",
            provider=provider,
            reseller=reseller,
        )
    statement = ledger.settle("2026-10")
    nets = statement["net_yen"]
    assert sum(nets.values()) == 0
    for member in nets:
        issued = sum(
            i["total_yen"] for i in statement["member_invoices"] if i["provider"] == member
        )
        received = sum(
            i["total_yen"] for i in statement["member_invoices"] if i["reseller"] == member
        )
        assert nets[member] == issued - received
    for invoice in statement["tenant_invoices"] + statement["member_invoices"]:
        assert invoice["tax_yen"] == invoice["subtotal_yen"] * 10 // 100
        assert invoice["total_yen"] == invoice["subtotal_yen"] + invoice["tax_yen"]
    assert len(statement["transfers"]) <= len(nets) - 1
    remaining = dict(nets)
    for transfer in statement["transfers"]:
        remaining[transfer["from"]] += transfer["amount_yen"]
        remaining[transfer["to"]] -= transfer["amount_yen"]
    assert set(remaining.values()) == {0}


# -- rate(): per-second oracle, and the summed hours the store reads -----------------------

SPLIT_CATALOG = catalog_text(
    price("kddi", "H200", "780"),
    price("kddi", "H200", "860.5", "2026-10-01T00:20:00+09:00"),  # mid-hour
    price("kddi", "H200", "900", "2026-10-01T01:00:00+09:00"),  # on the hour
    price("sakura", "H200", "815"),
    agreement("kddi", "sakura", "H200", wholesale="520"),
    agreement("kddi", "sakura", "H200", share_bps=6800, effective_from="2026-09-30T23:40:00+09:00"),
    agreement("kddi", "highreso", "H200", share_bps=7000),
    agreement("sakura", "kddi", "H200", wholesale="600"),
)
SPLIT_HOURS = [instant(f"2026-09-30T{hour}:00:00Z") for hour in (13, 14, 15, 16, 17)]
RATED = (  # (reseller, tenant, provider, sku)
    ("kddi", "acme", "sakura", "H200"),
    ("kddi", "acme", "highreso", "H200"),
    ("kddi", "beta", "kddi", "H200"),
    ("sakura", "zeta", "kddi", "H200"),
)


def test_given_versions_starting_mid_hour_then_split_hours_lists_exactly_their_hours():
    catalog = load(SPLIT_CATALOG)
    assert split_hours(catalog) == {
        instant("2026-09-30T15:00:00Z"),  # 00:20 JST price
        instant("2026-09-30T14:00:00Z"),  # 23:40 JST agreement
    }


def test_given_a_first_price_version_starting_mid_hour_then_seconds_after_it_are_rated():
    ledger = new_ledger(
        catalog_text(
            price("kddi", "H200", "3600", "2026-10-15T12:30:00+09:00"),
            agreement(
                "kddi",
                "sakura",
                "H200",
                wholesale="1800",
                effective_from="2026-10-15T12:45:00+09:00",
            ),
        )
    )
    bill(ledger, time="2026-10-15T03:45:00Z", seconds=60)
    [line] = ledger.settle("2026-10")["lines"]
    assert (line["retail_price_from"], line["agreement_from"]) == (
        "2026-10-15T03:30:00Z",
        "2026-10-15T03:45:00Z",
    )
    assert (line["retail_yen"], line["wholesale_yen"]) == (60, 30)


@st.composite
def hour_claims(draw):
    claims = []
    for _ in range(draw(st.integers(1, 10))):
        attribution = draw(st.sampled_from(RATED))
        hour = draw(st.sampled_from(SPLIT_HOURS))
        bits = draw(
            st.one_of(
                st.integers(1, (1 << 3600) - 1),
                st.just((1 << 3600) - 1),
                st.integers(0, 3599).map(lambda i: 1 << i),
            )
        )
        claims.append((attribution, hour, bits))
    return claims


@settings(max_examples=40, deadline=None)
@given(claims=hour_claims())
def test_property_rate_groups_each_second_by_the_versions_in_effect_at_it(claims):
    """Given billed seconds, then lines count every second under the price and agreement
    versions in effect at that very second, and the summed form (no bits outside
    split_hours, as the store reads them) rates the same."""
    catalog = load(SPLIT_CATALOG)
    calendar = catalog.calendar
    expected: dict[LineKey, int] = {}
    with_bits, summed = [], {}
    split = split_hours(catalog)
    for (reseller, tenant, provider, sku), hour, bits in claims:
        period = calendar.period_of(hour)
        for index in range(3600):
            if bits >> index & 1:
                second = hour + index
                version = catalog.price_at(reseller, sku, second)
                terms = catalog.agreement_at(reseller, provider, sku, second)
                key = LineKey(
                    reseller,
                    tenant,
                    provider,
                    sku,
                    period,
                    version.effective_from,
                    terms.effective_from if provider != reseller else -1,
                )
                expected[key] = expected.get(key, 0) + 1
        usage = HourUsage(reseller, tenant, provider, sku, period, hour, bits.bit_count(), bits)
        with_bits.append(usage)
        group = (reseller, tenant, provider, sku, period, hour)
        if hour in split:
            summed.setdefault(group, []).append(usage)
        else:
            total = sum(u.seconds for u in summed.get(group, [])) + usage.seconds
            summed[group] = [HourUsage(*group, total)]
    lines = rate(catalog, with_bits)
    assert {line.key: line.gpu_seconds for line in lines} == expected
    assert [line.key for line in lines] == sorted(expected)
    for line in lines:
        assert line.price == catalog.price_at(
            line.key.reseller, line.key.sku, line.key.retail_price_from
        )
    from_summed = rate(catalog, [u for group in summed.values() for u in group])
    assert [(x.key, x.gpu_seconds) for x in from_summed] == [(x.key, x.gpu_seconds) for x in lines]
    # As a statement reads them: whole hours also summed between two price breaks.
    whole = [u for group in summed.values() for u in group if u.bits is None]
    coarse = coarsen(whole, by_versions(catalog)) + [u for g in summed.values() for u in g if u.bits is not None]
    from_coarse = rate(catalog, coarse)
    assert [(x.key, x.gpu_seconds, x.price, x.agreement) for x in from_coarse] == [
        (x.key, x.gpu_seconds, x.price, x.agreement) for x in lines
    ]


def test_given_whole_hours_then_by_versions_sums_them_only_between_version_starts():
    """A statement's store sums whole hours between price breaks: never across a version
    starting on the hour (16:00Z) or within one (14:40Z, 15:20Z: from the next hour on)."""
    catalog = load(SPLIT_CATALOG)
    hours = [instant(f"2026-09-30T{hour}:00:00Z") for hour in (11, 12, 13, 16, 17, 18)]
    rows = [HourUsage("kddi", "acme", "sakura", "H200", "2026-10", hour, 10) for hour in hours]
    summed = sorted((u.hour_start, u.seconds) for u in coarsen(rows, by_versions(catalog)))
    assert summed == [(hours[0], 30), (hours[3], 30)]


def test_a_tenant_id_that_looks_like_a_formula_is_text_in_the_csv():
    """Given a tenant id a spreadsheet would run (`=cmd|...`), then the CSV cell is text; yen stay numbers."""
    from ledger.domain.report import as_csv  # the CSV is the statement's other format
    from ledger.domain.statement import Statement

    ledger = new_ledger(SPEC_CATALOG)
    bill(ledger, time="2026-10-03T12:00:00Z", seconds=3600, tenant="=HYPERLINK(\"x\")")
    bill(ledger, time="2026-10-03T12:00:00Z", seconds=3600, tenant="-1+2", gpu_uuid="GPU-2")
    text = as_csv(Statement.from_document(ledger.settle("2026-10")))
    assert "'=HYPERLINK" in text and "'-1+2" in text
    assert ",kddi,-1144," in text  # kddi's net stays a number
