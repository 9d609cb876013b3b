"""Billed seconds and rollups are stored one partition per month (migration 0008).

Given a migrated database, then the current month and the next two have partitions of
claims and usage_hours, a claim of this month lands in this month's partition, making
them again makes nothing, and a month whose rows already sit in the default partition
is left there (a row is never refused for want of a partition).
"""

from __future__ import annotations

import time

import asyncpg
import pytest

from ledger.domain.metering import ClaimKey
from ledger.postgres.store import PostgresStore
from tests.factories import DEFAULT_CATALOG
from tests.postgres.rollups import rollup_mismatches
from tests.postgres.test_store_contract import load_catalog

pytestmark = pytest.mark.infra

FAR_MONTH_HOUR = 2_000_000_000 - 2_000_000_000 % 3600  # 2033-05 in JST: no partition of its own


async def partitions(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent IN ('claims'::regclass, 'usage_hours'::regclass)"
        )
        return {r["relname"]: r["bound"] for r in rows}
    finally:
        await conn.close()


async def partition_of(url: str, table: str, gpu_uuid: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(f"SELECT tableoid::regclass::text FROM {table} WHERE gpu_uuid = $1", gpu_uuid)
    finally:
        await conn.close()


async def test_this_month_and_the_next_two_have_partitions_and_take_their_claims(fresh_database):
    made = await partitions(fresh_database)
    now = time.time()
    year, month = (int(part) for part in time.strftime("%Y %m", time.gmtime(now + 9 * 3600)).split())
    months = {f"{year + (month - 1 + ahead) // 12}_{(month - 1 + ahead) % 12 + 1:02d}" for ahead in (0, 1, 2)}
    for month in months:
        assert f"claims_{month}" in made and f"usage_hours_{month}" in made, sorted(made)
    assert {"claims_history", "claims_default", "usage_hours_history", "usage_hours_default"} <= set(made)

    store = await PostgresStore.connect(fresh_database)
    try:
        assert await store.prepare_months() == []  # already made
        await load_catalog(store, DEFAULT_CATALOG)
        hour = int(now) - int(now) % 3600
        this_month = time.strftime("%Y-%m", time.gmtime(hour + 9 * 3600))
        far = time.strftime("%Y-%m", time.gmtime(FAR_MONTH_HOUR + 9 * 3600))
        async with store.intake() as tx:
            await tx.write_claims([
                (ClaimKey("GPU-now", hour, ("sakura", "kddi", "acme", "H200"), this_month, this_month), 0b1),
                (ClaimKey("GPU-far", FAR_MONTH_HOUR, ("sakura", "kddi", "acme", "H200"), far, far), 0b11),
            ])
        assert await partition_of(fresh_database, "claims", "GPU-now") == f"claims_{this_month.replace('-', '_')}"
        assert await partition_of(fresh_database, "claims", "GPU-far") == "claims_default"
        assert await rollup_mismatches(fresh_database) == []
        usage = await store.hour_usage(FAR_MONTH_HOUR, FAR_MONTH_HOUR + 3600)
        assert [(u.tenant, u.seconds) for u in usage] == [("acme", 2)]
    finally:
        await store.close()


async def test_a_month_already_in_the_default_partition_stays_there(postgres_server, fresh_database):
    store = await PostgresStore.connect(fresh_database)
    try:
        await load_catalog(store, DEFAULT_CATALOG)
        far = time.strftime("%Y-%m", time.gmtime(FAR_MONTH_HOUR + 9 * 3600))
        async with store.intake() as tx:
            await tx.write_claims([(ClaimKey("GPU-far", FAR_MONTH_HOUR, ("sakura", "kddi", "acme", "H200"), far, far), 1)])
    finally:
        await store.close()
    owner_url = postgres_server.rsplit("/", 1)[0] + "/" + fresh_database.rsplit("/", 1)[1]
    conn = await asyncpg.connect(owner_url)
    try:
        # As if the clock had come to that month: its partitions would now be made.
        made = await conn.fetch(
            "SELECT ledger_ensure_partitions(((($1::bigint - extract(epoch FROM now())) / 86400 / 28)::int) + 1) AS made",
            FAR_MONTH_HOUR,
        )
    finally:
        await conn.close()
    names = {r["made"] for r in made}
    far_name = far.replace("-", "_")
    assert f"claims_{far_name}" not in names and f"usage_hours_{far_name}" not in names
    assert await partition_of(fresh_database, "claims", "GPU-far") == "claims_default"
