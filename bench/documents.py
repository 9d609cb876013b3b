"""Benchmark: `gpuledger documents` of a month with many tenants, on one machine's cores.

No stack: the public scenario alliance-2026-q4's catalog (three members, its grants and
GPU registry) and a synthetic October of N tenants spread over the members, each using
one to three (provider, SKU) pairs of its reseller, its own GPUs or through an agreement,
some hours of the month. The usage is rated into a closed statement, and the period's
documents (a tenant invoice per tenant, the member invoices, a report per member, the
capacity report) are written by `ledger.documents.output.write`, the code the command
runs once it has gathered the period. Prints the wall time, documents per second, the
CPU time (this process and the rendering ones: on a shared machine, wall time follows
the other work, CPU time much less), the peak memory (VmHWM) of this process and of the
largest rendering process, and the output's size.

    python -m bench.documents [--tenants 1200] [--processes N] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ledger.domain import credits, invoices, rating
from ledger.domain.capacity import BilledSeconds, capacity_report
from ledger.domain.catalog import Catalog
from ledger.domain.catalog_file import parse_catalog
from ledger.service.documents import PeriodDocuments

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "tests" / "scenarios" / "alliance-2026-q4" / "catalog.toml"
PERIOD = "2026-10"
CLOSED_AT = 1_793_500_000  # 2026-11-01 (JST)
HOURS_USED = (8, 120)  # the fewest and most hours a tenant uses one pair in the month


def catalog() -> Catalog:
    return Catalog().merge(parse_catalog(CATALOG.read_bytes()), None)


def pairs(found: Catalog) -> dict[str, list[tuple[str, str]]]:
    """Each reseller's (provider, SKU) pairs it can sell: its own priced SKUs and its agreements."""
    own = {(reseller, reseller, sku) for reseller, sku in found.prices}
    through = set(found.agreements)
    result: dict[str, list[tuple[str, str]]] = {}
    for reseller, provider, sku in sorted(own | through):
        result.setdefault(reseller, []).append((provider, sku))
    return result


def usages(found: Catalog, tenants: int, seed: int = 7) -> list[rating.HourUsage]:
    """Tenant i of member i mod 3 (named as the scenario's, so its grants draw), some hours each."""
    randomness = random.Random(seed)
    start, end = found.calendar.bounds(PERIOD)
    hours = range(start, end, 3600)
    members = sorted(found.members)
    sellable = pairs(found)
    result = []
    for index in range(tenants):
        reseller = members[index % len(members)]
        tenant = f"{reseller[:3]}-cust-{index // len(members):02d}"
        for provider, sku in randomness.sample(sellable[reseller], randomness.randint(1, 3)):
            for hour in randomness.sample(hours, randomness.randint(*HOURS_USED)):
                seconds = 3600 if randomness.random() < 0.8 else randomness.randint(1, 3599)
                result.append(rating.HourUsage(reseller, tenant, provider, sku, PERIOD, hour, seconds))
    return result


def period_documents(tenants: int) -> PeriodDocuments:
    found = catalog()
    used = usages(found, tenants)
    lines = rating.rate(found, used)
    balances = credits.opening_balances(found.grants)
    statement = rating.statement(PERIOD, found, lines, True, credits.draw(lines, found.grants, dict(balances)))
    billed: dict[tuple[str, str], int] = {}
    for usage in used:
        billed[(usage.provider, usage.sku)] = billed.get((usage.provider, usage.sku), 0) + usage.seconds
    regions = {(g.provider, g.sku): g.region for g in found.gpus.values()}
    capacity = capacity_report(PERIOD, found, [
        BilledSeconds(provider, sku, regions.get((provider, sku)), False, seconds)
        for (provider, sku), seconds in sorted(billed.items())
    ])
    documents = PeriodDocuments(
        PERIOD, statement, found, invoices.Issue(CLOSED_AT, CLOSED_AT), invoices.plan(statement), b"k" * 32,
    )
    documents.usages = used
    documents.balances = balances
    documents.capacity = capacity
    documents.capacity_usages = used
    return documents


def peak_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the rendering processes)."""
    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1200, help="tenants in the month (default 1,200)")
    parser.add_argument("--processes", type=int, default=None, help="rendering processes (default: one per CPU)")
    parser.add_argument("--out", type=Path, default=None, help="folder to write into (default: a temporary one, removed)")
    args = parser.parse_args()
    from ledger.documents import output  # WeasyPrint's import, outside what is timed

    started = time.perf_counter()
    documents = period_documents(args.tenants)
    built = time.perf_counter() - started
    out = args.out or Path(tempfile.mkdtemp(prefix="gpuledger-bench-documents-"))
    try:
        load, cpu, started = os.getloadavg()[0], cpu_seconds(), time.perf_counter()
        manifest = output.write(documents, out, **({} if args.processes is None else {"processes": args.processes}))
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    count = len(manifest["documents"])
    kinds = {kind: sum(e["kind"] == kind for e in manifest["documents"]) for kind in invoices.KINDS}
    print(f"{args.tenants:,} tenants, {len(documents.statement.lines):,} statement lines, "
          f"{len(documents.usages):,} hour usages (built in {built:.1f} s)")
    print(f"documents: {count:,} ({', '.join(f'{n:,} {k}' for k, n in kinds.items())}), {size / 2**20:,.1f} MiB")
    print(f"wall time: {seconds:,.1f} s, {count / seconds:,.1f} documents/s "
          f"(load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} CPUs)")
    print(f"CPU time: {cpu:,.1f} s, {cpu / count * 1000:,.0f} ms a document")
    print(f"peak memory (VmHWM): this process {peak_mib(resource.RUSAGE_SELF):,.0f} MiB, "
          f"largest rendering process {peak_mib(resource.RUSAGE_CHILDREN):,.0f} MiB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
