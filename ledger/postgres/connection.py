"""Connections and transactions: how the adapter reaches PostgreSQL.

A `transaction` translates driver errors at its start and at its commit, and leaves the
caller's own exceptions alone: a service's error inside a transaction rolls it back and
reaches the caller as it was raised.
"""

from __future__ import annotations

import contextlib
from contextlib import asynccontextmanager

import asyncpg

from ledger.domain.errors import ServiceUnavailable
from ledger.postgres.errors import describe, redact, translated

CONNECT_TIMEOUT_SECONDS = 10.0

# A worker acks its Kafka records once their transaction commits, so a commit must
# survive a crash of the server: with synchronous_commit off (a server-wide setting some
# clusters use for speed) the last commits of a crashed server are gone while Kafka has
# moved past them. Set per session, whatever the server's default.
SESSION_SETTINGS = {"synchronous_commit": "on", "application_name": "gpuledger"}


async def _session_left_as_it_was(conn: asyncpg.Connection) -> None:
    """What a connection needs on its way back to the pool besides the rollback of a
    transaction left open (asyncpg's own, always done): nothing. The adapter keeps no
    session state: its advisory locks are transaction locks, its cursors live in
    transactions, it never LISTENs or SETs a session variable. asyncpg's default would
    send `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every
    release: a round trip each time a usage answer reads a token or the ledger version."""


async def create_pool(database_url: str, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    """A pool, or ServiceUnavailable naming the server (without its password)."""
    try:
        return await asyncpg.create_pool(
            database_url,
            min_size=min_size,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT_SECONDS,
            server_settings=SESSION_SETTINGS,
            reset=_session_left_as_it_was,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ServiceUnavailable(f"cannot reach PostgreSQL at {redact(database_url)}: {describe(exc)}") from exc


@asynccontextmanager
async def connection(database_url: str):
    """One connection (the owner's, for migrations), with an unreachable server reported."""
    try:
        conn = await asyncpg.connect(
            database_url, timeout=CONNECT_TIMEOUT_SECONDS, server_settings=SESSION_SETTINGS
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ServiceUnavailable(f"cannot reach PostgreSQL at {redact(database_url)}: {describe(exc)}") from exc
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


@asynccontextmanager
async def transaction(pool: asyncpg.Pool, **options):
    """A connection of `pool` inside one transaction (asyncpg's options: isolation, readonly)."""
    async with translated():
        conn = await pool.acquire()
    try:
        async with translated():
            tx = conn.transaction(**options)
            await tx.start()
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(Exception):  # the connection may be gone: the error that
                await tx.rollback()  # brought us here is the one to report
            raise
        async with translated():
            await tx.commit()
    finally:
        with contextlib.suppress(Exception):
            await pool.release(conn)
