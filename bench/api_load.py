"""Load for the API benchmark: history written as events, and clients that time requests."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

LOAD_DAYS = 20


def utc(instant: float) -> str:
    return dt.datetime.fromtimestamp(int(instant), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (p50 of 200 values is the 100th smallest)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.4999)))
    return ordered[rank - 1]


def summary_ms(seconds: list[float]) -> dict:
    def ms(value):
        return None if value is None else round(value * 1000, 1)

    return {
        "count": len(seconds),
        "p50_ms": ms(percentile(seconds, 0.50)),
        "p99_ms": ms(percentile(seconds, 0.99)),
        "max_ms": ms(max(seconds) if seconds else None),
        "mean_ms": ms(sum(seconds) / len(seconds) if seconds else None),
    }


# --------------------------------------------------------------------------- a. latency


def write_load_events(path: Path, run_tag: str, gpu_seconds: int, gpus: int = 500, event_seconds: int = 300) -> dict:
    """`gpu_seconds` of history as `event_seconds`-second events of `gpus` GPUs, spread
    over the last LOAD_DAYS days.

    GPU g's k-th event starts at T0 + k * step (step = the span / events per GPU, at
    least one event's length), T0 = now - LOAD_DAYS days; the last ends well before now.
    Attributions rotate over alpha and beta as provider and reseller (self-resold and
    cross-resold), tenants over 40 ids.
    """
    events = -(-gpu_seconds // event_seconds)
    per_gpu = -(-events // gpus)
    span = LOAD_DAYS * 86400 - 3600
    step = max(event_seconds, span // per_gpu)
    t0 = int(time.time()) - LOAD_DAYS * 86400
    attributions = [("alpha", "alpha"), ("alpha", "beta"), ("beta", "alpha"), ("beta", "beta")]
    written = 0
    with open(path, "wb") as out:
        for k in range(per_gpu):
            lines = []
            for g in range(gpus):
                if written == events:
                    break
                provider, reseller = attributions[g % 4]
                lines.append(orjson.dumps({
                    "specversion": "1.0",
                    "id": f"{run_tag}-load-{g:05d}-{k:06d}",
                    "source": f"//{provider}/bench-api",
                    "type": "gpu.usage.v1",
                    "time": utc(t0 + k * step + (g % 60)),
                    "datacontenttype": "application/json",
                    "data": {
                        "provider": provider,
                        "reseller": reseller,
                        "tenant": f"tenant-{g % 40:02d}",
                        "gpu_uuid": f"GPU-{run_tag}-load{g:05d}-4c1e-9a7b-3d2f6e8a0b1c",
                        "sku": "H100",
                        "seconds": event_seconds,
                    },
                }))
                written += 1
            out.write(b"\n".join(lines) + b"\n")
    return {"events": written, "gpus": gpus, "first": utc(t0), "last": utc(t0 + (per_gpu - 1) * step + event_seconds - 1),
            "step_seconds": step, "event_seconds": event_seconds, "gpu_seconds": written * event_seconds}


async def sequential_latency(url: str, token: str, params: dict, requests: int) -> dict:
    seconds = []
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        first = await client.get("/v1/usage", params=params)
        first.raise_for_status()
        page = first.json()
        for _ in range(requests):
            sent = time.perf_counter()
            response = await client.get("/v1/usage", params=params)
            seconds.append(time.perf_counter() - sent)
            response.raise_for_status()
    return {
        **summary_ms(seconds),
        "response_items": len(page["items"]),
        "response_bytes": len(first.content),
        "gpu_seconds_in_response": sum(item["gpu_seconds"] for item in page["items"]),
    }


async def load_phase(url: str, token: str | list[str], params, concurrency: int, duration: float) -> dict:
    """`params`: the query of every request, or a function giving each request's;
    `token`: every client's, or one per client (each token has its own rate of
    uncached queries, README "The usage API")."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    transport_errors: dict[str, int] = {}

    async def worker(deadline: float, index: int) -> None:
        headers = {"Authorization": f"Bearer {token if isinstance(token, str) else token[index % len(token)]}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    response = await client.get("/v1/usage", params=params() if callable(params) else params)
                except httpx.HTTPError as error:
                    name = type(error).__name__
                    transport_errors[name] = transport_errors.get(name, 0) + 1
                    continue
                elapsed = time.perf_counter() - sent
                statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
                if response.status_code == 200:
                    latencies.append(elapsed)

    started = time.perf_counter()
    await asyncio.gather(*(worker(started + duration, index) for index in range(concurrency)))
    wall = time.perf_counter() - started  # includes finishing the requests in flight at the deadline
    errors = sum(count for status, count in statuses.items() if status != "200") + sum(transport_errors.values())
    return {
        "what": f"{concurrency} concurrent httpx.AsyncClient workers, back to back, {duration:g} s",
        "concurrency": concurrency,
        "seconds": round(wall, 2),
        "requests_ok": len(latencies),
        "requests_per_second": round(len(latencies) / wall, 1),
        "latency": summary_ms(latencies),
        "errors": errors,
        "statuses": statuses,
        "transport_errors": transport_errors,
    }


def distinct_queries(params: dict) -> Callable[[], dict]:
    """The same query with a different `end` each time (one second apart, all after the
    history): no answer can come from the API's cache of recent answers."""
    counter = itertools.count()
    base = time.time() + 7200

    def next_params() -> dict:
        return {**params, "end": utc(base + next(counter))}

    return next_params


async def statement_latency(url: str, token: str, period: str, requests: int) -> dict:
    """GET /v1/statements/{period} of an open period, one request at a time."""
    seconds = []
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
        for _ in range(requests):
            sent = time.perf_counter()
            response = await client.get(f"/v1/statements/{period}")
            seconds.append(time.perf_counter() - sent)
            response.raise_for_status()
        statement = response.json()
    gpu_seconds = sum(line["gpu_seconds"] for line in statement["lines"])
    return {**summary_ms(seconds), "period": period, "closed": statement.get("closed"), "gpu_seconds": gpu_seconds}


# --------------------------------------------------------------------------- table


