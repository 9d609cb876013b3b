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
import time

from ledger.domain.access import ROLES, Caller
from ledger.domain.errors import InputError, LedgerError
from ledger.domain.instants import format_utc
from ledger.domain.ports import Store, TokenRecord

_TOKEN = re.compile(r"glt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
DEFAULT_LIFETIME_SECONDS = 90 * 86400
MAX_LIFETIME_SECONDS = 5 * 365 * 86400
TOUCH_EVERY_SECONDS = 60  # how stale "last used" may be: not a write per request
_LIFETIME = re.compile(r"([0-9]{1,6})([dhm]?)")


def parse_lifetime(text: str) -> int:
    """`90d`, `12h`, `30m` or a number of days -> seconds (1 minute to 5 years)."""
    match = _LIFETIME.fullmatch(text.strip())
    if match is None:
        raise InputError(f"--expires-in {text!r}: give a number of days, or e.g. 90d, 12h, 30m")
    seconds = int(match.group(1)) * {"": 86400, "d": 86400, "h": 3600, "m": 60}[match.group(2)]
    if not 60 <= seconds <= MAX_LIFETIME_SECONDS:
        raise InputError("--expires-in: a token lives at least a minute and at most 5 years")
    return seconds


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode("ascii")).digest()


async def create(
    store: Store, role: str, member: str | None, label: str = "",
    lifetime_seconds: int = DEFAULT_LIFETIME_SECONDS, now: int | None = None,
) -> tuple[str, str]:
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
    expires_at = (int(time.time()) if now is None else now) + lifetime_seconds
    await store.insert_token(
        TokenRecord(token_id, role, member, salt, _digest(salt, secret), False, expires_at, label=label)
    )
    return token_id, f"glt_{token_id}_{secret}"


async def revoke(store: Store, token_id: str) -> bool:
    """Revoke a token; returns whether it was newly revoked. Revoking twice changes nothing."""
    revoked = await store.revoke_token(token_id)
    if revoked is None:
        raise LedgerError(f"no token with id {token_id}")
    return revoked


async def authenticate(store: Store, token: str, now: int | None = None) -> Caller | None:
    """The caller a token stands for, or None (unknown, malformed, revoked or expired)."""
    found = await authenticate_until(store, token, now)
    return None if found is None else found[0]


async def authenticate_until(store: Store, token: str, now: int | None = None) -> tuple[Caller, int] | None:
    """The caller a token stands for and when the token expires (Unix seconds), or None
    (the portal's session lasts no longer than its token)."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    token_id, secret = match.groups()
    return await _caller(store, token_id, secret, await store.token(token_id), now)


async def authenticate_at_version(store: Store, token: str) -> tuple[Caller | None, tuple[int, int] | None]:
    """`authenticate`, and the ledger's version read in the same round trip (None when
    the token is malformed: nothing was read)."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None, None
    token_id, secret = match.groups()
    record, version = await store.token_and_version(token_id)
    found = await _caller(store, token_id, secret, record, None)
    return (None if found is None else found[0]), version


async def _caller(
    store: Store, token_id: str, secret: str, record: TokenRecord | None, now: int | None,
) -> tuple[Caller, int] | None:
    now = int(time.time()) if now is None else now
    if record is None or record.revoked or now >= record.expires_at:
        return None
    if not hmac.compare_digest(_digest(record.salt, secret), record.digest):
        return None
    if record.last_used_at is None or now - record.last_used_at >= TOUCH_EVERY_SECONDS:
        await store.touch_token(token_id, now)
    return Caller(token_id, record.role, record.member), record.expires_at


def _instant(seconds: int | None) -> str | None:
    return None if seconds is None else format_utc(seconds)


async def listing(store: Store) -> list[dict]:
    """Every token without its secret: who holds it, when it expires, when it was last used."""
    return [
        {"id": t.token_id, "role": t.role, "member": t.member, "label": t.label,
         "created_at": _instant(t.created_at), "expires_at": _instant(t.expires_at),
         "last_used_at": _instant(t.last_used_at), "revoked": t.revoked}
        for t in await store.tokens()
    ]


async def pseudonym_key(store: Store) -> bytes:
    """The ledger's pseudonym key, created on first use."""
    return await store.pseudonym_key(secrets.token_bytes(32))
