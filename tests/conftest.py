"""The one place that starts the real broker and PostgreSQL for the tests.

`make_stack` starts a whole local stack (Tansu, embedded PostgreSQL, Faust workers)
the way a user does, with `gpuledger dev up`, in its own home folder; each test module
that needs one gets a fresh stack, so ledgers never share state. Nothing here depends
on services that happen to be running on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


class StackHandle:
    """A running local stack and the CLI bound to it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "GPULEDGER_HOME": str(home)}
        for name in ("GPULEDGER_DATABASE_URL", "GPULEDGER_KAFKA_BOOTSTRAP", "GPULEDGER_USAGE_TOPIC"):
            self.env.pop(name, None)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "ledger.cli", *args]

    def run(self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 300):
        completed = subprocess.run(
            self.argv(*args), input=input, capture_output=True, env=self.env, cwd=ROOT, timeout=timeout
        )
        if check and completed.returncode != 0:
            raise AssertionError(
                f"gpuledger {' '.join(args)} exited {completed.returncode}:\n"
                f"{completed.stderr.decode(errors='replace')[-3000:]}"
            )
        return completed

    def json(self, *args: str, **kwargs):
        return json.loads(self.run(*args, **kwargs).stdout)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env, cwd=ROOT
        )

    def settings(self) -> dict:
        return json.loads((self.home / "stack.json").read_text())

    @property
    def database_url(self) -> str:
        return self.settings()["database_url"]

    @property
    def kafka_bootstrap(self) -> str:
        return self.settings()["kafka_bootstrap"]

    def components(self) -> dict[str, dict]:
        return {c["name"]: c for c in self.json("dev", "status")["components"]}

    def up(self, workers: int = 1) -> None:
        self.run("dev", "up", "--no-durable", "--workers", str(workers), timeout=240)

    def down(self) -> None:
        self.run("dev", "down", check=False, timeout=240)


def _world_enterable_tmp(prefix: str) -> Path:
    # PostgreSQL runs as `nobody` when the tests run as root: its folder and every
    # folder above must be enterable by it, which pytest's own tmp_path is not.
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def make_stack():
    """Factory of fresh stacks for this module; all are stopped at its end."""
    started: list[tuple[StackHandle, Path]] = []

    def make(workers: int = 1) -> StackHandle:
        folder = _world_enterable_tmp("gpuledger-test-")
        handle = StackHandle(folder / "home")
        started.append((handle, folder))
        handle.up(workers)
        return handle

    yield make
    for handle, folder in started:
        handle.down()
        if os.environ.get("GPULEDGER_KEEP_TEST_HOMES"):
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(make_stack) -> StackHandle:
    """One fresh stack with one worker, shared by the tests of a module."""
    return make_stack()
