"""Usage read for the usage API: billed seconds per attribution and hour, from the rollups."""

from __future__ import annotations

import asyncpg

from ledger.domain.rating import HourUsage
from ledger.domain.usage import Coarsening, UsageFilter

# The hourly rollups (migration 0008), which equal claims grouped with the registry as it
# is now: one index range of hours, whatever the size of the claims table.
WHERE_USAGE = """
FROM usage_hours
WHERE hour_start >= $1 AND hour_start < $2
  AND ($3::text IS NULL OR reseller = $3 OR provider = $3)
  AND ($4::text IS NULL OR provider = $4)
  AND ($5::text IS NULL OR reseller = $5)
  AND ($6::text IS NULL OR sku = $6)
  AND ($7::text IS NULL OR service_period = $7)
  AND ($8::text IS NULL OR region = $8)
"""

SELECT_USAGE = (
    "SELECT provider, reseller, tenant, sku, service_period, region, hour_start, sum(seconds)::bigint AS seconds"
    + WHERE_USAGE
    + "GROUP BY provider, reseller, tenant, sku, service_period, region, hour_start\nHAVING sum(seconds) > 0"
)

# `ledger.domain.usage.coarsen` in SQL: summed per span between two bounds (width_bucket
# counts the bounds at or before an hour).
SELECT_COARSE_USAGE = (
    "SELECT provider, reseller, tenant, sku, service_period, region, min(hour_start) AS hour_start,\n"
    "       sum(seconds)::bigint AS seconds"
    + WHERE_USAGE
    + "GROUP BY provider, reseller, tenant, sku, service_period, region, width_bucket(hour_start, $9::bigint[])\n"
    "HAVING sum(seconds) > 0"
)


async def hour_usage(
    conn: asyncpg.Connection, start: int, end: int, *, member: str | None, where: UsageFilter,
    coarse: Coarsening | None,
) -> list[HourUsage]:
    """HourUsage rows of [start, end) naming `member` (None: all), as `where` filters,
    summed as `coarse` allows."""
    # $1 to $8 of WHERE_USAGE, in its order.
    args = (start, end, member, where.provider, where.reseller, where.sku, where.service_period, where.region)
    if coarse is None:
        rows = await conn.fetch(SELECT_USAGE, *args)
    else:
        rows = await conn.fetch(SELECT_COARSE_USAGE, *args, list(coarse.bounds))
    return [
        HourUsage(r["reseller"], r["tenant"], r["provider"], r["sku"], r["service_period"],
                  r["hour_start"], r["seconds"], None, r["region"])
        for r in rows
    ]
