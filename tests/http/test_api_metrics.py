"""The usage API's metrics (ledger/http/metrics.py), in process, on the in-memory store."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import REGISTRY

from ledger.domain.errors import ServiceUnavailable
from ledger.http.app import create_app
from ledger.http.metrics import instrument
from ledger.memory.store import MemoryStore
from ledger.service import books
from ledger.settings import Settings
from tests.factories import DEFAULT_CATALOG
from tests.service.conftest import load_catalog


async def in_memory() -> MemoryStore:
    return MemoryStore()


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def client(app) -> httpx.AsyncClient:
    # No lifespan: the routes used here need neither PostgreSQL nor Kafka.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_requests_are_counted_by_route_template_not_raw_path():
    app = create_app(Settings(Path("."), None, None), open_store=in_memory)
    statement = {"route": "/v1/statements/{period}", "method": "GET", "status": "401"}
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    before = (sample("gpuledger_http_requests_total", **statement),
              sample("gpuledger_http_requests_total", **unmatched),
              sample("gpuledger_http_request_seconds_count", route="/v1/statements/{period}", method="GET"))
    async with client(app) as http:
        for period in ("2026-10", "2026-11", "not-a-period"):
            assert (await http.get(f"/v1/statements/{period}")).status_code == 401
        for path in ("/nope", "/v1/usage/extra/1", "/v1/statements/2026-10/x"):
            assert (await http.get(path)).status_code == 404
        assert (await http.post("/healthz")).status_code == 405
        text = (await http.get("/metrics")).text
    assert sample("gpuledger_http_requests_total", **statement) == before[0] + 3
    assert sample("gpuledger_http_requests_total", **unmatched) == before[1] + 3
    assert sample("gpuledger_http_request_seconds_count",
                  route="/v1/statements/{period}", method="GET") == before[2] + 3
    assert sample("gpuledger_http_requests_total", route="/healthz", method="POST", status="405") >= 1
    assert "2026-11" not in text and "/nope" not in text  # raw paths never become labels


async def test_accepted_events_are_counted_from_the_events_route():
    app = FastAPI()

    @app.post("/v1/events", status_code=202)
    async def events(fail: bool = False):
        if fail:
            return JSONResponse({"error": {"code": "x", "message": "x"}}, status_code=400)
        return {"accepted": 3, "ingest_id": "abc"}

    @app.post("/v1/other", status_code=202)
    async def other():
        return {"accepted": 1000}

    instrument(app)
    before = sample("gpuledger_api_events_accepted_total")
    async with client(app) as http:
        assert (await http.post("/v1/events")).status_code == 202
        assert (await http.post("/v1/events", params={"fail": "true"})).status_code == 400
        assert (await http.post("/v1/other")).status_code == 202
        assert (await http.post("/v1/events")).status_code == 202
    assert sample("gpuledger_api_events_accepted_total") == before + 6


async def test_an_exception_is_counted_as_500():
    app = FastAPI()

    @app.get("/boom/{n}")
    async def boom(n: int):
        raise RuntimeError("boom")

    instrument(app)
    before = sample("gpuledger_http_requests_total", route="/boom/{n}", method="GET", status="500")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.get("/boom/1")).status_code == 500
    assert sample("gpuledger_http_requests_total", route="/boom/{n}", method="GET", status="500") == before + 1


class _Unreachable(MemoryStore):
    def snapshot(self):
        raise ServiceUnavailable("cannot reach PostgreSQL")


async def test_metrics_read_how_far_the_books_are_closed_and_whether_the_database_answers():
    store = MemoryStore()
    await load_catalog(store, DEFAULT_CATALOG)
    await books.statement(store, "2026-09", close=True)
    app = create_app(Settings(Path("."), None, None), open_store=in_memory)
    app.state.ledger = SimpleNamespace(store=store)  # what the lifespan would have opened
    async with client(app) as http:
        await http.get("/metrics")
    # 2026-09 ends at 2026-10-01T00:00:00+09:00.
    assert sample("gpuledger_books_closed_through_end_timestamp_seconds") == 1790780400
    assert sample("gpuledger_store_up") == 1

    app.state.ledger = SimpleNamespace(store=_Unreachable())
    async with client(app) as http:
        assert (await http.get("/metrics")).status_code == 200
    assert sample("gpuledger_store_up") == 0

