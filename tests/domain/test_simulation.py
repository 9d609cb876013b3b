"""The simulated fleet of `gpuledger simulate`: its reports are billable usage events.

Given a catalog (members, SKUs, prices, agreements, the GPU registry), when a seeded
`Simulation` runs over simulated time, then every report passes SPEC.md's checks at the
moment it is sent, tenants come and go, the second collector's and the re-sent reports
are duplicates (never conflicts), late ones stay inside the horizon, and about `rate`
events are sent per second. No services, no clock: seconds of simulated time.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import pytest

from ledger.domain import events
from ledger.domain.catalog import Catalog
from ledger.domain.errors import InputError
from ledger.domain.fleet import choose_fleet
from ledger.domain.metering import ACCEPTED, DUPLICATE, Meter, Pieces
from ledger.domain.simulation import (
    LATE,
    RESEND,
    SECOND_COLLECTOR,
    Counts,
    Report,
    Simulation,
    SimulationConfig,
    report_windows,
)
from schemas.event import UsageEvent
from tests.domain.test_registry import gpu, grant, registry_catalog
from tests.factories import DEFAULT_CATALOG, DEFAULT_VERSIONS, catalog_text, instant, load

START = instant("2026-12-01T10:00:00+09:00")  # kddi's B200 price is in effect from December
HOUR = 3600
DEFAULTS = SimulationConfig()
TENANT = re.compile(r"[a-z]+-[a-z]+-[0-9a-f]{4}")

REGISTRY = registry_catalog(
    gpu("GPU-s1"), gpu("GPU-s2"), gpu("GPU-s3"),
    gpu("GPU-k1", provider="kddi"), gpu("GPU-k2", provider="kddi"),
    gpu("GPU-h1", provider="highreso"),
    gpu("GPU-retiring", retired_from="2026-12-01T10:30:00+09:00"),
    gpu("GPU-retired", retired_from="2026-11-01T00:00:00+09:00"),
    gpu("GPU-gb200", sku="GB200"),  # nobody has a price of GB200
    gpu("GPU-h100", sku="H100"),  # kddi prices H100 but has no agreement with sakura for it
    grant(reseller="kddi", tenant="acme"),
)


def simulate(
    text: str = REGISTRY, *, gpus: int | None = None, seconds: int = HOUR, seed: int = 7,
    rate: float | None = None, config: SimulationConfig = DEFAULTS, step: int = 1,
) -> tuple[Simulation, list[Report]]:
    """Every report of a run of `seconds`, in sending order, the clock stepped by `step`."""
    catalog = load(text)
    simulation = Simulation(choose_fleet(catalog, START, gpus, seed).gpus, catalog, START, seed, rate, config)
    reports = []
    for now in range(START + step, START + seconds + 1, step):
        reports.extend(simulation.advance(now))
    reports.extend(simulation.finish(START + seconds))
    return simulation, reports


def data(report: Report) -> dict:
    return events.decode(report.raw)["data"]


# -- the fleet ------------------------------------------------------------------------------


def test_the_fleet_is_the_registered_gpus_in_service_that_a_member_can_bill():
    fleet = choose_fleet(load(REGISTRY), START, None, seed=1)
    assert [g.uuid for g in fleet.gpus] == ["GPU-h1", "GPU-k1", "GPU-k2", "GPU-retiring", "GPU-s1", "GPU-s2", "GPU-s3"]
    assert (fleet.registered_in_service, fleet.unbillable, fleet.synthesised) == (7, 2, 0)
    by_uuid = {g.uuid: g for g in fleet.gpus}
    assert by_uuid["GPU-s1"].resellers == ("kddi", "sakura")  # its provider, and kddi by agreement
    assert by_uuid["GPU-h1"].resellers == ("highreso", "kddi")
    assert len(choose_fleet(load(REGISTRY), START, 3, seed=1).gpus) == 3


def test_more_gpus_than_registered_is_refused_when_the_catalog_requires_registration():
    with pytest.raises(InputError, match=r"only 7 registered GPUs .* --gpus 7 .*gpuledger gpus load"):
        choose_fleet(load(REGISTRY), START, 8, seed=1)
    with pytest.raises(InputError, match="no registered GPU is in service.*gpuledger gpus load"):
        choose_fleet(load(registry_catalog()), START, None, seed=1)


def test_unregistered_gpus_are_synthesised_only_where_the_catalog_allows_them():
    fleet = choose_fleet(load(DEFAULT_CATALOG), START, None, seed=1)
    assert (len(fleet.gpus), fleet.synthesised) == (8, 8)
    assert all(re.fullmatch(r"GPU-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", g.uuid) for g in fleet.gpus)
    loose = registry_catalog(gpu("GPU-s1"), required=False)
    mixed = choose_fleet(load(loose), START, 5, seed=1)
    assert (mixed.gpus[0].uuid, mixed.synthesised) == ("GPU-s1", 4)


def test_without_a_catalog_there_is_nothing_to_simulate():
    with pytest.raises(InputError, match="gpuledger catalog load"):
        choose_fleet(Catalog(), START, 4, seed=1)


# -- the reports ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", [REGISTRY, DEFAULT_CATALOG], ids=["registered", "synthesised"])
def test_every_report_is_a_usage_event_the_ledger_bills_when_it_is_sent(text):
    catalog = load(text)
    _, reports = simulate(text)
    assert len(reports) > 10_000
    for report in reports:
        event = events.decode(report.raw)
        UsageEvent.model_validate(event)  # the wire contract
        usage = events.check(event, report.send_at * 1000, catalog)  # checks 2 to 9
        assert isinstance(usage, events.Usage), (usage, event)
        assert (usage.start, usage.seconds) == (report.start, report.seconds)
        assert report.send_at >= usage.start + usage.seconds  # reported once the seconds are over


def test_a_retired_gpu_reports_nothing_after_it_leaves_service():
    _, reports = simulate(seconds=2 * HOUR)
    retiring = [r for r in reports if data(r)["gpu_uuid"] == "GPU-retiring"]
    assert retiring and max(r.start + r.seconds for r in retiring) <= instant("2026-12-01T10:30:00+09:00")


def test_tenants_come_and_go():
    config = SimulationConfig(mean_session_seconds=300, mean_idle_seconds=60)
    _, reports = simulate(seconds=2 * HOUR, config=config)
    tenants_of: dict[str, list[tuple[str, str]]] = defaultdict(list)
    busy: Counter = Counter()
    for report in sorted((r for r in reports if r.kind not in (RESEND, SECOND_COLLECTOR)), key=lambda r: r.start):
        fields = data(report)
        attribution = (fields["reseller"], fields["tenant"])
        if not tenants_of[fields["gpu_uuid"]] or tenants_of[fields["gpu_uuid"]][-1] != attribution:
            tenants_of[fields["gpu_uuid"]].append(attribution)
        busy[fields["gpu_uuid"]] += report.seconds
    assert all(len(sessions) >= 3 for sessions in tenants_of.values()), tenants_of
    assert sum(map(len, tenants_of.values())) >= 10 * len(tenants_of)
    assert all(seconds < 2 * HOUR for seconds in busy.values())  # and they idle in between
    names = {tenant for sessions in tenants_of.values() for _, tenant in sessions}
    assert all(TENANT.fullmatch(name) or name == "acme" for name in names), names
    resellers = {reseller for sessions in tenants_of.values() for reseller, _ in sessions}
    assert resellers == {"kddi", "sakura", "highreso"}


@pytest.mark.parametrize("order", ["as sent", "reversed"])
def test_the_second_collector_and_re_sends_are_duplicates_never_conflicts(order):
    catalog = load(REGISTRY)
    config = SimulationConfig(resend_share=0.1, second_collector_share=0.5)
    _, reports = simulate(config=config)
    counts = Counts()
    counts.add(reports)
    assert counts.second_collector > 1000 and counts.resent > 100
    meter = Meter(Pieces(catalog.calendar), None)
    verdicts = Counter()
    for report in reports if order == "as sent" else reversed(reports):
        verdict = meter.apply(events.check(events.decode(report.raw), report.send_at * 1000, catalog))
        verdicts[verdict if verdict in (ACCEPTED, DUPLICATE) else verdict.reason] += 1
    # Whichever report of a GPU-second arrives first bills it; every other is a duplicate.
    assert verdicts == {ACCEPTED: counts.reports, DUPLICATE: counts.resent + counts.second_collector}


def test_each_rented_second_is_reported_once_by_the_first_collector():
    _, reports = simulate()
    seen: set[tuple[str, int]] = set()
    counts = Counts()
    counts.add(reports)
    for report in reports:
        if report.kind in (RESEND, SECOND_COLLECTOR):
            continue
        seconds = {(data(report)["gpu_uuid"], s) for s in range(report.start, report.start + report.seconds)}
        assert not seconds & seen
        seen |= seconds
    assert len(seen) == counts.gpu_seconds and all(START <= s < START + HOUR for _, s in seen)


def test_late_reports_arrive_minutes_late_and_inside_the_acceptance_horizon():
    catalog = load(REGISTRY)
    _, reports = simulate(config=SimulationConfig(late_share=0.2))
    late = [r for r in reports[:-200] if r.kind == LATE]  # the last ones were sent when the run ended
    assert len(late) > 1000
    assert all(60 <= r.send_at - (r.start + r.seconds) <= 600 for r in late)
    horizon_ms = catalog.acceptance_horizon_days * 86_400_000
    assert all(r.start * 1000 >= r.send_at * 1000 - horizon_ms for r in late)


def test_a_horizon_too_short_for_minutes_has_no_late_reports():
    short = catalog_text(*DEFAULT_VERSIONS, settings="acceptance_horizon_days = 0\n")
    counts = Counts()
    counts.add(simulate(short, gpus=4, seconds=600, config=SimulationConfig(late_share=1.0))[1])
    assert counts.reports > 0 and counts.late == 0


# -- rate and reproducibility ----------------------------------------------------------------


def test_by_default_every_gpu_second_is_its_own_report():
    simulation, reports = simulate(DEFAULT_CATALOG, gpus=20, seconds=600)
    assert set(simulation.windows) == {1} and {r.seconds for r in reports} == {1}


@pytest.mark.parametrize("rate", [3.0, 8.0, 25.0])
def test_about_rate_events_are_sent_per_second(rate):
    config = SimulationConfig(mean_session_seconds=300, mean_idle_seconds=30)
    simulation, reports = simulate(DEFAULT_CATALOG, gpus=40, seconds=HOUR, rate=rate, config=config, step=60)
    assert simulation.expected_rate == pytest.approx(rate, rel=0.02)
    assert len(reports) / HOUR == pytest.approx(rate, rel=0.1)


def test_windows_make_the_asked_rate_and_stay_within_spec():
    config = SimulationConfig(resend_share=0, second_collector_share=0, mean_session_seconds=1, mean_idle_seconds=0)
    windows = report_windows(20, 7.0, config, 0)
    assert sorted(set(windows)) == [2, 3] and sum(1 / w for w in windows) == pytest.approx(7.0)
    assert report_windows(20, 100.0, config, 0) == [1] * 20  # faster than real time: 1 s reports
    assert report_windows(20, 0.001, config, 0) == [3600] * 20


def test_the_same_seed_gives_the_same_reports_however_the_clock_is_stepped():
    _, by_second = simulate(seconds=1200, step=1)
    _, by_minute = simulate(seconds=1200, step=60)
    _, other_seed = simulate(seconds=1200, seed=8)
    assert by_second == by_minute
    assert [r.raw for r in by_second] != [r.raw for r in other_seed]
