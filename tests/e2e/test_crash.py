"""Effectively once: workers killed or stopped mid-stream change no number.

Given the public scenario, when its first batch is being processed and the worker is
killed with SIGKILL (twice, at different points) and restarted, or one of two workers
in the group is stopped mid-batch, then every step still equals expected.json: each
redelivered record is recognised by the positions committed with the ledger's writes.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from ledger.dev import Stack
from tests.db import fetch
from tests.scenario import (
    batch_bytes,
    comparable,
    expected,
    expected_base,
    normalized,
    scenario_dirs,
)

pytestmark = [pytest.mark.infra, pytest.mark.slow]

SCENARIO = scenario_dirs()[0]
TALLY = "SELECT coalesce(sum(received), 0) AS n FROM intake_tallies WHERE ingest_id <> ''"


def processed(stack) -> int:
    return fetch(stack.database_url, TALLY)[0]["n"]


def wait_until(condition, timeout: float = 300, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def scenario_with_disruption(stack, tmp_path, disrupt) -> dict:
    """Run the scenario's steps; `disrupt(stack, total)` runs while batch 1 is processed."""
    for name in ("batch1", "batch2"):
        (tmp_path / f"{name}.ndjson").write_bytes(batch_bytes(SCENARIO, name))
    stack.run("catalog", "load", str(SCENARIO / "catalog.toml"))
    total = expected(SCENARIO)["ingest1"]["received"]
    # Small records, so that batch 1 spans many worker batches and kills land inside it.
    ingest = stack.popen(
        "ingest", str(tmp_path / "batch1.ndjson"), "--wait", "--timeout", "600", "--batch-events", "5"
    )
    try:
        disrupt(stack, total)
        out, err = ingest.communicate(timeout=600)
    finally:
        if ingest.poll() is None:
            ingest.kill()
    assert ingest.returncode == 0, err.decode(errors="replace")[-2000:]
    return {
        "ingest1": json.loads(out),
        "settle_sep": stack.json("settle", "2026-09", "--close"),
        "ingest2": stack.json("ingest", str(tmp_path / "batch2.ndjson"), "--wait", "--timeout", "600"),
        "settle_sep_again": stack.json("settle", "2026-09"),
        "settle_oct": stack.json("settle", "2026-10", "--close"),
    }


def assert_matches_expected(got: dict) -> None:
    want = expected_base(SCENARIO)
    for step in want:
        assert comparable(got[step], want[step]) == normalized(want[step]), step


def test_sigkill_twice_while_processing_then_restart(make_stack, tmp_path):
    stack = make_stack()
    kills = []

    def disrupt(stack, total):
        for threshold in (1, total // 2):
            wait_until(lambda t=threshold: processed(stack) >= t, what=f"{threshold} processed")
            at = processed(stack)
            assert at < total, "the ingest finished before the worker could be killed"
            pid = stack.components()["worker-1"]["pid"]
            os.kill(pid, signal.SIGKILL)
            kills.append(at)
            wait_until(lambda p=pid: not os.path.exists(f"/proc/{p}") or _zombie(p), 30, "worker gone")
            stack.up()  # starts only what is not running: the killed worker

    got = scenario_with_disruption(stack, tmp_path, disrupt)
    assert len(kills) == 2 and kills[0] < kills[1]
    assert_matches_expected(got)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def what_happened(stack, components) -> str:
    """The stack's status and the ends of the worker's and supervisor's logs."""
    logs = []
    for name in ("worker-1", "worker-2", "supervisor"):
        # worker-2's record went with it: its log is where the stack keeps every log
        path = Path(components[name]["log"]) if name in components else stack.home / "logs" / f"{name}.log"
        if path.exists():
            logs.append(f"--- {name}.log\n" + "\n".join(path.read_text(errors="replace").splitlines()[-40:]))
    return json.dumps(components, indent=1) + "\n" + "\n".join(logs)


def test_two_workers_one_stopped_mid_batch(make_stack, tmp_path):
    stack = make_stack(workers=2)

    def disrupt(stack, total):
        wait_until(lambda: processed(stack) >= total // 5, what="a fifth processed")
        assert processed(stack) < total
        Stack(stack.home).stop("worker-2")
        components = stack.components()
        assert components["worker-1"]["running"], what_happened(stack, components)

    got = scenario_with_disruption(stack, tmp_path, disrupt)
    assert_matches_expected(got)
