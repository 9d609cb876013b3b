"""The documents of a period, gathered through the ports: what each one says.

`gather` reads, from one consistent view of the books, what a caller's documents of a
period need: the statement (a closed period's stored bytes), the catalog, when the period
was closed, and for the reports the earlier months' statements, the booking period's
billed hours, the grants' balances, the voids, disputes, transfers and payments (which a
report shows as of its date) and the capacity report. `PeriodDocuments.content`
then gives each document's content (`ledger.domain.invoices`, `.settlement_report`,
`.capacity`), which `ledger.documents` lays out as HTML and PDF. A closed period's
documents depend only on what its close fixed, except the capacity report, which follows
SPEC.md's report (usage booked later, the registry as it is now).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from ledger.domain import access, invoices
from ledger.domain.access import Caller
from ledger.domain.capacity import capacity_page, capacity_report
from ledger.domain.catalog import Catalog
from ledger.domain.dispute_ports import DisputeStore
from ledger.domain.errors import NotFound, PeriodError
from ledger.domain.periods import previous_period
from ledger.domain.ports import BooksReader
from ledger.domain.rating import HourUsage
from ledger.domain.report_activity import Activity
from ledger.domain.settlement_report import settlement_report
from ledger.domain.statement import Statement
from ledger.domain.usage import coarsening
from ledger.service import books, tokens
from ledger.service.usage import known_period, period_bounds

FIRST_PERIOD = "0001-01"
HISTORY_MONTHS = 6  # the month and up to five before it, in a report's "month against the previous months"
VOIDS_READ = 1_000_000  # every void the caller may see: a report picks its period's


@dataclass
class PeriodDocuments:
    """A caller's documents of one period and what their content is made from."""

    period: str
    statement: Statement
    catalog: Catalog
    issue: invoices.Issue
    planned: list[invoices.Planned]
    pseudonym_key: bytes = b""
    earlier: list[Statement] = field(default_factory=list)
    usages: list[HourUsage] = field(default_factory=list)
    balances: dict[str, int] = field(default_factory=dict)
    capacity: dict | None = None
    capacity_usages: list[HourUsage] = field(default_factory=list)
    activity: Activity = field(default_factory=Activity)

    def manifest(self) -> dict:
        return {"period": self.period, "documents": [p.entry() for p in self.planned]}

    @staticmethod
    def kind_of(relative_path: str) -> str:
        """Which kind of document a file of the manifest is, from its folder (NotFound:
        no document has such a path)."""
        for kind, prefix in invoices.PATHS.items():
            if relative_path.startswith(prefix):
                return kind
        raise NotFound(f"no document {relative_path!r}")

    def find(self, relative_path: str) -> tuple[invoices.Planned, str]:
        """The document a file of the manifest belongs to, and its format (html or pdf);
        NotFound for any other path, as for one outside the caller's scope."""
        stem, _, suffix = relative_path.rpartition(".")
        for planned in self.planned:
            if planned.stem == stem and suffix in ("html", "pdf"):
                return planned, suffix
        raise NotFound(f"no document {relative_path!r} of {self.period}")

    def content(self, planned: invoices.Planned) -> dict:
        if planned.kind == "tenant_invoice":
            return invoices.tenant_invoice(self.statement, self.catalog, self.issue, planned.issuer, planned.recipient)
        if planned.kind == "member_invoice":
            return invoices.member_invoice(self.statement, self.catalog, self.issue, planned.issuer, planned.recipient)
        if planned.kind == "settlement_report":
            return settlement_report(
                self.statement, self.catalog, planned.issuer, self.pseudonym_key, self.issue,
                self.earlier, self.usages, self.balances, self.activity,
            )
        page = capacity_page(self.capacity or {"period": self.period, "rows": []}, self.catalog, self.capacity_usages)
        return {**page, "issue": self.issue.content(self.catalog), "service": invoices.period_dates(self.catalog, self.period)}


async def statement_of(reader: BooksReader, period: str, catalog: Catalog, closed_through: str | None) -> Statement:
    """A period's statement as `settle` prints it: a closed period's stored document."""
    if closed_through is not None and period <= closed_through:
        return books.read(await books.closed_document(reader, period, catalog))
    return await books.compute_statement(reader, period, catalog, closed=False)


async def _earlier(reader: BooksReader, period: str, catalog: Catalog, closed_through: str | None) -> list[Statement]:
    """The statements of the months before `period` (oldest first), from the first one
    with any line."""
    found = []
    current = period
    for _ in range(HISTORY_MONTHS - 1):
        if current == FIRST_PERIOD:
            break
        current = previous_period(current)
        found.insert(0, await statement_of(reader, current, catalog, closed_through))
    while found and not found[0].lines:
        found.pop(0)
    return found


def _scoped(caller: Caller, statement: Statement) -> list[invoices.Planned]:
    return [p for p in invoices.plan(statement) if access.sees_document(caller, p.kind, p.issuer, p.recipient)]


async def gather(
    store: DisputeStore, period: str, caller: Caller, *, wanted: set[str] | None = None, now: int | None = None
) -> PeriodDocuments:
    """The caller's documents of `period`, with what their content needs. `wanted`: the
    kinds whose content will be asked for (None: every kind; an empty set: only the list)."""
    if not known_period(period):
        raise PeriodError(f"period {period!r} is not of the form YYYY-MM (0001-01 to 9999-11)")
    wanted = set(invoices.KINDS) if wanted is None else wanted
    key = await tokens.pseudonym_key(store) if "settlement_report" in wanted else b""
    async with store.snapshot() as reader:
        catalog = await reader.catalog()
        if caller.member is not None and caller.member not in catalog.members:
            raise NotFound(f"no member {caller.member!r}")
        start, end = period_bounds(catalog, period)  # its days must exist as dates: not 0001-01 east of UTC
        # The reports chart days: a day's hours summed by the store, not read one by one
        # (a month of 10,000 GPUs is millions of attribution-hours).
        days = coarsening(catalog, "day", start, end)
        closed_through = await reader.closed_through()
        statement = await statement_of(reader, period, catalog, closed_through)
        closed_at = await reader.closed_at(period) if statement.closed else None
        found = PeriodDocuments(
            period, statement, catalog, invoices.Issue(closed_at, int(time.time()) if now is None else now),
            _scoped(caller, statement), key,
        )
        if "settlement_report" in wanted:
            found.earlier = await _earlier(reader, period, catalog, closed_through)
            found.usages = await reader.hour_usages(period, [], coarse=days)
            found.balances = await books.balances_at(reader, period, catalog)
            found.activity = Activity(
                tuple(await reader.voids(caller.member, VOIDS_READ)), (),
                tuple(await reader.transfers()), tuple(await reader.payments()),
            )
        if "capacity_report" in wanted:
            found.capacity = capacity_report(period, catalog, await reader.capacity_billed(period))
    if "settlement_report" in wanted:
        async with store.disputes() as tx:  # read only; what a report shows of it is as of its date
            found.activity = replace(found.activity, disputes=tuple(await tx.disputes(caller.member)))
    if "capacity_report" in wanted:
        found.capacity_usages = await store.hour_usage(start, end, coarse=days)
    return found
