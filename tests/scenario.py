"""The scenarios of SPEC.md's shape: reading their files and comparing their outputs."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

from ledger.domain.instants import parse_instant
from ledger.domain.ndjson import split_lines

SCENARIOS = Path(__file__).parent / "scenarios"
STEPS = ("ingest1", "settle_sep", "ingest2", "settle_sep_again", "settle_oct")
# Steps 1-8 of every scenario's README (q4 adds the capacity reports); the later steps
# of a scenario's steps.json (corrections, disputes, payments) print the other keys.
BASE_STEPS = (*STEPS, "capacity_sep", "capacity_oct")


# The scenarios every path must pass in full (tests/scenarios holds copies of ../shared).
PUBLIC_SCENARIOS = ("alliance-2026-q3", "alliance-2026-q4")


def scenario_dirs() -> list[Path]:
    return [SCENARIOS / name for name in PUBLIC_SCENARIOS]


def batch_bytes(directory: Path, name: str) -> bytes:
    return gzip.decompress((directory / f"{name}.ndjson.gz").read_bytes())


def batch_lines(directory: Path, name: str) -> list[bytes]:
    return list(split_lines([batch_bytes(directory, name)]))


def expected(directory: Path) -> dict:
    return json.loads((directory / "expected.json").read_text())


def expected_base(directory: Path) -> dict:
    """What steps 1-8 must print."""
    return {key: value for key, value in expected(directory).items() if key in BASE_STEPS}


def comparable(got, want):
    """`got` as SPEC.md compares it with `want`: normalized, and a statement of an older
    scenario (whose expected statements predate `returns` and `restored_yen`, 2026-12-07)
    compared without those fields once they are found empty."""
    got, want = normalized(got), normalized(want)
    if isinstance(got, dict) and isinstance(want, dict) and "lines" in want:
        got = dict(got)
        if "returns" not in want:
            assert got.pop("returns", []) == [], "a statement with returns where none can be"
        if want.get("grant_draws") and "restored_yen" not in want["grant_draws"][0]:
            got["grant_draws"] = [{k: v for k, v in d.items() if k != "restored_yen"} for d in got["grant_draws"]]
    return got


_PRICE_KEYS = {"retail_yen_per_gpu_hour"}
_INSTANT_KEYS = {"retail_price_from", "agreement_from"}


def normalized(value, key: str | None = None):
    """JSON values compared as SPEC.md says: prices as decimals, instants as instants."""
    if isinstance(value, dict):
        return {k: normalized(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v, key) for v in value]
    if key in _PRICE_KEYS and isinstance(value, str):
        return Decimal(value).normalize()
    if key in _INSTANT_KEYS and isinstance(value, str):
        return parse_instant(value)
    return value


def run_steps(stack, directory: Path, folder: Path) -> dict:
    """The scenario's steps through the CLI of a running stack; each step's output (the
    capacity reports when the scenario has them, after the six others)."""
    for name in ("batch1", "batch2"):
        (folder / f"{name}.ndjson").write_bytes(batch_bytes(directory, name))
    stack.run("catalog", "load", str(directory / "catalog.toml"))
    got = {
        "ingest1": stack.json("ingest", str(folder / "batch1.ndjson"), "--wait", "--timeout", "600"),
        "settle_sep": stack.json("settle", "2026-09", "--close"),
        "ingest2": stack.json("ingest", str(folder / "batch2.ndjson"), "--wait", "--timeout", "600"),
        "settle_sep_again": stack.json("settle", "2026-09"),
        "settle_oct": stack.json("settle", "2026-10", "--close"),
    }
    for step, period in (("capacity_sep", "2026-09"), ("capacity_oct", "2026-10")):
        if step in expected(directory):
            got[step] = stack.json("report", "capacity", period)
    return got

