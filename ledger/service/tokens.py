"""Bearer tokens of the usage API: created once, stored only as a salted hash.

A token reads `glt_<id>_<secret>`: the id finds the record, the secret is checked
against SHA-256(salt || secret) in constant time. The secret has 256 bits of entropy, so
a fast hash is enough; what matters is that the store never holds a usable token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from ledger.domain.access import ROLES, Caller
from ledger.domain.errors import InputError, LedgerError
from ledger.domain.ports import Store, TokenRecord

_TOKEN = re.compile(r"glt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode("ascii")).digest()


async def create(store: Store, role: str, member: str | None, label: str = "") -> tuple[str, str]:
    """A new token: returns (token_id, token). The token is shown once and never stored."""
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}")
    if (role == "member") != (member is not None):
        raise InputError("a member token needs --member; auditor and admin tokens take none")
    if member is not None and not await store.member_exists(member):
        raise InputError(f"{member!r} is not a member of the catalog")
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    await store.insert_token(TokenRecord(token_id, role, member, salt, _digest(salt, secret), False), label)
    return token_id, f"glt_{token_id}_{secret}"


async def revoke(store: Store, token_id: str) -> bool:
    """Revoke a token; returns whether it was newly revoked. Revoking twice changes nothing."""
    revoked = await store.revoke_token(token_id)
    if revoked is None:
        raise LedgerError(f"no token with id {token_id}")
    return revoked


async def authenticate(store: Store, token: str) -> Caller | None:
    """The caller a token stands for, or None (unknown, malformed or revoked)."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    token_id, secret = match.groups()
    record = await store.token(token_id)
    if record is None or record.revoked:
        return None
    if not hmac.compare_digest(_digest(record.salt, secret), record.digest):
        return None
    return Caller(token_id, record.role, record.member)


async def pseudonym_key(store: Store) -> bytes:
    """The ledger's pseudonym key, created on first use."""
    return await store.pseudonym_key(secrets.token_bytes(32))
