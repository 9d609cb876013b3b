"""What the rollups must always be: claims grouped, with the registry as it is now."""

from __future__ import annotations

import asyncpg

ROLLUP_MISMATCHES = """
WITH expected AS (
    SELECT c.hour_start, c.provider, c.reseller, c.tenant, c.sku, c.service_period, c.booking_period,
           r.region, sum(c.seconds)::bigint AS seconds
    FROM claims c
    LEFT JOIN gpu_registrations r ON r.uuid = c.gpu_uuid AND r.provider = c.provider AND r.sku = c.sku
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
), rolled AS (
    SELECT hour_start, provider, reseller, tenant, sku, service_period, booking_period, region, seconds
    FROM usage_hours WHERE seconds > 0
)
(SELECT 'missing' AS what, * FROM (SELECT * FROM expected EXCEPT ALL SELECT * FROM rolled) m)
UNION ALL
(SELECT 'extra' AS what, * FROM (SELECT * FROM rolled EXCEPT ALL SELECT * FROM expected) e)
LIMIT 20
"""


async def rollup_mismatches(database_url: str) -> list[dict]:
    """Rows where usage_hours and the grouped claims differ (none when the rollups hold)."""
    conn = await asyncpg.connect(database_url)
    try:
        return [dict(row) for row in await conn.fetch(ROLLUP_MISMATCHES)]
    finally:
        await conn.close()
