"""The scenarios of SPEC.md's shape: reading their files and comparing their outputs."""

from __future__ import annotations

import gzip
import json
import re
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



# -- steps 9 and later (steps.json): corrections, disputes, payments ------------------------

_ID_ARGUMENT = re.compile(r"\{id:([a-z0-9_]+)\}")


def later_steps(directory: Path) -> list[dict]:
    """The scenario's steps.json (empty when it has none), in order."""
    path = directory / "steps.json"
    return json.loads(path.read_text()) if path.exists() else []


def shown(got, want):
    """`got` as the scenario's README compares it with `want`: the keys `want` shows (a
    dispute or a payment may print more), normalized; a statement as `comparable` says."""
    if isinstance(got, dict) and isinstance(want, dict) and "lines" not in want:
        return {key: normalized(got.get(key), key) for key in want}
    return comparable(got, want)


def run_later_steps(stack, directory: Path, keys=None, printed: dict | None = None) -> dict:
    """Run the steps of steps.json (all, or those whose key is in `keys`, in file order)
    through the CLI of a stack on which steps 1-8 ran; each must exit as the step says (0,
    or 2 when it has "exit": 2). Returns what each step that exits 0 printed, by key.
    `printed`: what earlier steps printed, for the `{id:KEY}` arguments of these."""
    printed = dict(printed or {})
    for step in later_steps(directory):
        if keys is not None and step["key"] not in keys:
            continue
        if "replay_event" in step:
            _replay_event(stack, step["replay_event"])
            continue
        args = [_ID_ARGUMENT.sub(lambda m: printed[m.group(1)]["id"], arg) for arg in step["args"]]
        done = stack.run(*args, check=False)
        assert done.returncode == step.get("exit", 0), (step["key"], done.returncode, done.stderr[-2000:])
        if done.returncode == 0 and done.stdout.strip():
            printed[step["key"]] = json.loads(done.stdout)
    return printed


def _replay_event(stack, event_id: str) -> None:
    """Replay the dead letter of the event whose CloudEvents id is `event_id`."""
    cursor, found = None, None
    while found is None:
        page = stack.json("dlq", "list", "--limit", "1000", *(["--after", cursor] if cursor else []))
        found = next((item["id"] for item in page["items"] if event_id in item["raw"]), None)
        cursor = page["next_cursor"]
        assert found is not None or cursor is not None, f"no dead letter of event {event_id}"
    stack.run("dlq", "replay", str(found))
