"""GPU-hours per calendar day of a period, in the catalog's timezone (for the reports' charts).

A billed hour counts on the local date its hour starts on: with a timezone whose offset is
whole hours (Asia/Tokyo) that is exact; elsewhere an hour that straddles midnight counts
on the day it starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time, timedelta

from ledger.domain.catalog import Catalog

HOURS_DIGITS = 4


def days(catalog: Catalog, period: str) -> list[tuple[str, int, int]]:
    """Each local day of a period: (`YYYY-MM-DD`, start, end) in Unix seconds."""
    start, end = catalog.calendar.bounds(period)
    zone = catalog.calendar.zone
    day = datetime.fromtimestamp(start, zone).date()
    found = []
    current = start
    while current < end:
        following = int(datetime.combine(day + timedelta(days=1), time(), zone).timestamp())
        found.append((day.isoformat(), current, min(following, end)))
        current, day = following, day + timedelta(days=1)
    return found


def series(catalog: Catalog, period: str, points: Iterable[tuple[str, int, int]], order: list[str] | None = None) -> dict:
    """GPU-hours per day and label from (label, hour_start, seconds) points of the period;
    points outside it are left out. Labels in `order`, then the others sorted."""
    calendar_days = days(catalog, period)
    index = {name: i for i, (name, _, _) in enumerate(calendar_days)}
    zone = catalog.calendar.zone
    seconds: dict[str, list[int]] = {}
    for label, hour_start, count in points:
        day = datetime.fromtimestamp(hour_start, zone).date().isoformat()
        if day in index:
            seconds.setdefault(label, [0] * len(calendar_days))[index[day]] += count
    labels = [label for label in (order or []) if label in seconds]
    labels += sorted(label for label in seconds if label not in labels)
    return {
        "days": [name for name, _, _ in calendar_days],
        "series": [{"label": label, "hours": [round(s / 3600, HOURS_DIGITS) for s in seconds[label]]} for label in labels],
    }
