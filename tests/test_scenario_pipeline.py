"""Given a fresh stack, when the scenario's steps run through the CLI, then every output equals expected.json.

This is the check the alliance runs on every scenario: the real broker, the Faust
worker and PostgreSQL, driven only by `gpuledger` commands.
"""

from __future__ import annotations

import json

import pytest

from tests.scenario import batch_bytes, expected, normalized, scenario_dirs

pytestmark = pytest.mark.infra


def run_scenario(stack, directory, tmp_path) -> dict:
    for name in ("batch1", "batch2"):
        (tmp_path / f"{name}.ndjson").write_bytes(batch_bytes(directory, name))
    stack.run("catalog", "load", str(directory / "catalog.toml"))
    return {
        "ingest1": stack.json("ingest", str(tmp_path / "batch1.ndjson"), "--wait", "--timeout", "600"),
        "settle_sep": stack.json("settle", "2026-09", "--close"),
        "ingest2": stack.json("ingest", str(tmp_path / "batch2.ndjson"), "--wait", "--timeout", "600"),
        "settle_sep_again": stack.json("settle", "2026-09"),
        "settle_oct": stack.json("settle", "2026-10", "--close"),
    }


@pytest.mark.parametrize("directory", scenario_dirs(), ids=lambda p: p.name)
def test_scenario_through_the_pipeline(make_stack, directory, tmp_path):
    stack = make_stack()
    got = run_scenario(stack, directory, tmp_path)
    want = expected(directory)
    for step in want:
        assert normalized(got[step]) == normalized(want[step]), step
    # A closed statement prints the same bytes every time.
    first = stack.run("settle", "2026-10").stdout
    assert stack.run("settle", "2026-10").stdout == first
    assert json.loads(first)["closed"] is True
