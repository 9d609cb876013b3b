"""Disputes in the portal: opened from a usage or statement line, moved with a note, read
with their history, through `ledger.service.disputes` as `POST /v1/disputes` does.

Which buttons a dispute shows comes from the domain's own table of moves
(`ledger.domain.disputes.ACTIONS`); whether a move is allowed is the service's to say
when it is made, and a refusal is shown as its message.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ledger.domain import disputes as rules
from ledger.domain.access import Caller
from ledger.domain.errors import NotFound
from ledger.domain.instants import format_utc
from ledger.domain.periods import PERIOD_PATTERN
from ledger.http.auth import require_writer
from ledger.http.portal import common, render
from ledger.http.portal.common import SignedIn
from ledger.service import disputes

router = APIRouter(include_in_schema=False)

PREFILLED = ("provider", "tenant", "sku", "gpu_uuid", "from", "to")


def moves_for(dispute: dict, caller: Caller) -> list[str]:
    """The moves the caller could make of the dispute in its state now."""
    if caller.role == "auditor":
        return []
    party = rules.party_of(caller.member, dispute["provider"], dispute["reseller"])
    shown = []
    for action, (allowed_from, actor, _) in rules.ACTIONS.items():
        if actor != party or dispute["state"] not in allowed_from:
            continue
        if action == "escalate" and dispute["escalation_deadline"] is None:
            continue
        shown.append(action)
    return shown


def awaiting(dispute: dict, caller: Caller) -> bool:
    return dispute["state"] not in ("accepted", "withdrawn") and bool(moves_for(dispute, caller))


@router.get("/portal/disputes")
async def listing(request: Request, who: SignedIn) -> Response:
    found = (await disputes.listing(common.ledger_of(request).store, who.caller))["disputes"]
    found.reverse()  # newest first
    return render.page(request, "disputes.html", who, disputes=found,
                       awaiting={d["id"] for d in found if awaiting(d, who.caller)})


@router.get("/portal/disputes/new")
async def new(request: Request, who: SignedIn) -> Response:
    """The form, filled from the line it was opened from; the interval, until narrowed,
    is the line's service period."""
    given = {name: request.query_params.get(name, "") for name in PREFILLED}
    period = request.query_params.get("period", "")
    if PERIOD_PATTERN.fullmatch(period) and not (given["from"] or given["to"]):
        catalog, _ = await common.ledger_of(request).catalog_and_version()
        start, end = catalog.calendar.bounds(period)
        given["from"], given["to"] = format_utc(start), format_utc(end)
    return render.page(request, "dispute_new.html", who, given=given, reasons=rules.REASONS)


@router.post("/portal/disputes")
async def open_dispute(request: Request, who: SignedIn) -> Response:
    fields = await common.form(request, who.csrf)
    require_writer(who.caller)
    interval = rules.parse_interval(
        fields.get("gpu_uuid", "").strip(), fields.get("from", "").strip(), fields.get("to", "").strip(),
        fields.get("provider", "").strip(), who.caller.member or "", fields.get("tenant", "").strip(),
        fields.get("sku", "").strip(),
    )
    opened = await disputes.open_dispute(common.ledger_of(request).store, who.caller, interval,
                                         fields.get("reason", ""), fields.get("note", ""))
    return common.redirect(f"/portal/disputes/{opened['id']}")


@router.get("/portal/disputes/{dispute_id}")
async def show(request: Request, who: SignedIn, dispute_id: str) -> Response:
    dispute = await disputes.show(common.ledger_of(request).store, who.caller, dispute_id)
    return render.page(request, "dispute.html", who, dispute=dispute, moves=moves_for(dispute, who.caller))


@router.post("/portal/disputes/{dispute_id}/{action}")
async def move(request: Request, who: SignedIn, dispute_id: str, action: str) -> Response:
    fields = await common.form(request, who.csrf)
    if action not in disputes.MOVES:
        raise NotFound("no such move")
    require_writer(who.caller)
    await disputes.move(common.ledger_of(request).store, who.caller, dispute_id, action, fields.get("note", ""))
    return common.redirect(f"/portal/disputes/{dispute_id}")
