"""The usage API (FastAPI): usage and statements scoped per member, HTTP ingest, admin.

Every request carries `Authorization: Bearer <token>` (`gpuledger token create`). What
lies outside a token's scope is answered exactly like what does not exist (404), so a
member cannot even learn that another member's tenant or statement line exists.
Driver errors are translated here into JSON errors `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import os
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

import asyncpg
import orjson
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from ledger import store, tokens
from ledger.api_metrics import instrument
from ledger.domain import usage
from ledger.domain.catalog import Catalog
from ledger.domain.errors import LedgerError
from ledger.domain.instants import parse_instant
from ledger.domain.periods import PERIOD_PATTERN
from ledger.domain.rating import HourUsage

SELECT_USAGE = """
SELECT provider, reseller, tenant, sku, service_period, hour_start, sum(seconds)::bigint AS seconds
FROM claims
WHERE hour_start >= $1 AND hour_start < $2
  AND ($3::text IS NULL OR reseller = $3 OR provider = $3)
  AND ($4::text IS NULL OR provider = $4)
  AND ($5::text IS NULL OR reseller = $5)
  AND ($6::text IS NULL OR sku = $6)
  AND ($7::text IS NULL OR service_period = $7)
GROUP BY provider, reseller, tenant, sku, service_period, hour_start
"""

MAX_BATCH_EVENTS = 10_000
MAX_BODY_BYTES = 10 * 1024 * 1024
EVENT_TYPE = "application/cloudevents+json"
BATCH_TYPE = "application/cloudevents-batch+json"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def not_found(what: str = "not found") -> ApiError:
    return ApiError(404, "not_found", what)


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class UsageItem(BaseModel):
    bucket_start: str
    tenant: str | None = None
    provider: str | None = None
    reseller: str | None = None
    sku: str | None = None
    service_period: str | None = None
    gpu_seconds: int
    retail_yen_estimate: int | None = Field(
        description="Retail yen of the usage the caller resold (auditors: all); null when none"
    )
    wholesale_yen_estimate: int


class UsagePage(BaseModel):
    granularity: str
    group_by: list[str]
    start: str
    end: str
    items: list[UsageItem]
    next_cursor: str | None


class Accepted(BaseModel):
    accepted: int
    ingest_id: str


class Settings(BaseModel):
    database_url: str
    kafka_bootstrap: str | None = None
    usage_topic: str = "gpu.usage"
    ready_file: str | None = None  # created once the app has started


async def current_caller(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> tokens.Caller:
    """The caller a bearer token stands for; 401 for anything else."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>")
    async with request.app.state.ledger.pool.acquire() as conn:
        found = await tokens.authenticate(conn, token.strip())
    if found is None:
        raise ApiError(401, "unauthorized", "unknown or revoked token")
    return found


Caller = Annotated[tokens.Caller, Depends(current_caller)]


class _State:
    pool: asyncpg.Pool
    producer = None
    catalog: Catalog = Catalog()
    catalog_revision: int = -1
    pseudonym_key: bytes = b""


def create_app(settings: Settings) -> FastAPI:
    state = _State()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=8)
        async with state.pool.acquire() as conn:
            state.pseudonym_key = await tokens.pseudonym_key(conn)
        if settings.kafka_bootstrap:
            from streams.publish import new_producer

            state.producer = new_producer(settings.kafka_bootstrap)
            await state.producer.start()
        if settings.ready_file:
            ready = Path(settings.ready_file)
            ready.parent.mkdir(parents=True, exist_ok=True)
            ready.write_text(str(os.getpid()))
        try:
            yield
        finally:
            if state.producer is not None:
                await state.producer.stop()
            await state.pool.close()

    app = FastAPI(
        title="gpuledger usage API",
        version="1",
        description="GPU-second usage and its running cost, scoped per alliance member.",
        lifespan=lifespan,
        responses={401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
    )

    app.state.ledger = state
    app.state.usage_topic = settings.usage_topic  # for the routers included below
    from ledger.api_dead_letters import router as dead_letters_router  # it imports this module
    app.include_router(dead_letters_router)
    instrument(app)  # gpuledger_http_* and gpuledger_api_events_accepted_total (ledger/api_metrics.py)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status)

    @app.exception_handler(LedgerError)
    async def ledger_error(request: Request, exc: LedgerError) -> JSONResponse:
        return JSONResponse({"error": {"code": "refused", "message": str(exc)}}, status_code=400)

    @app.exception_handler(asyncpg.DataError)
    async def data_error(request: Request, exc: asyncpg.DataError) -> JSONResponse:
        # A value PostgreSQL cannot take (a NUL character in a filter): the caller's input.
        return JSONResponse({"error": {"code": "bad_value", "message": str(exc)}}, status_code=400)

    async def current_catalog(conn) -> Catalog:
        revision = await conn.fetchval(store.SELECT_CATALOG_REVISION)
        if revision != state.catalog_revision:
            state.catalog, state.catalog_revision = await store.load_catalog(conn)
        return state.catalog

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/v1/usage", response_model=UsagePage, response_model_exclude_unset=True,
             responses={400: {"model": ErrorResponse}})
    async def get_usage(
        who: Caller,
        start: Annotated[str | None, Query(description="RFC 3339 instant (rounded down to the hour); default: start of the current period")] = None,
        end: Annotated[str | None, Query(description="RFC 3339 instant, exclusive; default: now")] = None,
        period: Annotated[str | None, Query(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="service period YYYY-MM")] = None,
        tenant: str | None = None,
        provider: str | None = None,
        reseller: str | None = None,
        sku: str | None = None,
        group_by: Annotated[list[Literal["tenant", "provider", "reseller", "sku", "service_period"]], Query()] = [],  # noqa: B006
        granularity: Literal["hour", "day", "month"] = "day",
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
        cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,9}$")] = None,
    ) -> dict:
        async with state.pool.acquire() as conn:
            catalog = await current_catalog(conn)
            now = usage.now_utc()
            if period is not None:
                start_s, end_s = _period_bounds(catalog, period)
            else:
                start_s = catalog.calendar.bounds(catalog.calendar.period_of(now))[0]
                end_s = now + 3600
            if start is not None:
                start_s = _instant(start, "start")
            if end is not None:
                end_s = _instant(end, "end")
            start_s -= start_s % 3600
            if end_s <= start_s or end_s - start_s > usage.MAX_RANGE_SECONDS:
                raise ApiError(400, "bad_range", "end must be after start, at most 400 days later")
            query = usage.UsageQuery(
                start_s, end_s, granularity, tuple(dict.fromkeys(group_by)),
                tenant, provider, reseller, sku, period,
            )
            rows = [
                HourUsage(r["reseller"], r["tenant"], r["provider"], r["sku"], r["service_period"],
                          r["hour_start"], r["seconds"])
                for r in await conn.fetch(SELECT_USAGE, start_s, end_s, who.member, provider, reseller, sku, period)
            ]
        items = usage.summarize(rows, query, who, catalog, state.pseudonym_key)
        offset = int(cursor or 0)
        page = items[offset : offset + limit]
        more = offset + limit < len(items)
        return {
            "granularity": granularity,
            "group_by": list(query.group_by),
            "start": usage.format_utc(start_s),
            "end": usage.format_utc(end_s),
            "items": page,
            "next_cursor": str(offset + limit) if more else None,
        }

    @app.get("/v1/statements/{period}")
    async def get_statement(who: Caller, period: str) -> Response:
        if not PERIOD_PATTERN.fullmatch(period):
            raise not_found("no such period")
        async with state.pool.acquire() as conn:
            document = orjson.loads(await store.statement(conn, period))
        if who.member is not None:
            document = member_view(document, who.member, state.pseudonym_key)
        return Response(orjson.dumps(document), media_type="application/json")

    @app.post(
        "/v1/events",
        status_code=202,
        response_model=Accepted,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    EVENT_TYPE: {"schema": {"type": "object"}},
                    BATCH_TYPE: {"schema": {"type": "array", "items": {"type": "object"}}},
                },
            }
        },
        responses={400: {"model": ErrorResponse}, 403: {"model": ErrorResponse},
                   413: {"model": ErrorResponse}, 415: {"model": ErrorResponse},
                   503: {"model": ErrorResponse}},
    )
    async def post_events(who: Caller, request: Request) -> dict:
        if who.role == "auditor":
            raise ApiError(403, "read_only", "auditor tokens cannot write")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in (EVENT_TYPE, BATCH_TYPE, "application/json"):
            raise ApiError(415, "unsupported_media_type", f"send {EVENT_TYPE} or {BATCH_TYPE}")
        body = await _read_limited(request, MAX_BODY_BYTES)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, "bad_json", f"the body is not JSON: {exc}") from None
        events = document if content_type == BATCH_TYPE else [document]
        if not isinstance(events, list):
            raise ApiError(400, "bad_batch", "a batch is a JSON array of events")
        if len(events) > MAX_BATCH_EVENTS:
            raise ApiError(413, "too_many_events", f"at most {MAX_BATCH_EVENTS} events per request")
        for index, event in enumerate(events):
            if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
                raise ApiError(400, "bad_event", f"event {index} is not an object with a data object")
            provider = event["data"].get("provider")
            if who.member is not None and provider != who.member:
                raise ApiError(403, "not_your_gpus", f"event {index}: a member may only send usage of its own GPUs")
        if state.producer is None:
            raise ApiError(503, "no_kafka", "this API was started without Kafka")
        from streams.publish import send_events

        ingest_id = uuid.uuid4().hex
        await send_events(state.producer, settings.usage_topic, [orjson.dumps(e) for e in events], ingest_id)
        return {"accepted": len(events), "ingest_id": ingest_id}

    @app.post(
        "/v1/catalog",
        responses={400: {"model": ErrorResponse}, 403: {"model": ErrorResponse}},
        openapi_extra={"requestBody": {"required": True, "content": {"application/toml": {"schema": {"type": "string"}}}}},
    )
    async def post_catalog(who: Caller, request: Request) -> dict:
        """Load a catalog file (admin tokens only; all or nothing)."""
        require_admin(who)
        body = await _read_limited(request, MAX_BODY_BYTES)
        async with state.pool.acquire() as conn:
            return await store.save_catalog(conn, body, "api")

    @app.post(
        "/v1/periods/{period}/close",
        responses={400: {"model": ErrorResponse}, 403: {"model": ErrorResponse}},
    )
    async def close_period(who: Caller, period: str) -> Response:
        """Close the books through PERIOD (admin tokens only) and return its statement."""
        require_admin(who)
        if not _known_period(period):
            raise ApiError(400, "bad_period", "a period is YYYY-MM, 0001-01 to 9999-11")
        async with state.pool.acquire() as conn:
            document = await store.statement(conn, period, close=True)
        return Response(document, media_type="application/json")

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> PlainTextResponse:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def require_admin(who: tokens.Caller) -> None:
    if who.role != "admin":
        raise ApiError(403, "admin_only", "only admin tokens load catalogs and close periods")


# Instants and periods the API prints must exist as datetimes (years 0001-9999 UTC).
_FIRST_INSTANT = -62135596800  # 0001-01-01T00:00:00Z
_LAST_INSTANT = 253402300799  # 9999-12-31T23:59:59Z


def _instant(text: str, name: str) -> int:
    instant = parse_instant(text)
    if instant is None or not _FIRST_INSTANT <= instant <= _LAST_INSTANT:
        raise ApiError(400, "bad_instant", f"{name} is not an RFC 3339 instant in years 0001-9999")
    return instant


def _known_period(period: str) -> bool:
    """YYYY-MM whose bounds exist as datetimes (9999-12 would end in year 10000)."""
    return bool(PERIOD_PATTERN.fullmatch(period)) and "0001-01" <= period <= "9999-11"


def _period_bounds(catalog: Catalog, period: str) -> tuple[int, int]:
    if not _known_period(period):
        raise ApiError(400, "bad_period", "a period is YYYY-MM, 0001-01 to 9999-11")
    return catalog.calendar.bounds(period)


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"at most {limit} bytes per request")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"at most {limit} bytes per request")
        chunks.append(chunk)
    return b"".join(chunks)


def member_view(statement: dict, member: str, key: bytes) -> dict:
    """A member's side of a statement: its own lines and invoices, nothing of others'."""
    lines = []
    for line in statement["lines"]:
        if line["reseller"] == member:
            lines.append(line)
        elif line["provider"] == member:
            lines.append(
                {
                    "reseller": line["reseller"],
                    "tenant": tokens.pseudonym(key, member, line["reseller"], line["tenant"]),
                    "provider": line["provider"],
                    "sku": line["sku"],
                    "service_period": line["service_period"],
                    "agreement_from": line["agreement_from"],
                    "gpu_seconds": line["gpu_seconds"],
                    "wholesale_yen": line["wholesale_yen"],
                }
            )
    return {
        "period": statement["period"],
        "currency": statement["currency"],
        "closed": statement["closed"],
        "member": member,
        "lines": lines,
        "tenant_invoices": [i for i in statement["tenant_invoices"] if i["reseller"] == member],
        "member_invoices": [
            i for i in statement["member_invoices"] if member in (i["provider"], i["reseller"])
        ],
        "net_yen": {member: statement["net_yen"].get(member, 0)},
        "transfers": [t for t in statement["transfers"] if member in (t["from"], t["to"])],
    }
