"""The usage API's tables: tokens (a salted hash only), revocations, the pseudonym key."""

from __future__ import annotations

import asyncpg

from ledger.domain.ports import TokenRecord

INSERT_TOKEN = """
INSERT INTO api_tokens (id, member, role, salt, hash, label, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7))
"""
SELECT_TOKENS = """
SELECT t.id, t.role, t.member, t.salt, t.hash, r.token_id IS NOT NULL AS revoked,
       extract(epoch FROM t.expires_at)::bigint AS expires_at,
       extract(epoch FROM t.created_at)::bigint AS created_at,
       extract(epoch FROM u.last_used_at)::bigint AS last_used_at, t.label
FROM api_tokens t
LEFT JOIN api_token_revocations r ON r.token_id = t.id
LEFT JOIN api_token_uses u ON u.token_id = t.id
"""
SELECT_TOKEN = SELECT_TOKENS + "WHERE t.id = $1"
SELECT_ALL_TOKENS = SELECT_TOKENS + "ORDER BY t.created_at, t.id"
TOUCH = """
INSERT INTO api_token_uses (token_id, last_used_at) VALUES ($1, to_timestamp($2))
ON CONFLICT (token_id) DO UPDATE SET last_used_at = excluded.last_used_at
"""
TOKEN_EXISTS = "SELECT 1 FROM api_tokens WHERE id = $1"
INSERT_REVOCATION = "INSERT INTO api_token_revocations (token_id) VALUES ($1) ON CONFLICT DO NOTHING"
MEMBER_EXISTS = "SELECT 1 FROM members WHERE id = $1"
INSERT_KEY = "INSERT INTO api_secrets (id, pseudonym_key) VALUES (1, $1) ON CONFLICT DO NOTHING"
SELECT_KEY = "SELECT pseudonym_key FROM api_secrets WHERE id = 1"


async def insert(conn: asyncpg.Connection, token: TokenRecord) -> None:
    await conn.execute(
        INSERT_TOKEN, token.token_id, token.member, token.role, token.salt, token.digest, token.label,
        token.expires_at,
    )


def _record(row: asyncpg.Record) -> TokenRecord:
    return TokenRecord(
        row["id"], row["role"], row["member"], bytes(row["salt"]), bytes(row["hash"]), row["revoked"],
        row["expires_at"], row["created_at"], row["last_used_at"], row["label"],
    )


async def find(conn: asyncpg.Connection, token_id: str) -> TokenRecord | None:
    return found(await conn.fetchrow(SELECT_TOKEN, token_id))


def found(row: asyncpg.Record | None) -> TokenRecord | None:
    """The token of a row of SELECT_TOKEN (joined or not); None for no row or no token."""
    return None if row is None or row["id"] is None else _record(row)


async def every(conn: asyncpg.Connection) -> list[TokenRecord]:
    return [_record(row) for row in await conn.fetch(SELECT_ALL_TOKENS)]


async def touch(conn: asyncpg.Connection, token_id: str, used_at: int) -> None:
    await conn.execute(TOUCH, token_id, used_at)


async def revoke(conn: asyncpg.Connection, token_id: str) -> bool | None:
    if not await conn.fetchval(TOKEN_EXISTS, token_id):
        return None
    return (await conn.execute(INSERT_REVOCATION, token_id)).endswith("1")


async def member_exists(conn: asyncpg.Connection, member: str) -> bool:
    return bool(await conn.fetchval(MEMBER_EXISTS, member))


async def pseudonym_key(conn: asyncpg.Connection, candidate: bytes) -> bytes:
    await conn.execute(INSERT_KEY, candidate)
    return bytes(await conn.fetchval(SELECT_KEY))
