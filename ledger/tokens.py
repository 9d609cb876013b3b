"""Bearer tokens of the usage API: created once, stored only as a salted hash.

A token reads `glt_<id>_<secret>`: the id finds the row, the secret is checked against
SHA-256(salt || secret) in constant time. The secret has 256 bits of entropy, so a fast
hash is enough; what matters is that the database never holds a usable token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import asyncpg

from ledger.domain.errors import InputError, LedgerError

ROLES = ("member", "auditor", "admin")
_TOKEN = re.compile(r"glt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class Caller:
    """Who is asking: a member (scoped to itself), an auditor (reads all) or an admin."""

    token_id: str
    role: str
    member: str | None

    @property
    def can_write_ledger(self) -> bool:
        return self.role == "admin"


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode("ascii")).digest()


async def create(conn: asyncpg.Connection, role: str, member: str | None, label: str = "") -> tuple[str, str]:
    """A new token: returns (token_id, token). The token is shown once and never stored."""
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}")
    if (role == "member") != (member is not None):
        raise InputError("a member token needs --member; auditor and admin tokens take none")
    if member is not None and not await conn.fetchval("SELECT 1 FROM members WHERE id = $1", member):
        raise InputError(f"{member!r} is not a member of the catalog")
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    await conn.execute(
        "INSERT INTO api_tokens (id, member, role, salt, hash, label) VALUES ($1, $2, $3, $4, $5, $6)",
        token_id, member, role, salt, _digest(salt, secret), label,
    )
    return token_id, f"glt_{token_id}_{secret}"


async def revoke(conn: asyncpg.Connection, token_id: str) -> bool:
    """Revoke a token; False if it does not exist. Revoking twice changes nothing."""
    if not await conn.fetchval("SELECT 1 FROM api_tokens WHERE id = $1", token_id):
        raise LedgerError(f"no token with id {token_id}")
    status = await conn.execute(
        "INSERT INTO api_token_revocations (token_id) VALUES ($1) ON CONFLICT DO NOTHING", token_id
    )
    return status.endswith("1")


SELECT_TOKEN = """
SELECT t.role, t.member, t.salt, t.hash, r.token_id IS NOT NULL AS revoked
FROM api_tokens t LEFT JOIN api_token_revocations r ON r.token_id = t.id
WHERE t.id = $1
"""


async def authenticate(conn: asyncpg.Connection, token: str) -> Caller | None:
    """The caller a token stands for, or None (unknown, malformed or revoked)."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    token_id, secret = match.groups()
    row = await conn.fetchrow(SELECT_TOKEN, token_id)
    if row is None or row["revoked"]:
        return None
    if not hmac.compare_digest(_digest(bytes(row["salt"]), secret), bytes(row["hash"])):
        return None
    return Caller(token_id, row["role"], row["member"])


async def pseudonym_key(conn: asyncpg.Connection) -> bytes:
    """The ledger's pseudonym key, created on first use."""
    await conn.execute(
        "INSERT INTO api_secrets (id, pseudonym_key) VALUES (1, $1) ON CONFLICT DO NOTHING",
        secrets.token_bytes(32),
    )
    return bytes(await conn.fetchval("SELECT pseudonym_key FROM api_secrets WHERE id = 1"))


def pseudonym(key: bytes, viewer: str, reseller: str, tenant: str) -> str:
    """A stable stand-in for another reseller's tenant, as one provider sees it.

    Keyed by viewer and reseller too, so the same tenant id of two resellers, or one
    tenant seen by two providers, cannot be linked.
    """
    message = "\x1f".join((viewer, reseller, tenant)).encode()
    return "tenant-" + hmac.new(key, message, hashlib.sha256).hexdigest()[:20]
