"""The catalog's tables: reading the stored catalog, and adding a load's new versions."""

from __future__ import annotations

from collections import defaultdict

import asyncpg

from ledger.domain.catalog import (
    LATE_SETTINGS,
    AgreementVersion,
    Catalog,
    Member,
    PriceVersion,
    Sku,
)
from ledger.domain.registry import Grant, Registration
from ledger.postgres.errors import translating

CATALOG_LOCK_KEY = 0x6770756C65646701  # pg_advisory_xact_lock key serializing catalog loads

SELECT_REVISION = "SELECT coalesce(max(revision), 0) FROM catalog_loads"
SELECT_SETTINGS = "SELECT * FROM catalog_settings WHERE id = 1"
SELECT_MEMBERS = "SELECT id, name, invoice_registration FROM members"
SELECT_SKUS = "SELECT id, description FROM skus"
SELECT_PRICES = "SELECT reseller, sku, effective_from, yen_per_gpu_hour_units FROM retail_prices"
SELECT_AGREEMENTS = (
    "SELECT reseller, provider, sku, effective_from, wholesale_units, share_bps FROM agreements"
)
SELECT_GPUS = """
SELECT g.uuid, g.provider, g.sku, g.region, g.registered_from, r.retired_from
FROM gpu_registrations g LEFT JOIN gpu_retirements r ON r.uuid = g.uuid
"""
SELECT_GRANTS = (
    "SELECT id, funder, reseller, tenant, amount_yen, skus, first_period, last_period, providers FROM grants"
)
SELECT_LATE_SETTINGS = "SELECT name, value FROM catalog_late_settings"
INSERT_LATE_SETTING = "INSERT INTO catalog_late_settings (name, value, revision) VALUES ($1, $2, $3)"
INSERT_LOAD = "INSERT INTO catalog_loads (source, sha256) VALUES ($1, $2) RETURNING revision"
INSERT_SETTINGS = """
INSERT INTO catalog_settings (id, currency, timezone, tax_rate_percent, acceptance_horizon_days,
                              require_registered_gpus)
VALUES (1, $1, $2, $3, $4, $5)
"""
GPU_COLUMNS = ("uuid", "provider", "sku", "region", "registered_from", "revision")
RETIREMENT_COLUMNS = ("uuid", "retired_from", "revision")
INSERT_GRANT = """
INSERT INTO grants (id, funder, reseller, tenant, amount_yen, skus, first_period, last_period, revision, providers)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""
INSERT_MEMBER = "INSERT INTO members (id, name, invoice_registration, revision) VALUES ($1, $2, $3, $4)"
INSERT_SKU = "INSERT INTO skus (id, description, revision) VALUES ($1, $2, $3)"
INSERT_PRICE = "INSERT INTO retail_prices VALUES ($1, $2, $3, $4, $5)"
INSERT_AGREEMENT = "INSERT INTO agreements VALUES ($1, $2, $3, $4, $5, $6, $7)"


async def load_catalog(conn: asyncpg.Connection) -> tuple[Catalog, int]:
    """The stored catalog and its revision (0 when nothing was ever loaded)."""
    revision = await conn.fetchval(SELECT_REVISION)
    settings = await conn.fetchrow(SELECT_SETTINGS)
    if settings is None:
        return Catalog(), revision
    members = {
        r["id"]: Member(r["id"], r["name"], r["invoice_registration"])
        for r in await conn.fetch(SELECT_MEMBERS)
    }
    skus = {r["id"]: Sku(r["id"], r["description"]) for r in await conn.fetch(SELECT_SKUS)}
    prices: dict = defaultdict(list)
    for r in await conn.fetch(SELECT_PRICES):
        prices[(r["reseller"], r["sku"])].append(PriceVersion(r["effective_from"], r["yen_per_gpu_hour_units"]))
    agreements: dict = defaultdict(list)
    for r in await conn.fetch(SELECT_AGREEMENTS):
        agreements[(r["reseller"], r["provider"], r["sku"])].append(
            AgreementVersion(r["effective_from"], r["wholesale_units"], r["share_bps"])
        )
    late = {r["name"]: r["value"] for r in await conn.fetch(SELECT_LATE_SETTINGS)}
    catalog = Catalog(
        dispute_window_days_set=late.get("dispute_window_days"),
        payment_terms_days_set=late.get("payment_terms_days"),
        currency=settings["currency"],
        timezone=settings["timezone"],
        tax_rate_percent=settings["tax_rate_percent"],
        acceptance_horizon_days=settings["acceptance_horizon_days"],
        require_registered_gpus=settings["require_registered_gpus"],
        loaded=True,
        members=members,
        skus=skus,
        prices={k: tuple(sorted(v)) for k, v in prices.items()},
        agreements={k: tuple(sorted(v)) for k, v in agreements.items()},
        gpus={r["uuid"]: Registration(*r.values()) for r in await conn.fetch(SELECT_GPUS)},
        grants={r["id"]: _grant(r) for r in await conn.fetch(SELECT_GRANTS)},
    )
    return catalog, revision


def _grant(row: asyncpg.Record) -> Grant:
    skus = None if row["skus"] is None else frozenset(row["skus"])
    providers = None if row["providers"] is None else frozenset(row["providers"])
    return Grant(row["id"], row["funder"], row["reseller"], row["tenant"], row["amount_yen"], skus,
                 row["first_period"], row["last_period"], providers)


def _new_versions(before: dict, after: dict) -> list:
    return [
        (key, version)
        for key, versions in after.items()
        for version in versions
        if version not in before.get(key, ())
    ]


class PgCatalogWriter:
    """A catalog load's transaction (`Store.catalog_load`): loads serialized, closes wait."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    @translating
    async def lock(self) -> None:
        """Serialize loads (taken first, by the store, when the transaction starts)."""
        await self.conn.execute("SELECT pg_advisory_xact_lock($1)", CATALOG_LOCK_KEY)

    @translating
    async def closed_through(self) -> str | None:
        # FOR SHARE: a concurrent close waits, so "inside a closed period" stays true.
        return await self.conn.fetchval("SELECT closed_through FROM books WHERE id = 1 FOR SHARE")

    @translating
    async def catalog(self) -> tuple[Catalog, int]:
        return await load_catalog(self.conn)

    @translating
    async def add(self, before: Catalog, after: Catalog, source: str, sha256: str) -> int:
        conn = self.conn
        revision = await conn.fetchval(INSERT_LOAD, source, sha256)
        if not before.loaded:
            await conn.execute(
                INSERT_SETTINGS, after.currency, after.timezone, after.tax_rate_percent,
                after.acceptance_horizon_days, after.require_registered_gpus,
            )
        for name in LATE_SETTINGS:
            value = getattr(after, f"{name}_set")
            if value is not None and getattr(before, f"{name}_set") is None:
                await conn.execute(INSERT_LATE_SETTING, name, value, revision)
        members = sorted(set(after.members) - set(before.members))
        await conn.executemany(
            INSERT_MEMBER,
            [(m, after.members[m].name, after.members[m].invoice_registration, revision) for m in members],
        )
        skus = sorted(set(after.skus) - set(before.skus))
        await conn.executemany(INSERT_SKU, [(s, after.skus[s].description, revision) for s in skus])
        await conn.executemany(
            INSERT_PRICE,
            [(r, s, v.effective_from, v.yen_per_gpu_hour_units, revision)
             for (r, s), v in _new_versions(before.prices, after.prices)],
        )
        await conn.executemany(
            INSERT_AGREEMENT,
            [(r, p, s, v.effective_from, v.wholesale_units, v.share_bps, revision)
             for (r, p, s), v in _new_versions(before.agreements, after.agreements)],
        )
        await self._add_registry(before, after, revision)
        return revision

    async def _add_registry(self, before: Catalog, after: Catalog, revision: int) -> None:
        """New registrations (by COPY: fleets are tens of thousands), retirements and grants."""
        new = [g for uuid, g in after.gpus.items() if uuid not in before.gpus]
        await self.conn.copy_records_to_table(
            "gpu_registrations", columns=GPU_COLUMNS,
            records=[(g.uuid, g.provider, g.sku, g.region, g.registered_from, revision) for g in new],
        )
        retired = [
            (uuid, g.retired_from, revision) for uuid, g in after.gpus.items()
            if g.retired_from is not None and (uuid not in before.gpus or before.gpus[uuid].retired_from is None)
        ]
        await self.conn.copy_records_to_table("gpu_retirements", columns=RETIREMENT_COLUMNS, records=retired)
        await self.conn.executemany(
            INSERT_GRANT,
            [(g.id, g.funder, g.reseller, g.tenant, g.amount_yen, None if g.skus is None else sorted(g.skus),
              g.first_period, g.last_period, revision, None if g.providers is None else sorted(g.providers))
             for gid, g in after.grants.items() if gid not in before.grants],
        )
