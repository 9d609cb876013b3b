"""How the portal's pages are made: Jinja2 templates in the documents' face and colours,
the two languages, the figures formatted, and the headers every page carries.

Jinja2 is the documents' template engine too (`ledger.documents.render`); here it makes
HTML pages for a browser, escaped automatically. Pages carry a strict Content Security
Policy (scripts and styles from the portal's own files only), are never cached, and may
not be framed.
"""

from __future__ import annotations

from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from ledger.http.portal import i18n
from ledger.http.portal.session import LANG_COOKIE, Session

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def yen(value: int | None) -> str:
    if value is None:
        return "–"
    return f"-¥{-value:,}" if value < 0 else f"¥{value:,}"


def number(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def gpu_hours(seconds: int | None) -> str:
    """GPU-seconds shown as hours with two decimals (the exact seconds are beside them)."""
    if seconds is None:
        return "–"
    return f"{seconds / 3600:,.2f}"


ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("ledger.http.portal", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENVIRONMENT.filters.update(yen=yen, number=number, hours=gpu_hours)


def language(request: Request) -> str:
    """The cookie's language, else the browser's first choice of the two, else Japanese."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in i18n.LANGUAGES:
        return chosen
    accepted = request.headers.get("accept-language", "").lower()
    return "en" if accepted.startswith("en") else "ja"


def page(request: Request, template: str, session: Session | None, status: int = 200, **context: Any) -> HTMLResponse:
    lang = language(request)
    caller = session.caller if session is not None else None
    html = ENVIRONMENT.get_template(template).render(
        lang=lang, t=i18n.translator(lang), term=i18n.term(lang), session=session, caller=caller,
        nav=i18n.navigation(caller), path=request.url.path, query=str(request.url.query), **context,
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def fragment(template: str, lang: str, **context: Any) -> HTMLResponse:
    html = ENVIRONMENT.get_template(template).render(lang=lang, t=i18n.translator(lang), **context)
    return HTMLResponse(html, headers=HEADERS)
