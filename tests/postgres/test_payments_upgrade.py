"""Migration 0013 on a ledger that closed periods before payments existed.

Given a database migrated up to 0012 with September 2026 closed the way closes posted
transfers then (as paid in cash at the close, kind `transfer`), when it is migrated,
then the transfers of the stored statement are there for payments, the journal keeps its
kinds and takes the new ones, and a payment of the old transfer is recorded and
confirmed: its transfer is restated as owed, and `verify` checks the whole journal.
"""

from __future__ import annotations

import os

import asyncpg
import orjson
import pytest

from ledger.domain import journal
from ledger.domain.access import Caller
from ledger.domain.catalog_file import parse_catalog
from ledger.domain.metering import ClaimKey
from ledger.domain.payments import Transfer
from ledger.postgres.schema import (
    migrate,
)
from ledger.postgres.store import PostgresStore
from ledger.service import books, payments, verification
from ledger.service import catalog as catalog_service
from ledger.settings import APP_ROLE, with_user
from tests.factories import DEFAULT_CATALOG
from tests.postgres.upgrades import database_before

pytestmark = pytest.mark.infra

HOUR = 1_790_000_000 - 1_790_000_000 % 3600  # an hour in 2026-09 (JST)


@pytest.fixture
async def before_0013(postgres_server):
    """A new database migrated up to 0012; the owner's URL."""
    url = await database_before(postgres_server, f"upgrade_payments_{os.getpid()}", "0013")
    yield url


async def close_september_as_before(store: PostgresStore, monkeypatch) -> bytes:
    await catalog_service.load_parsed(store, parse_catalog(DEFAULT_CATALOG.encode()), "0" * 64, "test")
    async with store.intake() as tx:
        key = ClaimKey("GPU-1", HOUR, ("sakura", "kddi", "acme", "H200"), "2026-09", "2026-09")
        await tx.write_claims([(key, (1 << 3600) - 1)])
    original = journal.entries_for_statement
    monkeypatch.setattr(journal, "entries_for_statement", lambda statement, transfers_owed=True: original(statement, False))
    closed = await books.statement(store, "2026-09", close=True)
    monkeypatch.setattr(journal, "entries_for_statement", original)
    return closed


async def test_a_transfer_closed_before_payments_is_paid_and_the_books_verify(before_0013, monkeypatch):
    app_url = with_user(before_0013, APP_ROLE)
    store = await PostgresStore.connect(app_url)
    try:
        statement = orjson.loads(await close_september_as_before(store, monkeypatch))
        assert statement["transfers"] == [{"from": "kddi", "to": "sakura", "amount_yen": 572}]
    finally:
        await store.close()
    conn = await asyncpg.connect(before_0013)
    try:
        assert (await migrate(conn))[0] == "0013_payments.sql"
        kinds = await conn.fetchval("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                                    "WHERE conname = 'journal_entries_kind_check'")
    finally:
        await conn.close()
    for kind in ("tenant_invoice", "member_invoice_reseller", "member_invoice_provider", "grant_reimbursement",
                 "netting", "transfer", "transfer_owed", "payment", "transfer_restated"):
        assert f"'{kind}'" in kinds
    store = await PostgresStore.connect(app_url)
    try:
        async with store.payments() as tx:
            assert await tx.transfers() == [Transfer("2026-09", "kddi", "sakura", 572, 0)]
        kddi, sakura = Caller("t1", "member", "kddi"), Caller("t2", "member", "sakura")
        made = await payments.record(store, kddi, "2026-09", "sakura", 572, "2026-10-30", "BANK")
        assert (await payments.confirm(store, sakura, made["id"]))["state"] == "confirmed"
        async with store.snapshot() as snapshot:
            entries = [e async for e in snapshot.journal("2026-09")]
        assert [e.kind for e in entries][-3:] == ["transfer", "transfer_restated", "payment"]
        report = await verification.verify(store)
        assert (report["payments"], report["trial_balance_yen"]) == (1, 0)
    finally:
        await store.close()
