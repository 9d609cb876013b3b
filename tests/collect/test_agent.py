"""The agent's ticks against a fake NVML and a static rentals file: allocation edges, a GPU
falling off the bus, a restart, the spool's events."""

import orjson

from ledger.collect.agent import Agent, Node
from ledger.collect.attribution import StaticRentals
from ledger.collect.fake_nvml import FakeGpu, FakeNvml
from ledger.collect.gpus import NvmlGpus
from ledger.collect.metrics import Metrics
from ledger.collect.spool import Spool
from ledger.domain.instants import format_utc

T0 = 1_796_000_000 - 1_796_000_000 % 60


class SteppedClock:
    def __init__(self, now: float) -> None:
        self.value = now

    def now(self) -> float:
        return self.value


def rentals(path, *entries):
    text = ""
    for gpu, tenant, start, end in entries:
        text += f'[[rentals]]\ngpu_uuid = "{gpu}"\nreseller = "kddi"\ntenant = "{tenant}"\n'
        text += f'from = "{format_utc(start)}"\nuntil = "{format_utc(end)}"\n'
    path.write_text(text)
    return path


def agent(tmp_path, gpus, rentals_file, metrics=None):
    clock = SteppedClock(T0)
    nvml = FakeNvml(tuple(gpus), T0, clock.now)
    reader = NvmlGpus(nvml)
    reader.start()
    node = Node("sakura", "node-1", {"NVIDIA H100 80GB HBM3": "H100"})
    made = Agent(node, reader, StaticRentals(rentals_file), Spool(tmp_path / "spool.db"), clock, metrics or Metrics())
    return made, clock


def run_seconds(made, clock, start, end):
    for second in range(start, end):
        clock.value = second
        made.tick(second)


def spooled(made):
    return [orjson.loads(value) for _, value in made.spool.take(1000)]


def billed(documents):
    """GPU-seconds per (GPU, tenant) in some events."""
    found: dict = {}
    for document in documents:
        key = (document["data"]["gpu_uuid"], document["data"]["tenant"])
        found[key] = found.get(key, 0) + document["data"]["seconds"]
    return found


def value(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, labels)


def test_a_gpu_held_5_min_17_s_across_minute_boundaries_is_317_seconds(tmp_path):
    file = rentals(tmp_path / "rentals.toml", ("GPU-a", "acme", T0 + 23, T0 + 23 + 317))
    made, clock = agent(tmp_path, [FakeGpu("GPU-a", utilisation_percent=70)], file)
    run_seconds(made, clock, T0, T0 + 420)
    documents = spooled(made)
    assert billed(documents) == {("GPU-a", "acme"): 317}
    assert [d["data"]["seconds"] for d in documents] == [37, 60, 60, 60, 60, 40]
    assert documents[0]["time"] == format_utc(T0 + 23)
    assert documents[0]["data"]["evidence"]["utilisation_percent"] == 70


def test_a_tenant_handover_mid_minute_and_an_idle_gpu(tmp_path):
    file = rentals(tmp_path / "rentals.toml", ("GPU-a", "acme", T0, T0 + 25), ("GPU-a", "beta", T0 + 25, T0 + 90))
    metrics = Metrics()
    made, clock = agent(tmp_path, [FakeGpu("GPU-a"), FakeGpu("GPU-idle")], file, metrics)
    run_seconds(made, clock, T0, T0 + 121)
    assert billed(spooled(made)) == {("GPU-a", "acme"): 25, ("GPU-a", "beta"): 65}
    assert value(metrics, "gpuledger_collect_idle_seconds_total") == 121 + 31


def test_a_gpu_falling_off_the_bus_bills_nothing_while_lost(tmp_path):
    file = rentals(tmp_path / "rentals.toml", ("*", "acme", T0, T0 + 3600))
    metrics = Metrics()
    made, clock = agent(tmp_path, [FakeGpu("GPU-a", lost=20, back=50), FakeGpu("GPU-b", appears=30)], file, metrics)
    run_seconds(made, clock, T0, T0 + 25)
    assert value(metrics, "gpuledger_collect_gpus", state="lost") == 1
    run_seconds(made, clock, T0 + 25, T0 + 121)
    assert billed(spooled(made)) == {("GPU-a", "acme"): 120 - 30, ("GPU-b", "acme"): 90}


def test_unattributed_gpus_are_counted_by_reason(tmp_path):
    file = rentals(tmp_path / "rentals.toml", ("GPU-a", "acme", T0, T0 + 3600), ("GPU-a", "beta", T0, T0 + 3600))
    metrics = Metrics()
    made, clock = agent(tmp_path, [FakeGpu("GPU-a"), FakeGpu("GPU-x", name="Unknown GPU")], file, metrics)
    (tmp_path / "rentals.toml").write_text(file.read_text() + '[[rentals]]\ngpu_uuid = "GPU-x"\nreseller = "kddi"\ntenant = "c"\n')
    run_seconds(made, clock, T0, T0 + 10)
    assert value(metrics, "gpuledger_collect_unattributed_seconds_total", reason="overlapping_rentals") == 10
    assert value(metrics, "gpuledger_collect_unattributed_seconds_total", reason="no_sku") == 10
    assert spooled(made) == []


def test_a_restart_resumes_the_open_minute_from_the_spool(tmp_path):
    file = rentals(tmp_path / "rentals.toml", ("GPU-a", "acme", T0, T0 + 3600))
    made, clock = agent(tmp_path, [FakeGpu("GPU-a")], file)
    run_seconds(made, clock, T0, T0 + 30)  # killed here: no close_all
    made.spool.close()
    again, clock = agent(tmp_path, [FakeGpu("GPU-a")], file)
    assert again.last_second == T0 + 29
    run_seconds(again, clock, T0 + 30, T0 + 61)
    assert [d["data"]["seconds"] for d in spooled(again)] == [60]


def test_a_clean_stop_sends_the_partial_minute_and_a_restart_adds_the_rest(tmp_path):
    file = rentals(tmp_path / "rentals.toml", ("GPU-a", "acme", T0, T0 + 3600))
    made, clock = agent(tmp_path, [FakeGpu("GPU-a")], file)
    run_seconds(made, clock, T0, T0 + 30)
    made.close_all()
    made.spool.close()
    again, clock = agent(tmp_path, [FakeGpu("GPU-a")], file)
    run_seconds(again, clock, T0 + 30, T0 + 61)
    documents = spooled(again)
    assert [(d["time"], d["data"]["seconds"]) for d in documents] == [(format_utc(T0), 30), (format_utc(T0 + 30), 30)]
    assert len({d["id"] for d in documents}) == 2


def test_a_short_stall_is_filled_and_a_long_one_is_not(tmp_path):
    file = rentals(tmp_path / "rentals.toml", ("GPU-a", "acme", T0, T0 + 3600))
    made, clock = agent(tmp_path, [FakeGpu("GPU-a")], file)
    for second in [*range(T0, T0 + 10), *range(T0 + 13, T0 + 30), *range(T0 + 50, T0 + 61)]:
        clock.value = second
        made.tick(second)
    assert billed(spooled(made)) == {("GPU-a", "acme"): 60 - 20}
