"""py-spy profiles of the stack's workers during a phase (`python -m bench.pipeline --profile`).

Owns: `Profiler` (one `py-spy record` per worker for the length of a phase, folded
stacks written to bench-results/) and `summarize_profile` (inclusive and self time per
function, self time per package, from py-spy's raw output). Profiling perturbs the
figures; without --profile nothing here runs.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench.harness import RESULTS_DIR, ROOT
from bench.sampling import Watched

ROOT_FRAME = "Worker.execute_from_commandline"
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


class Profiler:
    """py-spy record on each worker for the length of one phase (only with --profile)."""

    def __init__(self, workers: list[Watched], phase: str, rate: int) -> None:
        self.outputs: dict[str, Path] = {}
        self.processes: list[subprocess.Popen] = []
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        for worker in workers:
            output = RESULTS_DIR / f"pipeline-{phase}-{worker.name}.folded"
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


def _read_stacks(path: Path) -> list[tuple[list[str], int]]:
    """(frames from the root, samples) per line of py-spy's raw output, process and
    thread frames left out."""
    stacks: list[tuple[list[str], int]] = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack and count_text.isdigit():
            frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
            if frames:
                stacks.append((frames, int(count_text)))
    return stacks


def _count_frames(stacks: list[tuple[list[str], int]]) -> tuple[Counter, Counter, Counter]:
    """Samples per function inclusive (below ROOT_FRAME), per function self, per package self."""
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
    return inclusive, own, packages


def summarize_profile(path: Path, wall: float, rate: int, top: int = 15) -> dict:
    """Inclusive and self time per function and self time per package, from py-spy's raw output.

    The frames down to `Worker.execute_from_commandline` (the CLI and the event loop's
    run call) are left out of the inclusive list: every sample of the main thread has
    them. Self time of that frame is time in the (uvloop, native) event loop itself.
    """
    if not path.exists():
        return {"error": f"py-spy wrote no {path.name}"}
    stacks = _read_stacks(path)
    total = sum(count for _, count in stacks)
    if not total:
        return {"samples": 0, "file": str(path)}
    inclusive, own, packages = _count_frames(stacks)

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
