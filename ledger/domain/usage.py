"""Usage as members see it while it happens: GPU-seconds and estimated yen, scoped.

A member sees the usage it resold (its tenants, its retail prices) and the usage that
ran on its GPUs for other resellers (their tenants as pseudonyms, no retail prices); an
auditor sees everything. Amounts are estimates: each hour is priced at the versions in
effect at its start and floored once per returned row, where a statement floors per
line and rounds tax per invoice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction

from ledger.domain.access import Caller, pseudonym
from ledger.domain.catalog import PRICE_SCALE, Catalog
from ledger.domain.instants import format_utc
from ledger.domain.rating import HourUsage

GRANULARITIES = ("hour", "day", "month")
GROUP_FIELDS = ("tenant", "provider", "reseller", "sku", "service_period", "region")
MAX_RANGE_SECONDS = 400 * 86400


@dataclass(frozen=True)
class UsageQuery:
    start: int  # Unix seconds, inclusive (rounded down to the hour)
    end: int  # exclusive
    granularity: str = "day"
    group_by: tuple[str, ...] = ()
    tenant: str | None = None
    provider: str | None = None
    reseller: str | None = None
    sku: str | None = None
    period: str | None = None
    region: str | None = None


def _bucket(catalog: Catalog, hour_start: int, granularity: str) -> int:
    if granularity == "hour":
        return hour_start
    if granularity == "month":
        return catalog.calendar.bounds(catalog.calendar.period_of(hour_start))[0]
    local = datetime.fromtimestamp(hour_start, catalog.calendar.zone)
    return int(local.replace(hour=0, minute=0, second=0).timestamp())


def _hourly_amounts(catalog: Catalog, row: HourUsage) -> tuple[Fraction, Fraction]:
    """Exact retail and wholesale yen of one attribution's seconds in one hour."""
    seconds = row.seconds
    price = catalog.price_at(row.reseller, row.sku, row.hour_start)
    retail = Fraction(seconds * price.yen_per_gpu_hour_units, 3600 * PRICE_SCALE) if price else Fraction(0)
    if row.provider == row.reseller:
        return retail, Fraction(0)
    agreement = catalog.agreement_at(row.reseller, row.provider, row.sku, row.hour_start)
    if agreement is None:
        return retail, Fraction(0)
    if agreement.wholesale_units is not None:
        return retail, Fraction(seconds * agreement.wholesale_units, 3600 * PRICE_SCALE)
    return retail, retail * agreement.share_bps / 10_000


def summarize(rows: Iterable[HourUsage], query: UsageQuery, caller: Caller, catalog: Catalog, key: bytes) -> list[dict]:
    """Billed seconds per attribution and hour -> the caller's view, grouped and sorted."""
    groups: dict[tuple, list] = defaultdict(lambda: [0, Fraction(0), Fraction(0), False])
    for row in rows:
        own = caller.member is None or row.reseller == caller.member
        tenant = row.tenant if own else pseudonym(key, caller.member, row.reseller, row.tenant)
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
        group = (_bucket(catalog, row.hour_start, query.granularity),
                 *(values[name] for name in query.group_by))
        retail, wholesale = _hourly_amounts(catalog, row)
        totals = groups[group]
        totals[0] += row.seconds
        if own:
            totals[1] += retail
            totals[3] = True
        totals[2] += wholesale
    items = []
    for group in sorted(groups):
        seconds, retail, wholesale, any_own = groups[group]
        item = {"bucket_start": format_utc(group[0])}
        item.update(zip(query.group_by, group[1:], strict=True))
        item["gpu_seconds"] = seconds
        # Retail prices of other resellers are theirs: None when the caller resold none of it.
        item["retail_yen_estimate"] = int(retail) if any_own else None  # never negative
        item["wholesale_yen_estimate"] = int(wholesale)
        items.append(item)
    return items


def now_utc() -> int:
    return int(datetime.now(UTC).timestamp())
