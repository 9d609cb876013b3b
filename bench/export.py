"""Benchmark: `gpuledger export` and the independent auditor's verify of a month of N GPUs.

Starts its own stack, writes the billed seconds of N GPUs for the whole of September
straight into the ledger (as the owner, with COPY: metering them through Kafka would take
the benchmark's whole time), closes the period, then runs `gpuledger export` and
`python -m auditor.verify` each as a separate process and reports its wall time and peak
memory (VmHWM, and sampled VmRSS), and the bundle's size, file by file. Figures for
10,000 GPUs are also printed as extrapolated from the measured ones (linear in
GPU-hours), marked as such.

Patterns (`--pattern`):
- `full`: every GPU billed every second of the month, one tenant per GPU (the issue's
  "fully used" month; the best case for runs: one run per GPU and day);
- `allocations`: each GPU let in allocations of 1-12 hours to one of 5,000 tenants, each
  allocation starting after an idle gap of 1-30 minutes (several runs per GPU and day).

    python -m bench.export [--gpus 1000] [--pattern full|allocations] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from bench.harness import CATALOG, RESULTS_DIR, ROOT, LocalStack, notice, run_benchmark

RESULTS_FILE = RESULTS_DIR / "export.json"
PERIOD = "2026-09"
PERIOD_START = 1788188400  # 2026-09-01T00:00:00+09:00
HOURS_IN_PERIOD = 720
TARGET_GPUS = 10_000
COLUMNS = ("gpu_uuid", "hour_start", "provider", "reseller", "tenant", "sku", "service_period",
           "booking_period", "seconds", "bits")


def _bits(first: int) -> tuple[int, bytes]:
    """Seconds first..3599 of an hour: (how many, the bitmap)."""
    return 3600 - first, (((1 << (3600 - first)) - 1) << first).to_bytes(450, "little")


def gpu_hours(gpu: int, pattern: str):
    """(hour, tenant, seconds, bits) of every billed hour of one GPU's month."""
    if pattern == "full":
        seconds, bits = _bits(0)
        for hour in range(HOURS_IN_PERIOD):
            yield hour, f"tenant-{gpu % 7}", seconds, bits
        return
    generator = random.Random(gpu)
    hour = 0
    while hour < HOURS_IN_PERIOD:
        tenant = f"tenant-{generator.randrange(5000):04d}"
        seconds, bits = _bits(generator.randrange(1, 31) * 60)  # the idle gap before the allocation
        for n in range(min(generator.randrange(1, 13), HOURS_IN_PERIOD - hour)):
            yield (hour + n, tenant, *((seconds, bits) if n == 0 else _bits(0)))
        hour += n + 1


async def fill(owner_url: str, gpus: int, pattern: str) -> tuple[float, int]:
    """COPY the month of `gpus` GPUs into claims; return (seconds it took, GPU-hours written)."""
    started = time.perf_counter()
    conn = await asyncpg.connect(owner_url)
    written = 0
    try:
        batch = []
        for gpu in range(gpus):
            provider = "beta" if gpu % 2 else "alpha"
            for hour, tenant, seconds, bits in gpu_hours(gpu, pattern):
                batch.append((f"GPU-bench-{gpu:06d}", PERIOD_START + hour * 3600, provider, "alpha", tenant,
                              "H100", PERIOD, PERIOD, seconds, bits))
            if len(batch) >= 50_000 or gpu == gpus - 1:
                await conn.copy_records_to_table("claims", records=batch, columns=COLUMNS)
                written += len(batch)
                batch.clear()
                notice(f"  {written:,} GPU-hours written")
        await conn.execute("ANALYZE claims")
    finally:
        await conn.close()
    return time.perf_counter() - started, written


def run_measured(argv: list[str], env: dict | None = None) -> dict:
    """Run a command, sampling its RSS; return wall time and peak memory in MiB."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak_rss = 0
    hwm = 0
    while process.poll() is None:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    peak_rss = max(peak_rss, int(line.split()[1]))
                elif line.startswith("VmHWM:"):
                    hwm = max(hwm, int(line.split()[1]))
        except FileNotFoundError:
            break
        time.sleep(0.05)
    _, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {err.decode()[-2000:]}")
    return {"seconds": time.perf_counter() - started, "peak_rss_mib": peak_rss / 1024,
            "vm_hwm_mib": hwm / 1024}


def run(args: argparse.Namespace, folder: Path, stack: LocalStack) -> dict:
    notice("starting a stack")
    stack.up(1)
    (folder / "catalog.toml").write_text(CATALOG)
    stack.run("catalog", "load", str(folder / "catalog.toml"))
    stack.run("keys", "init")
    (folder / "ledger.pub").write_bytes(stack.run("keys", "public").stdout)
    notice(f"writing a month of {args.gpus:,} GPUs ({args.pattern})")
    fill_seconds, written = asyncio.run(fill(stack.database_url, args.gpus, args.pattern))
    notice("closing the period")
    started = time.perf_counter()
    stack.run("settle", PERIOD, "--close", timeout=3600)
    close_seconds = time.perf_counter() - started
    notice("exporting")
    bundle = folder / "bundle"
    export = run_measured(stack.argv("export", PERIOD, "--out", str(bundle)), stack.env)
    notice("verifying with the independent auditor")
    verify = run_measured([sys.executable, "-m", "auditor.verify", str(bundle), "--public-key",
                           str(folder / "ledger.pub")])
    sizes = {p.name: p.stat().st_size for p in sorted(bundle.iterdir())}
    return figures(args, written, fill_seconds, close_seconds, export, verify, sizes)


def figures(args, written: int, fill_seconds: float, close_seconds: float, export: dict, verify: dict,
            sizes: dict) -> dict:
    measured = {
        "gpus": args.gpus, "pattern": args.pattern, "gpu_hours": written,
        "fill_seconds": round(fill_seconds, 1), "close_seconds": round(close_seconds, 1),
        "export_seconds": round(export["seconds"], 1), "export_vm_hwm_mib": round(export["vm_hwm_mib"], 1),
        "verify_seconds": round(verify["seconds"], 1), "verify_vm_hwm_mib": round(verify["vm_hwm_mib"], 1),
        "bundle_bytes": sum(sizes.values()), "files": sizes,
    }
    scale = TARGET_GPUS / args.gpus
    # Time and the evidence scale with GPU-hours; memory does not (both stream), so it is
    # not extrapolated. The statement, journal and their digests grow with lines (tenants x
    # providers), which 5,000 tenants mostly reach at 1,000 GPUs: every file scaled is an
    # upper bound, the evidence and the line digests scaled and the rest as measured a
    # nearer figure.
    growing = sizes.get("evidence.ndjson", 0) + sizes.get("line-digests.tsv", 0)
    extrapolated = {
        "gpus": TARGET_GPUS,
        "export_seconds": round(export["seconds"] * scale),
        "verify_seconds": round(verify["seconds"] * scale),
        "bundle_bytes_upper_bound": round(sum(sizes.values()) * scale),
        "bundle_bytes_evidence_scaled": round(sum(sizes.values()) + growing * (scale - 1)),
    }
    return {"measured": measured, "extrapolated_linearly": extrapolated}


def table(results: dict) -> str:
    m, x = results["measured"], results["extrapolated_linearly"]
    rows = [
        f"month of {m['gpus']:,} GPUs ({m['pattern']}): {m['gpu_hours']:,} GPU-hours; "
        f"fill {m['fill_seconds']} s, close {m['close_seconds']} s",
        f"measured      export {m['export_seconds']:>8} s  peak {m['export_vm_hwm_mib']:>7} MiB | "
        f"verify {m['verify_seconds']:>8} s  peak {m['verify_vm_hwm_mib']:>7} MiB | "
        f"bundle {m['bundle_bytes'] / 1e6:,.1f} MB",
        *(f"    {name:<20} {size / 1e6:>10,.3f} MB" for name, size in m["files"].items()),
        f"extrapolated to {x['gpus']:,} GPUs (linear in GPU-hours): export ~{x['export_seconds']} s, "
        f"verify ~{x['verify_seconds']} s, bundle ~{x['bundle_bytes_evidence_scaled'] / 1e6:,.0f} MB "
        f"(every file scaled: at most {x['bundle_bytes_upper_bound'] / 1e6:,.0f} MB)",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=1_000)
    parser.add_argument("--pattern", choices=("full", "allocations"), default="full")
    parser.add_argument("--keep", action="store_true", help="keep the stack and the bundle")
    return run_benchmark(parser.parse_args(argv), run, RESULTS_FILE, table)


if __name__ == "__main__":
    sys.exit(main())
