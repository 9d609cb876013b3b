"""`make gpu-check`: the agent for 60 seconds against this machine's real NVML.

Every GPU is attributed by a static `*` rental to a check tenant, nothing is sent
(`--dry-run`): the events the agent would send are printed on stderr as they fall due, and
at the end what it read (each GPU's UUID, name, utilisation and memory) and counted. For
the people who install the agent on a GPU node, and for whoever has a GPU at hand. On a
machine without an NVIDIA driver the agent says so in one line and exits 3.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

CONFIG = """member = "gpu-check"
node = "gpu-check"
spool = "{folder}/spool.db"
metrics_port = 0

[skus]
"*" = "GPU"

[attribution]
source = "static"
rentals = "{folder}/rentals.toml"
"""
RENTALS = """[[rentals]]
gpu_uuid = "*"
reseller = "gpu-check"
tenant = "gpu-check"
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger.dev.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gpuledger-gpu-check-") as folder:
        (Path(folder) / "collect.toml").write_text(CONFIG.format(folder=folder))
        (Path(folder) / "rentals.toml").write_text(RENTALS)
        print(f"gpu-check: the agent for {args.seconds} s on this machine's NVML, sending nothing", file=sys.stderr)
        return subprocess.run([
            sys.executable, "-m", "ledger.cli", "collect", "--config", f"{folder}/collect.toml",
            "--duration", str(args.seconds), "--dry-run",
        ]).returncode


if __name__ == "__main__":
    sys.exit(main())
