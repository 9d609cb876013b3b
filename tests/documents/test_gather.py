"""The documents' data gathered through the services, on the in-memory store (no stack).

Given alliance-2026-q4 run through the services (September closed, batch 2, October
closed), when a period's documents are gathered, then they are the stored statement's,
dated by its close; a member gets only its own; an open period gives drafts; the reports'
daily GPU-hours add up to the statement's lines and the earlier months are there.
"""

from __future__ import annotations

import orjson
import pytest

from ledger.domain.access import OPERATOR, Caller
from ledger.domain.errors import NotFound, PeriodError
from ledger.domain.invoices import local_date
from ledger.memory.store import MemoryStore
from ledger.service import books, documents
from ledger.service.intake import Intake
from tests.documents.stackless import Q4
from tests.scenario import batch_lines, expected, normalized
from tests.service.conftest import LoopbackPublisher, load_catalog
from tests.service.test_scenarios import ingest

# A whole public scenario in this process: seconds each, left to make test (not test-fast).
pytestmark = pytest.mark.slow

CLOSE_SEPTEMBER = 1_791_000_000  # 2026-10-03
CLOSE_OCTOBER = 1_793_500_000  # 2026-11-01


@pytest.fixture(scope="module")
async def ledger():
    now = [CLOSE_SEPTEMBER]  # the store's clock, which dates closes; events arrive now
    store, publisher = MemoryStore(clock=lambda: now[0]), LoopbackPublisher()
    intake = Intake(store)
    await load_catalog(store, (Q4 / "catalog.toml").read_bytes())
    await ingest(store, publisher, intake, batch_lines(Q4, "batch1"), "one")
    await books.statement(store, "2026-09", close=True)
    now[0] = CLOSE_OCTOBER
    await ingest(store, publisher, intake, batch_lines(Q4, "batch2"), "two")
    await books.statement(store, "2026-10", close=True)
    return store


async def test_the_documents_are_the_closed_statements_dated_by_the_close(ledger):
    found = await documents.gather(ledger, "2026-10", OPERATOR, now=CLOSE_OCTOBER + 999)
    assert normalized(found.statement.to_document()) == normalized(expected(Q4)["settle_oct"])
    assert found.issue.closed_at == CLOSE_OCTOBER
    assert local_date(found.catalog, CLOSE_OCTOBER) == "2026-11-01"
    for planned in found.planned:
        content = found.content(planned)
        assert content["issue"] == {"draft": False, "date": "2026-11-01", "created": "2026-11-01T02:26:40Z"}


async def test_a_reports_daily_hours_add_up_to_the_statements_lines(ledger):
    found = await documents.gather(ledger, "2026-10", OPERATOR)
    for planned in (p for p in found.planned if p.kind == "settlement_report"):
        report = found.content(planned)
        member = planned.issuer
        lines = [x for x in found.statement.lines if member in (x.provider, x.reseller)]
        current = sum(x.gpu_seconds for x in lines if x.service_period == "2026-10")
        for chart in ("by_sku", "by_counterpart"):
            hours = sum(sum(s["hours"]) for s in report["daily"][chart]["series"])
            values = sum(len(s["hours"]) for s in report["daily"][chart]["series"])
            assert abs(hours * 3600 - current) <= 0.18 * values, (member, chart)  # each day to 4 places
        prior = sum(x.gpu_seconds for x in lines if x.service_period != "2026-10")
        assert report["daily"]["prior_gpu_hours"] == f"{prior / 3600:.4f}"
        assert [m["period"] for m in report["history"]] == ["2026-09", "2026-10"]
        september = orjson.loads(await books.statement(ledger, "2026-09"))
        assert report["history"][0]["net_yen"] == september["net_yen"][member]


async def test_the_capacity_page_is_the_capacity_report(ledger):
    found = await documents.gather(ledger, "2026-10", OPERATOR, wanted={"capacity_report"})
    page = found.content(found.planned[-1])
    rows = [{k: v for k, v in row.items() if k != "utilisation_percent"} for row in page["rows"]]
    assert rows == expected(Q4)["capacity_oct"]["rows"]
    assert len(page["utilisation"]["days"]) == 31
    assert {s["label"] for s in page["utilisation"]["series"]} == {"highreso", "kddi", "sakura"}


async def test_a_member_gathers_only_its_own_documents(ledger):
    found = await documents.gather(ledger, "2026-10", Caller("t", "member", "highreso"), wanted=set())
    for entry in found.manifest()["documents"]:
        if entry["kind"] == "member_invoice":
            assert "highreso" in (entry["issuer"], entry["recipient"])
        elif entry["kind"] != "capacity_report":
            assert entry["issuer"] == "highreso"
    with pytest.raises(NotFound):
        found.find("settlement-reports/kddi.pdf")
    with pytest.raises(NotFound):
        await documents.gather(ledger, "2026-10", Caller("t", "member", "nobody"))


async def test_an_open_period_gives_drafts(ledger):
    found = await documents.gather(ledger, "2026-12", OPERATOR, now=CLOSE_OCTOBER + 60)
    assert [p.kind for p in found.planned] == ["settlement_report"] * 3 + ["capacity_report"]
    report = found.content(found.planned[0])
    assert report["issue"]["draft"] is True and report["issue"]["date"] is None
    assert [m["period"] for m in report["history"]] == ["2026-09", "2026-10", "2026-11", "2026-12"]
    november = await documents.gather(ledger, "2026-11", OPERATOR, wanted=set())
    assert not november.statement.closed and november.issue.closed_at is None


@pytest.mark.parametrize("period", ["2026-13", "0000-12", "9999-12", "26-10"])
async def test_a_period_that_cannot_be_is_refused(ledger, period):
    with pytest.raises(PeriodError):
        await documents.gather(ledger, period, OPERATOR)
