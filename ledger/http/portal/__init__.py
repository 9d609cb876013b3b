"""The members' portal: web pages over what the JSON API serves, at /portal, in Japanese
and English, served by the API process.

Its pages call the same services as the routes of `ledger.http.routes`, with the same
caller (`ledger.domain.access.Caller`) the same API token stands for, so a page shows and
allows exactly what the token's JSON API calls would: `session` (sign-in, cookies,
CSRF), `common` (forms, errors as pages), `render` (templates, languages in `i18n`,
charts in `charts`), and one module per area of pages.
"""

from __future__ import annotations

from fastapi import FastAPI

from ledger.http.portal import (
    common,
    disputes,
    entry,
    months,
    operator,
    payments,
    reports,
    session,
    usage,
)


def install(app: FastAPI) -> None:
    """The portal's routes, its sessions and its error pages on the API's app (after
    `ledger.http.errors.install`, whose JSON answers it keeps outside /portal)."""
    app.state.portal_sessions = session.Sessions()
    for module in (entry, months, usage, disputes, payments, reports, operator):
        app.include_router(module.router)
    common.install(app)
