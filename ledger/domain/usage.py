"""Usage as members see it while it happens: GPU-seconds and estimated yen, scoped.

A member sees the usage it resold (its tenants, its retail prices) and the usage that
ran on its GPUs for other resellers (their tenants as pseudonyms, no retail prices); an
auditor sees everything. Amounts are estimates: each hour is priced at the versions in
effect at its start and floored once per returned row, where a statement floors per
line and rounds tax per invoice.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from ledger.domain.access import Caller, pseudonym
from ledger.domain.catalog import PRICE_SCALE, Catalog
from ledger.domain.instants import format_utc
from ledger.domain.rating import HourUsage

GRANULARITIES = ("hour", "day", "month")
GROUP_FIELDS = ("tenant", "provider", "reseller", "sku", "service_period", "region")
MAX_RANGE_SECONDS = 400 * 86400


@dataclass(frozen=True, kw_only=True, slots=True)
class UsageFilter:
    """Which usage a store reads (`ledger.domain.ports.Store.hour_usage`): of this
    provider, reseller, SKU, service period (YYYY-MM) and region of the GPU's
    registration; None: any. Named, never positional: the same words from the API's
    query string to the SQL. (A tenant is not among them: the caller names other
    resellers' tenants by pseudonyms, which only `summarize` knows.)"""

    provider: str | None = None
    reseller: str | None = None
    sku: str | None = None
    service_period: str | None = None
    region: str | None = None


ANY_USAGE = UsageFilter()


@dataclass(frozen=True, kw_only=True, slots=True)
class UsageQuery:
    start: int  # Unix seconds, inclusive (rounded down to the hour)
    end: int  # exclusive
    granularity: str = "day"
    group_by: tuple[str, ...] = ()
    tenant: str | None = None  # as the caller names it (a pseudonym for another reseller's)
    where: UsageFilter = ANY_USAGE


def _bucket(catalog: Catalog, hour_start: int, granularity: str) -> int:
    if granularity == "hour":
        return hour_start
    if granularity == "month":
        return catalog.calendar.bounds(catalog.calendar.period_of(hour_start))[0]
    local = datetime.fromtimestamp(hour_start, catalog.calendar.zone)
    return int(local.replace(hour=0, minute=0, second=0).timestamp())


# Every hourly amount is a whole number of 1/AMOUNT_SCALE yen: seconds times a price in
# 1/PRICE_SCALE yen per GPU-hour, over 3600, times a share in basis points over 10,000.
AMOUNT_SCALE = 3600 * PRICE_SCALE * 10_000


def _rates(catalog: Catalog, row: HourUsage) -> tuple[int, int]:
    """Retail and wholesale yen per GPU-second of the versions in effect at the hour's
    start, in 1/AMOUNT_SCALE yen: exact integers."""
    price = catalog.price_at(row.reseller, row.sku, row.hour_start)
    retail = price.yen_per_gpu_hour_units * 10_000 if price else 0
    if row.provider == row.reseller:
        return retail, 0
    agreement = catalog.agreement_at(row.reseller, row.provider, row.sku, row.hour_start)
    if agreement is None:
        return retail, 0
    if agreement.wholesale_units is not None:
        return retail, agreement.wholesale_units * 10_000
    return retail, (price.yen_per_gpu_hour_units * agreement.share_bps if price else 0)


def price_breaks(catalog: Catalog) -> list[int]:
    """The hours from which some price or agreement version is in effect, sorted. Between
    two of them every hour is priced by the same versions, so a store may sum usage over
    such hours (within one bucket) before `summarize` prices it."""
    starts = {v.effective_from for vs in catalog.prices.values() for v in vs}
    starts |= {v.effective_from for vs in catalog.agreements.values() for v in vs}
    return sorted({-(-start // 3600) * 3600 for start in starts})


@dataclass(frozen=True)
class Coarsening:
    """How a store may sum hourly usage before `summarize`: the hours between two
    consecutive `bounds` (sorted) are in one bucket and priced by the same versions."""

    bounds: tuple[int, ...]


def coarsening(catalog: Catalog, granularity: str, start: int, end: int) -> Coarsening | None:
    """What `summarize` allows for a granularity over [start, end): the starts of its
    buckets and the price breaks (None for hours: nothing to sum)."""
    if granularity == "hour":
        return None
    bounds = {b for b in price_breaks(catalog) if start < b < end}
    # 36 hours after a day's start is always within the next day (days last 23 to 25
    # hours), 45 days after a month's start within the next month.
    step = 45 * 86400 if granularity == "month" else 36 * 3600
    bucket = _bucket(catalog, start, granularity)
    while bucket < end:
        bounds.add(bucket)
        bucket = _bucket(catalog, bucket + step, granularity)
    return Coarsening(tuple(sorted(bounds)))


def by_versions(catalog: Catalog) -> Coarsening:
    """What `ledger.domain.rating.rate` allows: hours summed between two price breaks (a
    line is one attribution, service period and pair of versions; the hours some version
    starts within are never summed, their seconds are rated by their bits)."""
    return Coarsening(tuple(price_breaks(catalog)))


def coarsen(rows: Iterable[HourUsage], how: Coarsening | None) -> list[HourUsage]:
    """Hourly rows summed per attribution, service period, region and span between two
    bounds; each sum carries the first of its hours. `summarize` gives the same answer for
    these rows as for the hourly ones."""
    if how is None:
        return list(rows)
    sums: dict[tuple, list[int]] = {}
    for row in rows:
        key = (row.reseller, row.tenant, row.provider, row.sku, row.service_period, row.region,
               bisect_right(how.bounds, row.hour_start))
        found = sums.get(key)
        if found is None:
            sums[key] = [row.hour_start, row.seconds]
        else:
            found[0] = min(found[0], row.hour_start)
            found[1] += row.seconds
    return [
        HourUsage(k[0], k[1], k[2], k[3], k[4], first, seconds, None, k[5])
        for k, (first, seconds) in sums.items()
    ]


@dataclass(slots=True)
class _Totals:
    """What `summarize` adds up for one item: seconds, and yen in 1/AMOUNT_SCALE."""

    seconds: int = 0
    retail: int = 0  # of the usage the caller resold (auditors: all)
    wholesale: int = 0
    any_own: bool = False  # whether the caller resold any of it (else no retail figure)


def summarize(rows: Iterable[HourUsage], query: UsageQuery, caller: Caller, catalog: Catalog, key: bytes) -> list[dict]:
    """Billed seconds per attribution and hour -> the caller's view, grouped and sorted.

    A row may also sum several hours of one bucket priced by the same versions (see
    `price_breaks`); its `hour_start` is then the first of them."""
    groups: dict[tuple, _Totals] = defaultdict(_Totals)
    buckets: dict[int, int] = {}
    rates: dict[tuple, tuple[int, int]] = {}
    tenants: dict[tuple[str, str], str] = {}
    for row in rows:
        own = caller.member is None or row.reseller == caller.member
        if own:
            tenant = row.tenant
        else:
            tenant = tenants.get((row.reseller, row.tenant))
            if tenant is None:
                tenant = tenants[(row.reseller, row.tenant)] = pseudonym(key, caller.member, row.reseller, row.tenant)
        if query.tenant is not None and tenant != query.tenant:
            continue
        values = {
            "tenant": tenant,
            "provider": row.provider,
            "reseller": row.reseller,
            "sku": row.sku,
            "service_period": row.service_period,
            "region": row.region,
        }
        bucket = buckets.get(row.hour_start)
        if bucket is None:
            bucket = buckets[row.hour_start] = _bucket(catalog, row.hour_start, query.granularity)
        rate_key = (row.reseller, row.provider, row.sku, row.hour_start)
        rate = rates.get(rate_key)
        if rate is None:
            rate = rates[rate_key] = _rates(catalog, row)
        totals = groups[(bucket, *(values[name] for name in query.group_by))]
        totals.seconds += row.seconds
        if own:
            totals.retail += row.seconds * rate[0]
            totals.any_own = True
        totals.wholesale += row.seconds * rate[1]
    items = []
    printed: dict[int, str] = {}
    for group in sorted(groups):
        totals = groups[group]
        bucket_start = printed.get(group[0])
        if bucket_start is None:
            bucket_start = printed[group[0]] = format_utc(group[0])
        item = {"bucket_start": bucket_start}
        item.update(zip(query.group_by, group[1:], strict=True))
        item["gpu_seconds"] = totals.seconds
        # Retail prices of other resellers are theirs: None when the caller resold none of it.
        item["retail_yen_estimate"] = totals.retail // AMOUNT_SCALE if totals.any_own else None  # floored once
        item["wholesale_yen_estimate"] = totals.wholesale // AMOUNT_SCALE
        items.append(item)
    return items


def now_utc() -> int:
    return int(datetime.now(UTC).timestamp())
