"""A fresh local stack to measure or test against, and the runner of a benchmark.

Owns: `LocalStack` (a stack under its own GPULEDGER_HOME in a world-enterable folder,
driven through the `gpuledger` CLI in subprocesses, as a user drives it), shared by the
benchmarks and by the tests' fixtures (tests/conftest.py); the small catalog every
benchmark loads; progress notices on stderr; and `run_benchmark`, which runs one
benchmark on a fresh stack, stops the stack on any exit and writes the figures to
bench-results/.

Nothing here measures anything (that is `bench.sampling`), and it imports nothing
heavy: the tests import it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench-results"

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


def notice(message: str) -> None:
    print(f"[bench {time.monotonic() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def package_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------- the stack


def world_enterable_folder(prefix: str) -> Path:
    """A fresh folder under /tmp that every user may enter.

    PostgreSQL runs as `nobody` when this runs as root: its folder and every folder
    above it must be enterable by that user, which a mkdtemp folder (0700) and pytest's
    own tmp_path are not.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


class StackCommandError(RuntimeError):
    """A `gpuledger` command run by `LocalStack.run` exited non-zero."""


class LocalStack:
    """A local stack under its own GPULEDGER_HOME, and the CLI bound to it.

    The CLI runs as `python -m ledger.cli ...` from the repository root, with the
    variables that would point it at another stack removed from its environment.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "GPULEDGER_HOME": str(home)}
        for name in ("GPULEDGER_DATABASE_URL", "GPULEDGER_KAFKA_BOOTSTRAP", "GPULEDGER_USAGE_TOPIC"):
            self.env.pop(name, None)
        self.started = False

    @classmethod
    def in_fresh_folder(cls, prefix: str) -> LocalStack:
        """A stack (not started) whose home is `home` in a new world-enterable folder."""
        return cls(world_enterable_folder(prefix) / "home")

    @property
    def folder(self) -> Path:
        """The folder that holds the home; the benchmarks write their files there too."""
        return self.home.parent

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "ledger.cli", *args]

    def run(
        self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        completed = subprocess.run(
            self.argv(*args), input=input, capture_output=True, env=self.env, cwd=ROOT, timeout=timeout
        )
        if check and completed.returncode != 0:
            raise StackCommandError(
                f"gpuledger {' '.join(args)} exited {completed.returncode}:\n"
                + completed.stderr.decode(errors="replace")[-3000:]
            )
        return completed

    def json(self, *args: str, **kwargs):
        return json.loads(self.run(*args, **kwargs).stdout)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env, cwd=ROOT
        )

    def settings(self) -> dict:
        """The running stack's stack.json: addresses, URLs."""
        return json.loads((self.home / "stack.json").read_text())

    @property
    def database_url(self) -> str:
        return self.settings()["database_url"]

    @property
    def kafka_bootstrap(self) -> str:
        return self.settings()["kafka_bootstrap"]

    def env_values(self) -> dict[str, str]:
        """What `gpuledger dev env` prints, as a dict (the API's address among them)."""
        lines = self.run("dev", "env").stdout.decode().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def components(self) -> dict[str, dict]:
        """`gpuledger dev status`'s components by name, in its order."""
        return {c["name"]: c for c in self.json("dev", "status")["components"]}

    def up(self, workers: int = 1, timeout: float = 300) -> None:
        self.started = True  # set first: an interrupted `dev up` may have started something
        self.run("dev", "up", "--no-durable", "--workers", str(workers), timeout=timeout)

    def down(self, timeout: float = 300) -> subprocess.CompletedProcess:
        """`gpuledger dev down`; its failure is the caller's to report."""
        return self.run("dev", "down", check=False, timeout=timeout)


# --------------------------------------------------------------------------- the runner


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_benchmark(args, run, results_file: Path, format_table) -> int:
    """Run `run(args, folder, stack)` on a fresh stack, stop it whatever happens (unless
    --keep), write the figures to `results_file` and print them."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    stack = LocalStack.in_fresh_folder("gpuledger-bench-")
    try:
        results = run(args, stack.folder, stack)
    except KeyboardInterrupt:
        notice("interrupted")
        return 130
    finally:
        _tear_down(stack, keep=args.keep)
    results_file.parent.mkdir(parents=True, exist_ok=True)
    results_file.write_text(json.dumps(results, indent=2) + "\n")
    if getattr(args, "json_only", False):
        print(json.dumps(results, indent=2))
    else:
        print(format_table(results))
    return 0


def _tear_down(stack: LocalStack, keep: bool) -> None:
    if keep:
        notice(f"kept the stack: GPULEDGER_HOME={stack.home} (stop it with `gpuledger dev down`)")
        return
    if stack.started:
        notice("stopping the stack")
        try:
            completed = stack.down()
        except (subprocess.TimeoutExpired, OSError) as error:
            notice(f"could not stop the stack ({error}); its home is {stack.home}")
            raise
        if completed.returncode != 0:
            notice("`gpuledger dev down` failed:\n" + completed.stderr.decode(errors="replace")[-2000:])
    shutil.rmtree(stack.folder, ignore_errors=True)
