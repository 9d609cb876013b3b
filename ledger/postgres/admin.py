"""Server-level administration of the embedded PostgreSQL: creating the ledger's database."""

from __future__ import annotations

import asyncio
import time

import asyncpg


async def ensure_database(host: str, port: int, user: str, database: str, timeout: float) -> None:
    """Create database on the server at host:port unless it exists.

    Connects as user to the maintenance database "postgres", retrying for up to timeout
    seconds while the server refuses connections. database is a name chosen by the
    code, not by a person: it is quoted, not escaped.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = await asyncpg.connect(
                host=host, port=port, user=user, database="postgres", timeout=5
            )
            break
        except (TimeoutError, OSError, asyncpg.CannotConnectNowError):
            # pg_ctl -w returned, but a server finishing crash recovery can still refuse.
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    try:
        exists = await connection.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", database
        )
        if not exists:
            try:
                await connection.execute(f'CREATE DATABASE "{database}"')
            except asyncpg.DuplicateDatabaseError:
                pass  # another `dev up` created it in the meantime
    finally:
        await connection.close()
