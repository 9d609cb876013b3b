"""SPEC.md, "Corrections": what a return gives back, to the tenant first, then to grants.

One original line of kddi's tenant acme on sakura's H200: 7200 s at 780 yen/h retail and
520 yen/h wholesale (1560 and 1040 yen), unless a case says otherwise.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.catalog import PRICE_SCALE, AgreementVersion, PriceVersion
from ledger.domain.rating import Line, LineKey
from ledger.domain.returns import (
    Original,
    ReturnedSeconds,
    restorations,
    returns_of_line,
    returns_through,
)

KEY = LineKey("kddi", "acme", "sakura", "H200", "2026-10", 0, 0)
PRICE = PriceVersion(0, 780 * PRICE_SCALE)
FIXED = AgreementVersion(0, 520 * PRICE_SCALE, None)


def original(seconds: int = 7200, draws=(), price=PRICE, agreement=FIXED) -> Original:
    return Original(Line(KEY, seconds, price, agreement), tuple(draws))


def back(*seconds_per_period: int) -> list[ReturnedSeconds]:
    return [ReturnedSeconds("2026-10", KEY, f"2026-{11 + i}", s) for i, s in enumerate(seconds_per_period)]


def test_a_return_of_an_hour_gives_back_that_hours_amounts_to_the_tenant():
    [item] = returns_of_line(original(), back(3600))
    assert (item.retail_yen, item.wholesale_yen, item.tenant_refund_yen, item.credit_restored_yen) == (780, 520, 780, 0)
    assert item.gpu_seconds == 3600 and item.booking_period == "2026-10" and item.return_period == "2026-11"


def test_the_formula_telescopes_so_a_line_and_its_returns_add_up_to_what_is_still_billed():
    """S = 7 s at 780 yen/h: floor(7*780/3600) = 1 yen; returning 1 s then 3 s."""
    first, second = returns_of_line(original(7), back(1, 3))
    assert first.retail_yen == 1 - 1  # floor(7p) - floor(6p) = 1 - 1
    assert second.retail_yen == 1 - 0  # floor(6p) - floor(3p)
    line_retail = 1
    assert line_retail - first.retail_yen - second.retail_yen == Line(KEY, 3, PRICE, FIXED).retail_yen


def test_a_share_agreement_returns_its_share_of_the_exact_retail():
    share = AgreementVersion(0, None, 6800)
    [item] = returns_of_line(original(agreement=share), back(1800))
    assert item.wholesale_yen == (7200 * 780 * 6800 // 36_000_000) - (5400 * 780 * 6800 // 36_000_000)


def test_a_members_own_gpu_returns_no_wholesale():
    own = Original(Line(LineKey("kddi", "acme", "kddi", "H200", "2026-10", 0, -1), 3600, PRICE, None), ())
    [item] = returns_of_line(own, [ReturnedSeconds("2026-10", own.line.key, "2026-11", 3600)])
    assert (item.retail_yen, item.wholesale_yen) == (780, 0)


def test_the_tenant_is_refunded_what_it_paid_then_the_grants_last_drawn_first():
    """The line drew 1000 from grant a then 200 from grant b: the tenant paid 360. Returning
    1560 refunds 360, restores 200 to b (it drew last), then 1000 to a."""
    [item] = returns_of_line(original(draws=[("a", 1000), ("b", 200)]), back(7200))
    assert (item.retail_yen, item.tenant_refund_yen, item.credit_restored_yen) == (1560, 360, 1200)
    assert item.restored == (("b", 200), ("a", 1000))


def test_later_returns_refund_what_is_left_and_restore_what_was_not_restored_before():
    first, second = returns_of_line(original(draws=[("a", 1000), ("b", 200)]), back(3600, 3600))
    assert (first.tenant_refund_yen, first.credit_restored_yen, first.restored) == (360, 420, (("b", 200), ("a", 220)))
    assert (second.tenant_refund_yen, second.credit_restored_yen, second.restored) == (0, 780, (("a", 780),))


@given(st.integers(1, 20_000), st.lists(st.integers(1, 5_000), min_size=1, max_size=5),
       st.integers(1, 10_000_000), st.integers(0, 2_000))
def test_property_returns_never_give_back_more_than_the_line_nor_refund_or_restore_more_than_paid_or_drawn(
    seconds, parts, price_units, drawn
):
    price = PriceVersion(0, price_units)
    line = Line(KEY, seconds, price, FIXED)
    draw = min(drawn, line.retail_yen)
    total, kept = 0, []
    for p in parts:
        if total + p <= seconds:
            kept.append(p)
            total += p
    if not kept:
        return
    found = returns_of_line(Original(line, (("g", draw),) if draw else ()), back(*kept))
    assert sum(r.retail_yen for r in found) == line.retail_yen - Line(KEY, seconds - total, price, FIXED).retail_yen
    assert sum(r.wholesale_yen for r in found) == line.wholesale_yen - Line(KEY, seconds - total, price, FIXED).wholesale_yen
    assert sum(r.tenant_refund_yen for r in found) <= line.retail_yen - draw
    assert sum(r.credit_restored_yen for r in found) <= draw
    assert all(r.tenant_refund_yen + r.credit_restored_yen == r.retail_yen for r in found)


def test_returns_through_a_period_sort_in_statement_order_and_sum_restorations_per_period():
    other = LineKey("kddi", "beta", "sakura", "H200", "2026-10", 0, 0)
    originals = {("2026-10", KEY): original(draws=[("a", 1560)]), ("2026-10", other): Original(Line(other, 3600, PRICE, FIXED), ())}
    parts = [ReturnedSeconds("2026-10", other, "2026-11", 3600), ReturnedSeconds("2026-10", KEY, "2026-11", 3600),
             ReturnedSeconds("2026-10", KEY, "2026-12", 3600)]
    found = returns_through("2026-11", parts, originals)
    assert [(r.key.tenant, r.return_period) for r in found] == [("acme", "2026-11"), ("beta", "2026-11")]
    assert restorations(returns_through("2026-12", parts, originals)) == {"2026-11": {"a": 780}, "2026-12": {"a": 780}}
