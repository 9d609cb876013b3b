"""How the API is shared (ledger/http/limits.py), and what it answers to requests it
refuses: 429 with Retry-After over a token's rate, 422 `invalid_request` for what does
not validate, 400 for periods whose days do not exist. In process, on the in-memory
store (the routes run their statements and documents inline there)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from ledger.domain.access import Caller
from ledger.domain.errors import TooManyRequests
from ledger.http.app import create_app
from ledger.http.limits import MemberSlots, RateLimiter
from ledger.memory.store import MemoryStore
from ledger.service import tokens
from ledger.settings import ApiLimits, Settings
from tests.factories import DEFAULT_CATALOG
from tests.service.conftest import load_catalog

SETTINGS = Settings(Path("."), None, None)
DEFAULT_LIMITS = ApiLimits()


@contextlib.asynccontextmanager
async def api(limits: ApiLimits = DEFAULT_LIMITS):
    """The app on a store with the default catalog, its lifespan run; yields a client
    per member token."""
    store = MemoryStore()
    await load_catalog(store, DEFAULT_CATALOG)

    async def opened() -> MemoryStore:
        return store

    app = create_app(replace(SETTINGS, api_limits=limits), open_store=opened)
    secrets = {m: (await tokens.create(store, "member", m, "", 3600))[1] for m in ("kddi", "sakura")}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        clients = {m: httpx.AsyncClient(transport=transport, base_url="http://test",
                                        headers={"Authorization": f"Bearer {s}"}) for m, s in secrets.items()}
        try:
            yield clients
        finally:
            for client in clients.values():
                await client.aclose()


async def test_beyond_its_rate_a_token_is_answered_429_with_retry_after():
    async with api(ApiLimits(rate_per_second=0.01, rate_burst=3)) as clients:
        kddi = clients["kddi"]
        usage = {"period": "2026-10", "group_by": "tenant"}
        assert (await kddi.get("/v1/usage", params=usage)).status_code == 200  # computed: one unit
        assert (await kddi.get("/v1/usage", params=usage)).status_code == 200  # kept: free
        assert (await kddi.get("/v1/statements/2026-10")).status_code == 200
        assert (await kddi.get("/v1/reports/capacity/2026-10")).status_code == 200
        refused = await kddi.get("/v1/statements/2026-10")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert "ask again in" in refused.json()["error"]["message"]
        assert 1 <= int(refused.headers["retry-after"]) <= 100
        assert (await kddi.get("/v1/documents/2026-10")).status_code == 429
        # Another token has its own bucket; cheap reads take nothing.
        assert (await clients["sakura"].get("/v1/statements/2026-10")).status_code == 200
        assert (await kddi.get("/healthz")).status_code == 200


def test_a_bucket_fills_again_at_its_rate():
    now = [0.0]
    limiter = RateLimiter(per_second=2, burst=2, clock=lambda: now[0])
    caller = Caller("t1", "member", "kddi")
    limiter.take(caller, "statements")
    limiter.take(caller, "statements")
    with pytest.raises(TooManyRequests) as refused:
        limiter.take(caller, "statements")
    assert refused.value.retry_after_seconds == 1
    now[0] = 0.5  # one unit back
    limiter.take(caller, "statements")
    with pytest.raises(TooManyRequests):
        limiter.take(caller, "statements")


async def test_one_member_asking_for_many_documents_waits_behind_itself():
    slots = MemberSlots(per_member=1, queued=1)
    kddi, kddi_other_token, sakura = Caller("t1", "member", "kddi"), Caller("t9", "member", "kddi"), Caller("t2", "member", "sakura")
    order = []
    release = asyncio.Event()

    async def document(caller: Caller, name: str) -> None:
        async with slots.slot(caller):
            order.append(name)
            await release.wait()

    first = asyncio.create_task(document(kddi, "kddi-1"))
    second = asyncio.create_task(document(kddi_other_token, "kddi-2"))
    await asyncio.sleep(0)
    with pytest.raises(TooManyRequests) as refused:  # one in the making, one waiting: full
        await document(kddi, "kddi-3")
    assert refused.value.code == "too_many_documents"
    other = asyncio.create_task(document(sakura, "sakura-1"))
    await asyncio.sleep(0)
    assert order == ["kddi-1", "sakura-1"]  # sakura did not wait for kddi's second
    release.set()
    await asyncio.gather(first, second, other)
    assert order == ["kddi-1", "sakura-1", "kddi-2"] and not slots.users and not slots.semaphores


async def test_what_does_not_validate_is_422_in_the_error_shape_and_documented_so():
    async with api() as clients:
        answered = await clients["kddi"].get("/v1/usage", params={"granularity": "week", "limit": "0"})
        document = (await clients["kddi"].get("/openapi.json")).json()
    assert answered.status_code == 422
    assert answered.json() == {"error": {"code": "invalid_request", "message": (
        "query parameter granularity: Input should be 'hour', 'day' or 'month'; "
        "query parameter limit: Input should be greater than or equal to 1")}}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    documented = document["paths"]["/v1/usage"]["get"]["responses"]
    assert documented["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    for path in ("/v1/usage", "/v1/statements/{period}", "/v1/documents/{period}", "/v1/reports/capacity/{period}"):
        assert "429" in document["paths"][path]["get"]["responses"], path


@pytest.mark.parametrize("path", ["/v1/usage?period=0001-01", "/v1/documents/0001-01",
                                  "/v1/documents/0001-01/capacity-report.pdf",
                                  "/v1/documents/0001-01/settlement-reports/kddi.html"])
async def test_a_period_whose_days_do_not_exist_is_a_bad_period_not_a_failure(path):
    """In Asia/Tokyo, 0001-01 begins in year 0 UTC: no date, no instant can name it."""
    async with api() as clients:
        answered = await clients["kddi"].get(path)
    assert answered.status_code == 400
    assert answered.json()["error"]["code"] == "bad_period"
    assert "0001-01" in answered.json()["error"]["message"]
