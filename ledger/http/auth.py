"""Who is calling: the bearer token of every request, and the app's shared state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Request

from ledger.domain import access
from ledger.domain.catalog import Catalog
from ledger.domain.errors import Forbidden, Unauthorized
from ledger.domain.ports import Publisher, Store
from ledger.service import tokens, usage
from ledger.settings import Settings


@dataclass
class Ledger:
    """What every route shares: the store, the publisher, a cached catalog, the pseudonym key."""

    settings: Settings
    store: Store
    publisher: Publisher | None = None
    pseudonym_key: bytes = b""
    catalog: Catalog = field(default_factory=Catalog)
    catalog_revision: int = -1
    usage_pages: usage.PageCache = field(default_factory=usage.PageCache)

    async def catalog_and_version(self) -> tuple[Catalog, tuple[int, int]]:
        """The current catalog and the ledger's version, in one round trip when the
        catalog has not changed."""
        version = await self.store.ledger_version()
        if version[0] != self.catalog_revision:
            self.catalog, self.catalog_revision = await self.store.catalog()
        return self.catalog, version


def ledger_of(request: Request) -> Ledger:
    return request.app.state.ledger


async def current_caller(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> access.Caller:
    """The caller a bearer token stands for; 401 for anything else."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send Authorization: Bearer <token>")
    found = await tokens.authenticate(ledger_of(request).store, token.strip())
    if found is None:
        raise Unauthorized("unknown, revoked or expired token")
    return found


Caller = Annotated[access.Caller, Depends(current_caller)]
LedgerState = Annotated[Ledger, Depends(ledger_of)]


def require_admin(who: access.Caller) -> None:
    if who.role != "admin":
        raise Forbidden("only admin tokens load catalogs and close periods", code="admin_only")


def require_writer(who: access.Caller) -> None:
    if who.role == "auditor":
        raise Forbidden("auditor tokens cannot write", code="read_only")
