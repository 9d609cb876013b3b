"""A connection goes back to the pool without asyncpg's session reset (the adapter keeps
no session state): a transaction left open is still rolled back, its locks let go, and
the next user finds the session as the ledger set it."""

from __future__ import annotations

import asyncpg
import pytest

from ledger.dev.processes import run_coroutine
from ledger.postgres.connection import create_pool

pytestmark = pytest.mark.infra  # an embedded PostgreSQL


def test_a_connection_released_inside_a_transaction_comes_back_rolled_back(fresh_database):
    async def check() -> tuple:
        pool = await create_pool(fresh_database, min_size=1, max_size=1)
        other = await asyncpg.connect(fresh_database)
        try:
            conn = await pool.acquire()
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute("BEGIN")
            await conn.execute("SELECT pg_advisory_xact_lock(424242)")
            locked_meanwhile = not await other.fetchval("SELECT pg_try_advisory_lock(424242)")
            await pool.release(conn)
            conn = await pool.acquire()
            found = (await conn.fetchval("SELECT pg_backend_pid()") == backend, conn.is_in_transaction(),
                     await conn.fetchval("SHOW synchronous_commit"))
            await pool.release(conn)
            free_after = await other.fetchval("SELECT pg_try_advisory_lock(424242)")
            return locked_meanwhile, *found, free_after
        finally:
            await other.close()
            await pool.close()

    # The same session, no transaction open, the ledger's settings kept, the lock gone.
    assert run_coroutine(check()) == (True, True, False, "on", True)
