"""How the month benchmark measures: a command's wall time and memory, the stack's, sizes.

Owns: `run_measured` (a `gpuledger` command as a separate process, its output to a file,
sampled every 0.1 s: its own VmHWM and the peak VmRSS of it and every process it
started, summed), `StackMemory` (a thread sampling the VmRSS of each running
component of the stack and its child processes, per step), and the sizes on disk:
folders, the database and its largest tables.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from bench.harness import ROOT, StackCommandError
from bench.sampling import MemorySampler, Watched, _stat_fields, memory_kib

MIB = 1024 * 1024


def children_by_parent() -> dict[int, list[int]]:
    """Every process's children, from one pass over /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def tree_rss_kib(pid: int, children: dict[int, list[int]] | None = None) -> int:
    """VmRSS of `pid` and every process below it (`children`: one `children_by_parent()`)."""
    children = children_by_parent() if children is None else children
    total, queue = 0, [pid]
    while queue:
        current = queue.pop()
        total += memory_kib(current).get("VmRSS", 0)
        queue.extend(children.get(current, ()))
    return total


def run_measured(argv: list[str], env: dict, output: Path, timeout: float) -> dict:
    """Run `argv` with stdout into `output`; its time, own VmHWM and peak tree VmRSS (MiB).

    The tree is sampled every 0.1 s, after 10 s every 0.5 s (a process living less long
    may be missed: a pool's workers are long-lived); VmHWM
    is the kernel's own peak of the command's process, read just before it exits.
    """
    started = time.perf_counter()
    with open(output, "wb") as out:
        process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.PIPE)
        peak_tree = hwm = 0
        stderr_reader = threading.Thread(target=lambda: setattr(process, "err_bytes", process.stderr.read()))
        stderr_reader.start()
        while process.poll() is None:
            hwm = max(hwm, memory_kib(process.pid).get("VmHWM", 0))
            peak_tree = max(peak_tree, tree_rss_kib(process.pid))
            if time.perf_counter() - started > timeout:
                process.kill()
            time.sleep(0.1 if time.perf_counter() - started < 10 else 0.5)
        stderr_reader.join()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        err = getattr(process, "err_bytes", b"").decode(errors="replace")
        raise StackCommandError(f"{' '.join(argv[3:])} exited {process.returncode}:\n{err[-3000:]}")
    return {"seconds": round(seconds, 2), "vm_hwm_mib": round(hwm / 1024, 1),
            "peak_tree_rss_mib": round(peak_tree / 1024, 1), "output_bytes": output.stat().st_size}


class StackMemory(MemorySampler):
    """Peak VmRSS (KiB) of each component of the stack with its child processes, per
    phase (a step of the month).

    PostgreSQL is left out: its backends share their buffers, so a sum of RSS would
    count them many times; the database's size on disk is reported instead.
    """

    def __init__(self, watched: Iterable[Watched], interval: float = 1.0) -> None:
        super().__init__([w for w in watched if w.role != "postgres"], interval)

    def sample(self) -> None:
        peaks = self.peak_by_phase.setdefault(self.phase, {})
        children = children_by_parent()
        for item in self.watched:
            rss = tree_rss_kib(item.pid, children)
            if rss:
                peaks[item.name] = max(peaks.get(item.name, 0), rss)
        self.samples += 1

    def figures(self) -> dict:
        """{component: {"peak_mib", "by_step_mib": {step: peak}}}."""
        result: dict[str, dict] = {}
        for step, peaks in self.peak_by_phase.items():
            for name, kib in peaks.items():
                entry = result.setdefault(name, {"peak_mib": 0.0, "by_step_mib": {}})
                entry["by_step_mib"][step] = round(kib / 1024, 1)
                entry["peak_mib"] = max(entry["peak_mib"], round(kib / 1024, 1))
        return result


def folder_bytes(path: Path) -> int:
    total = 0
    for item in path.rglob("*"):
        try:
            if item.is_file() and not item.is_symlink():
                total += item.stat().st_size
        except OSError:
            continue
    return total


def folder_files(path: Path) -> int:
    return sum(1 for item in path.rglob("*") if item.is_file())


DATABASE_SIZE = "SELECT pg_database_size(current_database())"
LARGEST_TABLES = """
SELECT c.relname, pg_total_relation_size(c.oid) AS bytes, pg_relation_size(c.oid) AS heap_bytes, c.reltuples::bigint AS rows
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY pg_total_relation_size(c.oid) DESC LIMIT $1
"""


async def database_sizes(database_url: str, tables: int = 6) -> dict:
    import asyncpg  # bench/ may reach drivers directly (docs/architecture.md)

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("ANALYZE")
        total = await conn.fetchval(DATABASE_SIZE)
        rows = await conn.fetch(LARGEST_TABLES, tables)
    finally:
        await conn.close()
    return {"database_bytes": total, "largest_tables": [dict(row) for row in rows]}
