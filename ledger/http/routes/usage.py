"""GET /v1/usage: the caller's usage with its running cost (estimates)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from ledger.domain.usage import UsageFilter
from ledger.http.auth import Caller, LedgerState, request_version
from ledger.http.errors import responses
from ledger.service import usage

router = APIRouter()


class UsageItem(BaseModel):
    bucket_start: str
    tenant: str | None = None
    provider: str | None = None
    reseller: str | None = None
    sku: str | None = None
    service_period: str | None = None
    region: str | None = Field(None, description="Of the GPU's registration; null when unregistered")
    gpu_seconds: int
    retail_yen_estimate: int | None = Field(
        description="Retail yen of the usage the caller resold (auditors: all); null when none"
    )
    wholesale_yen_estimate: int


class GrantDraw(BaseModel):
    grant: str
    funder: str
    reseller: str
    tenant: str
    amount_yen: int


class CreditEstimate(BaseModel):
    period: str
    grant_draws: list[GrantDraw]


class UsagePage(BaseModel):
    granularity: str
    group_by: list[str]
    start: str
    end: str
    items: list[UsageItem]
    next_cursor: str | None
    credit_estimate: CreditEstimate | None = Field(
        None, description="With credits=true: the current period's grant draws so far (the caller's grants)"
    )


GroupField = Literal["tenant", "provider", "reseller", "sku", "service_period", "region"]


@router.get("/v1/usage", response_model=UsagePage, response_model_exclude_unset=True, responses=responses(400, 429))
async def get_usage(
    http: Request,
    who: Caller,
    ledger: LedgerState,
    start: Annotated[str | None, Query(description="RFC 3339 instant (rounded down to the hour); default: start of the current period")] = None,
    end: Annotated[str | None, Query(description="RFC 3339 instant, exclusive; default: the end of the last hour that can hold usage (now + 5 minutes)")] = None,
    period: Annotated[str | None, Query(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="service period YYYY-MM")] = None,
    tenant: str | None = None,
    provider: str | None = None,
    reseller: str | None = None,
    sku: str | None = None,
    region: str | None = None,
    group_by: Annotated[list[GroupField], Query()] = [],  # noqa: B006
    granularity: Literal["hour", "day", "month"] = "day",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,9}$")] = None,
    credits: bool = False,
) -> Response:
    request = usage.UsageRequest(
        start=start, end=end, tenant=tenant, group_by=tuple(group_by), granularity=granularity, limit=limit,
        offset=int(cursor or 0), credits=credits,
        where=UsageFilter(provider=provider, reseller=reseller, sku=sku, service_period=period, region=region),
    )
    # The service's page already has UsagePage's shape (its tests hold it to the model)
    # and is written once per answer kept: asked again, its bytes are the response.
    page = await ledger.usage(who, request, as_json=True, version=request_version(http))
    return Response(page, media_type="application/json")
