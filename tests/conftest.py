"""The one place that starts the real broker and PostgreSQL for the tests.

`make_stack` starts a whole local stack (Tansu, embedded PostgreSQL, Faust workers)
the way a user does, with `gpuledger dev up`, in its own home folder; each test module
that needs one gets a fresh stack, so ledgers never share state. Nothing here depends
on services that happen to be running on the machine. The stack and the CLI bound to
it are `bench.harness.LocalStack`, the same the benchmarks measure.
"""

from __future__ import annotations

import _posixsubprocess
import contextlib
import os
import shutil
import subprocess
import sys

import pytest

from bench.harness import ROOT, LocalStack

__all__ = ["ROOT", "StackHandle"]  # imported by test modules

StackHandle = LocalStack  # the name the tests have known it by

STACK_TIMEOUT = 240  # seconds for `gpuledger dev up` and `dev down`


@pytest.fixture(scope="module")
def make_stack():
    """Factory of fresh stacks for this module; all are stopped at its end."""
    started: list[LocalStack] = []

    def make(workers: int = 1) -> LocalStack:
        handle = LocalStack.in_fresh_folder("gpuledger-test-")
        started.append(handle)
        handle.up(workers, timeout=STACK_TIMEOUT)
        return handle

    yield make
    for handle in started:
        handle.down(timeout=STACK_TIMEOUT)
        if os.environ.get("GPULEDGER_KEEP_TEST_HOMES"):
            print(f"kept {handle.folder}", file=sys.stderr)
        else:
            shutil.rmtree(handle.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(make_stack) -> LocalStack:
    """One fresh stack with one worker, shared by the tests of a module."""
    return make_stack()


# -- make test-fast: tests marked neither `infra` nor `heavy` run in this process alone ------


class StartsAProcess(AssertionError):
    """A test that is neither `infra` nor `heavy` started a process or rendered a PDF."""


def _refuse(what: str):
    def refused(*args, **kwargs):
        raise StartsAProcess(f"this test {what}: mark it heavy (or infra), make test-fast leaves such tests out")
    return refused


@contextlib.contextmanager
def _in_this_process_alone(item: pytest.Item):
    """While an unmarked test sets up and runs: no fork, no exec, no WeasyPrint."""
    if item.get_closest_marker("infra") or item.get_closest_marker("heavy"):
        yield
        return
    import weasyprint  # only when a test may not render (its import costs a second)

    spawn = _refuse("starts a process")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_posixsubprocess, "fork_exec", spawn)  # multiprocessing's spawn and forkserver
        patch.setattr(subprocess, "_fork_exec", spawn)  # subprocess, asyncio's subprocesses
        for name in ("fork", "posix_spawn", "posix_spawnp"):
            patch.setattr(os, name, spawn)
        patch.setattr(weasyprint.HTML, "render", _refuse("renders a PDF with WeasyPrint"))
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with _in_this_process_alone(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with _in_this_process_alone(item):
        return (yield)
