"""Liveness and metrics: no token needed, not in the OpenAPI document."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ledger.domain.errors import LedgerError, ServiceUnavailable
from ledger.http import metrics as http_metrics
from ledger.service import books, payments

log = logging.getLogger(__name__)

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> PlainTextResponse:
    """The API's and the process's Prometheus metrics (ledger.http.metrics), with the
    books' close progress and each member's overdue payments read now; an unreachable
    database answers store_up 0."""
    ledger = getattr(request.app.state, "ledger", None)  # None until the lifespan opened it
    if ledger is not None:
        await _read_books(ledger.store)
    return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _read_books(store) -> None:
    try:
        end = await books.closed_through_end(store)
    except ServiceUnavailable as exc:
        log.warning("metrics: %s", exc)
        http_metrics.STORE_UP.set(0)
        return
    http_metrics.STORE_UP.set(1)
    if end is not None:
        http_metrics.BOOKS_CLOSED_THROUGH_END.set(end)
    try:
        overdue = await payments.overdue_by_member(store)
    except LedgerError as exc:  # the close's figures above stand; this one waits for the next scrape
        log.warning("metrics: overdue payments: %s", exc)
        return
    for member, yen in overdue.items():
        http_metrics.PAYMENTS_OVERDUE.labels(member).set(yen)
