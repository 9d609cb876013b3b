"""Usage as it happens: the caller's view of billed GPU-seconds and estimated yen.

The pure rules (scope, pseudonyms, estimates, grouping) are `ledger.domain.usage`'s; this
module resolves the time range, reads the store and pages the result.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson

from ledger.domain import usage
from ledger.domain.access import Caller
from ledger.domain.catalog import Catalog
from ledger.domain.errors import InputError
from ledger.domain.events import FUTURE_TOLERANCE_MS
from ledger.domain.instants import format_utc, parse_instant
from ledger.domain.periods import PERIOD_PATTERN
from ledger.domain.ports import Store
from ledger.service import books, statements

# Instants and periods the API prints must exist as datetimes (years 0001-9999 UTC).
FIRST_INSTANT = -62135596800  # 0001-01-01T00:00:00Z
LAST_INSTANT = 253402300799  # 9999-12-31T23:59:59Z


@dataclass(frozen=True, kw_only=True)
class UsageRequest:
    """A query as the API is asked it: instants as text, the range by default the
    filter's service period (`where.service_period`), else the current period so far."""

    start: str | None = None
    end: str | None = None
    where: usage.UsageFilter = usage.ANY_USAGE
    tenant: str | None = None
    group_by: tuple[str, ...] = ()
    granularity: str = "day"
    limit: int = 1000
    offset: int = 0
    credits: bool = False  # also the current period's draws so far (a statement's work)


def instant(text: str, name: str) -> int:
    """Unix seconds of an RFC 3339 instant in years 0001-9999, or an InputError naming `name`."""
    value = parse_instant(text)
    if value is None or not FIRST_INSTANT <= value <= LAST_INSTANT:
        raise InputError(f"{name} is not an RFC 3339 instant in years 0001-9999", code="bad_instant")
    return value


def known_period(period: str) -> bool:
    """YYYY-MM whose bounds exist as datetimes (9999-12 would end in year 10000)."""
    return bool(PERIOD_PATTERN.fullmatch(period)) and "0001-01" <= period <= "9999-11"


def period_bounds(catalog: Catalog, period: str) -> tuple[int, int]:
    """A period's bounds, or an InputError if they do not exist as instants (in a
    timezone east of UTC, 0001-01 begins in year 0)."""
    if not known_period(period):
        raise InputError("a period is YYYY-MM, 0001-01 to 9999-11", code="bad_period")
    start, end = catalog.calendar.bounds(period)
    if start < FIRST_INSTANT:
        raise InputError(f"period {period} begins before 0001-01-01T00:00:00Z in the catalog's timezone "
                         f"({catalog.timezone}): ask for a later one", code="bad_period")
    if end > LAST_INSTANT + 1:
        raise InputError(f"period {period} ends after 9999-12-31T23:59:59Z in the catalog's timezone "
                         f"({catalog.timezone}): ask for an earlier one", code="bad_period")
    return start, end


def open_end(now: int) -> int:
    """The end of a range asked without one: the end of the last hour that can hold usage
    now (an event may end up to FUTURE_TOLERANCE_MS after it was received). Whole hours,
    so the same question asked again within the hour is the same query (and answer)."""
    latest = now + FUTURE_TOLERANCE_MS // 1000
    return latest - latest % 3600 + 3600


def _range(request: UsageRequest, catalog: Catalog, now: int) -> tuple[int, int]:
    if request.where.service_period is not None:
        start, end = period_bounds(catalog, request.where.service_period)
    else:
        start = catalog.calendar.bounds(catalog.calendar.period_of(now))[0]
        end = open_end(now)
    if request.start is not None:
        start = instant(request.start, "start")
    if request.end is not None:
        end = instant(request.end, "end")
    start -= start % 3600
    if end <= start or end - start > usage.MAX_RANGE_SECONDS:
        raise InputError("end must be after start, at most 400 days later", code="bad_range")
    return start, end


@dataclass(slots=True)
class Answer:
    """A query's items and credit estimate as computed at one ledger version, and the
    pages of it already written as JSON (by (offset, limit))."""

    at: float
    items: list[dict]
    credits: dict | None
    pages: dict[tuple[int, int], bytes] = field(default_factory=dict)
    kept: bool = True  # in the cache (its pages count against its bounds)


class PageCache:
    """Recent answers, for dashboards that poll the same view: the items of a query, its
    credit estimate and its pages as bytes, kept for a ledger version (a worker's next
    batch, a catalog load, a void, a close or a replay makes a new one), least recently
    used first out. MAX_AGE_SECONDS only bounds how long an answer no one asks again
    stays: the version is what keeps answers true."""

    MAX_ENTRIES = 256
    MAX_ITEMS = 1_000_000
    MAX_PAGES_PER_ANSWER = 8  # pages of one answer kept as bytes,
    MAX_PAGE_BYTES = 64 * 1024 * 1024  # and of all answers
    MAX_AGE_SECONDS = 60.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.entries: OrderedDict[tuple, Answer] = OrderedDict()
        self.items = self.page_bytes = 0
        self.hits = self.misses = 0
        self.running: dict[tuple, asyncio.Future] = {}

    def get(self, key: tuple) -> Answer | None:
        found = self.entries.get(key)
        if found is not None and self.clock() - found.at > self.MAX_AGE_SECONDS:
            self._forget(self.entries.pop(key))
            found = None
        if found is None:
            self.misses += 1
            return None
        self.entries.move_to_end(key)
        self.hits += 1
        return found

    async def answer(
        self, key: tuple, compute: Callable[[], Awaitable[tuple[list[dict], dict | None]]],
        admit: Callable[[], None] = lambda: None,
    ) -> Answer:
        """The cached answer, or computed once however many ask for it at the same time;
        `admit` is called (and may refuse, raising) only when a computation starts."""
        found = self.get(key)
        if found is not None:
            return found
        running = self.running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        admit()
        running = self.running[key] = asyncio.ensure_future(self._computed(key, compute))
        try:
            return await asyncio.shield(running)
        finally:
            self.running.pop(key, None)

    async def _computed(self, key: tuple, compute: Callable[[], Awaitable[tuple[list[dict], dict | None]]]) -> Answer:
        return self.put(key, *(await compute()))

    def put(self, key: tuple, items: list[dict], credits: dict | None) -> Answer:
        old = self.entries.pop(key, None)
        if old is not None:
            self._forget(old)
        answer = self.entries[key] = Answer(self.clock(), items, credits)
        self.items += len(items)
        self._bound()
        return answer

    def keep_page(self, answer: Answer, where: tuple[int, int], written: bytes) -> None:
        """Keep a page of an answer still kept as bytes, within the bounds."""
        if (answer.kept and len(answer.pages) < self.MAX_PAGES_PER_ANSWER
                and self.page_bytes + len(written) <= self.MAX_PAGE_BYTES):
            answer.pages[where] = written
            self.page_bytes += len(written)

    def _forget(self, answer: Answer) -> None:
        answer.kept = False
        self.items -= len(answer.items)
        self.page_bytes -= sum(map(len, answer.pages.values()))

    def _bound(self) -> None:
        while self.entries and (len(self.entries) > self.MAX_ENTRIES or self.items > self.MAX_ITEMS):
            self._forget(self.entries.popitem(last=False)[1])


# The statement of a period as the API keeps it (`ledger.service.statements`).
StatementOf = Callable[[str], Awaitable[statements.Computed]]
# The items of a query, computed elsewhere (the API: in a worker process).
ItemsOf = Callable[[usage.UsageQuery], Awaitable[list[dict]]]


def usage_query(request: UsageRequest, catalog: Catalog, now: int) -> usage.UsageQuery:
    """The query a request asks, its range resolved (InputError for a bad one)."""
    start, end = _range(request, catalog, now)
    return usage.UsageQuery(
        start=start, end=end, granularity=request.granularity, group_by=tuple(dict.fromkeys(request.group_by)),
        tenant=request.tenant, where=request.where,
    )


async def items(store: Store, catalog: Catalog, caller: Caller, key: bytes, wanted: usage.UsageQuery) -> list[dict]:
    """Every item of a query, grouped and sorted (a page is a slice of them)."""
    rows = await store.hour_usage(
        wanted.start, wanted.end, member=caller.member, where=wanted.where,
        coarse=usage.coarsening(catalog, wanted.granularity, wanted.start, wanted.end),
    )
    return usage.summarize(rows, wanted, caller, catalog, key)


async def answer(
    store: Store, catalog: Catalog, caller: Caller, key: bytes, request: UsageRequest, now: int | None = None,
    cache: PageCache | None = None, version: tuple | None = None,
    admit: Callable[[], None] = lambda: None, statement_of: StatementOf | None = None, items_of: ItemsOf | None = None,
) -> tuple[usage.UsageQuery, Answer]:
    """The query a request asks and its whole answer (`query`'s arguments)."""
    now = usage.now_utc() if now is None else now
    wanted = usage_query(request, catalog, now)

    async def compute() -> tuple[list[dict], dict | None]:
        found = await (items_of(wanted) if items_of else items(store, catalog, caller, key, wanted))
        return found, (await credit_estimate(store, catalog, caller, now, statement_of) if request.credits else None)

    if cache is None or version is None:
        admit()
        return wanted, Answer(0.0, *(await compute()))
    credits_period = catalog.calendar.period_of(now) if request.credits else None
    return wanted, await cache.answer((version, caller.role, caller.member, wanted, credits_period), compute, admit)


def page(request: UsageRequest, wanted: usage.UsageQuery, found: Answer) -> dict:
    """The page of an answer that a request asks for (its offset and limit)."""
    more = request.offset + request.limit < len(found.items)
    written = {
        "granularity": request.granularity,
        "group_by": list(wanted.group_by),
        "start": format_utc(wanted.start),
        "end": format_utc(wanted.end),
        "items": found.items[request.offset : request.offset + request.limit],
        "next_cursor": str(request.offset + request.limit) if more else None,
    }
    if found.credits is not None:
        written["credit_estimate"] = found.credits
    return written


async def query(store: Store, catalog: Catalog, caller: Caller, key: bytes, request: UsageRequest, **how) -> dict:
    """One page of the caller's usage: {"granularity", "group_by", "start", "end", "items", "next_cursor"}.

    With a cache and the ledger's version read before (`how`: `answer`'s keywords), an
    equal query by the same caller at the same version is answered from the cache (pages
    of one query share it). `admit` is called before a query is computed (the API's rate
    of expensive requests); `items_of` computes its items (default: here), `statement_of`
    gives the credit estimate its statement (default: computed here)."""
    wanted, found = await answer(store, catalog, caller, key, request, **how)
    return page(request, wanted, found)


async def page_json(store: Store, catalog: Catalog, caller: Caller, key: bytes, request: UsageRequest, **how) -> bytes:
    """`query`'s page as JSON: a cached answer's page is written once, then its bytes are
    the answer (a page of thousands of items takes a millisecond to write)."""
    wanted, found = await answer(store, catalog, caller, key, request, **how)
    where = (request.offset, request.limit)
    written = found.pages.get(where)
    if written is None:
        written = orjson.dumps(page(request, wanted, found))
        cache = how.get("cache")
        if cache is not None:
            cache.keep_page(found, where, written)
    return written


async def credit_estimate(
    store: Store, catalog: Catalog, caller: Caller, now: int, statement_of: StatementOf | None = None
) -> dict:
    """What grants have drawn so far in the current booking period, for the grants the
    caller funds or whose tenants it bills (an auditor: all): the open statement's draws."""
    period = catalog.calendar.period_of(now)
    if statement_of is not None:
        draws = (await statement_of(period)).draws_for(caller)
    else:
        async with store.snapshot() as reader:
            statement = await books.compute_statement(reader, period, await reader.catalog(), closed=False)
        draws = [d for d in statement.draws if caller.member is None or caller.member in (d.funder, d.reseller)]
    return {"period": period, "grant_draws": [d.to_document() for d in draws]}
