"""Signing in and out, the language, the portal's own static files, and its front door."""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ledger.documents import fonts  # the face's file only: no template or PDF library
from ledger.domain.errors import NotFound, Unauthorized
from ledger.http.portal import common, render, session
from ledger.http.portal.common import SignedIn
from ledger.http.portal.i18n import LANGUAGES

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8"}
SIGN_IN_SECONDS = 3600  # how long the sign-in form's CSRF cookie lives


def home_of(who) -> str:
    return "/portal/months" if who.member is not None else "/portal/operator"


@router.get("/portal")
async def front_door(who: SignedIn) -> Response:
    return common.redirect(home_of(who.caller))


@router.get("/portal/sign-in")
async def sign_in_form(request: Request, next: str = "") -> Response:
    nonce = secrets.token_urlsafe(32)
    response = render.page(request, "sign_in.html", None, csrf=nonce, next=common.local_path(next, ""),
                           failed="")
    session.set_cookie(response, session.SIGN_IN_COOKIE, nonce, SIGN_IN_SECONDS)
    return response


@router.post("/portal/sign-in")
async def sign_in(request: Request) -> Response:
    fields = await common.form(request, request.cookies.get(session.SIGN_IN_COOKIE, ""))
    try:
        opened = await session.sign_in(request, fields.get("token", ""))
    except Unauthorized as exc:
        nonce = request.cookies.get(session.SIGN_IN_COOKIE, "")
        return render.page(request, "sign_in.html", None, status=401, csrf=nonce, next=fields.get("next", ""),
                           failed=str(exc))
    response = common.redirect(common.local_path(fields.get("next"), home_of(opened.caller)))
    session.set_session_cookie(response, opened)
    response.delete_cookie(session.SIGN_IN_COOKIE, path=session.PATH, secure=True, httponly=True,
                           samesite="strict")
    return response


@router.post("/portal/sign-out")
async def sign_out(request: Request, who: SignedIn) -> Response:
    await common.form(request, who.csrf)
    session.sessions_of(request).close(who.id)
    response = common.redirect("/portal/sign-in")
    session.clear_cookie(response)
    return response


@router.get("/portal/lang/{lang}")
async def choose_language(lang: str, next: str = "") -> Response:
    if lang not in LANGUAGES:
        raise NotFound("no such language")
    response = common.redirect(common.local_path(next, "/portal"))
    session.set_cookie(response, session.LANG_COOKIE, lang, 400 * 86400)
    return response


@router.get("/portal/static/fonts/ipaexg.ttf")
async def font() -> Response:
    """The documents' face, for a browser that has not installed it (the pages ask for
    the installed one first)."""
    try:
        path = fonts.japanese_font()
    except fonts.MissingFont as exc:
        raise NotFound(str(exc)) from None
    return Response(path.read_bytes(), media_type="font/ttf", headers={"Cache-Control": "max-age=86400"})


@router.get("/portal/static/{name}")
async def static(name: str) -> Response:
    path = STATIC / name
    suffix = path.suffix
    if "/" in name or name.startswith(".") or suffix not in STATIC_TYPES or not path.is_file():
        raise NotFound("no such file")
    return Response(path.read_bytes(), media_type=STATIC_TYPES[suffix],
                    headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"})

