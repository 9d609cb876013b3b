"""The grants a member funds or draws, the alliance capacity report, and the member's dead
letters with their replay: the services of `GET /v1/grants`,
`GET /v1/reports/capacity/{period}` and `/v1/dead-letters`, with the same scope."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ledger.domain.errors import InputError
from ledger.domain.events import REASONS
from ledger.http.auth import require_writer
from ledger.http.portal import common, render
from ledger.http.portal.common import SignedIn
from ledger.http.portal.months import checked, current_period
from ledger.service import deadletters, grants, reports

router = APIRouter(include_in_schema=False)

DEAD_LETTERS_PER_PAGE = 100


@router.get("/portal/grants")
async def grant_list(request: Request, who: SignedIn, period: str = "") -> Response:
    ledger = common.ledger_of(request)
    ledger.limiter.take(who.caller, "grants")
    found = await ledger.statement_pool.run(grants.report, who.caller, checked(period) if period else None)
    return render.page(request, "grants.html", who, through=found["through"], grants=found["grants"])


@router.get("/portal/capacity")
async def capacity_now(request: Request, who: SignedIn, period: str = "") -> Response:
    return common.redirect(f"/portal/capacity/{period.strip() or await current_period(request)}")


@router.get("/portal/capacity/{period}")
async def capacity(request: Request, who: SignedIn, period: str) -> Response:
    ledger = common.ledger_of(request)
    ledger.limiter.take(who.caller, "reports")
    found = await reports.capacity(ledger.store, checked(period))
    return render.page(request, "capacity.html", who, period=period, rows=found["rows"])


def may_replay(who: SignedIn, letter: dict) -> bool:
    """A member replays dead letters of its own GPUs, the operator all, an auditor none
    (the service decides; this only chooses which boxes to show)."""
    if who.caller.role == "auditor":
        return False
    return letter["raw_whole"] and not letter["replayed"] and who.caller.member in (None, letter["provider"])


@router.get("/portal/dead-letters")
async def dead_letters(request: Request, who: SignedIn, reason: str = "", after: str = "") -> Response:
    ledger = common.ledger_of(request)
    found = await deadletters.page(ledger.store, who.caller.member, DEAD_LETTERS_PER_PAGE, reason=reason or None,
                                   after_id=int(after) if after.isdigit() else None,
                                   pseudonym_key=ledger.pseudonym_key)
    return render.page(request, "dead_letters.html", who, letters=found["items"], next_cursor=found["next_cursor"],
                       reason=reason, reasons=REASONS, replayable={
                           letter["id"] for letter in found["items"] if may_replay(who, letter)}, replayed=None)


@router.post("/portal/dead-letters/replay")
async def replay(request: Request, who: SignedIn) -> Response:
    fields = await common.form(request, who.csrf)
    require_writer(who.caller)
    ids = [int(value) for value in common.all_of(fields, "id") if value.isdigit()]
    if not ids:
        raise InputError("choose the dead letters to replay", code="nothing_chosen")
    outcome = await deadletters.replay(common.ledger_of(request).store, who.caller, ids=ids)
    return render.page(request, "replayed.html", who, outcome=outcome)
