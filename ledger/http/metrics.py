"""Prometheus metrics of the usage API, served with the workers' on the API's /metrics.

`instrument(app)` wraps the app in a plain ASGI middleware (no response buffering, no
`BaseHTTPMiddleware`) that records, per request:

- `gpuledger_http_requests_total{route,method,status}`
- `gpuledger_http_request_seconds{route,method}` (a histogram)

`route` is the path template of the route that answers (`/v1/statements/{period}`),
never the raw path, so a client cannot grow the series by inventing paths; a path no
route knows is `unmatched`. `method` is one of the usual HTTP methods, else `other`.

`gpuledger_books_closed_through_end_timestamp_seconds`, `gpuledger_store_up` and
`gpuledger_payments_overdue_yen{member}` are read from the ledger when /metrics is
scraped (the monthly close's progress, the database, what members owe past due).

`gpuledger_api_events_accepted_total` counts the events the events route handed to
Kafka: the middleware reads `accepted` from that route's 202 body (a few bytes), so the
route itself needs no change. `count_accepted_events(n)` is there for any other caller.
"""

from __future__ import annotations

import time

import orjson
from prometheus_client import Counter, Gauge, Histogram

UNMATCHED = "unmatched"
EVENTS_ROUTE = ("POST", "/v1/events")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_MAX_COUNTED_BODY = 64 * 1024  # the events route's 202 body is well under this

HTTP_REQUESTS = Counter(
    "gpuledger_http_requests_total",
    "HTTP requests answered by the usage API, by route template, method and status",
    ["route", "method", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "gpuledger_http_request_seconds",
    "Time from receiving a request to the end of its response, by route template and method",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_ACCEPTED = Counter(
    "gpuledger_api_events_accepted_total",
    "Events accepted by POST /v1/events and sent to Kafka (not yet decided by a worker)",
)

BOOKS_CLOSED_THROUGH_END = Gauge(
    "gpuledger_books_closed_through_end_timestamp_seconds",
    "End of the last closed period (Unix seconds), read when /metrics is scraped; NaN until a first close",
)
BOOKS_CLOSED_THROUGH_END.set(float("nan"))  # compares false: no alert before a first close
STORE_UP = Gauge(
    "gpuledger_store_up",
    "1 if the API read the ledger's database when /metrics was last scraped, else 0",
)


PAYMENTS_OVERDUE = Gauge(
    "gpuledger_payments_overdue_yen",
    "Yen a member owes on transfers of closed periods past their due date and not confirmed paid "
    "(SPEC.md Payments), by member (as payer), read when /metrics is scraped",
    ["member"],
)


def count_accepted_events(count: int) -> None:
    """Count events that the API has handed to Kafka."""
    if count > 0:
        EVENTS_ACCEPTED.inc(count)


def route_template(scope) -> str:
    """The path template of the route that answered `scope`, else `unmatched`.

    Read after routing: the router leaves the route it chose in the scope, also for a
    route that matches the path but not the method (405).
    """
    return getattr(scope.get("route"), "path", None) or UNMATCHED


class _MetricsMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope.get("method", "")
        method = method if method in _METHODS else "other"
        status = 500  # what the client gets if the app raises before it starts a response
        body: list[bytes] = []

        async def send_wrapper(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status == 202:
                if (method, route_template(scope)) == EVENTS_ROUTE and sum(map(len, body)) < _MAX_COUNTED_BODY:
                    body.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = route_template(scope)
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_REQUEST_SECONDS.labels(route, method).observe(time.perf_counter() - started)
            if body:
                _count_from_body(b"".join(body))


def _count_from_body(body: bytes) -> None:
    try:
        accepted = orjson.loads(body).get("accepted")
    except (orjson.JSONDecodeError, AttributeError):
        return
    if isinstance(accepted, int) and not isinstance(accepted, bool):
        count_accepted_events(accepted)


def instrument(app) -> None:
    """Record the HTTP metrics of every request `app` answers (call once, in create_app)."""
    app.add_middleware(_MetricsMiddleware)
