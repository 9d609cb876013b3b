"""A period's documents built from a public scenario's expected statements, with no stack:
the catalog parsed from its file, the statements and capacity reports of expected.json,
billed hours spread from the statement's lines, and a fixed close."""

from __future__ import annotations

from ledger.domain import invoices
from ledger.domain.access import OPERATOR, Caller
from ledger.domain.catalog import Catalog
from ledger.domain.catalog_file import parse_catalog
from ledger.domain.rating import HourUsage
from ledger.domain.statement import Statement
from ledger.service.documents import PeriodDocuments, _scoped
from tests.scenario import expected, scenario_dirs

Q4 = scenario_dirs()[1]
PSEUDONYM_KEY = b"k" * 32
# early October, early November, early December (JST)
CLOSES = {"2026-09": 1_791_000_000, "2026-10": 1_793_500_000, "2026-11": 1_796_200_000}
STEPS = {"2026-09": ("settle_sep", "capacity_sep"), "2026-10": ("settle_oct", "capacity_oct"),
         "2026-11": ("close_nov", "capacity_nov")}  # November returns October's and September's voided seconds


def catalog(directory=Q4) -> Catalog:
    return Catalog().merge(parse_catalog((directory / "catalog.toml").read_bytes()), None)


def spread(catalog: Catalog, statement: Statement) -> list[HourUsage]:
    """Each line's seconds over the hours of its service period, up to 3,600 an hour."""
    usages = []
    for number, line in enumerate(statement.lines):
        start, end = catalog.calendar.bounds(line.service_period)
        hour, left = start + 3600 * (number % 24), line.gpu_seconds
        while left > 0 and hour < end:
            seconds = min(left, 3600)
            usages.append(HourUsage(line.reseller, line.tenant, line.provider, line.sku, line.service_period, hour, seconds))
            left, hour = left - seconds, hour + 3600 * 7
    return usages


def balances_at(catalog: Catalog, earlier: list[Statement]) -> dict[str, int]:
    balances = {gid: g.amount_yen for gid, g in catalog.grants.items()}
    for statement in earlier:
        for draw in statement.draws:
            balances[draw.grant] += draw.restored - draw.amount_yen
    return balances


def period_documents(period: str = "2026-10", caller: Caller = OPERATOR, closed: bool = True, directory=Q4) -> PeriodDocuments:
    want = expected(directory)
    found = catalog(directory)
    statement_step, capacity_step = STEPS[period]
    statement = Statement.from_document(dict(want[statement_step], closed=closed))
    earlier = [Statement.from_document(want[step]) for month, (step, _) in STEPS.items() if month < period]
    capacity = want.get(capacity_step, {"period": period, "rows": []})
    documents = PeriodDocuments(
        period, statement, found, invoices.Issue(CLOSES[period] if closed else None, 1_796_000_000),
        _scoped(caller, statement), PSEUDONYM_KEY,
    )
    documents.earlier = earlier
    documents.usages = spread(found, statement)
    documents.balances = balances_at(found, earlier)
    documents.capacity = capacity
    documents.capacity_usages = [u for u in spread(found, statement) if u.service_period == period]
    return documents
