"""Who is signed in to the portal: a session per signed-in API token, and CSRF.

Signing in exchanges an API token (`gpuledger token create`, the JSON API's) for a
session: a random id in an HttpOnly, Secure, SameSite=Strict cookie that expires when
the token does. The session keeps the token, and every request authenticates it again
(`ledger.service.tokens`), so a revoked or expired token ends its sessions at once. Each
session has its own CSRF secret, which every form carries and every POST must return;
the sign-in form, before there is a session, carries the value of a cookie of its own
(double submit). Sessions live in the API process (as its rate buckets do): a restart
signs everyone out.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response

from ledger.domain.access import Caller
from ledger.domain.errors import Forbidden, Unauthorized
from ledger.service import tokens

COOKIE = "gpuledger_portal"
SIGN_IN_COOKIE = "gpuledger_portal_sign_in"
LANG_COOKIE = "gpuledger_portal_lang"
PATH = "/portal"
# A token's oldest session is forgotten beyond SESSIONS_PER_TOKEN, so that no member,
# signing in again and again, can push other members' sessions out of the process; the
# process's oldest beyond MAX_SESSIONS (its holder signs in again).
SESSIONS_PER_TOKEN = 16
MAX_SESSIONS = 10_000


class NotSignedIn(Unauthorized):
    """No session, or its token was revoked or expired: the portal asks to sign in."""

    code = "not_signed_in"


class BadCsrf(Forbidden):
    code = "csrf_refused"

    def __init__(self) -> None:
        super().__init__("this form has expired or did not come from the portal: reload the page and send it again")


@dataclass
class Session:
    id: str
    token: str
    csrf: str
    expires_at: int
    caller: Caller


class Sessions:
    """The signed-in sessions of this process, by id."""

    def __init__(self, limit: int = MAX_SESSIONS, per_token: int = SESSIONS_PER_TOKEN) -> None:
        self._by_id: OrderedDict[str, Session] = OrderedDict()
        self.limit = limit
        self.per_token = per_token

    def open(self, token: str, caller: Caller, expires_at: int) -> Session:
        same_token = [s.id for s in self._by_id.values() if s.token == token]
        for oldest in same_token[: max(0, len(same_token) - self.per_token + 1)]:
            self.close(oldest)
        session = Session(secrets.token_urlsafe(32), token, secrets.token_urlsafe(32), expires_at, caller)
        self._by_id[session.id] = session
        while len(self._by_id) > self.limit:
            self._by_id.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        session = self._by_id.get(session_id or "")
        if session is not None and session.expires_at <= time.time():
            self.close(session.id)
            return None
        return session

    def close(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)


def sessions_of(request: Request) -> Sessions:
    return request.app.state.portal_sessions


async def sign_in(request: Request, token: str) -> Session:
    """A new session for a valid API token; Unauthorized otherwise."""
    found = await tokens.authenticate_until(request.app.state.ledger.store, token.strip())
    if found is None:
        raise Unauthorized("unknown, revoked or expired token")
    caller, expires_at = found
    return sessions_of(request).open(token.strip(), caller, expires_at)


async def current(request: Request) -> Session:
    """The request's session, its token checked again now; NotSignedIn otherwise."""
    session = sessions_of(request).get(request.cookies.get(COOKIE))
    if session is None:
        raise NotSignedIn("sign in with an API token")
    found = await tokens.authenticate_until(request.app.state.ledger.store, session.token)
    if found is None:
        sessions_of(request).close(session.id)
        raise NotSignedIn("the token of this session was revoked or has expired: sign in again")
    session.caller = found[0]
    return session


def check_csrf(expected: str, form: dict[str, str]) -> None:
    sent = form.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise BadCsrf()


def set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max(0, max_age), path=PATH, secure=True, httponly=True,
                        samesite="strict")


def set_session_cookie(response: Response, session: Session) -> None:
    set_cookie(response, COOKIE, session.id, session.expires_at - int(time.time()))


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PATH, secure=True, httponly=True, samesite="strict")
