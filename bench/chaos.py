"""`make chaos`: the public scenarios under injected faults, compared with their expected outputs.

    python -m bench.chaos [--times N] [--scenario NAME ...] [--fault NAME ...] [--short] [--results FILE]

For each scenario and fault, a fresh local stack (two workers, the supervisor, the API)
runs the scenario's steps while the fault is injected N times during its ingests; then
every output is compared with expected.json. The table prints, per fault: times
injected, and the difference against the expected outputs in events (received, by
ingest), GPU-seconds and yen (lines, invoices and nets of every statement), and the
longest time the stack took to be whole again (every component running). Every
difference must be 0; the exit code is 1 if one is not. Events are compared count by
count (received, accepted, duplicate, each rejection reason); over HTTP, where the
scenario has no expected counts, as events sent that the ledger did not count received.
The table also goes to bench-results/chaos.md (--results). The duplicate flood re-sends the first batch from a second
producer while the second batch is ingested (events of an ingest that is decided
already: all duplicates or rejections, so the statements must not move).
--short runs one scenario with each fault once (what `make test` runs).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from pathlib import Path

from bench.chaos_steps import ScenarioRun, difference
from bench.faults import FAULTS
from bench.harness import RESULTS_DIR, LocalStack, notice
from tests.scenario import SCENARIOS, expected

DUPLICATE_FLOOD = "duplicate flood from a second producer"
ALL_FAULTS = (*FAULTS, DUPLICATE_FLOOD)
INJECT_AFTER_SECONDS = 1.0
RESULTS_FILE = RESULTS_DIR / "chaos.md"


def injector(stack: LocalStack, fault: str, times: int, recoveries: list[float]) -> threading.Thread:
    """A thread that injects `fault` `times` times, a few seconds apart, timing each recovery."""

    def run() -> None:
        for _ in range(times):
            time.sleep(INJECT_AFTER_SECONDS)
            recoveries.append(FAULTS[fault](stack))

    return threading.Thread(target=run, name=f"fault {fault}", daemon=True)


def run_one(scenario: str, fault: str, times: int) -> dict:
    directory = SCENARIOS / scenario
    stack = LocalStack.in_fresh_folder("gpuledger-chaos-")
    recoveries: list[float] = []
    try:
        stack.up(workers=2)
        run = ScenarioRun(stack, directory)
        if fault == DUPLICATE_FLOOD:
            got = run.steps(flood=True)
        else:
            thread = injector(stack, fault, times, recoveries)
            got = run.steps(during_ingest=thread, over_http=fault.startswith("API"))
        diff = difference(got, expected(directory))
    finally:
        if stack.down().returncode == 0:
            shutil.rmtree(stack.folder, ignore_errors=True)  # kept to look into otherwise
    return {"scenario": scenario, "fault": fault, "times": times if fault != DUPLICATE_FLOOD else 1,
            **diff, "recovered_seconds": round(max(recoveries, default=0.0), 1)}


def table(rows: list[dict]) -> str:
    header = ("scenario", "fault", "times injected", "events diff", "GPU-seconds diff", "yen diff", "recovered in (s)")
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for row in rows:
        lines.append(" | ".join(str(v) for v in (
            row["scenario"], row["fault"], row["times"], row["events"], row["gpu_seconds"], row["yen"],
            row["recovered_seconds"])))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--times", type=int, default=2, help="injections per fault and scenario (default 2)")
    parser.add_argument("--scenario", action="append", help="alliance-2026-q3, alliance-2026-q4 (default both)")
    parser.add_argument("--fault", action="append", choices=ALL_FAULTS, help="default: every fault")
    parser.add_argument("--short", action="store_true", help="one scenario, each fault once")
    parser.add_argument("--results", type=Path, default=RESULTS_FILE, help="where to write the table (default bench-results/chaos.md)")
    args = parser.parse_args(argv)
    scenarios = args.scenario or (["alliance-2026-q3"] if args.short else ["alliance-2026-q3", "alliance-2026-q4"])
    faults = args.fault or list(ALL_FAULTS)
    times = 1 if args.short else args.times
    rows = []
    for scenario in scenarios:
        for fault in faults:
            notice(f"{scenario}: {fault}, {times} time(s)")
            rows.append(run_one(scenario, fault, times))
            notice(f"  -> {rows[-1]}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(table(rows) + "\n")
    print(table(rows))
    return 0 if all(r["events"] == r["gpu_seconds"] == r["yen"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
