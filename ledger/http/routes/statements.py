"""GET /v1/statements/{period}: the caller's side of a period's statement.

Every caller's answer comes from one alliance statement per period and ledger version,
computed in the statement pool (`ledger.service.statements`, `ledger.http.offload`):
however many members ask, and however many tenants one of them has, it is computed once
and away from the event loop.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from ledger.domain.errors import NotFound
from ledger.domain.periods import PERIOD_PATTERN
from ledger.http.auth import Caller, LedgerState
from ledger.http.errors import responses

router = APIRouter()


@router.get("/v1/statements/{period}", responses=responses(400, 429))
async def get_statement(who: Caller, ledger: LedgerState, period: str) -> Response:
    if not PERIOD_PATTERN.fullmatch(period):
        raise NotFound("no such period")
    ledger.limiter.take(who, "statements")
    computed = await ledger.statement(period)
    return Response(computed.for_caller(who), media_type="application/json")
