"""Voids on the in-memory store (SPEC.md, "Corrections"): who voids, what is taken back,
and what a re-send, another attribution and the statements then see.

Usage is kddi's tenant acme on sakura's GPU-1 (780 yen/h retail, 520 wholesale) in
October 2026; the store's clock reads 2026-11-02 JST, so October can be closed.
"""

from __future__ import annotations

import orjson
import pytest

from ledger.domain.access import OPERATOR, Caller
from ledger.domain.disputes import parse_interval
from ledger.domain.errors import Forbidden, InputError
from ledger.memory.store import MemoryStore
from ledger.service import books, corrections, reports
from ledger.service import ingest as ingest_service
from ledger.service.intake import Intake
from tests.factories import DEFAULT_CATALOG, encode, usage_event
from tests.service.conftest import LoopbackPublisher, deliver, load_catalog
from tests.service.test_books import NOV_1_JST, bill

SAKURA = Caller("t-sakura", "member", "sakura")
KDDI = Caller("t-kddi", "member", "kddi")


def acme(start: str = "2026-10-03T12:00:00Z", end: str = "2026-10-03T13:00:00Z", tenant: str = "acme"):
    return parse_interval("GPU-0001", start, end, "sakura", "kddi", tenant, "H200")


@pytest.fixture
async def ledger():
    """A store whose clock reads 2026-11-02 JST (October may close), the default catalog loaded."""
    store = MemoryStore(clock=lambda: NOV_1_JST + 86400)
    await load_catalog(store, DEFAULT_CATALOG)
    return store, LoopbackPublisher(clock_ms=lambda: (NOV_1_JST - 3600) * 1000, batch=False)


async def statement(store, period: str, close: bool = False) -> dict:
    return orjson.loads(await books.statement(store, period, close=close))


async def test_a_void_in_an_open_period_takes_its_seconds_off_the_lines(ledger):
    store, publisher = ledger
    await bill(store, publisher, time="2026-10-03T12:00:00Z", seconds=3600)
    made = await corrections.void(store, SAKURA, acme("2026-10-03T12:00:00Z", "2026-10-03T12:30:00Z"), "outage")
    assert made["gpu_seconds"] == 1800 and made["void"].startswith("void-")
    october = await statement(store, "2026-10")
    assert [(line["gpu_seconds"], line["retail_yen"]) for line in october["lines"]] == [(1800, 390)]
    assert october["returns"] == []
    capacity = await reports.capacity(store, "2026-10")
    assert sum(row["billed_gpu_seconds"] for row in capacity["rows"]) == 1800


async def test_nothing_billed_in_the_interval_is_refused_and_changes_nothing(ledger):
    store, publisher = ledger
    await bill(store, publisher, time="2026-10-03T12:00:00Z", seconds=60)
    with pytest.raises(corrections.NothingToVoid):
        await corrections.void(store, OPERATOR, acme(tenant="beta"), "other")
    await corrections.void(store, OPERATOR, acme(), "other")
    with pytest.raises(corrections.NothingToVoid):  # the same seconds again
        await corrections.void(store, OPERATOR, acme(), "other")
    assert len((await corrections.listing(store, OPERATOR))["voids"]) == 1


async def test_only_the_provider_and_the_operator_void(ledger):
    store, publisher = ledger
    await bill(store, publisher, time="2026-10-03T12:00:00Z", seconds=60)
    with pytest.raises(Forbidden, match="dispute"):
        await corrections.void(store, KDDI, acme(), "not_used")  # the reseller disputes
    with pytest.raises(Forbidden):
        await corrections.void(store, Caller("a", "auditor", None), acme(), "not_used")
    with pytest.raises(InputError, match="reason"):
        await corrections.void(store, SAKURA, acme(), "because")
    assert (await corrections.void(store, SAKURA, acme(), "not_used"))["gpu_seconds"] == 60


async def test_a_resend_stays_voided_and_another_attribution_may_bill_the_seconds(ledger):
    store, publisher = ledger
    await bill(store, publisher, time="2026-10-03T12:00:00Z", seconds=60)
    await corrections.void(store, OPERATOR, acme(), "wrong_tenant")
    resent = await bill_counts(store, publisher, "resend", tenant="acme")
    assert resent == {"received": 1, "accepted": 0, "duplicate": 1, "rejected": {}}
    assert (await bill_counts(store, publisher, "beta", tenant="beta"))["accepted"] == 1
    assert (await bill_counts(store, publisher, "acme-again", tenant="acme"))["rejected"] == {"conflict": 1}
    lines = (await statement(store, "2026-10"))["lines"]
    assert [(line["tenant"], line["gpu_seconds"]) for line in lines] == [("beta", 60)]


async def test_voids_are_seen_by_their_provider_and_reseller_only(ledger):
    store, publisher = ledger
    await bill(store, publisher, time="2026-10-03T12:00:00Z", seconds=60)
    await corrections.void(store, SAKURA, acme(), "outage")
    for who, count in ((SAKURA, 1), (KDDI, 1), (Caller("t-h", "member", "highreso"), 0), (OPERATOR, 1)):
        assert len((await corrections.listing(store, who))["voids"]) == count


async def bill_counts(store, publisher, ingest_id: str, **fields) -> dict:
    await publisher.send_events([encode(usage_event(time="2026-10-03T12:00:00Z", seconds=60, **fields))], ingest_id)
    await deliver(publisher, Intake(store))
    return await ingest_service.tally(store, ingest_id)


async def test_seconds_voided_after_their_period_closed_are_returned_by_the_first_open_one(ledger):
    store, publisher = ledger
    await bill(store, publisher, time="2026-10-03T12:00:00Z", seconds=3600)
    closed = await books.statement(store, "2026-10", close=True)
    await corrections.void(store, SAKURA, acme("2026-10-03T12:00:00Z", "2026-10-03T12:30:00Z"), "outage")
    assert await books.statement(store, "2026-10") == closed  # a closed statement never changes
    november = await statement(store, "2026-11")
    [returned] = november["returns"]
    assert {k: returned[k] for k in ("booking_period", "service_period", "gpu_seconds", "retail_yen",
                                     "wholesale_yen", "tenant_refund_yen", "credit_restored_yen")} == {
        "booking_period": "2026-10", "service_period": "2026-10", "gpu_seconds": 1800,
        "retail_yen": 390, "wholesale_yen": 260, "tenant_refund_yen": 390, "credit_restored_yen": 0}
    assert november["lines"] == [] and november["grant_draws"] == []
    [tenant] = november["tenant_invoices"]  # a net refund: tax rounds toward zero
    assert (tenant["retail_yen"], tenant["subtotal_yen"], tenant["tax_yen"], tenant["total_yen"]) == (-390, -390, -39, -429)
    [member] = november["member_invoices"]
    assert (member["subtotal_yen"], member["tax_yen"], member["total_yen"]) == (-260, -26, -286)
    assert november["net_yen"] == {"highreso": 0, "kddi": 286, "sakura": -286}
    assert november["transfers"] == [{"from": "sakura", "to": "kddi", "amount_yen": 286}]
    again = await corrections.void(store, SAKURA, acme("2026-10-03T12:30:00Z", "2026-10-03T12:30:01Z"), "outage")
    assert again["gpu_seconds"] == 1
    [returned] = (await statement(store, "2026-11"))["returns"]  # one return per original line
    # 780 - floor(1799 * 780 / 3600) and 520 - floor(1799 * 520 / 3600): what is still billed
    assert (returned["gpu_seconds"], returned["retail_yen"], returned["wholesale_yen"]) == (1801, 391, 261)
