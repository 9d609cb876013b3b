"""SPEC.md, "Disputes": who opens one, within which window, and every move between states."""

from __future__ import annotations

import pytest

from ledger.domain import disputes
from ledger.domain.disputes import DisputeRefused, Interval, next_state, parse_interval
from ledger.domain.errors import Forbidden, InputError, NotFound
from ledger.domain.instants import parse_instant
from ledger.domain.periods import calendar

JST = calendar("Asia/Tokyo")
DAY = 86_400


def interval(start="2026-10-10T10:44:07Z", end="2026-10-10T11:27:56Z", provider="highreso",
             reseller="kddi") -> Interval:
    return parse_interval("GPU-1", start, end, provider, reseller, "kdd-cust-02", "H200")


@pytest.mark.parametrize("start, end, message", [
    ("2026-10-10T11:00:00Z", "2026-10-10T11:00:00Z", "not before"),
    ("2026-10-10T12:00:00Z", "2026-10-10T11:00:00Z", "not before"),
    ("2026-10-01T00:00:00Z", "2026-11-15T00:00:01Z", "longer than 45 days"),
    ("2026-10-10T11:00:00.5Z", "2026-10-10T12:00:00Z", "whole seconds"),
    ("2026-10-10T11:00:00", "2026-10-10T12:00:00Z", "offset"),
    ("yesterday", "2026-10-10T12:00:00Z", "RFC 3339"),
    ("1969-12-31T23:00:00Z", "1970-01-01T01:00:00Z", "outside"),
])
def test_an_interval_that_is_not_one_is_refused(start, end, message):
    with pytest.raises(InputError, match=message):
        interval(start, end)


def test_45_days_exactly_is_an_interval():
    assert interval("2026-10-01T00:00:00Z", "2026-11-15T00:00:00Z").end - interval(
        "2026-10-01T00:00:00Z", "2026-11-15T00:00:00Z").start == 45 * DAY


def test_only_the_reseller_that_is_not_the_provider_opens_a_dispute():
    disputes.check_opener(interval(), "kddi")
    with pytest.raises(Forbidden):
        disputes.check_opener(interval(), "sakura")
    with pytest.raises(Forbidden):
        disputes.check_opener(interval(), "highreso")  # the provider voids, it does not dispute
    with pytest.raises(DisputeRefused):
        disputes.check_opener(interval(provider="kddi"), "kddi")


def test_the_window_counts_from_the_end_of_the_service_period():
    october = interval()
    end_of_october = parse_instant("2026-11-01T00:00:00+09:00")
    disputes.check_window(october, JST, 60, end_of_october + 60 * DAY)
    with pytest.raises(DisputeRefused, match="60 days"):
        disputes.check_window(october, JST, 60, end_of_october + 60 * DAY + 1)
    disputes.check_window(october, JST, 0, parse_instant("2026-10-20T00:00:00Z"))  # not ended yet


@pytest.mark.parametrize("action, state, party, expected", [
    ("accept", "open", "provider", "accepted"),
    ("reject", "open", "provider", "rejected"),
    ("escalate", "rejected", "reseller", "escalated"),
    ("withdraw", "open", "reseller", "withdrawn"),
    ("withdraw", "escalated", "reseller", "withdrawn"),
    ("decide_accept", "escalated", "operator", "accepted"),
    ("decide_reject", "escalated", "operator", "rejected"),
])
def test_each_allowed_move(action, state, party, expected):
    assert next_state(action, state, party, rejected_at=0, escalations=0, now=DAY) == expected


@pytest.mark.parametrize("action, state, party, error", [
    ("accept", "open", "reseller", Forbidden),
    ("accept", "open", None, NotFound),  # a third member sees no dispute
    ("accept", "withdrawn", "provider", DisputeRefused),
    ("accept", "escalated", "provider", DisputeRefused),  # the operator decides an escalated one
    ("reject", "rejected", "provider", DisputeRefused),
    ("escalate", "open", "reseller", DisputeRefused),
    ("escalate", "rejected", "provider", Forbidden),
    ("withdraw", "rejected", "reseller", DisputeRefused),
    ("withdraw", "accepted", "reseller", DisputeRefused),
    ("decide_accept", "open", "operator", DisputeRefused),
    ("decide_reject", "rejected", "operator", DisputeRefused),
])
def test_every_other_move_is_refused(action, state, party, error):
    with pytest.raises(error):
        next_state(action, state, party, rejected_at=0, escalations=0, now=DAY)


def test_a_rejection_is_escalated_once_and_within_14_days():
    assert next_state("escalate", "rejected", "reseller", 0, 0, 14 * DAY) == "escalated"
    with pytest.raises(DisputeRefused, match="14 days"):
        next_state("escalate", "rejected", "reseller", 0, 0, 14 * DAY + 1)
    with pytest.raises(DisputeRefused, match="at most once"):
        next_state("escalate", "rejected", "reseller", 0, 1, DAY)


def test_notes_and_reasons_are_bounded():
    assert disputes.check_note("x" * 2000)
    with pytest.raises(InputError):
        disputes.check_note("x" * 2001)
    with pytest.raises(InputError, match="not_used"):
        disputes.check_reason("because")
