"""GET /v1/statements/{period}: the caller's side of a period's statement."""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from fastapi.responses import Response

from ledger.domain.access import member_view
from ledger.domain.errors import NotFound
from ledger.domain.periods import PERIOD_PATTERN
from ledger.http.auth import Caller, LedgerState
from ledger.service import books

router = APIRouter()


@router.get("/v1/statements/{period}")
async def get_statement(who: Caller, ledger: LedgerState, period: str) -> Response:
    if not PERIOD_PATTERN.fullmatch(period):
        raise NotFound("no such period")
    document = orjson.loads(await books.statement(ledger.store, period))
    if who.member is not None:
        document = member_view(document, who.member, ledger.pseudonym_key)
    return Response(orjson.dumps(document), media_type="application/json")
