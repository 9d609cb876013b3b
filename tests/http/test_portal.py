"""The portal (ledger/http/portal) in process, on the in-memory store with October 2026
closed: signing in with an API token, the session cookie's attributes, CSRF on every
form, sign-out, a member's month and payments, errors as pages, and that the JSON API
keeps its own error shape. The same pages in a real browser against a real stack:
tests/e2e/test_portal_browser.py."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import httpx
import pytest

from ledger.domain.disputes import REASONS, STATES
from ledger.http.app import create_app
from ledger.http.portal import charts, i18n
from ledger.http.portal import usage as usage_pages
from ledger.service import disputes, tokens
from ledger.service.intake import Intake
from ledger.settings import Settings
from tests.factories import encode, instant, usage_event
from tests.service.conftest import LoopbackPublisher, deliver
from tests.service.test_payments import Clock, closed_october

TEMPLATES = Path(__file__).resolve().parents[2] / "ledger" / "http" / "portal" / "templates"
MEMBERS = ("kddi", "sakura", "highreso")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
LIFETIME = 7200


@contextlib.asynccontextmanager
async def portal(now: str = "2026-11-02T00:00:00+09:00"):
    store = await closed_october(Clock(instant(now)))

    async def opened():
        return store

    app = create_app(Settings(Path("."), None, None), open_store=opened)
    secrets = {m: (await tokens.create(store, "member", m, "", LIFETIME))[1] for m in MEMBERS}
    for role in ("admin", "auditor"):
        secrets[role] = (await tokens.create(store, role, None, "", LIFETIME))[1]
    async with app.router.lifespan_context(app):
        yield app, secrets


def browser(app) -> httpx.AsyncClient:
    # https: the session cookie is Secure, and a cookie jar sends it over HTTPS only.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://portal.test",
                             headers={"Accept-Language": "en"})


async def signed_in(app, secret: str) -> httpx.AsyncClient:
    http = browser(app)
    form = await http.get("/portal/sign-in")
    csrf = CSRF.search(form.text).group(1)
    answer = await http.post("/portal/sign-in", data={"csrf": csrf, "token": secret, "next": ""})
    assert answer.status_code == 303, answer.text
    return http


def csrf_of(page: httpx.Response) -> str:
    return CSRF.search(page.text).group(1)


async def test_a_token_is_exchanged_for_a_strict_secure_session_that_ends_with_it():
    async with portal() as (app, secrets):
        http = browser(app)
        form = await http.get("/portal/sign-in")
        assert form.status_code == 200 and 'type="password"' in form.text
        answer = await http.post("/portal/sign-in", data={"csrf": csrf_of(form), "token": secrets["kddi"]})
        assert answer.status_code == 303 and answer.headers["location"] == "/portal/months"
        cookie = next(v for k, v in answer.headers.multi_items()
                      if k == "set-cookie" and v.startswith("gpuledger_portal="))
        attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
        assert {"httponly", "secure", "samesite", "max-age", "path"} <= set(attributes)
        assert attributes["samesite"].lower() == "samesite=strict" and attributes["path"] == "Path=/portal"
        max_age = int(attributes["max-age"].split("=")[1])
        assert LIFETIME - 60 <= max_age <= LIFETIME  # no longer than the token lives
        assert secrets["kddi"] not in cookie  # the cookie is a session id, not the token
        month = await http.get("/portal/months/2026-10")
        assert month.status_code == 200 and "kddi" in month.text
        await http.aclose()


async def test_a_wrong_token_is_refused_with_a_message_and_no_session():
    async with portal() as (app, _):
        http = browser(app)
        form = await http.get("/portal/sign-in")
        answer = await http.post("/portal/sign-in", data={"csrf": csrf_of(form), "token": "glt_nope_nope"})
        assert answer.status_code == 401 and "unknown, revoked or expired token" in answer.text
        assert "gpuledger_portal=" not in answer.headers.get("set-cookie", "")
        assert (await http.get("/portal/months/2026-10")).status_code == 303


async def test_every_form_without_its_csrf_token_is_refused():
    async with portal() as (app, secrets):
        http = browser(app)
        await http.get("/portal/sign-in")
        refused = await http.post("/portal/sign-in", data={"token": secrets["kddi"]})
        assert refused.status_code == 403 and "csrf_refused" in refused.text
        http = await signed_in(app, secrets["kddi"])
        for path, data in (("/portal/payments", {"period": "2026-10", "to": "highreso", "amount_yen": "1",
                                                 "paid_on": "2026-11-01", "reference": "R"}),
                           ("/portal/disputes", {"provider": "highreso"}),
                           ("/portal/sign-out", {}),
                           ("/portal/payments", {"csrf": "forged", "period": "2026-10"})):
            answer = await http.post(path, data=data)
            assert answer.status_code == 403 and "csrf_refused" in answer.text, path
        listing = await http.get("/portal/payments")
        assert "pay-1" not in listing.text  # nothing was recorded
        await http.aclose()


async def test_without_a_session_a_page_sends_to_sign_in_and_sign_out_ends_it():
    async with portal() as (app, secrets):
        http = browser(app)
        answer = await http.get("/portal/payments")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/portal/sign-in")
        http = await signed_in(app, secrets["sakura"])
        page = await http.get("/portal/payments")
        assert page.status_code == 200
        out = await http.post("/portal/sign-out", data={"csrf": csrf_of(page)})
        assert out.status_code == 303
        assert (await http.get("/portal/payments")).status_code == 303
        await http.aclose()


async def test_a_revoked_token_ends_its_session_at_once():
    async with portal() as (app, secrets):
        http = await signed_in(app, secrets["kddi"])
        assert (await http.get("/portal/payments")).status_code == 200
        await tokens.revoke(app.state.ledger.store, secrets["kddi"].split("_")[1])
        assert (await http.get("/portal/payments")).status_code == 303
        await http.aclose()


async def test_the_payer_records_and_the_payee_confirms_through_the_pages():
    async with portal() as (app, secrets):
        kddi = await signed_in(app, secrets["kddi"])
        page = await kddi.get("/portal/payments")
        assert 'id="owe-table"' in page.text and "highreso" in page.text
        recorded = await kddi.post("/portal/payments", data={
            "csrf": csrf_of(page), "period": "2026-10", "to": "highreso", "amount_yen": "600",
            "paid_on": "2026-11-01", "reference": "BANK-1"})
        assert recorded.status_code == 303
        highreso = await signed_in(app, secrets["highreso"])
        page = await highreso.get("/portal/payments")
        assert 'id="confirm-pay-1"' in page.text
        confirmed = await highreso.post("/portal/payments/pay-1/confirm", data={"csrf": csrf_of(page)})
        assert confirmed.status_code == 303
        page = await kddi.get("/portal/payments")
        assert "confirmed" in page.text
        sakura = await signed_in(app, secrets["sakura"])
        assert "pay-1" not in (await sakura.get("/portal/payments")).text
        for http in (kddi, highreso, sakura):
            await http.aclose()


async def test_a_refusal_of_the_service_is_a_page_with_its_message_and_status():
    async with portal() as (app, secrets):
        kddi = await signed_in(app, secrets["kddi"])
        page = await kddi.get("/portal/payments")
        over = await kddi.post("/portal/payments", data={
            "csrf": csrf_of(page), "period": "2026-10", "to": "highreso", "amount_yen": "99999999",
            "paid_on": "2026-11-01", "reference": "BANK-1"})
        assert over.status_code == 409 and over.headers["content-type"].startswith("text/html")
        assert 'role="alert"' in over.text and "Traceback" not in over.text
        missing = await kddi.get("/portal/months/2026-1x")
        assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
        api = await kddi.get("/v1/statements/2026-10")  # the JSON API is unchanged: no bearer, 401 JSON
        assert api.status_code == 401 and api.json()["error"]["code"] == "unauthorized"
        await kddi.aclose()


async def test_every_page_carries_a_strict_content_security_policy():
    async with portal() as (app, secrets):
        http = await signed_in(app, secrets["kddi"])
        for path in ("/portal/months/2026-10", "/portal/payments", "/portal/disputes", "/portal/sign-in"):
            answer = await http.get(path)
            assert "script-src 'self'" in answer.headers["content-security-policy"], path
            assert answer.headers["cache-control"] == "no-store"
        await http.aclose()


@pytest.mark.parametrize("name", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_every_word_a_template_uses_is_in_both_languages(name):
    used = set(re.findall(r"""t\(["']([a-z_]+)["']\)""", (TEMPLATES / name).read_text()))
    missing = sorted(key for key in used if key not in i18n.TEXT)
    assert not missing, missing
    assert all(all(i18n.TEXT[key]) for key in used)


def test_the_words_chosen_at_run_time_are_in_both_languages():
    chosen = [key for key, _ in i18n.OPERATOR_MENU] + list(usage_pages.GROUPS) + list(disputes.MOVES)
    chosen += ["paid", "overdue", "due_state"]  # a transfer's status
    assert [key for key in chosen if key not in i18n.TEXT] == []


async def test_a_member_replays_a_dead_letter_of_its_own_gpus_from_the_page():
    async with portal() as (app, secrets):
        store = app.state.ledger.store
        publisher = LoopbackPublisher(clock_ms=lambda: instant("2026-11-01T00:00:00Z") * 1000, batch=False)
        event = usage_event(provider="sakura", sku="NOPE", time="2026-11-01T00:00:00Z", event_id="dead-1")
        await publisher.send_events([encode(event)], "GPU-0001")
        await deliver(publisher, Intake(store))
        sakura = await signed_in(app, secrets["sakura"])
        page = await sakura.get("/portal/dead-letters")
        found = re.search(r'name="id" value="([0-9]+)"', page.text)
        assert found is not None and "<td>unknown_sku</td>" in page.text
        highreso = await signed_in(app, secrets["highreso"])
        assert "<td>unknown_sku</td>" not in (await highreso.get("/portal/dead-letters")).text  # not its GPU, not its tenant
        done = await sakura.post("/portal/dead-letters/replay", data={"csrf": csrf_of(page), "id": found.group(1)})
        assert done.status_code == 200 and 'id="replay-outcome"' in done.text
        assert re.search(r"<th scope=\"row\">replayed</th><td>1</td>", done.text)
        again = await sakura.get("/portal/dead-letters")
        assert f'name="id" value="{found.group(1)}"' not in again.text  # replayed: not again
        assert "<td>unknown_sku</td>" in again.text  # judged again, and refused again: a new dead letter
        for http in (sakura, highreso):
            await http.aclose()


async def test_usage_grants_capacity_and_dead_letters_pages_answer_within_the_callers_scope():
    async with portal() as (app, secrets):
        kddi = await signed_in(app, secrets["kddi"])
        usage_page = await kddi.get("/portal/usage", params={"range": "period", "period": "2026-10",
                                                             "group_by": "provider"})
        assert usage_page.status_code == 200, usage_page.text
        assert "<svg" in usage_page.text and 'id="usage-table"' in usage_page.text
        assert "highreso" in usage_page.text and "sakura" in usage_page.text
        chart = await kddi.get("/portal/usage/chart", params={"range": "period", "period": "2026-10"})
        assert chart.status_code == 200 and chart.text.strip().startswith("<svg")
        assert (await kddi.get("/portal/usage", params={"group_by": "nope"})).status_code == 400
        lines = await kddi.get("/portal/usage", params={"range": "period", "period": "2026-10"})
        assert "/portal/disputes/new?provider=highreso" in lines.text  # a dispute from a usage line
        assert "/portal/disputes/new?provider=kddi" not in lines.text  # never of its own GPUs
        for path in ("/portal/usage", "/portal/usage?range=today", "/portal/grants", "/portal/capacity/2026-10",
                     "/portal/dead-letters"):
            assert (await kddi.get(path)).status_code == 200, path
        refused = await kddi.get("/portal/operator")
        assert refused.status_code == 403 and "operator" in refused.text
        await kddi.aclose()


async def test_the_operator_sees_the_alliance_and_closes_a_month_after_seeing_what_it_stores():
    async with portal(now="2026-12-02T00:00:00+09:00") as (app, secrets):
        admin = await signed_in(app, secrets["admin"])
        overview = await admin.get("/portal/operator")
        assert overview.status_code == 200
        for member in MEMBERS:
            assert member in overview.text
        assert 'id="pipeline-table"' in overview.text and "gpu.usage" in overview.text
        preview = await admin.get("/portal/operator/close", params={"period": "2026-11"})
        assert preview.status_code == 200 and 'id="close-confirm"' in preview.text
        closed = await admin.post("/portal/operator/close", data={"csrf": csrf_of(preview), "period": "2026-11"})
        assert closed.status_code == 303 and closed.headers["location"] == "/portal/months/2026-11"
        month = await admin.get("/portal/months/2026-11")
        assert "closed" in month.text
        again = await admin.get("/portal/operator/close", params={"period": "2026-11"})
        assert 'id="close-confirm"' not in again.text  # nothing left to close through it
        kddi = await signed_in(app, secrets["kddi"])
        page = await kddi.get("/portal/payments")
        refused = await kddi.post("/portal/operator/close", data={"csrf": csrf_of(page), "period": "2026-12"})
        assert refused.status_code == 403
        await admin.aclose()
        await kddi.aclose()


async def test_a_page_is_in_japanese_unless_english_is_asked_for():
    async with portal() as (app, secrets):
        http = browser(app)
        del http.headers["Accept-Language"]
        assert "サインイン" in (await http.get("/portal/sign-in")).text
        chosen = await http.get("/portal/lang/en", params={"next": "/portal/sign-in"})
        assert chosen.status_code == 303 and chosen.headers["location"] == "/portal/sign-in"
        assert ">Sign in<" in (await http.get("/portal/sign-in")).text
        away = await http.get("/portal/lang/ja", params={"next": "https://evil.example/"})
        assert away.headers["location"] == "/portal"  # never a redirect out of the portal
        await http.aclose()


def test_a_chart_has_a_bar_per_point_and_escapes_what_it_writes():
    drawn = charts.bars([("10-01", 7200), ("<b>", 3600), ("10-03", 0)], "GPU-hours")
    assert drawn.count('<rect class="bar"') == 3
    assert "<b>" not in drawn and "&lt;b&gt;" in drawn
    assert "2.00 GPU-h (7,200 s)" in drawn
    assert 'role="img"' in charts.bars([], "GPU-hours")


async def test_the_documents_face_is_served_for_a_browser_without_it():
    async with portal() as (app, _):
        http = browser(app)
        answer = await http.get("/portal/static/fonts/ipaexg.ttf")
        assert answer.status_code == 200 and answer.headers["content-type"] == "font/ttf"
        assert answer.content[:4] == b"\x00\x01\x00\x00"  # a TrueType font
        assert (await http.get("/portal/static/portal.css")).status_code == 200
        assert (await http.get("/portal/static/..%2Fsession.py")).status_code == 404
        await http.aclose()


async def test_an_auditor_reads_the_operators_pages_and_changes_nothing():
    async with portal(now="2026-12-02T00:00:00+09:00") as (app, secrets):
        auditor = await signed_in(app, secrets["auditor"])
        overview = await auditor.get("/portal/operator")
        assert overview.status_code == 200 and 'href="/portal/operator/close"' not in overview.text
        preview = await auditor.get("/portal/operator/close", params={"period": "2026-11"})
        assert preview.status_code == 200 and 'id="close-confirm"' not in preview.text
        refused = await auditor.post("/portal/operator/close", data={"csrf": csrf_of(preview), "period": "2026-11"})
        assert refused.status_code == 403
        recorded = await auditor.post("/portal/payments", data={
            "csrf": csrf_of(preview), "period": "2026-10", "to": "highreso", "amount_yen": "1",
            "paid_on": "2026-11-01", "reference": "R"})
        assert recorded.status_code == 403 and "read_only" in recorded.text
        await auditor.aclose()


def test_the_ledgers_codes_read_in_japanese_and_stay_codes_in_english():
    for code in (*REASONS, *disputes.MOVES, *STATES, "recorded", "confirmed"):
        assert code in i18n.TERMS, code
        assert i18n.term("en")(code) == code
    assert i18n.term("ja")("escalated") == "上申中"


async def test_a_dispute_opened_from_a_line_is_prefilled_with_its_attribution_and_period():
    async with portal() as (app, secrets):
        kddi = await signed_in(app, secrets["kddi"])
        form = await kddi.get("/portal/disputes/new", params={"provider": "highreso", "tenant": "acme",
                                                              "sku": "H200", "period": "2026-10"})
        assert form.status_code == 200
        for value in ("highreso", "acme", "H200", "2026-09-30T15:00:00Z", "2026-10-31T15:00:00Z"):
            assert f'value="{value}"' in form.text, value
        await kddi.aclose()


def test_one_token_signing_in_again_and_again_pushes_out_only_its_own_sessions():
    """A member cannot sign other members out by opening sessions without end."""
    from ledger.domain.access import Caller
    from ledger.http.portal.session import Sessions

    sessions = Sessions(limit=100, per_token=3)
    other = sessions.open("token-of-sakura", Caller("t2", "member", "sakura"), 2_000_000_000)
    flood = [sessions.open("token-of-kddi", Caller("t1", "member", "kddi"), 2_000_000_000) for _ in range(50)]
    assert sessions.get(other.id) is other
    assert [sessions.get(s.id) is not None for s in flood] == [False] * 47 + [True] * 3
