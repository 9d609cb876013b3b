"""A database as an earlier release left it: the upgrade tests' starting point."""

from __future__ import annotations

import asyncpg

from ledger.postgres.schema import ADD_CHECKSUM, CREATE_TABLE, INSERT_APPLIED, checksum, shipped


async def database_before(postgres_server: str, name: str, first_unapplied: str) -> str:
    """A new database `name` migrated up to the migration `first_unapplied` (not
    included), as `db migrate` records them; its owner's URL."""
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = postgres_server.rsplit("/", 1)[0] + "/" + name
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(CREATE_TABLE)
        await conn.execute(ADD_CHECKSUM)
        for file_name, text in shipped():
            if file_name < first_unapplied:
                await conn.execute(text)
                await conn.execute(INSERT_APPLIED, file_name, checksum(text))
    finally:
        await conn.close()
    return url
