"""Applying the schema's migrations (ledger/postgres/migrations/*.sql), as the tables' owner."""

from __future__ import annotations

import hashlib
from importlib import resources

import asyncpg

from ledger.domain.errors import LedgerError
from ledger.postgres.errors import translating

MIGRATIONS_LOCK_KEY = 0x6770756C65646702  # pg_advisory_xact_lock: one migrate at a time

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
# Databases migrated before checksums were recorded get the column; their rows are
# filled in once, from the files as shipped then.
ADD_CHECKSUM = "ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS sha256 text"
BACKFILL_CHECKSUM = "UPDATE schema_migrations SET sha256 = $2 WHERE name = $1 AND sha256 IS NULL"
SELECT_APPLIED = "SELECT name, sha256 FROM schema_migrations"
INSERT_APPLIED = "INSERT INTO schema_migrations (name, sha256) VALUES ($1, $2)"


def shipped() -> list[tuple[str, str]]:
    """(name, SQL text) of every migration file, in the order they apply."""
    files = resources.files("ledger.postgres.migrations")
    return sorted((f.name, f.read_text()) for f in files.iterdir() if f.name.endswith(".sql"))


def checksum(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Monthly partitions are made this many months ahead, at every migrate and by workers.
PARTITION_MONTHS_AHEAD = 2
HAS_PARTITIONS = "SELECT to_regprocedure('ledger_ensure_partitions(int)') IS NOT NULL"
ENSURE_PARTITIONS = "SELECT ledger_ensure_partitions($1) AS made"

SET_APP_PASSWORD = "SELECT format('ALTER ROLE gpuledger_app PASSWORD %L', $1::text)"


@translating
async def set_app_password(conn: asyncpg.Connection, password: str) -> None:
    """Give the application's role its password (the server quotes it: no injection)."""
    await conn.execute(await conn.fetchval(SET_APP_PASSWORD, password))


@translating
async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply the migrations not yet applied, in one transaction; return their names."""
    applied_now = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATIONS_LOCK_KEY)
        await conn.execute(CREATE_TABLE)
        await conn.execute(ADD_CHECKSUM)
        applied = {r["name"]: r["sha256"] for r in await conn.fetch(SELECT_APPLIED)}
        for name, text in shipped():
            digest = checksum(text)
            if name not in applied:
                await conn.execute(text)
                await conn.execute(INSERT_APPLIED, name, digest)
                applied_now.append(name)
            elif applied[name] is None:
                await conn.execute(BACKFILL_CHECKSUM, name, digest)
            elif applied[name] != digest:
                raise LedgerError(
                    f"migration {name} was changed after it was applied (recorded sha256 "
                    f"{applied[name][:12]}..., shipped {digest[:12]}...): a change to the schema "
                    "is a new migration file, never an edit"
                )
        if await conn.fetchval(HAS_PARTITIONS):
            await conn.fetch(ENSURE_PARTITIONS, PARTITION_MONTHS_AHEAD)
    return applied_now
