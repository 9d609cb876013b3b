"""GET /v1/reports/capacity/{period}: the alliance capacity report, for every token."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from ledger.http.auth import Caller, LedgerState
from ledger.http.errors import responses
from ledger.service import reports

router = APIRouter()


class CapacityRow(BaseModel):
    provider: str
    sku: str
    region: str | None
    registered_gpus: int
    registered_gpu_seconds: int
    billed_gpu_seconds: int
    resold_gpu_seconds: int


class CapacityReport(BaseModel):
    period: str
    rows: list[CapacityRow]


@router.get("/v1/reports/capacity/{period}", response_model=CapacityReport, responses=responses(400, 429))
async def get_capacity(who: Caller, ledger: LedgerState, period: str) -> dict:
    """What each provider registered and what was billed on it: no tenants, no prices."""
    ledger.limiter.take(who, "reports")
    return await reports.capacity(ledger.store, period)
