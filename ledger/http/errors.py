"""The one mapping of errors to HTTP answers: `{"error": {"code", "message"}}`.

Every `LedgerError` is answered with its class's `http_status` and its `code`, so the
same failure reads the same on every route (an unreachable broker or database is 503,
with Retry-After, everywhere).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ledger.domain.errors import LedgerError, ServiceUnavailable

RETRY_AFTER_SECONDS = 5


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


def answer(exc: LedgerError) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if isinstance(exc, ServiceUnavailable) else None
    body = {"error": {"code": exc.code, "message": str(exc)}}
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(LedgerError)
    async def ledger_error(request: Request, exc: LedgerError) -> JSONResponse:
        return answer(exc)


def responses(*statuses: int) -> dict:
    """OpenAPI `responses` for the error statuses a route may answer."""
    return {status: {"model": ErrorResponse} for status in statuses}
