"""SPEC.md, "Periods": calendar months in the catalog's timezone, named `YYYY-MM`."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.errors import PeriodError
from ledger.domain.periods import (
    Calendar,
    calendar,
    format_period,
    next_period,
    parse_period,
    previous_period,
)
from tests.factories import instant

JST = calendar("Asia/Tokyo")


def test_given_october_2026_in_jst_then_it_is_the_spec_interval():
    """`2026-10` is `[2026-10-01T00:00:00+09:00, 2026-11-01T00:00:00+09:00)`."""
    assert JST.bounds("2026-10") == (
        instant("2026-10-01T00:00:00+09:00"),
        instant("2026-11-01T00:00:00+09:00"),
    )
    assert JST.bounds("2026-10")[0] == instant("2026-09-30T15:00:00Z")


@pytest.mark.parametrize(
    ("utc", "period"),
    [
        ("2026-09-30T14:59:59Z", "2026-09"),  # 23:59:59 JST on September 30
        ("2026-09-30T15:00:00Z", "2026-10"),  # 00:00:00 JST on October 1: the boundary
        ("2026-09-30T23:59:59Z", "2026-10"),  # UTC still says September
        ("2026-10-01T00:00:00Z", "2026-10"),  # UTC midnight: not a boundary in JST
        ("2026-10-31T14:59:59Z", "2026-10"),
        ("2026-10-31T15:00:00Z", "2026-11"),  # UTC still says October
        ("2026-11-01T00:00:00Z", "2026-11"),
        ("2026-12-31T14:59:59Z", "2026-12"),
        ("2026-12-31T15:00:00Z", "2027-01"),  # new year in JST
        ("2028-02-28T15:00:00Z", "2028-02"),  # leap day
        ("2028-02-29T15:00:00Z", "2028-03"),
    ],
)
def test_given_an_instant_then_its_period_is_the_jst_month_containing_it(utc, period):
    assert JST.period_of(instant(utc)) == period


def test_given_an_instant_then_next_boundary_is_the_start_of_the_next_jst_month():
    assert JST.next_boundary(instant("2026-10-01T00:00:00Z")) == instant("2026-10-31T15:00:00Z")
    assert JST.next_boundary(instant("2026-09-30T15:00:00Z")) == instant("2026-10-31T15:00:00Z")
    assert JST.next_boundary(instant("2026-09-30T14:59:59Z")) == instant("2026-09-30T15:00:00Z")


@pytest.mark.parametrize(
    ("zone", "utc", "period"),
    [
        ("UTC", "2026-09-30T23:59:59Z", "2026-09"),
        ("UTC", "2026-10-01T00:00:00Z", "2026-10"),
        ("America/New_York", "2026-11-01T03:59:59Z", "2026-10"),  # EDT, -04:00
        ("America/New_York", "2026-11-01T04:00:00Z", "2026-11"),
        ("America/New_York", "2026-12-01T05:00:00Z", "2026-12"),  # EST, -05:00
        ("Asia/Kolkata", "2026-09-30T18:29:59Z", "2026-09"),  # +05:30: mid-hour boundary
        ("Asia/Kolkata", "2026-09-30T18:30:00Z", "2026-10"),
    ],
)
def test_given_another_timezone_then_periods_are_its_calendar_months(zone, utc, period):
    assert calendar(zone).period_of(instant(utc)) == period


@settings(max_examples=300, deadline=None)
@given(
    moment=st.integers(instant("1970-02-01T00:00:00Z"), instant("2300-01-01T00:00:00Z")),
    zone=st.sampled_from(
        ["Asia/Tokyo", "UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
    ),
)
def test_property_period_of_agrees_with_the_zone_and_lies_within_its_bounds(moment, zone):
    """Given any instant and zone, then its period is the zone's calendar month, whose
    bounds contain it and whose end is the next boundary and the next period's start."""
    cal = calendar(zone)
    period = cal.period_of(moment)
    assert period == datetime.fromtimestamp(moment, ZoneInfo(zone)).strftime("%Y-%m")
    start, end = cal.bounds(period)
    assert start <= moment < end
    assert cal.next_boundary(moment) == end
    assert cal.bounds(next_period(period))[0] == end


@pytest.mark.parametrize(
    ("period", "following", "preceding"),
    [
        ("2026-10", "2026-11", "2026-09"),
        ("2026-12", "2027-01", "2026-11"),
        ("2027-01", "2027-02", "2026-12"),
    ],
)
def test_given_a_period_then_next_and_previous_periods_are_the_adjacent_months(
    period, following, preceding
):
    assert next_period(period) == following
    assert previous_period(period) == preceding
    assert parse_period(period) == tuple(int(part) for part in period.split("-"))
    assert format_period(*parse_period(period)) == period


@pytest.mark.parametrize(
    "text",
    ["2026-1", "2026-13", "2026-00", "26-10", "2026/10", "2026-10 ", " 2026-10", "2026-10-01", ""],
)
def test_given_a_period_name_not_of_the_form_yyyy_mm_then_period_error(text):
    with pytest.raises(PeriodError):
        parse_period(text)


def test_given_an_unknown_timezone_then_period_error():
    with pytest.raises(PeriodError):
        Calendar("Mars/Olympus_Mons")


@pytest.mark.parametrize(
    "text",
    [
        "\uff12\uff10\uff12\uff16-10",  # full-width digits, as a Japanese IME types them
        "\u0662\u0660\u0662\u0666-10",  # Arabic-Indic digits
    ],
)
def test_given_a_period_name_with_non_ascii_digits_then_period_error(text):
    """SPEC.md names a period `YYYY-MM`. Accepting other digits makes a second name for a
    month that compares, as a string, after every real one: closing through it would
    book March 2027 into November 2026 (see booking_period_for)."""
    with pytest.raises(PeriodError):
        parse_period(text)
