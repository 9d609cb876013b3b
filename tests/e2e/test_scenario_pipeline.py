"""Given a fresh stack, when the scenario's steps run through the CLI, then every output equals expected.json.

This is the check the alliance runs on every scenario: the real broker, the Faust
worker and PostgreSQL, driven only by `gpuledger` commands. A scenario with a steps.json
(corrections, disputes, payments) runs those steps after the first eight; each refused
one must exit 2 (tests/service/test_scenario_steps.py also shows they change nothing).
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.scenario import (
    comparable,
    expected,
    expected_base,
    later_steps,
    normalized,
    run_later_steps,
    run_steps,
    scenario_dirs,
    shown,
)

pytestmark = pytest.mark.infra


@pytest.mark.parametrize("directory", scenario_dirs(), ids=lambda p: p.name)
def test_scenario_through_the_pipeline(make_stack, directory, tmp_path):
    stack = make_stack()
    got = run_steps(stack, directory, tmp_path)
    want = expected_base(directory)
    for step in want:
        assert comparable(got[step], want[step]) == normalized(want[step]), step
    # A closed statement prints the same bytes every time.
    first = stack.run("settle", "2026-10").stdout
    assert stack.run("settle", "2026-10").stdout == first
    assert json.loads(first)["closed"] is True
    if "capacity_oct" in want:  # the same report for every member's token
        url = stack.env_values()["GPULEDGER_API_URL"]
        for member in ("kddi", "sakura", "highreso"):
            token = stack.json("token", "create", "--member", member)["token"]
            answer = httpx.get(f"{url}/v1/reports/capacity/2026-10", headers={"Authorization": f"Bearer {token}"},
                               timeout=30)
            assert answer.status_code == 200 and normalized(answer.json()) == normalized(want["capacity_oct"])

    if later_steps(directory):
        check_later_steps(stack, directory)
        check_the_books_and_a_bundle_with_returns(stack, tmp_path)


def check_the_books_and_a_bundle_with_returns(stack, folder) -> None:
    """After the corrections, disputes and payments: the books verify, and November's
    bundle (its returns, voids and decided disputes) verifies with the public key alone."""
    verified = stack.json("verify", "--db")
    assert verified["verified"] is True, verified
    stack.json("keys", "init")
    public_key = folder / "ledger.pub"
    public_key.write_bytes(stack.run("keys", "public").stdout)
    bundle = folder / "bundle-2026-11"
    stack.run("export", "2026-11", "--out", str(bundle))
    assert json.loads((bundle / "statement.json").read_bytes())["returns"]
    completed = stack.run("verify", str(bundle), "--public-key", str(public_key), check=False)
    assert completed.returncode == 0, completed.stderr.decode()
    assert json.loads(completed.stdout)["verified"] is True


def check_later_steps(stack, directory) -> None:
    printed = run_later_steps(stack, directory)
    want = expected(directory)
    for step in later_steps(directory):
        if step["key"] in want:
            assert shown(printed[step["key"]], want[step["key"]]) == shown(want[step["key"]], want[step["key"]]), \
                step["key"]
    listed = stack.json("disputes", "list")["disputes"]
    assert [(d["id"], d["state"]) for d in listed] == [
        (printed["dispute_open"]["id"], "accepted"), (printed["dispute_open_2"]["id"], "withdrawn")]
