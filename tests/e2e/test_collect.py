"""`gpuledger collect` on a fake node, through the real broker, workers and PostgreSQL.

Given a fake node (fake NVML on a fast clock) whose GPU a tenant holds for 5 min 17 s
across minute boundaries, when the agent runs, then exactly 317 GPU-seconds are billed to
that tenant, on the member's own topic. And when the agent is SIGKILLed mid-run and the
broker is stopped (SIGSTOP) for a minute meanwhile, the restarted agent sends what its
spool held and the ledger still bills each of the 317 seconds exactly once.

The node's clock starts two hours back and runs 10 times faster than time, so the events
are inside the acceptance horizon and never `future` (the dev stack's workers date records
at the producer's clock).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
import urllib.request
from pathlib import Path

import pytest

from ledger.domain.instants import format_utc
from tests.db import fetch

pytestmark = pytest.mark.infra

HOLD_SECONDS = 5 * 60 + 17
CATALOG = """
[[members]]
id = "sakura"
name = "Sakura"

[[members]]
id = "kddi"
name = "KDDI"

[[skus]]
id = "H100"

[[retail_prices]]
reseller = "kddi"
sku = "H100"
yen_per_gpu_hour = "500"
effective_from = "2026-01-01T00:00:00+09:00"

[[agreements]]
reseller = "kddi"
provider = "sakura"
sku = "H100"
wholesale_yen_per_gpu_hour = "400"
effective_from = "2026-01-01T00:00:00+09:00"
"""
BILLED = "SELECT coalesce(sum(seconds), 0) AS n FROM usage_hours WHERE tenant = $1 AND provider = 'sakura'"
TALLY = """SELECT coalesce(sum(received), 0) AS received, coalesce(sum(accepted), 0) AS accepted,
                  coalesce(sum(duplicate), 0) AS duplicate FROM intake_tallies WHERE ingest_id = $1"""


@pytest.fixture(scope="module")
def ledger(stack, tmp_path_factory):
    catalog = tmp_path_factory.mktemp("catalog") / "catalog.toml"
    catalog.write_text(CATALOG)
    stack.run("catalog", "load", str(catalog))
    time.sleep(25)  # the workers subscribe to a new member's topic within about 20 s
    return stack


def fake_node(folder: Path, name: str, tenant: str, start: int, speed: float, metrics_port: int = 0) -> Path:
    """A node of two GPUs, one of which `tenant` holds from start + 23 s for HOLD_SECONDS."""
    (folder / "scenario.toml").write_text(
        f'[clock]\nstart = "{format_utc(start)}"\nspeed = {speed}\n\n'
        '[[gpus]]\nuuid = "GPU-' + name + '-0"\nutilisation_percent = 91\n\n'
        '[[gpus]]\nuuid = "GPU-' + name + '-1"\n'
    )
    (folder / "rentals.toml").write_text(
        f'[[rentals]]\ngpu_uuid = "GPU-{name}-0"\nreseller = "kddi"\ntenant = "{tenant}"\n'
        f'from = "{format_utc(start + 23)}"\nuntil = "{format_utc(start + 23 + HOLD_SECONDS)}"\n'
    )
    config = folder / "collect.toml"
    config.write_text(
        f'member = "sakura"\nnode = "{name}"\nspool = "{folder / "spool.db"}"\nmetrics_host = "127.0.0.1"\n'
        f'metrics_port = {metrics_port}\n\n[skus]\n"*" = "H100"\n\n'
        f'[attribution]\nsource = "static"\nrentals = "{folder / "rentals.toml"}"\n'
    )
    return config


def node_start(hours_back: float) -> int:
    start = int(time.time() - hours_back * 3600)
    return start - start % 60


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def billed(stack, tenant: str) -> int:
    return fetch(stack.database_url, BILLED, tenant)[0]["n"]


def collect(stack, folder: Path, config: Path, duration: float):
    return stack.popen("collect", "--config", str(config), "--fake-node", str(folder / "scenario.toml"),
                       "--duration", str(duration))


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_gpu_held_5_min_17_s_bills_exactly_317_seconds(ledger, tmp_path):
    port = free_port()
    config = fake_node(tmp_path, "e2e-a", "acme", node_start(2), speed=20, metrics_port=port)
    agent = collect(ledger, tmp_path, config, duration=420)
    try:
        wait_until(lambda: _listening(port), 60, "the metrics endpoint")
        status, body = get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        status, body = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and b'gpuledger_collect_gpus{state="present"} 2.0' in body
        out, err = agent.communicate(timeout=120)
    finally:
        agent.kill()
    assert agent.returncode == 0, err.decode()
    summary = json.loads(out)
    assert summary["seconds"]["attributed"] == HOLD_SECONDS and summary["spool_events"] == 0, summary
    wait_until(lambda: billed(ledger, "acme") == HOLD_SECONDS, 120, "317 GPU-seconds billed to acme")
    tally = fetch(ledger.database_url, TALLY, "collect.e2e-a")[0]
    assert tally["received"] == tally["accepted"] == summary["events_sent"] == 6  # 37 + 4 x 60 + 40
    time.sleep(2)
    assert billed(ledger, "acme") == HOLD_SECONDS


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_sigkilled_mid_run_with_the_broker_stopped_a_minute_still_bills_once(ledger, tmp_path):
    start = node_start(3)
    config = fake_node(tmp_path, "e2e-b", "beta", start, speed=5)
    end = start + 420
    broker = int(ledger.components()["broker"]["pid"])
    agent = collect(ledger, tmp_path, config, duration=420)
    try:
        time.sleep(8)  # 40 node-seconds: the first minute's events are sent
        os.kill(broker, signal.SIGSTOP)
        try:
            time.sleep(20)
            agent.send_signal(signal.SIGKILL)
            agent.wait(timeout=10)
            cursor = sqlite3.connect(tmp_path / "spool.db").execute("SELECT last_second FROM cursor").fetchone()[0]
            assert start + 100 < cursor < end
            agent = collect(ledger, tmp_path, config, duration=end - (cursor + 1))
            time.sleep(40)
        finally:
            os.kill(broker, signal.SIGCONT)
        out, err = agent.communicate(timeout=240)
    finally:
        agent.kill()
    assert agent.returncode == 0, err.decode()
    summary = json.loads(out)
    assert summary["send_errors"] > 0 and summary["spool_events"] == 0, summary
    wait_until(lambda: billed(ledger, "beta") == HOLD_SECONDS, 180, "317 GPU-seconds billed to beta")
    time.sleep(3)
    assert billed(ledger, "beta") == HOLD_SECONDS
    rejected = fetch(ledger.database_url, "SELECT count(*) AS n FROM dead_letters")[0]["n"]
    assert rejected == 0
