"""The books on the in-memory store: closing, late usage, stored bytes, the journal's check."""

from __future__ import annotations

import orjson
import pytest

from ledger.domain.errors import CatalogError, PeriodError, VerificationFailed
from ledger.memory.store import MemoryStore
from ledger.service import books, verification
from ledger.service.intake import Intake
from tests.factories import DEFAULT_CATALOG, encode, instant, price, usage_event
from tests.service.conftest import LoopbackPublisher, deliver, load_catalog

NOV_1_JST = instant("2026-11-01T00:00:00+09:00")


def at(text: str) -> float:
    return float(instant(text))


async def bill(store, publisher, **fields) -> None:
    await publisher.send_events([encode(usage_event(**fields))], "ingest")
    await deliver(publisher, Intake(store))


async def statement(store, period: str, close: bool = False) -> dict:
    return orjson.loads(await books.statement(store, period, close=close))


@pytest.fixture
async def ledger():
    """A store whose clock reads 2026-11-02 JST, with the default catalog loaded."""
    store = MemoryStore(clock=lambda: NOV_1_JST + 86400)
    await load_catalog(store, DEFAULT_CATALOG)
    publisher = LoopbackPublisher(clock_ms=lambda: (NOV_1_JST - 3600) * 1000, batch=False)
    return store, publisher


async def test_a_period_that_has_not_ended_cannot_be_closed(ledger):
    store, _ = ledger
    with pytest.raises(PeriodError, match="cannot be closed before it ends"):
        await books.statement(store, "2026-11", close=True)


async def test_closing_stores_every_period_from_the_first_usage_and_prints_it_again(ledger):
    store, publisher = ledger
    await bill(store, publisher, time="2026-09-30T14:59:59Z", seconds=2)  # JST boundary inside
    closed = await books.statement(store, "2026-10", close=True)
    september = await statement(store, "2026-09")
    assert september["closed"] and september["lines"][0]["gpu_seconds"] == 1
    assert await books.statement(store, "2026-10") == closed
    assert orjson.loads(closed)["lines"][0]["gpu_seconds"] == 1


async def test_late_usage_of_a_closed_period_is_booked_into_the_first_open_one(ledger):
    store, publisher = ledger
    await bill(store, publisher, time="2026-09-29T00:00:00Z", seconds=10)
    before = await books.statement(store, "2026-09", close=True)
    await bill(store, publisher, time="2026-09-29T10:00:00Z", seconds=5, gpu_uuid="GPU-late")
    assert await books.statement(store, "2026-09") == before
    october = await statement(store, "2026-10")
    assert [(line["service_period"], line["gpu_seconds"]) for line in october["lines"]] == [("2026-09", 5)]


async def test_a_version_inside_a_closed_period_is_refused(ledger):
    store, _ = ledger
    await books.statement(store, "2026-09", close=True)
    with pytest.raises(CatalogError, match="inside a closed period"):
        await load_catalog(store, DEFAULT_CATALOG + price("kddi", "GB200", "9", "2026-09-15T00:00:00+09:00"))


async def test_the_journal_verifies_and_a_changed_statement_is_named(ledger):
    store, publisher = ledger
    await bill(store, publisher, time="2026-10-10T00:00:00Z", seconds=3600)
    await books.statement(store, "2026-10", close=True)
    report = await verification.verify(store)
    assert report["closed_periods"] == ["2026-10"] and report["trial_balance_yen"] == 0
    document = orjson.loads(store.state.closed_statements["2026-10"])
    document["tenant_invoices"][0]["total_yen"] += 1
    store.state.closed_statements["2026-10"] = orjson.dumps(document)
    with pytest.raises(VerificationFailed, match="2026-10"):
        await verification.verify(store)


async def test_an_anchor_the_journal_no_longer_holds_is_named(ledger):
    store, publisher = ledger
    await bill(store, publisher, time="2026-10-10T00:00:00Z", seconds=3600)
    await books.statement(store, "2026-10", close=True)
    head = (await verification.verify(store))["head"]
    assert (await verification.verify(store, [("bundle", head["seq"], head["hash"])]))["anchors_checked"] == 1
    with pytest.raises(VerificationFailed, match="rewritten"):
        await verification.verify(store, [("bundle", head["seq"], "00" * 32)])


async def test_a_stored_statement_edited_without_touching_its_journal_is_named(ledger):
    """Given a closed statement whose lines were edited but whose invoices (and so journal
    entries) were left alone, then verify names the period: it recomputes every statement."""
    store, publisher = ledger
    await bill(store, publisher, time="2026-10-10T00:00:00Z", seconds=3600)
    await books.statement(store, "2026-10", close=True)
    document = orjson.loads(store.state.closed_statements["2026-10"])
    document["lines"][0]["gpu_seconds"] += 1
    store.state.closed_statements["2026-10"] = orjson.dumps(document)
    with pytest.raises(VerificationFailed, match="2026-10 is not what its billed seconds.*lines"):
        await verification.verify(store)


async def test_a_closed_period_without_its_statement_is_named_with_its_seconds(ledger):
    """Given seconds booked in 2026-10 and books moved through it by hand (what the database
    refuses to every role but a superuser with triggers off), then verify names the period."""
    store, publisher = ledger
    await bill(store, publisher, time="2026-10-10T00:00:00Z", seconds=3600)
    assert (await verification.verify(store))["rollups"] == {"rows": 1, "gpu_seconds": 3600}
    store.state.closed_through = "2026-10"
    with pytest.raises(VerificationFailed, match="2026-10 is closed .* its 3,600 billed GPU-seconds are on no statement"):
        await verification.verify(store)


async def test_a_statement_stored_for_an_open_period_is_named(ledger):
    store, publisher = ledger
    await bill(store, publisher, time="2026-10-10T00:00:00Z", seconds=3600)
    await books.statement(store, "2026-10", close=True)
    store.state.closed_statements["2026-11"] = b'{"period":"2026-11"}'
    with pytest.raises(VerificationFailed, match="stored for 2026-11, which is not closed"):
        await verification.verify(store)


async def test_a_statement_closed_before_credits_existed_verifies_on_its_fields(ledger):
    store, publisher = ledger
    await bill(store, publisher, time="2026-10-10T00:00:00Z", seconds=3600)
    await books.statement(store, "2026-10", close=True)
    document = orjson.loads(store.state.closed_statements["2026-10"])
    del document["grant_draws"]
    for invoice in document["tenant_invoices"]:
        del invoice["retail_yen"], invoice["credit_yen"]
    store.state.closed_statements["2026-10"] = orjson.dumps(document)
    assert (await verification.verify(store))["statements_recomputed"] == 1
    document["lines"][0]["gpu_seconds"] += 1
    store.state.closed_statements["2026-10"] = orjson.dumps(document)
    with pytest.raises(VerificationFailed, match=r"2026-10 is not what .*\(first difference: lines\)"):
        await verification.verify(store)
