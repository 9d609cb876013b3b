"""`gpuledger simulate` against the real stack: Kafka, a Faust worker, PostgreSQL.

Given the q4 scenario's catalog (registered GPUs required), when the simulator runs for
a few seconds, then the ledger decided every event it sent under the run's ingest id:
nothing rejected, each first-collector report accepted, each re-send and second-collector
report a duplicate, and the billed GPU-seconds in the store are the simulated ones. A run
without --duration stops cleanly on SIGTERM, after sending what it held back.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.db import fetch
from tests.scenario import SCENARIOS

pytestmark = pytest.mark.infra

COPIES = ("--late", "0.2", "--resend", "0.2", "--second-collector", "0.5")


@pytest.fixture(scope="module")
def ledger(stack):
    stack.run("catalog", "load", str(SCENARIOS / "alliance-2026-q4" / "catalog.toml"))
    return stack


def billed_seconds(stack, gpu_uuids: list[str], since: int) -> int:
    rows = fetch(
        stack.database_url,
        "SELECT coalesce(sum(bit_count(bits)), 0) AS seconds FROM claims "
        "WHERE gpu_uuid = ANY($1) AND hour_start >= $2",
        gpu_uuids, since - since % 3600,
    )
    return rows[0]["seconds"]


def simulated_gpus(stack) -> list[str]:
    return [g["uuid"] for g in stack.json("gpus", "list")["gpus"]]


def test_a_short_run_is_billed_once_and_its_copies_are_duplicates(ledger):
    started = int(time.time())
    before = billed_seconds(ledger, simulated_gpus(ledger), started)
    summary = ledger.json(
        "simulate", "--duration", "5", "--gpus", "6", "--seed", "11", *COPIES, "--wait", "--timeout", "120",
        timeout=180,
    )
    assert summary["gpus"] == 6 and summary["synthesised_gpus"] == 0
    assert summary["sent"] > 0 and summary["second_collector"] > 0
    assert summary["ledger"] == {
        "received": summary["sent"], "accepted": summary["reports"],
        "duplicate": summary["resent"] + summary["second_collector"], "rejected": {},
    }
    billed = billed_seconds(ledger, simulated_gpus(ledger), started) - before
    assert billed == summary["gpu_seconds"] > 0


def test_sigterm_stops_a_run_cleanly_with_its_summary(ledger):
    process = ledger.popen("simulate", "--gpus", "4", "--seed", "12", "--progress", "1", *COPIES)
    try:
        time.sleep(6)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr.decode()
    summary = json.loads(stdout)
    assert summary["sent"] > 0 and summary["seconds"] >= 3
    lines = stderr.decode().splitlines()
    assert any("events sent" in line and "ledger:" in line for line in lines[:-1]), lines
    assert "stopped after" in lines[-1] and "Traceback" not in stderr.decode()
