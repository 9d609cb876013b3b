"""SIGTERM: the agent closes the minute in progress as a partial event, flushes, exits 0
and prints its summary; a restart adds the rest of that minute as its own event."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from ledger.domain.instants import format_utc

pytestmark = pytest.mark.heavy  # starts the agent as a process

START = 1_796_000_000 - 1_796_000_000 % 60


def node(tmp_path):
    (tmp_path / "scenario.toml").write_text(f'[clock]\nstart = "{format_utc(START)}"\nspeed = 10\n\n[[gpus]]\nuuid = "GPU-t"\n')
    (tmp_path / "rentals.toml").write_text('[[rentals]]\ngpu_uuid = "*"\nreseller = "kddi"\ntenant = "acme"\n')
    (tmp_path / "collect.toml").write_text(
        f'member = "sakura"\nnode = "t"\nspool = "{tmp_path / "spool.db"}"\nmetrics_port = 0\n[skus]\n"*" = "H100"\n'
        f'[attribution]\nsource = "static"\nrentals = "{tmp_path / "rentals.toml"}"\n')
    return ["collect", "--config", str(tmp_path / "collect.toml"), "--fake-node", str(tmp_path / "scenario.toml"), "--dry-run"]


def events(stderr: bytes) -> list[dict]:
    prefix = b"collect: would send "
    return [json.loads(line[len(prefix):]) for line in stderr.splitlines() if line.startswith(prefix)]


def test_sigterm_sends_the_partial_minute_and_a_restart_the_rest(tmp_path):
    argv = [sys.executable, "-m", "ledger.cli", *node(tmp_path)]
    agent = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ready = agent.stderr.readline()
    assert ready.startswith(b"collect: sampling"), ready
    time.sleep(3)  # about 30 s of the node: inside its first minute
    agent.send_signal(signal.SIGTERM)
    out, err = agent.communicate(timeout=30)
    assert agent.returncode == 0, err.decode()
    summary = json.loads(out)
    first = events(err)
    assert [e["data"]["seconds"] for e in first] == [summary["last_second"] - START + 1]
    assert summary["spool_events"] == 0 and summary["flushed"]
    again = subprocess.run([*argv, "--duration", "30"], capture_output=True, timeout=60)
    assert again.returncode == 0, again.stderr.decode()
    rest = events(again.stderr)
    assert rest[0]["time"] == format_utc(summary["last_second"] + 1)
    assert first[0]["data"]["seconds"] + rest[0]["data"]["seconds"] == 60
