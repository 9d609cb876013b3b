"""What every portal page shares: the signed-in session, forms, redirects, errors.

A `LedgerError` raised on a portal page (the services' own: the same as the JSON API
answers) is shown as a page with its message and the class's status, never a traceback;
a request without a session is sent to the sign-in page.
"""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import parse_qsl, urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from ledger.domain.errors import LedgerError
from ledger.http import errors
from ledger.http.auth import Ledger
from ledger.http.body import read_limited
from ledger.http.portal import render, session
from ledger.http.portal.session import Session

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 64 << 10
PREFIX = "/portal"


async def signed_in(request: Request) -> Session:
    return await session.current(request)


SignedIn = Annotated[Session, Depends(signed_in)]


def ledger_of(request: Request) -> Ledger:
    return request.app.state.ledger


async def form(request: Request, expected_csrf: str) -> dict[str, str]:
    """A posted form's fields (the last of a repeated name; `all_of` reads every one),
    refused unless it carries `expected_csrf`."""
    body = (await read_limited(request, MAX_FORM_BYTES)).decode("utf-8", "replace")
    urlencoded = request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    pairs = parse_qsl(body, keep_blank_values=True) if urlencoded else []  # anything else carries no token
    fields = dict(pairs)
    fields["__pairs__"] = pairs  # type: ignore[assignment]
    session.check_csrf(expected_csrf, fields)
    return fields


def all_of(fields: dict, name: str) -> list[str]:
    return [value for key, value in fields["__pairs__"] if key == name]


def redirect(path: str, **query: str) -> RedirectResponse:
    shown = {key: value for key, value in query.items() if value}
    return RedirectResponse(path + (f"?{urlencode(shown)}" if shown else ""), status_code=303,
                            headers={"Cache-Control": "no-store"})


def local_path(target: str | None, default: str = PREFIX) -> str:
    """A redirect target inside the portal only (never another site)."""
    if target and target.startswith(PREFIX + "/") and "//" not in target and "\\" not in target:
        return target
    return default


def _error_page(request: Request, status: int, code: str, message: str) -> Response:
    found = session.sessions_of(request).get(request.cookies.get(session.COOKIE))
    return render.page(request, "error.html", found, status=status, code=code, message=message)


def _is_portal(request: Request) -> bool:
    return request.url.path == PREFIX or request.url.path.startswith(PREFIX + "/")


def install(app: FastAPI) -> None:
    """The portal's errors as pages; every other path keeps the API's JSON (`ledger.http.errors`)."""

    @app.exception_handler(LedgerError)
    async def ledger_error(request: Request, exc: LedgerError) -> Response:
        if not _is_portal(request):
            return errors.answer(exc)
        if isinstance(exc, session.NotSignedIn):
            response = redirect(f"{PREFIX}/sign-in", next=request.url.path if request.method == "GET" else "")
            session.clear_cookie(response)
            return response
        response = _error_page(request, exc.http_status, exc.code, str(exc))
        for name, value in errors.answer(exc).headers.items():
            if name.lower() == "retry-after":
                response.headers[name] = value
        return response

    api_routing = app.exception_handlers[HTTPException]
    api_invalid = app.exception_handlers[RequestValidationError]

    @app.exception_handler(HTTPException)
    async def routing_error(request: Request, exc: HTTPException) -> Response:
        if not _is_portal(request):
            return await api_routing(request, exc)
        return _error_page(request, exc.status_code, errors.ROUTING_CODES.get(exc.status_code, "error"),
                           str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if not _is_portal(request):
            return await api_invalid(request, exc)
        return _error_page(request, 400, "invalid_request", errors.validation_message(list(exc.errors())))
