"""Migration 0010 on a ledger that already has dead letters, and what it holds new ones to.

Given dead letters written before 0010 (their bytes whole, however large, no size or
hash stored), when the database is migrated, then they read as before: whole, their size
and SHA-256 computed, replayable. And a new row that keeps more than 1 MiB, keeps bytes
while referring to another's, or refers to a dead letter that itself refers on, is
refused by the database itself, whoever writes it.
"""

from __future__ import annotations

import hashlib
import os

import asyncpg
import pytest

from ledger.domain.ports import DeadLetterFilter
from ledger.postgres.schema import (
    migrate,
)
from ledger.postgres.store import PostgresStore
from ledger.settings import APP_ROLE, with_user
from tests.postgres.upgrades import database_before

pytestmark = pytest.mark.infra

LEGACY = b'{"pad": "' + b"x" * (2 << 20) + b'"}'  # 2 MiB: kept whole before 0010
INSERT = ("INSERT INTO dead_letters (reason, detail, raw, received_ms, raw_bytes, raw_sha256, raw_of) "
          "VALUES ('malformed', 'd', $1, 0, $2, $3, $4) RETURNING id")


@pytest.fixture
async def before_0010(postgres_server):
    """A new database migrated up to 0009, with one dead letter as 0009 kept it; the owner's URL."""
    url = await database_before(postgres_server, f"upgrade_{os.getpid()}", "0010")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("INSERT INTO dead_letters (reason, detail, raw, received_ms) VALUES ('malformed', 'd', $1, 0)",
                           LEGACY)
    finally:
        await conn.close()
    yield url


async def test_dead_letters_from_before_0010_read_whole_with_their_size_and_hash(before_0010):
    conn = await asyncpg.connect(before_0010)
    try:
        assert "0010_bounded_dead_letters.sql" in await migrate(conn)
    finally:
        await conn.close()
    store = await PostgresStore.connect(with_user(before_0010, APP_ROLE))
    try:
        (row,) = await store.dead_letter_page(DeadLetterFilter(), 0, 10, 16)
        assert (row["raw_bytes"], row["raw_whole"]) == (len(LEGACY), True)
        assert bytes(row["raw_sha256"]) == hashlib.sha256(LEGACY).digest()
        assert await store.unreplayed_dead_letters(DeadLetterFilter(), 10) == [row["id"]]
        async with store.intake() as tx:
            target = (await tx.replay_targets([row["id"]]))[row["id"]]
        assert (target.raw, target.whole, target.bytes_of) == (LEGACY, True, row["id"])
    finally:
        await store.close()


async def test_the_database_holds_new_dead_letters_to_the_bound(before_0010):
    conn = await asyncpg.connect(before_0010)
    try:
        await migrate(conn)
        sha = hashlib.sha256(b"{}").digest()
        first = await conn.fetchval(INSERT, b"{}", 2, sha, None)
        second = await conn.fetchval(INSERT, b"", 2, sha, first)
        for raw, size, raw_of in (
            (LEGACY, len(LEGACY), None),  # more than 1 MiB kept
            (b"{}", 2, first),  # bytes kept while referring to another's
            (b"", 2, second),  # referring to one that refers on
            (b"{}", None, None),  # no size
        ):
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.fetchval(INSERT, raw, size, sha, raw_of)
    finally:
        await conn.close()
