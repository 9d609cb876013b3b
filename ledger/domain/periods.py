"""Settlement periods: calendar months in the catalog's timezone, named `YYYY-MM`.

All instants are integer Unix seconds. A period is the half-open interval
`[start, end)` of its first and the next month's first midnight in the timezone.
"""

from __future__ import annotations

import bisect
import re
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger.domain.errors import PeriodError

PERIOD_PATTERN = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")

# Periods are precomputed over this range of years; instants outside it are still
# handled, by computing the month directly.
_FIRST_YEAR = 1970
_LAST_YEAR = 2200


def parse_period(text: str) -> tuple[int, int]:
    """`"2026-10"` -> `(2026, 10)`, or a PeriodError naming the expected form."""
    match = PERIOD_PATTERN.fullmatch(text)
    if not match:
        raise PeriodError(f"period {text!r} is not of the form YYYY-MM (for example 2026-10)")
    return int(match.group(1)), int(match.group(2))


def format_period(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def next_period(period: str) -> str:
    year, month = parse_period(period)
    return format_period(year + month // 12, month % 12 + 1)


def previous_period(period: str) -> str:
    year, month = parse_period(period)
    return format_period(year - (month == 1), (month - 2) % 12 + 1)


class Calendar:
    """Maps instants to periods and periods to instants in one timezone."""

    def __init__(self, timezone: str = "Asia/Tokyo") -> None:
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise PeriodError(f"unknown timezone {timezone!r}") from exc
        self.timezone = timezone
        self._starts: list[int] = []
        self._names: list[str] = []
        for year in range(_FIRST_YEAR, _LAST_YEAR + 1):
            for month in range(1, 13):
                self._starts.append(self._month_start(year, month))
                self._names.append(format_period(year, month))

    def _month_start(self, year: int, month: int) -> int:
        return int(datetime(year, month, 1, tzinfo=self.zone).timestamp())

    def bounds(self, period: str) -> tuple[int, int]:
        """`[start, end)` of the period in Unix seconds."""
        year, month = parse_period(period)
        start = self._month_start(year, month)
        year2, month2 = parse_period(next_period(period))
        return start, self._month_start(year2, month2)

    def period_of(self, instant: int) -> str:
        """The period containing the Unix second `instant`."""
        index = bisect.bisect_right(self._starts, instant) - 1
        if 0 <= index < len(self._starts) - 1:
            return self._names[index]
        moment = datetime.fromtimestamp(instant, self.zone)
        return format_period(moment.year, moment.month)

    def next_boundary(self, instant: int) -> int:
        """The first period start strictly after `instant`."""
        index = bisect.bisect_right(self._starts, instant)
        if index < len(self._starts):
            return self._starts[index]
        return self.bounds(next_period(self.period_of(instant)))[0]


@lru_cache(maxsize=8)
def calendar(timezone: str) -> Calendar:
    return Calendar(timezone)
