"""The one mapping of errors to HTTP answers: `{"error": {"code", "message"}}`.

Every `LedgerError` is answered with its class's `http_status` and its `code`, so the
same failure reads the same on every route (an unreachable broker or database is 503,
with Retry-After, everywhere; a caller over its rate is 429, with Retry-After). What
FastAPI itself refuses before a route runs reads the same: a parameter or body that does
not validate is 422 `invalid_request`, a path no route knows 404, a wrong method 405;
the OpenAPI document says so (`install_openapi`).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from ledger.domain.errors import LedgerError, ServiceUnavailable, TooManyRequests

RETRY_AFTER_SECONDS = 5
VALIDATION_STATUS = 422
MAX_LISTED_PROBLEMS = 5
WHERE = {"query": "query parameter", "path": "path parameter", "header": "header", "body": "body"}


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


def answer(exc: LedgerError) -> JSONResponse:
    headers = None
    if isinstance(exc, ServiceUnavailable):
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    elif isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after_seconds)}
    body = {"error": {"code": exc.code, "message": str(exc)}}
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


# What the router itself answers (no route for the path, or not for the method).
ROUTING_CODES = {404: "not_found", 405: "method_not_allowed"}


def validation_message(problems: list[dict]) -> str:
    """One line naming each parameter that does not validate and why:
    `query parameter limit: Input should be less than or equal to 10000`."""
    parts = []
    for problem in problems[:MAX_LISTED_PROBLEMS]:
        location = [str(part) for part in problem.get("loc", ())]
        where = WHERE.get(location[0], location[0]) if location else "request"
        name = ".".join(location[1:])
        parts.append(f"{where}{' ' + name if name else ''}: {problem.get('msg', 'is not valid')}")
    if len(problems) > MAX_LISTED_PROBLEMS:
        parts.append(f"and {len(problems) - MAX_LISTED_PROBLEMS} more")
    return "; ".join(parts).replace("\n", " ") or "the request does not validate"


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

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        body = {"error": {"code": "invalid_request", "message": validation_message(list(exc.errors()))}}
        return JSONResponse(body, status_code=VALIDATION_STATUS)

    install_openapi(app)


def install_openapi(app: FastAPI) -> None:
    """FastAPI documents its 422 as `HTTPValidationError`; here it is the error shape."""
    generate = app.openapi

    def openapi() -> dict:
        document = generate()
        schemas = document.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in schemas:
            for path in document["paths"].values():
                for operation in path.values():
                    found = operation.get("responses", {}).get(str(VALIDATION_STATUS))
                    if found is not None:
                        found["description"] = "A parameter or the body does not validate (code invalid_request)"
                        found["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
            del schemas["HTTPValidationError"], schemas["ValidationError"]
        return document

    app.openapi = openapi


def responses(*statuses: int) -> dict:
    """OpenAPI `responses` for the error statuses a route may answer."""
    return {status: {"model": ErrorResponse} for status in statuses}
