"""alliance-2026-q4's corrections and disputes through the CLI of a real stack: after
steps 1-8, the `void_*` and `dispute_*` steps of steps.json print what expected.json
shows for them (the keys it shows: a dispute prints more), and the refused ones exit 2.

The steps after them (the replayed conflict, November's and December's statements,
payments) are the whole-scenario test's; the statements' returns are not compared here.
"""

from __future__ import annotations

import json

import pytest

from tests.scenario import SCENARIOS, expected, run_steps

pytestmark = pytest.mark.infra

DIRECTORY = SCENARIOS / "alliance-2026-q4"


def corrections_and_disputes() -> list[dict]:
    """The steps of steps.json before the conflict is resolved: voids, then disputes."""
    steps = json.loads((DIRECTORY / "steps.json").read_text())
    return steps[: [s["key"] for s in steps].index("void_conflict_winner")]


def test_the_scenarios_voids_and_disputes_print_what_is_expected(make_stack, tmp_path):
    stack = make_stack()
    run_steps(stack, DIRECTORY, tmp_path)
    want = expected(DIRECTORY)
    printed: dict[str, dict] = {}
    steps = corrections_and_disputes()
    assert all(s["key"].startswith(("void_", "dispute_")) for s in steps) and len(steps) == 16
    for step in steps:
        args = [printed[a[4:-1]]["id"] if a.startswith("{id:") else a for a in step["args"]]
        completed = stack.run(*args, check=False)
        if step.get("exit") == 2:
            assert completed.returncode == 2 and completed.stdout == b"", (step["key"], completed.stderr)
            continue
        assert completed.returncode == 0, (step["key"], completed.stderr)
        printed[step["key"]] = json.loads(completed.stdout)
        shown = {k: printed[step["key"]].get(k) for k in want[step["key"]]}
        assert shown == want[step["key"]], step["key"]
    listed = stack.json("disputes", "list")["disputes"]
    assert [(d["id"], d["state"]) for d in listed] == [
        (printed["dispute_open"]["id"], "accepted"), (printed["dispute_open_2"]["id"], "withdrawn")]
