"""Phase d of `python -m bench.api`: the usage API under one member's volume.

A hostile (or merely huge) member: 100,000 one-second events of 100,000 invented
tenants on alpha's own GPU in one month (--flood-tenants), each a zero-yen tenant
invoice, so free for alpha, and the largest part of that month's statement. They go
through the real pipeline (`gpuledger ingest --wait`), beside the history of phase b
(beta's usage in the same month). Then, for --fairness-seconds:

- alpha's own statement of the month (100,000 lines, 37 MB) asked back to back by
  --heavy-clients clients, from another process (so reading those answers does not
  slow this one's clock);
- beta's statement of the month asked 8 times a second (within a token's rate);
- /healthz asked every 10 ms;

and the latencies of the last two are the figures (targets on the 2-core machine: beta's
statement p99 < 200 ms, /healthz p99 < 50 ms). Before the load, beta's first statement
of the month after the flood is timed on its own: it waits for the one computation of
the whole month's statement (every later one, until the ledger changes, is served from
it), which is what every statement costs right after the ledger changes.

Figures only: nothing here fails on timing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import multiprocessing
import time
from pathlib import Path

import httpx
import orjson

from bench.api_load import summary_ms, utc
from bench.harness import LocalStack, notice
from bench.sampling import children_of, process_cpu_seconds

OTHER_STATEMENTS_PER_SECOND = 8  # beta's pace: within the default 10 a second of a token
HEALTHZ_INTERVAL = 0.01
JST = dt.timezone(dt.timedelta(hours=9))


def write_flood(path: Path, run_tag: str, period: str, tenants: int) -> dict:
    """`tenants` one-second events of alpha's GPU for alpha's invented tenants, one
    second after another from the period's second hour (JST)."""
    year, month = (int(part) for part in period.split("-"))
    start = int(dt.datetime(year, month, 1, 1, tzinfo=JST).timestamp())
    with open(path, "wb") as out:
        for index in range(tenants):
            out.write(orjson.dumps({
                "specversion": "1.0", "id": f"{run_tag}-flood-{index:06d}", "source": "//alpha/flood",
                "type": "gpu.usage.v1", "time": utc(start + index), "datacontenttype": "application/json",
                "data": {"provider": "alpha", "reseller": "alpha", "tenant": f"invented-{run_tag}-{index:06d}",
                         "gpu_uuid": f"GPU-{run_tag}-flood-0001", "sku": "H100", "seconds": 1},
            }) + b"\n")
    return {"events": tenants, "first": utc(start), "last": utc(start + tenants - 1)}


def heavy_client(url: str, token: str, path: str, clients: int, seconds: float, results) -> None:
    """In its own process: `clients` clients asking `path` back to back for `seconds`."""

    async def load() -> dict:
        latencies, statuses = [], {}

        async def one(deadline: float) -> None:
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
                while time.perf_counter() < deadline:
                    sent = time.perf_counter()
                    response = await client.get(path)
                    statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
                    if response.status_code == 200:
                        latencies.append(time.perf_counter() - sent)
                    elif response.status_code == 429:  # its rate is used up: wait as told
                        await asyncio.sleep(float(response.headers.get("retry-after", "1")))

        started = time.perf_counter()
        await asyncio.gather(*(one(started + seconds) for _ in range(clients)))
        return {"clients": clients, "statuses": statuses, "latency": summary_ms(latencies)}

    results.put(asyncio.run(load()))


async def timed_get(client: httpx.AsyncClient, path: str) -> tuple[float, int]:
    sent = time.perf_counter()
    response = await client.get(path)
    return time.perf_counter() - sent, response.status_code


async def measure(url: str, token: str, period: str, seconds: float) -> dict:
    """Beta's statement at its pace and /healthz every 10 ms, for `seconds`."""
    statement, health, statuses = [], [], {}
    deadline = time.perf_counter() + seconds

    async def statements(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            took, status = await timed_get(client, f"/v1/statements/{period}")
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status == 200:
                statement.append(took)
            await asyncio.sleep(max(0.0, 1 / OTHER_STATEMENTS_PER_SECOND - took))

    async def healthz(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            took, status = await timed_get(client, "/healthz")
            if status == 200:
                health.append(took)
            await asyncio.sleep(HEALTHZ_INTERVAL)

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as one, \
            httpx.AsyncClient(base_url=url, timeout=120) as two:
        await asyncio.gather(statements(one), healthz(two))
    return {"other_statement": {**summary_ms(statement), "statuses": statuses}, "healthz": summary_ms(health)}


def api_family_cpu(api_pid: int) -> float:
    """CPU seconds of the API process and its worker processes (statements, documents)."""
    return sum(process_cpu_seconds(pid) or 0.0 for pid in [api_pid, *children_of(api_pid)])


def flood_phase(args, folder: Path, stack: LocalStack, url: str, alpha_token: str, period: str,
                api_pid: int, run_tag: str) -> dict:
    beta_token = json.loads(stack.run("token", "create", "--member", "beta", "--label", "bench.api").stdout)["token"]
    path = folder / "flood.ndjson"
    flood = write_flood(path, run_tag, period, args.flood_tenants)
    notice(f"phase d: {flood['events']:,} one-second events of as many invented tenants on alpha's own GPU in {period}")
    started = time.perf_counter()
    flood["ingest_counts"] = json.loads(stack.run("ingest", str(path), "--wait", timeout=3600).stdout)
    flood["ingest_seconds"] = round(time.perf_counter() - started, 1)
    notice(f"phase d: ingested in {flood['ingest_seconds']} s: {flood['ingest_counts']}")
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {beta_token}"}, timeout=300) as client:
        sent = time.perf_counter()
        first = client.get(f"/v1/statements/{period}")
        cold = {"ms": round((time.perf_counter() - sent) * 1000, 1), "status": first.status_code,
                "bytes": len(first.content)}
        lines = len(client.get(f"/v1/statements/{period}", headers={"Authorization": f"Bearer {alpha_token}"}).json()["lines"])
    notice(f"phase d: beta's first statement of {period} after the flood: {cold['ms']} ms (the month computed once); "
           f"alpha's has {lines:,} lines")
    results = multiprocessing.get_context("spawn").Queue()
    heavy = multiprocessing.get_context("spawn").Process(
        target=heavy_client, args=(url, alpha_token, f"/v1/statements/{period}", args.heavy_clients,
                                   args.fairness_seconds, results))
    cpu_before = api_family_cpu(api_pid)
    heavy.start()
    time.sleep(1.0)  # the heavy clients under way before the clock starts
    measured = asyncio.run(measure(url, beta_token, period, args.fairness_seconds - 1.0))
    heavy_figures = results.get(timeout=args.fairness_seconds + 300)
    heavy.join(timeout=30)
    cpu = round(api_family_cpu(api_pid) - cpu_before, 2)
    notice(f"phase d: beta's statement p99 {measured['other_statement']['p99_ms']} ms, "
           f"/healthz p99 {measured['healthz']['p99_ms']} ms, alpha's statement p50 {heavy_figures['latency']['p50_ms']} ms")
    return {"period": period, "flood": flood, "heavy_member_lines": lines, "other_first_statement": cold,
            "seconds": args.fairness_seconds, "heavy": heavy_figures, **measured, "api_cpu_seconds": cpu}


def table_rows(d: dict) -> list[tuple[str, ...]]:
    other, health, heavy = d["other_statement"], d["healthz"], d["heavy"]
    return [
        (f"d. {d['flood']['events']:,} invented tenants of alpha in {d['period']}: beta's first statement after",
         f"{d['other_first_statement']['ms']} ms", "", "", "the month computed once"),
        (f"   beta's statement, {OTHER_STATEMENTS_PER_SECOND}/s, while {heavy['clients']} clients ask alpha's "
         f"({d['heavy_member_lines']:,} lines)", f"p50 {other['p50_ms']} ms", f"p99 {other['p99_ms']} ms",
         f"max {other['max_ms']} ms", f"{other['count']} answers, statuses {other['statuses']}"),
        ("   /healthz every 10 ms, meanwhile", f"p50 {health['p50_ms']} ms", f"p99 {health['p99_ms']} ms",
         f"max {health['max_ms']} ms", f"{health['count']} answers"),
        ("   alpha's own statement, back to back", f"p50 {heavy['latency']['p50_ms']} ms",
         f"p99 {heavy['latency']['p99_ms']} ms", f"max {heavy['latency']['max_ms']} ms", f"statuses {heavy['statuses']}"),
    ]
