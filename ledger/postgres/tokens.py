"""The usage API's tables: tokens (a salted hash only), revocations, the pseudonym key."""

from __future__ import annotations

import asyncpg

from ledger.domain.ports import TokenRecord

INSERT_TOKEN = """
INSERT INTO api_tokens (id, member, role, salt, hash, label) VALUES ($1, $2, $3, $4, $5, $6)
"""
SELECT_TOKEN = """
SELECT t.id, t.role, t.member, t.salt, t.hash, r.token_id IS NOT NULL AS revoked
FROM api_tokens t LEFT JOIN api_token_revocations r ON r.token_id = t.id
WHERE t.id = $1
"""
TOKEN_EXISTS = "SELECT 1 FROM api_tokens WHERE id = $1"
INSERT_REVOCATION = "INSERT INTO api_token_revocations (token_id) VALUES ($1) ON CONFLICT DO NOTHING"
MEMBER_EXISTS = "SELECT 1 FROM members WHERE id = $1"
INSERT_KEY = "INSERT INTO api_secrets (id, pseudonym_key) VALUES (1, $1) ON CONFLICT DO NOTHING"
SELECT_KEY = "SELECT pseudonym_key FROM api_secrets WHERE id = 1"


async def insert(conn: asyncpg.Connection, token: TokenRecord, label: str) -> None:
    await conn.execute(INSERT_TOKEN, token.token_id, token.member, token.role, token.salt, token.digest, label)


async def find(conn: asyncpg.Connection, token_id: str) -> TokenRecord | None:
    row = await conn.fetchrow(SELECT_TOKEN, token_id)
    if row is None:
        return None
    return TokenRecord(row["id"], row["role"], row["member"], bytes(row["salt"]), bytes(row["hash"]), row["revoked"])


async def revoke(conn: asyncpg.Connection, token_id: str) -> bool | None:
    if not await conn.fetchval(TOKEN_EXISTS, token_id):
        return None
    return (await conn.execute(INSERT_REVOCATION, token_id)).endswith("1")


async def member_exists(conn: asyncpg.Connection, member: str) -> bool:
    return bool(await conn.fetchval(MEMBER_EXISTS, member))


async def pseudonym_key(conn: asyncpg.Connection, candidate: bytes) -> bytes:
    await conn.execute(INSERT_KEY, candidate)
    return bytes(await conn.fetchval(SELECT_KEY))
