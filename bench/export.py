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
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
PERIOD = "2026-09"
PERIOD_START = 1788188400  # 2026-09-01T00:00:00+09:00
HOURS_IN_PERIOD = 720
ALL_SECONDS = ((1 << 3600) - 1).to_bytes(450, "little")

CATALOG = """\
currency = "JPY"
timezone = "Asia/Tokyo"
tax_rate_percent = 10
acceptance_horizon_days = 1000

[[members]]
id = "alpha"
name = "Alpha"

[[members]]
id = "beta"
name = "Beta"

[[skus]]
id = "H100"

[[retail_prices]]
reseller = "alpha"
sku = "H100"
yen_per_gpu_hour = "512.25"
effective_from = "2026-01-01T00:00:00+09:00"

[[agreements]]
reseller = "alpha"
provider = "beta"
sku = "H100"
effective_from = "2026-01-01T00:00:00+09:00"
provider_share_bps = 7000
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def gpuledger(env: dict, *args: str, capture: bool = True) -> bytes:
    completed = subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args], env=env, cwd=ROOT,
        stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE,
    )
    if completed.returncode != 0:
        raise SystemExit(f"gpuledger {' '.join(args)} failed: {completed.stderr.decode()[-2000:]}")
    return completed.stdout


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
                log(f"  {written:,} GPU-hours written")
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
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {err.decode()[-2000:]}")
    return {"seconds": time.perf_counter() - started, "peak_rss_mib": peak_rss / 1024,
            "vm_hwm_mib": hwm / 1024, "stdout": out.decode()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-hours", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the stack and the bundle")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="gpuledger-bench-export-", dir="/tmp"))
    folder.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPULEDGER_")}
    env["GPULEDGER_HOME"] = str(folder / "home")
    try:
        log("starting a stack")
        gpuledger(env, "dev", "up", "--no-durable", "--workers", "1")
        owner_url = json.loads((folder / "home" / "stack.json").read_text())["database_url"]
        (folder / "catalog.toml").write_text(CATALOG)
        gpuledger(env, "catalog", "load", str(folder / "catalog.toml"))
        gpuledger(env, "keys", "init")
        log(f"writing {args.gpu_hours:,} GPU-hours of billed seconds")
        fill_seconds = asyncio.run(fill(owner_url, args.gpu_hours))
        log("closing the period")
        started = time.perf_counter()
        gpuledger(env, "settle", PERIOD, "--close")
        close_seconds = time.perf_counter() - started
        log("exporting")
        bundle = folder / "bundle"
        export = run_measured(
            [sys.executable, "-m", "ledger.cli", "export", PERIOD, "--out", str(bundle)], env
        )
        sizes = {p.name: p.stat().st_size for p in bundle.iterdir()}
        results = {
            "gpu_hours": args.gpu_hours,
            "fill_seconds": round(fill_seconds, 1),
            "close_seconds": round(close_seconds, 1),
            "export_seconds": round(export["seconds"], 1),
            "export_peak_rss_mib": round(export["peak_rss_mib"], 1),
            "export_vm_hwm_mib": round(export["vm_hwm_mib"], 1),
            "bundle_bytes": sum(sizes.values()),
            "evidence_bytes": sizes.get("evidence.ndjson"),
        }
        print(json.dumps(results, indent=2))
        out = ROOT / "bench-results"
        out.mkdir(exist_ok=True)
        (out / "export.json").write_text(json.dumps(results, indent=2) + "\n")
    finally:
        if not args.keep:
            gpuledger(env, "dev", "down")
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
