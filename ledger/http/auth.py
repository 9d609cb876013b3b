"""Who is calling: the bearer token of every request, and the app's shared state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Request

from ledger.domain import access
from ledger.domain.catalog import Catalog
from ledger.domain.errors import Forbidden, Unauthorized
from ledger.domain.ports import Publisher, Store
from ledger.domain.usage import UsageQuery
from ledger.http import tasks
from ledger.http.limits import MemberSlots, RateLimiter
from ledger.http.offload import InlinePool, ProcessPool
from ledger.service import statements, tokens, usage
from ledger.settings import Settings


@dataclass
class Ledger:
    """What every route shares: the store, the publisher, a cached catalog, the pseudonym
    key, the statements computed, the pools that compute them and make documents, and
    the limits of each caller (`ledger.http.limits`)."""

    settings: Settings
    store: Store
    publisher: Publisher | None = None
    pseudonym_key: bytes = b""
    catalog: Catalog = field(default_factory=Catalog)
    catalog_revision: int = -1
    usage_pages: usage.PageCache = field(default_factory=usage.PageCache)
    statements: statements.StatementCache = field(default_factory=statements.StatementCache)
    statement_pool: ProcessPool | InlinePool | None = None
    query_pool: ProcessPool | InlinePool | None = None
    document_pool: ProcessPool | InlinePool | None = None
    limiter: RateLimiter | None = None
    query_slots: MemberSlots | None = None
    document_slots: MemberSlots | None = None

    def __post_init__(self) -> None:
        limits = self.settings.api_limits
        self.statement_pool = self.statement_pool or InlinePool("statement", self.store)
        self.query_pool = self.query_pool or InlinePool("query", self.store)
        self.document_pool = self.document_pool or InlinePool("document", self.store)
        self.limiter = self.limiter or RateLimiter(limits.rate_per_second, limits.rate_burst)
        self.query_slots = self.query_slots or MemberSlots(
            limits.queries_per_member, limits.queries_queued_per_member, "queries"
        )
        self.document_slots = self.document_slots or MemberSlots(
            limits.documents_per_member, limits.documents_queued_per_member, "documents"
        )

    @property
    def pools(self) -> tuple:
        return self.statement_pool, self.query_pool, self.document_pool

    async def statement(self, period: str) -> statements.Computed:
        """The alliance statement of `period` at the ledger's version now: kept, being
        computed, or computed now in the statement pool."""
        _, version = await self.catalog_and_version()
        return await self.statements.get(
            period, version, lambda: self.statement_pool.run(statements.compute, period, self.pseudonym_key)
        )

    async def usage(
        self, who: access.Caller, request: usage.UsageRequest, as_json: bool = False,
        version: tuple[int, int] | None = None,
    ) -> dict | bytes:
        """A page of the caller's usage, as `GET /v1/usage` answers it (the portal's too):
        an answer kept for this caller and version is free; one to compute takes from the
        token's rate and runs in the query pool, one of a member's at a time (a member's
        query over its 100,000 tenants is seconds of CPU that must not be the event
        loop's); the credit estimate reads the statement the API keeps. `version`: as
        the request's token was read with it (`request_version`)."""
        catalog, version = await self.catalog_and_version(version)

        async def items_of(wanted: UsageQuery) -> list[dict]:
            async with self.query_slots.slot(who):
                return await self.query_pool.run(tasks.usage_items, who, self.pseudonym_key, wanted)

        how = {"cache": self.usage_pages, "version": version, "admit": lambda: self.limiter.take(who, "usage queries"),
               "statement_of": self.statement, "items_of": items_of}
        answer = usage.page_json if as_json else usage.query
        return await answer(self.store, catalog, who, self.pseudonym_key, request, **how)

    async def catalog_and_version(self, version: tuple[int, int] | None = None) -> tuple[Catalog, tuple[int, int]]:
        """The current catalog and the ledger's version (`version`: already read), without
        a round trip when the catalog has not changed and the version is known."""
        version = version or await self.store.ledger_version()
        if version[0] != self.catalog_revision:
            self.catalog, self.catalog_revision = await self.store.catalog()
        return self.catalog, version


async def ledger_of(request: Request) -> Ledger:
    # async: FastAPI runs a plain function dependency in a thread, a hop per request.
    return request.app.state.ledger


async def current_caller(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> access.Caller:
    """The caller a bearer token stands for; 401 for anything else."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send Authorization: Bearer <token>")
    found, version = await tokens.authenticate_at_version(request.app.state.ledger.store, token.strip())
    if found is None:
        raise Unauthorized("unknown, revoked or expired token")
    request.state.ledger_version = version
    return found


def request_version(request: Request) -> tuple[int, int] | None:
    """The ledger's version read with the request's token (one round trip for both)."""
    return getattr(request.state, "ledger_version", None)


Caller = Annotated[access.Caller, Depends(current_caller)]
LedgerState = Annotated[Ledger, Depends(ledger_of)]


def require_admin(who: access.Caller) -> None:
    if who.role != "admin":
        raise Forbidden("only admin tokens load catalogs and close periods", code="admin_only")


def require_writer(who: access.Caller) -> None:
    if who.role == "auditor":
        raise Forbidden("auditor tokens cannot write", code="read_only")
