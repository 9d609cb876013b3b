"""`make demo`: the public scenario on a local stack, with the statements as tables.

Starts the stack (or reuses a running one), loads the scenario's catalog, ingests its
two batches with the scenario's closes in between, prints September and October, and
leaves the stack running. On a stack where the scenario already ran, it only prints.
With `--simulate SECONDS` (`make demo SIMULATE=30`) it then runs `gpuledger simulate`
that long, so the current period's usage moves in the API; else it says how to. With
`--collect SECONDS` (`make demo COLLECT=30`) a fake GPU node's agent, `gpuledger collect`,
feeds the stack (ledger/dev/collect_demo.py).
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
from pathlib import Path

from ledger.dev import collect_demo
from ledger.settings import home_dir

# The repository root is three levels up: ledger/dev/demo.py.
ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "tests" / "scenarios" / "alliance-2026-q3"


def gpuledger(*args: str, stdin: bytes | None = None, capture: bool = False) -> bytes:
    completed = subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args],
        input=stdin,
        stdout=subprocess.PIPE if capture else None,
    )
    if completed.returncode != 0:
        sys.exit(completed.returncode)
    return completed.stdout or b""


def step(title: str) -> None:
    print(f"\n== {title}", file=sys.stderr, flush=True)


def simulate(seconds: int) -> None:
    """The live fleet for a while: synthesised GPUs (the scenario registers none) rented
    to tenants of the three members, in real time, through Kafka and the worker."""
    step(f"simulating the fleet for {seconds} s (gpuledger simulate): usage of this month")
    sys.stdout.buffer.write(gpuledger("simulate", "--duration", str(seconds), "--progress", "5", capture=True))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ledger.dev.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--simulate", type=int, default=0, metavar="SECONDS",
                        help="then run the fleet simulator this long (0: only say how)")
    parser.add_argument("--collect", type=int, default=0, metavar="SECONDS",
                        help="then run gpuledger collect on a fake node of 4 GPUs this long")
    args = parser.parse_args(argv)
    step("starting the local stack (broker, PostgreSQL, stream worker)")
    gpuledger("dev", "up")
    step(f"loading the catalog {SCENARIO / 'catalog.toml'}")
    gpuledger("catalog", "load", str(SCENARIO / "catalog.toml"))
    september = gpuledger("settle", "2026-09", capture=True)
    if b'"closed":true' in september:
        step("the scenario has already run on this stack: printing its statements")
    else:
        step("ingesting batch 1 (September and October usage)")
        batch1 = gzip.decompress((SCENARIO / "batch1.ndjson.gz").read_bytes())
        sys.stdout.buffer.write(gpuledger("ingest", "-", "--wait", stdin=batch1, capture=True))
        step("closing September")
        gpuledger("settle", "2026-09", "--close", capture=True)
        step("ingesting batch 2 (late September usage arrives after the close)")
        batch2 = gzip.decompress((SCENARIO / "batch2.ndjson.gz").read_bytes())
        sys.stdout.buffer.write(gpuledger("ingest", "-", "--wait", stdin=batch2, capture=True))
        step("closing October")
        gpuledger("settle", "2026-10", "--close", capture=True)
    for period in ("2026-09", "2026-10"):
        step(f"statement {period}")
        sys.stdout.flush()
        gpuledger("settle", period, "--format", "table")
    if args.simulate > 0:
        simulate(args.simulate)
    if args.collect > 0:
        collect_demo.run(home_dir(), args.collect, gpuledger)
    print(
        "\nThe stack is still running. Next:\n"
        "  .venv/bin/gpuledger settle 2026-10            # the statement as JSON\n"
        "  .venv/bin/gpuledger settle 2026-10 --format csv\n"
        "  .venv/bin/gpuledger dev status                # processes of the stack\n"
        "  .venv/bin/gpuledger dev env                   # point your own producer at it\n"
        "  .venv/bin/gpuledger token create --member kddi   # a token for the usage API\n"
        "  curl -H \"Authorization: Bearer $TOKEN\" \"$GPULEDGER_API_URL/v1/usage?period=2026-10&group_by=tenant\"\n"
        "  .venv/bin/gpuledger keys init && .venv/bin/gpuledger export 2026-10 --out bundle-2026-10\n"
        "  .venv/bin/gpuledger simulate --gpus 16        # a live fleet until Ctrl-C: this month's usage\n"
        "      grows in GET /v1/usage (the current period by default) and in `settle YYYY-MM`; the\n"
        "      Grafana dashboard (deploy/grafana) shows it on the docker-compose deployment, whose\n"
        "      workers serve metrics (on the local stack each on a loopback port: dev status)\n"
        "  make demo COLLECT=30                          # a fake GPU node's agent (gpuledger collect) feeding it\n"
        "  .venv/bin/gpuledger dev down                  # stop it (PostgreSQL data is kept)",
        file=sys.stderr,
    )
    portal()


def portal_address(env_lines: str) -> str:
    """The portal's address on the local stack: the API's, as `localhost`, which browsers
    treat as a secure context (the portal's Secure cookie is kept over plain HTTP there)."""
    for line in env_lines.splitlines():
        name, _, value = line.partition("=")
        if name == "GPULEDGER_API_URL":
            return value.replace("://127.0.0.1:", "://localhost:") + "/portal"
    raise SystemExit("the stack's API is not running: gpuledger dev up starts it")


def portal() -> None:
    """Last: where the members' portal is, and a token of kddi to sign in with."""
    address = portal_address(gpuledger("dev", "env", capture=True).decode())
    created = json.loads(gpuledger("token", "create", "--member", "kddi", "--label", "make demo: the portal",
                                   "--expires-in", "7d", capture=True))
    print(f"\nThe members' portal: {address}\n"
          f"  sign in as kddi with this API token (valid 7 days): {created['token']}\n"
          "  (the operator's pages: gpuledger token create --role admin)", file=sys.stderr)


if __name__ == "__main__":
    main()
