"""The books' history, period by period: what grants drew, what returns gave back.

A statement of booking period P depends on the periods before it in two ways (SPEC.md,
"Credits" and "Corrections"): each grant's balance at the start of P is its amount less
its draws plus its restorations in every earlier booking period, and each return of P is
computed from its original line (in a closed period B < P: the line's seconds as stored,
and what grants drew on it there, in draw order) and that line's returns in the periods
between. `History` walks the booking periods in order once and keeps both.

A closed period counts as stored: its draws and restorations are read from its
statement's `grant_draws` (only those, not its lines). An open one counts as it stands
now. A closed period whose lines later returns give back is rated again (as booked, so
its returned seconds are still in it) to learn what each grant drew on each line; grants
never change once loaded, so that gives the draws its close stored.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import orjson

from ledger.domain import credits, rating
from ledger.domain import returns as returns_rules
from ledger.domain.catalog import Catalog
from ledger.domain.periods import next_period
from ledger.domain.ports import BooksReader
from ledger.domain.rating import LineKey
from ledger.domain.statement import Statement
from ledger.domain.usage import by_versions


async def lines_of(books: BooksReader, period: str, catalog: Catalog) -> list[rating.Line]:
    """A booking period's lines, in statement order."""
    # Summed by the store between price breaks: one row per attribution and span, not hour.
    usages = await books.hour_usages(period, sorted(rating.split_hours(catalog)), coarse=by_versions(catalog))
    return rating.rate(catalog, usages)


@dataclass
class PeriodCredits:
    """What one booking period drew from and restored to each grant (grant id -> yen)."""

    drawn: dict[str, int] = field(default_factory=dict)
    restored: dict[str, int] = field(default_factory=dict)


@dataclass
class History:
    books: BooksReader
    catalog: Catalog
    closed_through: str | None
    parts: list[returns_rules.ReturnedSeconds]  # every return through the period asked for
    balances: dict[str, int]  # each grant's balance at the start of `current`
    current: str | None  # the next period to walk (None: nothing to walk)
    originals: dict[tuple[str, LineKey], returns_rules.Original] = field(default_factory=dict)
    periods: dict[str, PeriodCredits] = field(default_factory=dict)

    @classmethod
    async def through(cls, books: BooksReader, period: str, catalog: Catalog) -> History:
        """A history ready to walk up to `period`, with the returns of periods through it."""
        parts = returns_rules.returned_seconds(catalog, await books.returned(period))
        starts = [p.booking_period for p in parts]
        first_grant = credits.first_period_of(catalog.grants)
        if first_grant is not None:
            starts.append(first_grant)
        return cls(
            books, catalog, await books.closed_through(), parts, credits.opening_balances(catalog.grants),
            min(starts) if starts else None,
        )

    def closed(self, period: str) -> bool:
        return self.closed_through is not None and period <= self.closed_through

    async def walk_to(self, period: str) -> dict[str, int]:
        """Walk every booking period before `period`; the grants' balances at its start."""
        while self.current is not None and self.current < period:
            await self._walk(self.current)
            self.current = next_period(self.current)
        return self.balances

    def returns_in(self, period: str) -> list[returns_rules.Return]:
        """The returns of a booking period, in statement order (every period before it walked)."""
        found = returns_rules.returns_through(
            period, [p for p in self.parts if p.return_period <= period], self.originals,
        )
        return [item for item in found if item.return_period == period]

    async def _walk(self, period: str) -> None:
        needed = {p.key for p in self.parts if p.booking_period == period}
        found = PeriodCredits()
        if self.closed(period):
            stored = await self.books.closed_statement(period)
            for draw in Statement.draws_of(orjson.loads(stored)) if stored else ():
                found.drawn[draw.grant] = draw.amount_yen
                found.restored[draw.grant] = draw.restored
            if needed:
                lines = await lines_of(self.books, period, self.catalog)
                by_line = credits.draw(lines, self.catalog.grants, dict(self.balances)).by_line
                self._remember(period, lines, needed, by_line)
            for gid, amount in found.drawn.items():
                self.balances[gid] = self.balances.get(gid, 0) - amount
        else:
            lines = await lines_of(self.books, period, self.catalog) if self.catalog.grants else []
            found.drawn = credits.draw(lines, self.catalog.grants, self.balances).by_grant
            restored: dict[str, int] = defaultdict(int)
            for item in self.returns_in(period):
                for gid, amount in item.restored:
                    restored[gid] += amount
            found.restored = dict(restored)
        for gid, amount in found.restored.items():
            self.balances[gid] = self.balances.get(gid, 0) + amount
        self.periods[period] = found

    def _remember(self, period: str, lines: list[rating.Line], needed: set[LineKey], by_line: dict) -> None:
        for line in lines:
            if line.key in needed:
                self.originals[(period, line.key)] = returns_rules.Original(line, tuple(by_line.get(line.key, ())))
        missing = needed - {key for (booked, key) in self.originals if booked == period}
        assert not missing, f"seconds returned from {period} fall in no line of it: {sorted(missing)[:3]}"
