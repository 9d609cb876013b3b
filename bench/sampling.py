"""What the stack's processes use while a benchmark runs, read from /proc.

Owns: CPU seconds of a process (PostgreSQL with its backends) and of the whole machine,
VmRSS/VmHWM of a process, the `Watched` components of a stack, a thread that samples
their VmRSS per phase (`MemorySampler`), CPU snapshots and their differences per phase
(`CpuMeter`), and the rebalances a worker logged during a phase.
"""

from __future__ import annotations

import ast
import os
import resource
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from schemas.wire import USAGE_TOPIC, member_topic

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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


# --------------------------------------------------------------------------- the watched


@dataclass
class Watched:
    name: str
    role: str
    pid: int
    log: str | None = None


def topics_read(workers: list[Watched]) -> set[str]:
    """The topics of the workers' latest partition assignments (from their logs)."""
    topics: set[str] = set()
    for worker in workers:
        try:
            with open(worker.log, "rb") as log:
                lines = [line for line in log if b"partitions assigned: " in line]
        except (OSError, TypeError):
            continue
        if lines:
            listed = lines[-1].split(b"partitions assigned: ", 1)[1].strip().decode()
            topics.update(topic for topic, _ in ast.literal_eval(listed))
    return topics


def member_topics(catalog_toml: str) -> set[str]:
    """The usage topics of a catalog's members on a stack with the default usage topic."""
    return {member_topic(USAGE_TOPIC, member["id"]) for member in tomllib.loads(catalog_toml)["members"]}


def wait_until_read(workers: list[Watched], topics: set[str], timeout: float = 60.0) -> float:
    """Wait until the workers read `topics` (a catalog load made them; the workers find
    them at their next topic watch and rebalance once): a measurement that starts before
    would time that rebalance. Returns the seconds waited."""
    started = time.monotonic()
    while not topics <= topics_read(workers):
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the workers did not read {sorted(topics - topics_read(workers))} within {timeout:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - started


def watched_components(components: dict[str, dict]) -> list[Watched]:
    """The running components of `LocalStack.components()`, in its order."""
    return [
        Watched(c["name"], c["role"], c["pid"], c.get("log")) for c in components.values() if c["running"]
    ]


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


def rebalances(before: dict[str, int], workers: list[Watched]) -> dict[str, int]:
    """Partition assignments each worker logged since `before` (`partition_assignments`)."""
    after = partition_assignments(workers)
    return {name: after[name] - before.get(name, 0) for name in after}


# --------------------------------------------------------------------------- samplers


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
