"""The one mapping of errors to HTTP answers: `{"error": {"code", "message"}}`.

Every `LedgerError` is answered with its class's `http_status` and its `code`, so the
same failure reads the same on every route (an unreachable broker or database is 503,
with Retry-After, everywhere).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

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


# What the router itself answers (no route for the path, or not for the method).
ROUTING_CODES = {404: "not_found", 405: "method_not_allowed"}


def install(app: FastAPI) -> None:
    @app.exception_handler(LedgerError)
    async def ledger_error(request: Request, exc: LedgerError) -> JSONResponse:
        return answer(exc)

    @app.exception_handler(HTTPException)
    async def routing_error(request: Request, exc: HTTPException) -> JSONResponse:
        # A path no route matches (a newline in it, say) reads like every other error.
        body = {"error": {"code": ROUTING_CODES.get(exc.status_code, f"http_{exc.status_code}"),
                          "message": str(exc.detail)}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def responses(*statuses: int) -> dict:
    """OpenAPI `responses` for the error statuses a route may answer."""
    return {status: {"model": ErrorResponse} for status in statuses}
