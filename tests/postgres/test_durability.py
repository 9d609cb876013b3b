"""The ledger's commits are durable whatever the server's default: a worker acks its
Kafka records once their transaction commits, so a commit lost in a server crash would
be usage lost. The embedded test server runs with synchronous_commit off."""

from __future__ import annotations

import asyncpg
import pytest

from ledger.dev.processes import run_coroutine
from ledger.postgres.connection import connection
from ledger.postgres.store import open_store

# An embedded PostgreSQL.
pytestmark = pytest.mark.infra


def test_the_server_default_is_off_and_the_ledgers_sessions_turn_it_on(fresh_database):
    async def check() -> tuple[str, str, str]:
        plain = await asyncpg.connect(fresh_database)
        try:
            server_default = await plain.fetchval("SHOW synchronous_commit")
        finally:
            await plain.close()
        async with open_store(fresh_database) as store, store.intake() as tx:
            pooled = await tx.conn.fetchval("SHOW synchronous_commit")
        async with connection(fresh_database) as conn:
            single = await conn.fetchval("SHOW synchronous_commit")
        return server_default, pooled, single

    assert run_coroutine(check()) == ("off", "on", "on")
