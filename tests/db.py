"""Reading the ledger's tables from tests (the CLI covers everything else)."""

from __future__ import annotations

import asyncio

import asyncpg


def fetch(database_url: str, query: str, *args) -> list[asyncpg.Record]:
    async def run():
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(run())
