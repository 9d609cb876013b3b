"""Usage read for the usage API: billed seconds per attribution and hour."""

from __future__ import annotations

import asyncpg

from ledger.domain.rating import HourUsage

SELECT_USAGE = """
SELECT c.provider, c.reseller, c.tenant, c.sku, c.service_period, r.region, c.hour_start,
       sum(c.seconds)::bigint AS seconds
FROM claims c
LEFT JOIN gpu_registrations r ON r.uuid = c.gpu_uuid AND r.provider = c.provider AND r.sku = c.sku
WHERE c.hour_start >= $1 AND c.hour_start < $2
  AND ($3::text IS NULL OR c.reseller = $3 OR c.provider = $3)
  AND ($4::text IS NULL OR c.provider = $4)
  AND ($5::text IS NULL OR c.reseller = $5)
  AND ($6::text IS NULL OR c.sku = $6)
  AND ($7::text IS NULL OR c.service_period = $7)
  AND ($8::text IS NULL OR r.region = $8)
GROUP BY c.provider, c.reseller, c.tenant, c.sku, c.service_period, r.region, c.hour_start
"""


async def hour_usage(conn: asyncpg.Connection, *args) -> list[HourUsage]:
    """(start, end, member, provider, reseller, sku, service_period, region) -> HourUsage rows."""
    return [
        HourUsage(r["reseller"], r["tenant"], r["provider"], r["sku"], r["service_period"],
                  r["hour_start"], r["seconds"], None, r["region"])
        for r in await conn.fetch(SELECT_USAGE, *args)
    ]
