"""Liveness and metrics: no token needed, not in the OpenAPI document."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/metrics", include_in_schema=False)
async def metrics() -> PlainTextResponse:
    """The API's and the process's Prometheus metrics (ledger.http.metrics)."""
    return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)
