"""UTC instants, decimal prices and calendar-month periods in a time zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from fractions import Fraction

_INSTANT = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")
_PERIOD = re.compile(r"([0-9]{4})-([0-9]{2})")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]{1,4})?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def parse_instant(value: object) -> int | None:
    """`2025-12-31T15:00:00Z` -> seconds since the epoch, or None if it is not one."""
    if not isinstance(value, str):
        return None
    match = _INSTANT.fullmatch(value)
    if match is None:
        return None
    try:
        moment = datetime(*(int(part) for part in match.groups()), tzinfo=UTC)
    except ValueError:
        return None
    return (moment - _EPOCH) // _SECOND


def format_instant(epoch: int) -> str:
    moment = _EPOCH + timedelta(seconds=epoch)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


def is_period(value: object) -> bool:
    """`YYYY-MM` with a month 01-12 (years 0001-9998, so the next month exists too)."""
    if not isinstance(value, str):
        return False
    match = _PERIOD.fullmatch(value)
    return match is not None and 1 <= int(match.group(1)) <= 9998 and 1 <= int(match.group(2)) <= 12


def parse_decimal(value: object) -> Fraction | None:
    """A price: a decimal string with at most 4 fractional digits, exactly."""
    if not isinstance(value, str) or _DECIMAL.fullmatch(value) is None:
        return None
    return Fraction(value)


class Periods:
    """Calendar months in one time zone, as [start, end) epoch seconds (cached)."""

    def __init__(self, zone: tzinfo) -> None:
        self._zone = zone
        self._bounds: dict[str, tuple[int, int]] = {}

    def _month_start(self, year: int, month: int) -> int:
        # fold=0: a midnight that falls in a gap maps to the instant the gap ends, one
        # that repeats to its first occurrence: either way, the first instant of the day.
        local = datetime(year, month, 1, tzinfo=self._zone)
        return (local - _EPOCH) // _SECOND

    def bounds(self, period: str) -> tuple[int, int]:
        found = self._bounds.get(period)
        if found is None:
            year, month = int(period[:4]), int(period[5:7])
            after = (year + 1, 1) if month == 12 else (year, month + 1)
            found = (self._month_start(year, month), self._month_start(*after))
            self._bounds[period] = found
        return found
