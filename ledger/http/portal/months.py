"""A member's month: its side of the period's statement (lines, invoices, returns, grant
draws, net, transfers) and its documents, from the same services as
`GET /v1/statements/{period}` and `GET /v1/documents/{period}`.

A member sees only its own side (`ledger.domain.access.member_view`): another
reseller's tenants on its GPUs are pseudonyms, with no retail figures.
"""

from __future__ import annotations

import time

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ledger.domain.errors import LedgerError, NotFound
from ledger.domain.periods import PERIOD_PATTERN, next_period, previous_period
from ledger.http import tasks
from ledger.http.documents_media import MEDIA_TYPES
from ledger.http.portal import common, render
from ledger.http.portal.common import SignedIn
from ledger.service import documents

router = APIRouter(include_in_schema=False)


async def current_period(request: Request) -> str:
    catalog, _ = await common.ledger_of(request).catalog_and_version()
    return catalog.calendar.period_of(int(time.time()))


def checked(period: str) -> str:
    if not PERIOD_PATTERN.fullmatch(period):
        raise NotFound("no such period")
    return period


async def statement_view(request: Request, who: SignedIn, period: str) -> dict:
    """The caller's side of the period's statement, as the JSON API answers it."""
    ledger = common.ledger_of(request)
    ledger.limiter.take(who.caller, "statements")
    computed = await ledger.statement(period)
    return orjson.loads(computed.for_caller(who.caller))


async def document_list(request: Request, who: SignedIn, period: str) -> tuple[list[dict], str]:
    """The caller's documents of the period, or the message of why there are none now (the
    month's page still shows its statement)."""
    ledger = common.ledger_of(request)
    try:
        ledger.limiter.take(who.caller, "documents")
        async with ledger.document_slots.slot(who.caller):
            data = await ledger.document_pool.run(tasks.document_list, period, who.caller)
    except LedgerError as exc:
        return [], str(exc)
    return orjson.loads(data)["documents"], ""


def disputable(view: dict, member: str | None) -> set[int]:
    """The lines a member may open a dispute from: usage it resold on another member's GPUs."""
    if member is None:
        return set()
    return {i for i, line in enumerate(view.get("lines", ()))
            if line.get("reseller") == member and line.get("provider") != member}


@router.get("/portal/months")
async def this_month(request: Request, who: SignedIn) -> Response:
    return common.redirect(f"/portal/months/{await current_period(request)}")


@router.get("/portal/months/{period}")
async def month(request: Request, who: SignedIn, period: str) -> Response:
    view = await statement_view(request, who, checked(period))
    files, documents_problem = await document_list(request, who, period)
    member = who.caller.member
    return render.page(
        request, "month.html", who, period=period, view=view, member=member,
        net=(view.get("net_yen") or {}).get(member) if member else None,
        disputable=disputable(view, member), files=files, documents_problem=documents_problem,
        previous=previous_period(period), next=next_period(period),
    )


@router.get("/portal/documents/{period}/{path:path}")
async def document_file(request: Request, who: SignedIn, period: str, path: str) -> Response:
    """One of the caller's documents, as `GET /v1/documents/{period}/{path}` answers it."""
    checked(period)
    documents.PeriodDocuments.kind_of(path)
    ledger = common.ledger_of(request)
    ledger.limiter.take(who.caller, "documents")
    async with ledger.document_slots.slot(who.caller):
        data, suffix = await ledger.document_pool.run(tasks.document_file, period, who.caller, path)
    name = path.rpartition("/")[2]
    disposition = "inline" if suffix == "html" else "attachment"
    return Response(data, media_type=MEDIA_TYPES[suffix],
                    headers={"Content-Disposition": f'{disposition}; filename="{name}"', "Cache-Control": "no-store",
                             "X-Content-Type-Options": "nosniff"})
