"""RFC 3339 instants as integer Unix seconds, parsed by hand for speed and exactness.

Calendar arithmetic is the proleptic Gregorian one (the algorithm of H. Hinnant's
`days_from_civil`), so any four-digit year works without datetime's limits.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

RFC3339_PATTERN = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


@lru_cache(maxsize=8192)
def parse_instant(text: str, *, allow_fraction: bool = True) -> int | None:
    """Unix seconds of an RFC 3339 date-time, the fraction floored; None if invalid.

    Cached: collectors of many GPUs report the same instants, second after second.

    Invalid means: not of the pattern, a date that does not exist, an hour, minute or
    second out of range (second 60 included), an offset beyond 23:59, or (with
    `allow_fraction=False`) any fractional part.
    """
    match = RFC3339_PATTERN.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if match.group(7) is not None and not allow_fraction:
        return None
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59:
        return None
    days_in_month = 29 if month == 2 and _is_leap(year) else _DAYS_IN_MONTH[month - 1]
    if not 1 <= day <= days_in_month:
        return None
    offset = 0
    if match.group(8) is None:
        offset_hours, offset_minutes = int(match.group(10)), int(match.group(11))
        if offset_hours > 23 or offset_minutes > 59:
            return None
        offset = (offset_hours * 60 + offset_minutes) * 60
        if match.group(9) == "-":
            offset = -offset
    days = days_from_civil(year, month, day)
    return days * 86400 + hour * 3600 + minute * 60 + second - offset


@lru_cache(maxsize=4096)
def format_utc(instant: int) -> str:
    """`2025-12-31T15:00:00Z`: how statements print an instant.

    Cached: a statement prints the same few version starts on every line."""
    return datetime.fromtimestamp(instant, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
