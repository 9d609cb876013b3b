"""`make demo COLLECT=SECONDS`: a fake GPU node of sakura feeding the local stack.

Four fake GPUs (fake NVML) whose clock starts in the past and runs 10 times faster than
time, so SECONDS of demo are 10 x SECONDS seconds of the node: one GPU rented to kddi's
tenant `node-demo-a` throughout, one handed to `node-demo-b` part-way, one that falls off
the bus for a while, one idle. `gpuledger collect` reports them to sakura's own topic;
then the ledger's billed seconds for those tenants are printed. The public scenario's
catalog (loaded by the demo) prices them: kddi's retail H100 price and its agreement
with sakura.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

SPEED = 10

SCENARIO = """[clock]
start = "{start}"
speed = {speed}

[[gpus]]
uuid = "GPU-demo-node-0"
utilisation_percent = 93
memory_used_bytes = 64000000000

[[gpus]]
uuid = "GPU-demo-node-1"
utilisation_percent = 41

[[gpus]]
uuid = "GPU-demo-node-2"
lost = {lost}
back = {back}

[[gpus]]
uuid = "GPU-demo-node-3"
"""
RENTALS = """[[rentals]]
gpu_uuid = "GPU-demo-node-0"
reseller = "kddi"
tenant = "node-demo-a"

[[rentals]]
gpu_uuid = "GPU-demo-node-1"
reseller = "kddi"
tenant = "node-demo-b"
from = "{handover}"

[[rentals]]
gpu_uuid = "GPU-demo-node-2"
reseller = "kddi"
tenant = "node-demo-a"
"""
CONFIG = """member = "sakura"
node = "demo-node"
spool = "{folder}/spool.db"
metrics_host = "127.0.0.1"
metrics_port = 0

[skus]
"*" = "H100"

[attribution]
source = "static"
rentals = "{folder}/rentals.toml"
"""


def utc(instant: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(instant))


def write_node(folder: Path, seconds: int) -> int:
    """The fake node's files; its clock ends before now (no event is in the future)."""
    node_seconds = seconds * SPEED
    start = int(time.time()) - node_seconds - 120
    start -= start % 60
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scenario.toml").write_text(SCENARIO.format(
        start=utc(start), speed=SPEED, lost=node_seconds // 3, back=node_seconds // 2))
    (folder / "rentals.toml").write_text(RENTALS.format(handover=utc(start + node_seconds // 4 + 17)))
    (folder / "collect.toml").write_text(CONFIG.format(folder=folder))
    return node_seconds


def run(home: Path, seconds: int, gpuledger) -> None:
    folder = home / f"collect-demo-{int(time.time())}"
    node_seconds = write_node(folder, seconds)
    print(f"\n== a fake GPU node (4 GPUs, {node_seconds} s of its time in {seconds} s) "
          "reporting to sakura's topic with gpuledger collect", file=sys.stderr, flush=True)
    summary = json.loads(gpuledger(
        "collect", "--config", str(folder / "collect.toml"), "--fake-node", str(folder / "scenario.toml"),
        "--duration", str(node_seconds), capture=True))
    print(json.dumps(summary, indent=2))
    print("\n== what the ledger billed to the node's tenants (waiting for the worker)", file=sys.stderr, flush=True)
    expected = summary["seconds"]["attributed"] + summary["seconds"]["filled"]
    for _ in range(60):
        billed = _billed(gpuledger)
        if sum(billed.values()) >= expected:
            break
        time.sleep(1)
    print(json.dumps({"sampled_gpu_seconds": expected, "billed_gpu_seconds": billed}, indent=2))


def _billed(gpuledger) -> dict:
    period = time.strftime("%Y-%m", time.gmtime(time.time() + 9 * 3600))  # the catalog's Asia/Tokyo
    statement = json.loads(gpuledger("settle", period, capture=True))
    found: dict = {}
    for line in statement["lines"]:
        if line["tenant"].startswith("node-demo-") and line["provider"] == "sakura":
            found[line["tenant"]] = found.get(line["tenant"], 0) + line["gpu_seconds"]
    return found

