"""Admin routes: loading a catalog, closing a period."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ledger.domain.errors import InputError
from ledger.http.auth import Caller, LedgerState, require_admin
from ledger.http.body import read_limited
from ledger.http.errors import responses
from ledger.service import books, catalog, usage

MAX_CATALOG_BYTES = 10 * 1024 * 1024

router = APIRouter()


@router.post(
    "/v1/catalog",
    responses=responses(400, 403),
    openapi_extra={"requestBody": {"required": True, "content": {"application/toml": {"schema": {"type": "string"}}}}},
)
async def post_catalog(who: Caller, ledger: LedgerState, request: Request) -> dict:
    """Load a catalog file (admin tokens only; all or nothing)."""
    require_admin(who)
    return await catalog.load(ledger.store, await read_limited(request, MAX_CATALOG_BYTES), "api")


@router.post("/v1/periods/{period}/close", responses=responses(400, 403))
async def close_period(who: Caller, ledger: LedgerState, period: str) -> Response:
    """Close the books through PERIOD (admin tokens only) and return its statement."""
    require_admin(who)
    if not usage.known_period(period):
        raise InputError("a period is YYYY-MM, 0001-01 to 9999-11", code="bad_period")
    document = await books.statement(ledger.store, period, close=True)
    return Response(document, media_type="application/json")
