"""Voids over HTTP (`ledger.service.corrections`): a provider's token voids its own GPUs'
seconds, an admin's any; members list the voids of seconds they provided or resold."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ledger.domain.disputes import REASONS, parse_interval
from ledger.domain.errors import InputError
from ledger.http.auth import Caller, LedgerState, require_writer
from ledger.http.body import read_limited
from ledger.http.errors import responses
from ledger.service import corrections

MAX_BODY_BYTES = 16 << 10

router = APIRouter()


class VoidRequest(BaseModel):
    """One GPU, [from, to) in RFC 3339 with an offset, whole seconds (at most 45 days), the
    attribution whose billed seconds are taken back, and why."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    gpu_uuid: str
    from_: str = Field(alias="from")
    to: str
    provider: str
    reseller: str
    tenant: str
    sku: str
    reason: str = Field(description=" | ".join(REASONS))


class VoidMade(BaseModel):
    void: str
    gpu_seconds: int


class Void(BaseModel):
    id: str
    gpu_uuid: str
    from_: str = Field(alias="from")
    to: str
    provider: str
    reseller: str
    tenant: str
    sku: str
    reason: str
    dispute: str | None
    gpu_seconds: int
    made_by: str
    made_at: str
    returned_in: str | None = Field(description="the booking period whose statement returns its seconds, if any")


class VoidList(BaseModel):
    voids: list[Void]


@router.post(
    "/v1/voids", status_code=201, response_model=VoidMade,
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": VoidRequest.model_json_schema(by_alias=True)}}}},
    responses=responses(400, 403, 413),
)
async def post_void(who: Caller, ledger: LedgerState, request: Request) -> dict:
    """Take back one GPU's seconds billed with one attribution (SPEC.md, "Corrections").
    A member's token may void only seconds of its own GPUs; 400 `nothing_to_void` when none
    of the interval is billed with that attribution."""
    require_writer(who)
    try:
        body = VoidRequest.model_validate_json(await read_limited(request, MAX_BODY_BYTES))
    except ValueError as exc:
        raise InputError(f"the body is not a void: {str(exc).splitlines()[0]}", code="bad_void") from None
    interval = parse_interval(body.gpu_uuid, body.from_, body.to, body.provider, body.reseller, body.tenant, body.sku)
    return await corrections.void(ledger.store, who, interval, body.reason)


@router.get("/v1/voids", response_model=VoidList, response_model_by_alias=True)
async def list_voids(who: Caller, ledger: LedgerState) -> dict:
    """Voids of seconds the caller provided or resold (an auditor or admin: all), oldest first."""
    return await corrections.listing(ledger.store, who)
