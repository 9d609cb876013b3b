"""SPEC.md, "A GPU-second is billed at most once" and the booking rules of "Periods".

Unit tests drive `ledger.domain.metering.Meter` with `Usage` values; the property tests send
JSON events through `InMemoryLedger` (tests/model.py) and read what the meter billed.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import event as hypothesis_event
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ledger.domain.events import CONFLICT, Rejection, Usage
from ledger.domain.instants import format_utc
from ledger.domain.metering import ACCEPTED, DUPLICATE, Meter, Pieces, booking_period_for
from ledger.domain.periods import calendar
from tests.factories import (
    DEFAULT_VERSIONS,
    agreement,
    catalog_text,
    encode,
    instant,
    ms,
    new_ledger,
    price,
    send,
    total_gpu_seconds,
    usage_event,
)

JST = calendar("Asia/Tokyo")
T0 = instant("2026-10-03T12:00:00Z")  # the start of a UTC hour, in October (JST)
SEP_END = instant("2026-09-30T15:00:00Z")  # 2026-10-01T00:00:00+09:00


def meter(closed_through: str | None = None) -> Meter:
    return Meter(Pieces(JST), closed_through)


def usage(
    start: int,
    seconds: int,
    *,
    gpu: str = "GPU-1",
    provider: str = "sakura",
    reseller: str = "kddi",
    tenant: str = "acme",
    sku: str = "H200",
) -> Usage:
    return Usage(gpu, provider, reseller, tenant, sku, start, seconds)


def billed(m: Meter) -> dict[tuple[str, int], tuple]:
    """(gpu, second) -> attribution of every second the meter billed (it was never loaded)."""
    seconds = {}
    for key, bits in m.changed():
        for index in range(3600):
            if bits >> index & 1:
                second = (key.gpu_uuid, key.hour_start + index)
                assert second not in seconds, f"{second} billed twice"
                seconds[second] = key.attribution
    return seconds


def billed_periods(m: Meter) -> Counter:
    """(service_period, booking_period) -> number of seconds billed."""
    counts = Counter()
    for key, bits in m.changed():
        counts[(key.service_period, key.booking_period)] += bits.bit_count()
    return counts


def seconds_of(u: Usage) -> set[tuple[str, int]]:
    return {(u.gpu_uuid, s) for s in range(u.start, u.start + u.seconds)}


# -- Duplicates and partial overlaps ---------------------------------------------------


def test_given_nothing_billed_when_an_event_arrives_then_accepted_and_each_of_its_seconds_billed():
    m = meter()
    assert m.apply(usage(T0, 90)) == ACCEPTED
    assert set(billed(m)) == seconds_of(usage(T0, 90))


def test_given_an_event_billed_when_it_is_sent_again_then_duplicate_and_nothing_changes():
    m = meter()
    m.apply(usage(T0, 90))
    before = m.changed()
    assert m.apply(usage(T0, 90)) == DUPLICATE
    assert m.changed() == before


def test_given_seconds_billed_when_an_event_covers_only_billed_seconds_then_duplicate():
    m = meter()
    m.apply(usage(T0, 90))
    assert m.apply(usage(T0 + 10, 20)) == DUPLICATE
    assert m.apply(usage(T0 + 89, 1)) == DUPLICATE
    assert len(billed(m)) == 90


def test_given_an_event_billed_when_one_partly_overlapping_arrives_then_accepted_and_only_new_seconds_billed():
    m = meter()
    m.apply(usage(T0, 60))
    assert m.apply(usage(T0 + 30, 60)) == ACCEPTED
    assert set(billed(m)) == seconds_of(usage(T0, 90))


def test_given_two_events_billed_when_one_spans_them_and_the_gap_then_only_the_gap_is_new():
    m = meter()
    m.apply(usage(T0, 10))
    m.apply(usage(T0 + 20, 10))
    assert m.apply(usage(T0, 30)) == ACCEPTED
    assert len(billed(m)) == 30


def test_given_an_exact_resend_with_another_id_and_source_then_duplicate():
    """(source, id) is for tracing only: billing never depends on it."""
    ledger = new_ledger()
    first = usage_event(time="2026-10-03T12:00:00Z", seconds=60, event_id="a", source="//x")
    again = usage_event(time="2026-10-03T12:00:00Z", seconds=60, event_id="b", source="//y")
    assert send(ledger, first) == "accepted"
    assert send(ledger, again) == "duplicate"
    assert total_gpu_seconds(ledger.settle("2026-10")) == 60


def test_given_the_same_id_and_source_with_other_seconds_then_the_new_seconds_are_billed():
    ledger = new_ledger()
    assert send(ledger, usage_event(time="2026-10-03T12:00:00Z", seconds=60)) == "accepted"
    assert send(ledger, usage_event(time="2026-10-03T12:01:00Z", seconds=60)) == "accepted"
    assert total_gpu_seconds(ledger.settle("2026-10")) == 120


# -- Conflicts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "other",
    [
        {"provider": "highreso"},
        {"reseller": "sakura", "provider": "kddi"},
        {"tenant": "beta"},
        {"sku": "H100"},
        {"tenant": "ACME"},
    ],
    ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()),
)
def test_given_a_second_billed_when_another_attribution_claims_it_then_conflict_and_nothing_billed(
    other,
):
    m = meter()
    m.apply(usage(T0, 60))
    before = m.changed()
    outcome = m.apply(usage(T0 + 59, 30, **other))  # 1 billed second, 29 new ones
    assert isinstance(outcome, Rejection) and outcome.reason == CONFLICT
    assert m.changed() == before
    assert len(billed(m)) == 60


def test_given_a_conflict_in_the_last_hour_of_an_event_then_its_new_seconds_in_earlier_hours_are_not_billed():
    m = meter()
    m.apply(usage(T0 + 3600 + 100, 1, tenant="beta"))
    outcome = m.apply(usage(T0 + 1800, 3600))  # 1800 s free, then the hour holding beta's second
    assert isinstance(outcome, Rejection) and outcome.reason == CONFLICT
    assert len(billed(m)) == 1


def test_given_an_event_half_duplicate_half_conflicting_then_conflict():
    m = meter()
    m.apply(usage(T0, 10, tenant="acme"))
    m.apply(usage(T0 + 10, 10, tenant="beta"))
    outcome = m.apply(usage(T0 + 5, 10, tenant="acme"))
    assert isinstance(outcome, Rejection) and outcome.reason == CONFLICT
    assert Counter(billed(m).values()) == {
        ("sakura", "kddi", "acme", "H200"): 10,
        ("sakura", "kddi", "beta", "H200"): 10,
    }


def test_given_a_conflict_rejected_then_the_seconds_it_did_not_share_stay_free_for_others():
    m = meter()
    m.apply(usage(T0, 10, tenant="acme"))
    assert isinstance(m.apply(usage(T0 + 5, 20, tenant="beta")), Rejection)
    assert m.apply(usage(T0 + 10, 15, tenant="gamma")) == ACCEPTED


def test_given_adjacent_seconds_of_two_attributions_then_both_are_accepted():
    m = meter()
    assert m.apply(usage(T0, 10, tenant="acme")) == ACCEPTED
    assert m.apply(usage(T0 + 10, 10, tenant="beta")) == ACCEPTED
    assert m.apply(usage(T0 - 10, 10, tenant="gamma")) == ACCEPTED


def test_given_two_gpus_then_the_same_second_is_billed_once_for_each():
    m = meter()
    assert m.apply(usage(T0, 10, gpu="GPU-a", tenant="acme")) == ACCEPTED
    assert m.apply(usage(T0, 10, gpu="GPU-b", tenant="beta")) == ACCEPTED
    assert m.apply(usage(T0, 10, gpu="GPU-A", tenant="gamma")) == ACCEPTED  # case-sensitive
    assert len(billed(m)) == 30


def test_given_a_conflicting_and_a_duplicate_claim_then_the_billed_seconds_do_not_depend_on_their_order():
    """Of two conflicting claims the first processed is billed; duplicates never change that."""
    first = usage(T0, 30, tenant="acme")
    resend = usage(T0 + 10, 10, tenant="acme")
    rival = usage(T0 + 20, 30, tenant="beta")
    for order in ([first, resend, rival], [first, rival, resend], [resend, first, rival]):
        m = meter()
        outcomes = [m.apply(u) for u in order]
        assert isinstance(outcomes[order.index(rival)], Rejection)
        assert set(billed(m)) == seconds_of(first)
    m = meter()
    m.apply(rival)
    assert m.apply(first).reason == CONFLICT
    assert m.apply(resend) == ACCEPTED  # its seconds do not touch the rival's
    assert set(billed(m)) == seconds_of(rival) | seconds_of(resend)


# -- Splitting events at hours and periods ---------------------------------------------


def test_given_an_event_over_an_hour_boundary_then_it_is_split_into_hour_pieces():
    pieces = Pieces(JST).split(T0 + 1800, 3600)
    assert [(p.hour_start, p.mask, p.service_period) for p in pieces] == [
        (T0, ((1 << 1800) - 1) << 1800, "2026-10"),
        (T0 + 3600, (1 << 1800) - 1, "2026-10"),
    ]


def test_given_an_event_over_the_jst_month_boundary_then_its_seconds_go_to_two_service_periods():
    m = meter()
    assert m.apply(usage(SEP_END - 30, 60)) == ACCEPTED
    assert billed_periods(m) == {("2026-09", "2026-09"): 30, ("2026-10", "2026-10"): 30}


def test_given_an_event_over_utc_midnight_that_is_not_a_jst_boundary_then_one_service_period():
    m = meter()
    m.apply(usage(instant("2026-10-01T00:00:00Z") - 30, 60))
    m.apply(usage(instant("2026-10-31T23:59:30Z"), 60))  # UTC October, JST November
    assert billed_periods(m) == {("2026-10", "2026-10"): 30 + 30, ("2026-11", "2026-11"): 60}


def test_given_a_zone_whose_month_starts_mid_hour_then_the_hour_is_split_at_the_boundary():
    kolkata = calendar("Asia/Kolkata")  # +05:30: 2026-10 starts at 2026-09-30T18:30:00Z
    boundary = instant("2026-09-30T18:30:00Z")
    pieces = Pieces(kolkata).split(boundary - 60, 120)
    assert [(p.service_period, p.mask.bit_count()) for p in pieces] == [
        ("2026-09", 60),
        ("2026-10", 60),
    ]
    assert all(p.hour_start == instant("2026-09-30T18:00:00Z") for p in pieces)
    m = Meter(Pieces(kolkata), None)
    assert m.apply(usage(boundary - 60, 120)) == ACCEPTED
    assert m.apply(usage(boundary - 1, 2)) == DUPLICATE


SPLIT_ZONES = ("Asia/Tokyo", "UTC", "Asia/Kolkata", "America/St_Johns", "Australia/Lord_Howe")


@settings(max_examples=100, deadline=None)
@given(
    zone=st.sampled_from(SPLIT_ZONES),
    month=st.integers(1, 12),
    shift=st.integers(-3 * 3600, 3 * 3600),
    seconds=st.integers(1, 3600),
)
def test_property_pieces_cover_the_event_once_each_in_its_second_s_service_period(
    zone, month, shift, seconds
):
    """Given an event near a month boundary of any zone (half-hour offsets included),
    then its pieces cover each of its seconds exactly once, inside one UTC hour, and
    each piece lies in one service period: the one of its seconds."""
    cal = calendar(zone)
    start = cal.bounds(f"2026-{month:02d}")[0] + shift
    covered = []
    for piece in Pieces(cal).split(start, seconds):
        assert piece.hour_start % 3600 == 0 and 0 < piece.mask < 1 << 3600
        for index in range(3600):
            if piece.mask >> index & 1:
                covered.append(piece.hour_start + index)
                assert cal.period_of(piece.hour_start + index) == piece.service_period
    assert covered == list(range(start, start + seconds))


# -- Booking periods after a close -----------------------------------------------------


@pytest.mark.parametrize(
    ("service", "closed_through", "booking"),
    [
        ("2026-09", None, "2026-09"),
        ("2026-10", "2026-09", "2026-10"),
        ("2026-09", "2026-09", "2026-10"),
        ("2026-08", "2026-09", "2026-10"),
        ("2026-09", "2026-10", "2026-11"),
        ("2026-12", "2026-12", "2027-01"),
        ("2027-01", "2026-12", "2027-01"),
    ],
)
def test_given_the_books_closed_through_a_month_then_a_second_is_booked_in_the_first_open_one(
    service, closed_through, booking
):
    assert booking_period_for(service, closed_through) == booking


def test_given_september_closed_when_late_september_usage_arrives_then_booked_in_october_keeping_its_service_period():
    m = meter(closed_through="2026-09")
    assert m.apply(usage(SEP_END - 3600, 3600)) == ACCEPTED
    assert billed_periods(m) == {("2026-09", "2026-10"): 3600}


def test_given_books_closed_through_october_then_late_september_usage_is_booked_in_november():
    """Closing October closes September too: nothing is booked into September or October."""
    m = meter(closed_through="2026-10")
    m.apply(usage(SEP_END - 30, 60))
    assert billed_periods(m) == {("2026-09", "2026-11"): 30, ("2026-10", "2026-11"): 30}


def test_given_an_event_straddling_a_closed_and_an_open_month_then_each_part_is_booked_right():
    m = meter(closed_through="2026-09")
    m.apply(usage(SEP_END - 30, 60))
    assert billed_periods(m) == {("2026-09", "2026-10"): 30, ("2026-10", "2026-10"): 30}


def test_given_seconds_billed_before_a_close_then_after_it_they_are_still_duplicates_or_conflicts():
    m = meter()
    m.apply(usage(SEP_END - 60, 60))
    m.closed_through = "2026-09"
    assert m.apply(usage(SEP_END - 60, 60)) == DUPLICATE
    assert m.apply(usage(SEP_END - 30, 30, tenant="beta")).reason == CONFLICT
    assert m.apply(usage(SEP_END - 90, 60)) == ACCEPTED  # 30 new seconds
    assert billed_periods(m) == {("2026-09", "2026-09"): 60, ("2026-09", "2026-10"): 30}


def test_given_bitmaps_already_stored_when_loaded_then_they_count_as_billed():
    first = meter()
    first.apply(usage(T0, 100))
    second = meter()
    for key, bits in first.changed():
        second.load(key, bits)
    assert second.apply(usage(T0, 100)) == DUPLICATE
    assert second.apply(usage(T0 + 50, 10, tenant="beta")).reason == CONFLICT
    assert second.changed() == []


# -- Property tests ----------------------------------------------------------------------
# Events live in the two hours around the September/October boundary (JST), on three
# GPUs; the catalog changes kddi's H200 price and its agreement with sakura mid-hour, so
# rating sees split months, split hours and split versions.

WINDOW_START = SEP_END - 3600
WINDOW = 7200
PROPERTY_CATALOG = catalog_text(
    *DEFAULT_VERSIONS,
    price("kddi", "H200", "860.5", "2026-10-01T00:20:00+09:00"),
    agreement("kddi", "sakura", "H200", share_bps=6800, effective_from="2026-09-30T23:40:00+09:00"),
)
RECEIPT_MS = ms("2026-10-02T00:00:00Z")
GPUS = ("GPU-a", "GPU-b", "GPU-A")
ATTRIBUTIONS = (
    ("sakura", "kddi", "acme", "H200"),
    ("sakura", "kddi", "beta", "H200"),
    ("kddi", "kddi", "acme", "H200"),
    ("highreso", "kddi", "acme", "H200"),
    ("kddi", "sakura", "zeta", "H200"),
)
PERIODS = ("2026-09", "2026-10", "2026-11")


def event_json(gpu: str, attribution: tuple, offset: int, seconds: int) -> dict:
    provider, reseller, tenant, sku = attribution
    return usage_event(
        time=format_utc(WINDOW_START + offset),
        seconds=seconds,
        provider=provider,
        reseller=reseller,
        tenant=tenant,
        gpu_uuid=gpu,
        sku=sku,
    )


def event_seconds(event: dict) -> set[tuple[str, int]]:
    start = instant(event["time"])
    return {(event["data"]["gpu_uuid"], s) for s in range(start, start + event["data"]["seconds"])}


def ledger_billed(ledger) -> dict[tuple[str, int], tuple]:
    return billed(ledger._meter)


def statements(ledger) -> dict[str, dict]:
    return {period: ledger.settle(period) for period in PERIODS}


@st.composite
def any_events(draw, max_size: int = 12) -> list[dict]:
    """Valid events on the window, conflicts allowed."""
    out = []
    for _ in range(draw(st.integers(1, max_size))):
        offset = draw(st.integers(0, WINDOW - 1))
        seconds = draw(st.one_of(st.integers(1, 120), st.integers(1, 3600)))
        seconds = min(seconds, WINDOW - offset)
        out.append(
            event_json(
                draw(st.sampled_from(GPUS)), draw(st.sampled_from(ATTRIBUTIONS)), offset, seconds
            )
        )
    return out


# Ownership regions: each (gpu, region) has one attribution, and events stay inside one
# region, so no two events conflict. The second region straddles the month boundary.
REGIONS = ((0, 3000), (3000, WINDOW))


@st.composite
def non_conflicting_events(draw) -> list[dict]:
    owners = {
        (gpu, region): draw(st.sampled_from(ATTRIBUTIONS))
        for gpu in GPUS
        for region in range(len(REGIONS))
    }
    out = []
    for _ in range(draw(st.integers(1, 10))):
        gpu = draw(st.sampled_from(GPUS))
        region = draw(st.integers(0, len(REGIONS) - 1))
        low, high = REGIONS[region]
        offset = draw(st.integers(low, high - 1))
        seconds = draw(st.integers(1, min(3600, high - offset)))
        out.append(event_json(gpu, owners[(gpu, region)], offset, seconds))
    # Re-sends and sub-ranges of events already drawn: duplicates and partial overlaps.
    for _ in range(draw(st.integers(0, 5))):
        base = draw(st.sampled_from(out))
        start, length = instant(base["time"]), base["data"]["seconds"]
        cut = draw(st.integers(0, length - 1))
        keep = draw(st.integers(1, length - cut))
        data = base["data"]
        out.append(
            usage_event(
                time=format_utc(start + cut),
                seconds=keep,
                provider=data["provider"],
                reseller=data["reseller"],
                tenant=data["tenant"],
                gpu_uuid=data["gpu_uuid"],
                sku=data["sku"],
                event_id="resend",
            )
        )
    return out


def receive_all(ledger, evs: list[dict]) -> list[str]:
    return [ledger.receive(encode(e), RECEIPT_MS) for e in evs]


@settings(max_examples=60, deadline=None)
@given(data=st.data(), evs=non_conflicting_events())
def test_property_billed_seconds_and_amounts_do_not_depend_on_arrival_order(data, evs):
    """Given non-conflicting events with duplicates and overlaps, when received in any
    order, then the same seconds are billed and every statement amount is the same."""
    shuffled = data.draw(st.permutations(evs))
    first, second = new_ledger(PROPERTY_CATALOG), new_ledger(PROPERTY_CATALOG)
    outcomes = receive_all(first, evs) + receive_all(second, shuffled)
    assert set(outcomes) <= {"accepted", "duplicate"}
    assert ledger_billed(first) == ledger_billed(second)
    assert statements(first) == statements(second)
    for statement in statements(first).values():
        assert sum(statement["net_yen"].values()) == 0


@settings(max_examples=60, deadline=None)
@given(evs=any_events(), data=st.data())
def test_property_replaying_a_received_event_is_a_duplicate_and_changes_no_amount(evs, data):
    """Given events received (conflicts included), when any of them is received again,
    then it is a duplicate (or rejected again, if it was a conflict) and no amount changes."""
    ledger = new_ledger(PROPERTY_CATALOG)
    outcomes = receive_all(ledger, evs)
    before = statements(ledger)
    replays = data.draw(st.lists(st.integers(0, len(evs) - 1), min_size=1, max_size=len(evs)))
    for index in replays:
        again = receive_all(ledger, [evs[index]])[0]
        assert again == (
            "duplicate" if outcomes[index] in ("accepted", "duplicate") else outcomes[index]
        )
    assert statements(ledger) == before


@settings(max_examples=60, deadline=None)
@given(evs=any_events())
def test_property_no_gpu_second_is_billed_twice(evs):
    """Given any events, then the lines' gpu_seconds add up to the number of distinct
    (gpu, second) of the events that were accepted or duplicates."""
    ledger = new_ledger(PROPERTY_CATALOG)
    outcomes = receive_all(ledger, evs)
    covered = set()
    for event, outcome in zip(evs, outcomes, strict=True):
        assert outcome in ("accepted", "duplicate", CONFLICT)
        if outcome != CONFLICT:
            covered |= event_seconds(event)
    assert sum(total_gpu_seconds(s) for s in statements(ledger).values()) == len(covered)
    assert set(ledger_billed(ledger)) == covered


class MeterMachine(RuleBasedStateMachine):
    """The ledger against a dict (gpu, second) -> attribution, with closes in between."""

    def __init__(self) -> None:
        super().__init__()
        self.ledger = new_ledger(PROPERTY_CATALOG)
        self.model: dict[tuple[str, int], tuple] = {}

    @rule(
        gpu=st.sampled_from(GPUS),
        attribution=st.sampled_from(ATTRIBUTIONS),
        offset=st.integers(0, WINDOW - 1),
        seconds=st.one_of(st.integers(1, 30), st.integers(1, 3600)),
    )
    def receive(self, gpu, attribution, offset, seconds):
        seconds = min(seconds, WINDOW - offset)
        event = event_json(gpu, attribution, offset, seconds)
        claimed = event_seconds(event)
        if any(self.model.get(s, attribution) != attribution for s in claimed):
            expected = CONFLICT
        elif all(s in self.model for s in claimed):
            expected = "duplicate"
        else:
            expected = "accepted"
            self.model.update(dict.fromkeys(claimed, attribution))
        hypothesis_event(expected)
        assert receive_all(self.ledger, [event]) == [expected]

    @rule(period=st.sampled_from(("2026-09", "2026-10")))
    def close(self, period):
        self.ledger.settle(period, close=True)

    @invariant()
    def billed_seconds_match_the_model(self):
        assert ledger_billed(self.ledger) == self.model

    @invariant()
    def statements_bill_each_attribution_its_seconds(self):
        by_attribution = Counter()
        for statement in statements(self.ledger).values():
            for line in statement["lines"]:
                key = (line["provider"], line["reseller"], line["tenant"], line["sku"])
                by_attribution[key] += line["gpu_seconds"]
        assert by_attribution == Counter(self.model.values())


MeterMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_meter_against_a_dict_model = MeterMachine.TestCase


# -- voids (SPEC.md, "Corrections") -------------------------------------------------------

ACME = ("sakura", "kddi", "acme", "H200")
BETA = ("sakura", "kddi", "beta", "H200")


def test_a_void_takes_back_only_the_seconds_billed_to_its_attribution_in_its_interval():
    m = meter()
    assert m.apply(usage(T0, 600)) == ACCEPTED
    assert m.apply(usage(T0 + 600, 60, tenant="beta")) == ACCEPTED
    [(key, bits)] = m.void("GPU-1", ACME, T0 + 100, T0 + 700)
    assert key.attribution == ACME and bits == ((1 << 500) - 1) << 100
    assert m.void("GPU-1", ACME, T0 + 100, T0 + 700) == []  # nothing left to void there
    assert m.void("GPU-1", ACME, T0 + 3600, T0 + 7200) == []


def test_a_voided_second_is_a_duplicate_for_its_attribution_and_new_for_another():
    m = meter()
    m.apply(usage(T0, 10))
    m.void("GPU-1", ACME, T0, T0 + 5)
    assert m.apply(usage(T0, 10)) == DUPLICATE  # a re-send cannot bring them back
    assert m.apply(usage(T0, 5, tenant="beta")) == ACCEPTED  # the conflict resolved: beta bills them
    assert isinstance(m.apply(usage(T0, 5)), Rejection)  # billed to beta now: a conflict for acme
    assert m.apply(usage(T0 + 5, 5, tenant="beta")).reason == CONFLICT  # acme's remaining seconds


def test_stored_voids_load_in_any_order_with_the_claims():
    first, second = meter(), meter()
    m = meter()
    m.apply(usage(T0, 10))
    [(key, bits)] = m.void("GPU-1", ACME, T0, T0 + 5)
    claims = m.changed()
    first.load(*claims[0])
    first.load_voided(key.gpu_uuid, key.hour_start, ACME, bits)
    second.load_voided(key.gpu_uuid, key.hour_start, ACME, bits)
    second.load(*claims[0])
    for loaded in (first, second):
        assert loaded.apply(usage(T0, 10)) == DUPLICATE
        assert loaded.apply(usage(T0, 5, tenant="beta")) == ACCEPTED
        assert loaded.billed(key) == ((1 << 10) - 1) & ~((1 << 5) - 1)


def test_a_void_across_hours_and_booking_periods_names_each_claim():
    m = meter()
    m.apply(usage(SEP_END - 30, 60))  # 30 s of September and 30 s of October in one hour
    taken = m.void("GPU-1", ACME, SEP_END - 10, SEP_END + 10)
    assert sorted((k.service_period, bin(b).count("1")) for k, b in taken) == [("2026-09", 10), ("2026-10", 10)]
