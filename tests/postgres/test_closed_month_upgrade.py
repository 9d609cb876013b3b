"""Upgrading a ledger that holds a closed month, from the schema before the newest migrations.

Given a database migrated up to 0012 (voids: the rollup triggers as they are rewritten
there), September 2026 billed on two GPUs, one registered, some seconds voided, and
closed the way closes posted transfers then (paid in cash at the close), when every
newer migration is applied, then the closed statement prints the same bytes, `verify
--db`'s checks pass (rollups, chain, recomputed statements, trial balance), and the
rollups still follow registrations made after the upgrade.
"""

from __future__ import annotations

import os

import asyncpg
import pytest

from ledger.domain import journal
from ledger.domain.catalog_file import parse_catalog
from ledger.domain.metering import ClaimKey
from ledger.domain.ports import NewVoid, VoidedBits
from ledger.postgres.schema import (
    migrate,
    shipped,
)
from ledger.postgres.store import PostgresStore
from ledger.service import books, verification
from ledger.service import catalog as catalog_service
from ledger.settings import APP_ROLE, with_user
from tests.factories import DEFAULT_CATALOG
from tests.postgres.upgrades import database_before

pytestmark = pytest.mark.infra

PREVIOUS_RELEASE = "0013"  # the first migration the upgraded database has not seen
HOUR = 1_790_000_000 - 1_790_000_000 % 3600  # an hour in 2026-09 (JST)
ACME = ("sakura", "kddi", "acme", "H200")  # provider, reseller, tenant, sku


def registry(*uuids: str) -> str:
    return "".join(
        f'\n[[gpus]]\nuuid = "{uuid}"\nprovider = "sakura"\nsku = "H200"\nregion = "jp-tokyo"\n'
        'registered_from = "2026-04-01T00:00:00+09:00"\n'
        for uuid in uuids
    )


@pytest.fixture
async def previous_release(postgres_server):
    """A new database migrated up to PREVIOUS_RELEASE (not included); the owner's URL."""
    url = await database_before(postgres_server, f"upgrade_closed_{os.getpid()}", PREVIOUS_RELEASE)
    yield url


async def close_september_as_then(store: PostgresStore, monkeypatch) -> bytes:
    """Usage of two GPUs (GPU-1 registered), a void while September is open, then the
    close as that release made it: transfers paid in cash at the close."""
    catalog = parse_catalog((DEFAULT_CATALOG + registry("GPU-1")).encode())
    await catalog_service.load_parsed(store, catalog, "0" * 64, "test")
    async with store.intake() as tx:
        await tx.write_claims([
            (ClaimKey("GPU-1", HOUR, ACME, "2026-09", "2026-09"), (1 << 3600) - 1),
            (ClaimKey("GPU-2", HOUR, ACME, "2026-09", "2026-09"), (1 << 1800) - 1),
        ])
        void = NewVoid("GPU-2", HOUR, HOUR + 3600, ACME, "outage", None, "operator", 600, None)
        await tx.write_void(void, [VoidedBits(ClaimKey("GPU-2", HOUR, ACME, "2026-09", "2026-09"),
                                              (1 << 600) - 1, None)])
    original = journal.entries_for_statement
    monkeypatch.setattr(journal, "entries_for_statement", lambda statement, transfers_owed=True: original(statement, False))
    closed = await books.statement(store, "2026-09", close=True)
    monkeypatch.setattr(journal, "entries_for_statement", original)
    return closed


async def test_a_closed_month_prints_the_same_bytes_and_verifies_after_the_upgrade(previous_release, monkeypatch):
    app_url = with_user(previous_release, APP_ROLE)
    store = await PostgresStore.connect(app_url)
    try:
        before = await close_september_as_then(store, monkeypatch)
        async with store.snapshot() as snapshot:  # (`verify` itself needs the newer schema)
            *_, head = [entry async for entry in snapshot.journal()]
    finally:
        await store.close()
    rollups = {"rows": 2, "gpu_seconds": 3600 + 1800 - 600}  # one hour and attribution, two regions (one NULL)
    conn = await asyncpg.connect(previous_release)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    assert applied == [name for name, _ in shipped() if name >= PREVIOUS_RELEASE] and applied
    store = await PostgresStore.connect(app_url)
    try:
        assert await books.statement(store, "2026-09") == before
        checked = await verification.verify(store)
        assert checked["closed_periods"] == ["2026-09"] and checked["statements_recomputed"] == 1
        assert (checked["head"], checked["rollups"], checked["trial_balance_yen"]) == (
            {"seq": head.seq, "hash": head.hash.hex()}, rollups, 0)
        # The rollups' triggers as the upgraded schema has them: GPU-2's seconds billed now
        # move to its region when it is registered after the upgrade.
        catalog = parse_catalog((DEFAULT_CATALOG + registry("GPU-1", "GPU-2")).encode())
        await catalog_service.load_parsed(store, catalog, "1" * 64, "test")
        usage = await store.hour_usage(HOUR, HOUR + 3600)
        assert [(u.region, u.seconds) for u in usage] == [("jp-tokyo", 3600 + 1800 - 600)]
        assert (await verification.verify(store))["rollups"] == {"rows": 1, "gpu_seconds": rollups["gpu_seconds"]}
        assert await books.statement(store, "2026-09") == before
    finally:
        await store.close()
