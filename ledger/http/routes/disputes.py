"""Disputes over HTTP (`ledger.service.disputes`), with the CLI's rules: a member's token
opens disputes as the reseller and moves those it is a party to; an admin's token is the
alliance operator, who decides escalations; an auditor's reads all and moves none. A
dispute the caller is no party to is 404, as if it did not exist; a move by the wrong
party is 403; a move or an opening the rules refuse (state, window, nothing billed) 409.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ledger.domain.disputes import MAX_NOTE_CHARS, REASONS, parse_interval
from ledger.domain.errors import InputError
from ledger.http.auth import Caller, LedgerState, require_writer
from ledger.http.body import read_limited
from ledger.http.errors import responses
from ledger.service import disputes

MAX_BODY_BYTES = 16 << 10

router = APIRouter()


class DisputeRequest(BaseModel):
    """What a void names, but the reseller: the caller's member (it may be given, and must
    then be the caller's); why, and an optional note."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    gpu_uuid: str
    from_: str = Field(alias="from", description="RFC 3339 with an offset, whole seconds (inclusive)")
    to: str = Field(description="RFC 3339 (exclusive); at most 45 days after from")
    provider: str
    reseller: str | None = Field(None, description="the caller's member (the default)")
    tenant: str
    sku: str
    reason: str = Field(description=" | ".join(REASONS))
    note: str = Field("", max_length=MAX_NOTE_CHARS)


class MoveRequest(BaseModel):
    """A note for the move: required to reject (why), optional otherwise. The body may be
    left out when there is no note."""

    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=MAX_NOTE_CHARS)


class DecideRequest(MoveRequest):
    decision: Literal["accept", "reject"]


class DisputeEvent(BaseModel):
    action: str = Field(description="open | accept | reject | escalate | withdraw | decide_accept | decide_reject")
    state: str = Field(description="the dispute's state after it")
    by: str = Field(description="a member id, or operator")
    at: str
    note: str
    voided_gpu_seconds: int
    void: str | None


class Dispute(BaseModel):
    id: str
    state: str = Field(description="open | accepted | rejected | escalated | withdrawn")
    provider: str
    reseller: str
    tenant: str
    sku: str
    gpu_uuid: str
    from_: str = Field(alias="from")
    to: str
    reason: str
    gpu_seconds: int = Field(description="billed with its attribution in its interval when it was opened")
    voided_gpu_seconds: int = Field(description="what its acceptance voided (0 until then)")
    void: str | None = Field(description="the void its acceptance made, if any")
    note: str
    opened_by: str
    opened_at: str
    escalation_deadline: str | None = Field(description="while rejected and not yet escalated: the last instant to escalate")
    history: list[DisputeEvent]


class DisputeList(BaseModel):
    disputes: list[Dispute]


def _body_schema(model: type[BaseModel], required: bool = True) -> dict:
    return {"requestBody": {"required": required, "content": {
        "application/json": {"schema": model.model_json_schema(by_alias=True)}}}}


async def _read(request: Request, model: type[BaseModel], what: str):
    body = await read_limited(request, MAX_BODY_BYTES)
    try:
        return model.model_validate_json(body or (b"{}" if model is MoveRequest else body))
    except ValueError as exc:
        raise InputError(f"the body is not {what}: {str(exc).splitlines()[0]}", code="bad_dispute") from None


@router.post(
    "/v1/disputes", status_code=201, response_model=Dispute, response_model_by_alias=True,
    openapi_extra=_body_schema(DisputeRequest), responses=responses(400, 403, 409, 413),
)
async def open_dispute(who: Caller, ledger: LedgerState, request: Request) -> dict:
    """Open a dispute, as the reseller billed for the seconds (SPEC.md, "Disputes"): 409
    `nothing_billed` when none of the interval is billed with that attribution, 409
    `dispute_refused` on one's own GPU or outside the window; 403 for any other caller."""
    require_writer(who)
    body = await _read(request, DisputeRequest, "a dispute")
    reseller = body.reseller if body.reseller is not None else (who.member or "")
    interval = parse_interval(body.gpu_uuid, body.from_, body.to, body.provider, reseller, body.tenant, body.sku)
    return await disputes.open_dispute(ledger.store, who, interval, body.reason, body.note)


def _move_route(action: str, summary: str, required: bool = False) -> None:
    @router.post(
        f"/v1/disputes/{{dispute_id}}/{action}", response_model=Dispute, response_model_by_alias=True,
        openapi_extra=_body_schema(MoveRequest, required), responses=responses(400, 403, 409, 413),
        summary=summary, name=f"{action}_dispute",
    )
    async def move(dispute_id: str, who: Caller, ledger: LedgerState, request: Request) -> dict:
        require_writer(who)
        body = await _read(request, MoveRequest, "a move")
        return await disputes.move(ledger.store, who, dispute_id, action, body.note)


_move_route("accept", "Accept, as the provider: the seconds still billed are voided")
_move_route("reject", "Reject, as the provider, with a note", required=True)
_move_route("escalate", "Escalate a rejection, as the reseller, once, within 14 days")
_move_route("withdraw", "Withdraw, as the reseller, while open or escalated")


@router.post(
    "/v1/disputes/{dispute_id}/decide", response_model=Dispute, response_model_by_alias=True,
    openapi_extra=_body_schema(DecideRequest), responses=responses(400, 403, 409, 413),
)
async def decide_dispute(dispute_id: str, who: Caller, ledger: LedgerState, request: Request) -> dict:
    """Decide an escalated dispute, as the alliance operator (an admin token): accept
    (the seconds still billed are voided) or reject. Final."""
    require_writer(who)
    body = await _read(request, DecideRequest, "a decision")
    return await disputes.move(ledger.store, who, dispute_id, f"decide_{body.decision}", body.note)


@router.get("/v1/disputes", response_model=DisputeList, response_model_by_alias=True)
async def list_disputes(who: Caller, ledger: LedgerState) -> dict:
    """The disputes the caller's member is the provider or the reseller of (an admin or
    auditor: all), in the order they were opened."""
    return await disputes.listing(ledger.store, who)


@router.get("/v1/disputes/{dispute_id}", response_model=Dispute, response_model_by_alias=True)
async def get_dispute(dispute_id: str, who: Caller, ledger: LedgerState) -> dict:
    """One dispute with its history; 404 for a member that is no party to it."""
    return await disputes.show(ledger.store, who, dispute_id)
