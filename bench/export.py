"""Benchmark: `gpuledger export` of a period with a million GPU-hours of evidence.

Starts its own stack, writes the billed seconds of N GPU-hours straight into the ledger
(as the owner, with COPY: metering them through Kafka would take the benchmark's whole
time), closes the period, then runs `gpuledger export` as a separate process and reports
its wall time and peak memory (VmHWM, sampled VmRSS), and the bundle's size. The
point: memory stays flat (the evidence is streamed), whatever the number of GPU-hours.

    python -m bench.export [--gpu-hours 1000000] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
ALL_SECONDS = ((1 << 3600) - 1).to_bytes(450, "little")

async def fill(owner_url: str, gpu_hours: int) -> float:
    """COPY gpu_hours rows of fully billed hours into claims; return the seconds it took."""
    started = time.perf_counter()
    conn = await asyncpg.connect(owner_url)
    try:
        gpus = -(-gpu_hours // HOURS_IN_PERIOD)
        batch = []
        written = 0
        for gpu in range(gpus):
            provider = "beta" if gpu % 2 else "alpha"
            for hour in range(HOURS_IN_PERIOD):
                if written == gpu_hours:
                    break
                batch.append((
                    f"GPU-bench-{gpu:06d}", PERIOD_START + hour * 3600, provider, "alpha",
                    f"tenant-{gpu % 7}", "H100", PERIOD, PERIOD, 3600, ALL_SECONDS,
                ))
                written += 1
            if len(batch) >= 50_000 or written == gpu_hours:
                await conn.copy_records_to_table(
                    "claims", records=batch,
                    columns=("gpu_uuid", "hour_start", "provider", "reseller", "tenant", "sku",
                             "service_period", "booking_period", "seconds", "bits"),
                )
                batch.clear()
                notice(f"  {written:,} GPU-hours written")
        await conn.execute("ANALYZE claims")
    finally:
        await conn.close()
    return time.perf_counter() - started


def run_measured(argv: list[str], env: dict) -> dict:
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
    notice(f"writing {args.gpu_hours:,} GPU-hours of billed seconds")
    fill_seconds = asyncio.run(fill(stack.database_url, args.gpu_hours))
    notice("closing the period")
    started = time.perf_counter()
    stack.run("settle", PERIOD, "--close", timeout=1800)
    close_seconds = time.perf_counter() - started
    notice("exporting")
    bundle = folder / "bundle"
    export = run_measured(stack.argv("export", PERIOD, "--out", str(bundle)), stack.env)
    sizes = {p.name: p.stat().st_size for p in bundle.iterdir()}
    return {
        "gpu_hours": args.gpu_hours,
        "fill_seconds": round(fill_seconds, 1),
        "close_seconds": round(close_seconds, 1),
        "export_seconds": round(export["seconds"], 1),
        "export_peak_rss_mib": round(export["peak_rss_mib"], 1),
        "export_vm_hwm_mib": round(export["vm_hwm_mib"], 1),
        "bundle_bytes": sum(sizes.values()),
        "evidence_bytes": sizes.get("evidence.ndjson"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-hours", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the stack and the bundle")
    return run_benchmark(
        parser.parse_args(argv), run, RESULTS_FILE, lambda results: json.dumps(results, indent=2)
    )


if __name__ == "__main__":
    sys.exit(main())
