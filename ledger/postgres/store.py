"""`PostgresStore`: the ledger's `Store` (ledger.domain.ports) on PostgreSQL.

One pool per process; every operation takes a connection for its own duration, and the
transactions of the ports (`intake`, `books`, `snapshot`, `catalog_load`) hold one for
theirs. Errors reach callers translated (`ledger.postgres.errors`).
"""

from __future__ import annotations

import contextlib
from contextlib import asynccontextmanager

import asyncpg

from ledger.domain.catalog import Catalog
from ledger.domain.ports import DeadLetter, DeadLetterFilter, DeadLetterRef, Tally, TokenRecord
from ledger.domain.rating import HourUsage
from ledger.domain.usage import ANY_USAGE, Coarsening, UsageFilter
from ledger.postgres import deadletters, tokens, usage
from ledger.postgres.books import PgBooks
from ledger.postgres.catalog import SELECT_REVISION, PgCatalogWriter, load_catalog
from ledger.postgres.connection import create_pool, transaction
from ledger.postgres.disputes import PgDisputeTransaction
from ledger.postgres.errors import translated, translating
from ledger.postgres.intake import (
    PgIntakeTransaction,
    copy_dead_letters,
    copy_tallies,
    forget_positions,
    ingest_tally,
)
from ledger.postgres.payments import PgPayments
from ledger.postgres.schema import ENSURE_PARTITIONS, PARTITION_MONTHS_AHEAD


@asynccontextmanager
async def open_store(database_url: str, max_connections: int = 2):
    """A store on a new pool, closed when the block ends."""
    store = await PostgresStore.connect(database_url, max_connections)
    try:
        yield store
    finally:
        await store.close()


# Every batch a worker meters moves a position forward in the same transaction.
SELECT_PIPELINE_POSITIONS = """
SELECT topic, partition, next_offset, extract(epoch FROM updated_at)::bigint AS updated_at
FROM consumer_positions ORDER BY topic, partition
"""
SELECT_LEDGER_VERSION = f"""
SELECT ({SELECT_REVISION}) AS revision,
       (SELECT coalesce(sum(next_offset), 0)::bigint FROM consumer_positions)
       + (SELECT changes FROM ledger_changes WHERE id = 1) AS metered
"""

# One round trip for what every API request reads: a row even when there is no such token.
SELECT_TOKEN_AND_VERSION = f"SELECT * FROM ({SELECT_LEDGER_VERSION}) AS v LEFT JOIN ({tokens.SELECT_TOKEN}) AS t ON true"


class PostgresStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, database_url: str, max_connections: int = 2) -> PostgresStore:
        """A store on a new pool, for a process's life (`close` ends it)."""
        return cls(await create_pool(database_url, min_size=1, max_size=max_connections))

    async def prepare_months(self) -> list[str]:
        async with self._connection() as conn, translated():
            return [r["made"] for r in await conn.fetch(ENSURE_PARTITIONS, PARTITION_MONTHS_AHEAD)]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.pool.close()

    @asynccontextmanager
    async def _connection(self):
        async with translated():
            conn = await self.pool.acquire()
        try:
            yield conn
        finally:
            with contextlib.suppress(Exception):
                await self.pool.release(conn)

    # -- transactions

    @asynccontextmanager
    async def intake(self):
        async with transaction(self.pool) as conn:
            yield PgIntakeTransaction(conn)

    @asynccontextmanager
    async def books(self, *, close: bool = False):
        async with transaction(self.pool) as conn:
            yield PgBooks(conn, "FOR UPDATE" if close else "")

    @asynccontextmanager
    async def snapshot(self):
        async with transaction(self.pool, isolation="repeatable_read", readonly=True) as conn:
            yield PgBooks(conn)

    @asynccontextmanager
    async def payments(self):
        async with transaction(self.pool) as conn:
            yield PgPayments(conn, PgBooks(conn))

    @asynccontextmanager
    async def disputes(self):
        async with transaction(self.pool) as conn:
            yield PgDisputeTransaction(conn)

    @asynccontextmanager
    async def catalog_load(self):
        async with transaction(self.pool) as conn:
            writer = PgCatalogWriter(conn)
            await writer.lock()
            yield writer

    # -- single operations

    @translating
    async def catalog(self) -> tuple[Catalog, int]:
        async with self._connection() as conn:
            return await load_catalog(conn)

    @translating
    async def catalog_revision(self) -> int:
        async with self._connection() as conn:
            return await conn.fetchval(SELECT_REVISION)

    @translating
    async def ledger_version(self) -> tuple[int, int]:
        async with self._connection() as conn:
            return tuple(await conn.fetchrow(SELECT_LEDGER_VERSION))

    async def record_rejections(self, letters: list[DeadLetter], tally: Tally) -> None:
        async with transaction(self.pool) as conn, translated():
            await copy_dead_letters(conn, letters)
            await copy_tallies(conn, [tally])

    @translating
    async def ingest_tally(self, ingest_id: str) -> dict[str, int]:
        async with self._connection() as conn:
            return await ingest_tally(conn, ingest_id)

    @translating
    async def dead_letter_page(self, where: DeadLetterFilter, after_id: int, limit: int, preview_bytes: int) -> list[dict]:
        async with self._connection() as conn:
            return await deadletters.page(conn, where, after_id, limit, preview_bytes)

    @translating
    async def dead_letter_refs(self, ids: list[int]) -> dict[int, DeadLetterRef]:
        async with self._connection() as conn:
            return await deadletters.refs(conn, ids)

    @translating
    async def unreplayed_dead_letters(self, where: DeadLetterFilter, limit: int) -> list[int]:
        async with self._connection() as conn:
            return await deadletters.unreplayed(conn, where, limit)

    @translating
    async def count_replayed(self, where: DeadLetterFilter) -> int:
        async with self._connection() as conn:
            return await deadletters.count_replayed(conn, where)

    @translating
    async def count_not_replayable(self, where: DeadLetterFilter) -> int:
        async with self._connection() as conn:
            return await deadletters.count_not_replayable(conn, where)

    @translating
    async def hour_usage(
        self, start: int, end: int, *, member: str | None = None, where: UsageFilter = ANY_USAGE,
        coarse: Coarsening | None = None,
    ) -> list[HourUsage]:
        async with self._connection() as conn:
            return await usage.hour_usage(conn, start, end, member=member, where=where, coarse=coarse)

    @translating
    async def member_exists(self, member: str) -> bool:
        async with self._connection() as conn:
            return await tokens.member_exists(conn, member)

    @translating
    async def insert_token(self, token: TokenRecord) -> None:
        async with self._connection() as conn:
            await tokens.insert(conn, token)

    @translating
    async def tokens(self) -> list[TokenRecord]:
        async with self._connection() as conn:
            return await tokens.every(conn)

    @translating
    async def touch_token(self, token_id: str, used_at: int) -> None:
        async with self._connection() as conn:
            await tokens.touch(conn, token_id, used_at)

    @translating
    async def token(self, token_id: str) -> TokenRecord | None:
        async with self._connection() as conn:
            return await tokens.find(conn, token_id)

    @translating
    async def token_and_version(self, token_id: str) -> tuple[TokenRecord | None, tuple[int, int]]:
        async with self._connection() as conn:
            row = await conn.fetchrow(SELECT_TOKEN_AND_VERSION, token_id)
        return tokens.found(row), (row["revision"], row["metered"])

    @translating
    async def revoke_token(self, token_id: str) -> bool | None:
        async with self._connection() as conn:
            return await tokens.revoke(conn, token_id)

    @translating
    async def pseudonym_key(self, candidate: bytes) -> bytes:
        async with self._connection() as conn:
            return await tokens.pseudonym_key(conn, candidate)

    async def forget_positions(self, topic: str) -> None:
        async with self._connection() as conn:
            await forget_positions(conn, topic)

    @translating
    async def pipeline_positions(self) -> list[tuple[str, int, int, int | None]]:
        async with self._connection() as conn:
            rows = await conn.fetch(SELECT_PIPELINE_POSITIONS)
        return [(r["topic"], r["partition"], r["next_offset"], r["updated_at"]) for r in rows]
