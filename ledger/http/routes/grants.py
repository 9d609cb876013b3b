"""GET /v1/grants: the grants a member funds or whose tenants it bills, as they stand."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ledger.http.auth import Caller, LedgerState
from ledger.http.errors import responses
from ledger.service import grants

router = APIRouter()


class GrantState(BaseModel):
    id: str
    funder: str
    reseller: str
    tenant: str
    amount_yen: int
    skus: list[str] | None
    providers: list[str] | None = Field(description="Whose GPUs it pays for; null: any provider's.")
    first_period: str
    last_period: str
    drawn: dict[str, int] = Field(description="booking period -> yen drawn there")
    drawn_yen: int
    restored: dict[str, int] = Field(description="booking period -> yen its returns restored")
    restored_yen: int
    balance_yen: int = Field(description="amount_yen - drawn_yen + restored_yen")
    lapsed_yen: int


class GrantList(BaseModel):
    through: str
    grants: list[GrantState]


@router.get("/v1/grants", response_model=GrantList, responses=responses(400, 429))
async def list_grants(
    who: Caller,
    ledger: LedgerState,
    period: Annotated[str | None, Query(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="draws through this booking period; default: the current one")] = None,
) -> dict:
    """Funders see the grants they fund, resellers the grants of their tenants; auditors all."""
    # Draws of open periods are their lines rated: the statement pool's work, not the loop's.
    ledger.limiter.take(who, "grants")
    return await ledger.statement_pool.run(grants.report, who, period)
