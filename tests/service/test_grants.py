"""Grants as funders and resellers follow them (GET /v1/grants, gpuledger grants list)."""

from __future__ import annotations

from ledger.domain.access import OPERATOR, Caller
from ledger.domain.usage import UsageFilter
from ledger.memory.store import MemoryStore
from ledger.service import books, grants, usage
from ledger.service.intake import Intake
from tests.domain.test_registry import grant
from tests.factories import DEFAULT_VERSIONS, catalog_text, encode, instant, ms, usage_event
from tests.service.conftest import LoopbackPublisher, deliver, load_catalog

NOW = instant("2026-11-02T00:00:00+09:00")


async def ledger_with_grants():
    store = MemoryStore(clock=lambda: NOW)
    await load_catalog(store, catalog_text(
        *DEFAULT_VERSIONS,
        grant("poc-acme", funder="highreso", amount=1000, first="2026-09", last="2026-10"),
        grant("sep-only", funder="kddi", tenant="beta", amount=5000, first="2026-09", last="2026-09"),
    ))
    publisher = LoopbackPublisher(clock_ms=lambda: ms("2026-10-31T00:00:00Z"))
    events = [usage_event(time="2026-09-29T00:00:00Z", seconds=3600, gpu_uuid="G-1"),
              usage_event(time="2026-10-05T00:00:00Z", seconds=3600, gpu_uuid="G-2"),
              usage_event(time="2026-09-29T00:00:00Z", seconds=3600, tenant="beta", gpu_uuid="G-3")]
    await publisher.send_events([encode(e) for e in events], "one")
    await deliver(publisher, Intake(store))
    return store


async def test_funders_and_resellers_see_their_grants_and_no_one_else_does():
    store = await ledger_with_grants()
    everything = await grants.report(store, OPERATOR, now=NOW)
    assert [g["id"] for g in everything["grants"]] == ["poc-acme", "sep-only"]
    assert [g["id"] for g in (await grants.report(store, Caller("t", "member", "highreso"), now=NOW))["grants"]] == ["poc-acme"]
    assert [g["id"] for g in (await grants.report(store, Caller("t", "member", "kddi"), now=NOW))["grants"]] == ["poc-acme", "sep-only"]
    assert (await grants.report(store, Caller("t", "member", "sakura"), now=NOW))["grants"] == []


async def test_draws_per_period_balance_and_what_lapses_once_no_usage_can_still_arrive():
    store = await ledger_with_grants()
    report = {g["id"]: g for g in (await grants.report(store, OPERATOR, now=NOW))["grants"]}
    assert report["poc-acme"]["drawn"] == {"2026-09": 780, "2026-10": 220}
    assert report["poc-acme"]["balance_yen"] == 0 and report["poc-acme"]["lapsed_yen"] == 0
    beta = report["sep-only"]
    assert (beta["drawn"], beta["balance_yen"], beta["lapsed_yen"]) == ({"2026-09": 780}, 4220, 0)
    later = {g["id"]: g for g in (await grants.report(store, OPERATOR, now=NOW + 40 * 86400))["grants"]}
    assert later["sep-only"]["lapsed_yen"] == 4220  # the horizon after September has passed
    through_september = await grants.report(store, OPERATOR, "2026-09", now=NOW)
    assert through_september["grants"][0]["drawn"] == {"2026-09": 780}


async def test_a_closed_periods_draws_are_read_back_and_the_usage_api_estimates_the_current_ones():
    store = await ledger_with_grants()
    await books.statement(store, "2026-09", close=True)
    assert (await grants.report(store, OPERATOR, now=NOW))["grants"][0]["drawn"] == {"2026-09": 780, "2026-10": 220}
    catalog, _ = await store.catalog()
    in_october = instant("2026-10-20T00:00:00+09:00")
    page = await usage.query(store, catalog, Caller("t", "member", "highreso"), b"k" * 32,
                             usage.UsageRequest(where=UsageFilter(service_period="2026-10"), credits=True), now=in_october)
    assert page["credit_estimate"] == {"period": "2026-10", "grant_draws": [
        {"grant": "poc-acme", "funder": "highreso", "reseller": "kddi", "tenant": "acme", "amount_yen": 220,
         "restored_yen": 0}]}
    sakura = await usage.query(store, catalog, Caller("t", "member", "sakura"), b"k" * 32,
                               usage.UsageRequest(where=UsageFilter(service_period="2026-10"), credits=True), now=in_october)
    assert sakura["credit_estimate"]["grant_draws"] == []
    assert "credit_estimate" not in await usage.query(store, catalog, OPERATOR, b"", usage.UsageRequest(where=UsageFilter(service_period="2026-10")))
