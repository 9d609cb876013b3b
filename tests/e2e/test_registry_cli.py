"""The GPU registry through the CLI: a fleet's CSV loads whole, a bad one not at all."""

from __future__ import annotations

import pytest

from tests.scenario import SCENARIOS

pytestmark = pytest.mark.infra

HEADER = "uuid,provider,sku,region,registered_from,retired_from\n"


def test_a_fleet_of_thirty_thousand_gpus_loads_and_lists(stack, tmp_path):
    stack.run("catalog", "load", str(SCENARIOS / "alliance-2026-q4" / "catalog.toml"))
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(HEADER + "".join(
        f"GPU-fleet-{n:05d},{'sakura' if n % 2 else 'kddi'},{'H200' if n % 2 else 'GB200'},jp-tokyo,"
        f"2026-11-01T00:00:00+09:00,\n" for n in range(30_000)
    ))
    loaded = stack.json("gpus", "load", str(fleet), timeout=300)
    assert loaded["gpus_added"] == 30_000
    assert stack.json("gpus", "load", str(fleet), timeout=300)["gpus_added"] == 0  # identical: nothing
    sakura = stack.json("gpus", "list", "--provider", "sakura")["gpus"]
    assert len([g for g in sakura if g["uuid"].startswith("GPU-fleet-")]) == 15_000

    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "GPU-new-1,sakura,H200,jp-tokyo,2026-11-01T00:00:00Z,\n"
                   "GPU-fleet-00001,kddi,H200,jp-tokyo,2026-11-01T00:00:00Z,\n")
    refused = stack.run("gpus", "load", str(bad), check=False)
    assert refused.returncode == 2 and b"already registered" in refused.stderr
    assert not [g for g in stack.json("gpus", "list")["gpus"] if g["uuid"] == "GPU-new-1"]
