"""One run of the agent: its parts put together, signals, the final flush, a summary.

`run` samples and sends until SIGTERM or SIGINT (or `duration` seconds of the node's
clock), then closes the minute in progress, tries for `FLUSH_SECONDS` to send what the
spool holds, and returns what it read and sent. What it could not send stays in the
spool for the next start.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from ledger.collect.agent import Agent, Node
from ledger.collect.attribution import AttributionSource
from ledger.collect.clock import FastClock, RealClock
from ledger.collect.config import CollectConfig
from ledger.collect.fake_nvml import FakeNvml, Scenario
from ledger.collect.gpus import NvmlGpus, real_nvml
from ledger.collect.metrics import Metrics, serve
from ledger.collect.sending import EventSender, Sender
from ledger.collect.spool import Spool

FLUSH_SECONDS = 10.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def fake_node(scenario: Scenario) -> Callable[[int | None], tuple[FastClock, NvmlGpus]]:
    """The clock and GPUs of a fake node; after a restart its clock resumes where the
    spool's cursor stopped (a test of an agent killed mid-run bills every scenario second)."""

    def make(last_second: int | None) -> tuple[FastClock, NvmlGpus]:
        start = scenario.start if last_second is None else max(scenario.start, last_second + 1)
        clock = FastClock(start, scenario.speed)
        return clock, NvmlGpus(FakeNvml(scenario.gpus, scenario.start, clock.now))

    return make


def real_node(last_second: int | None) -> tuple[RealClock, NvmlGpus]:
    return RealClock(), NvmlGpus(real_nvml())


class PrintingPublisher:
    """An `EventSender` that hands every event to `show` and acknowledges it (`--dry-run`)."""

    def __init__(self, show: Callable[[bytes], None]) -> None:
        self.show = show

    async def send_events(self, raws: list[bytes], ingest_id: str, sender: str | None = None) -> int:
        for raw in raws:
            self.show(raw)
        return 1

    async def close(self) -> None:
        pass


async def run(
    config: CollectConfig, source: AttributionSource, node_parts: Callable, open_publisher: Callable[[], EventSender],
    duration: float | None = None, on_ready: Callable[[], None] | None = None,
) -> dict:
    spool = Spool(config.spool, config.spool_max_events)
    clock, gpus = node_parts(spool.last_second())
    try:
        gpus.start()
    except BaseException:
        spool.close()
        raise
    metrics = Metrics()
    server = serve(metrics, config.metrics_host, config.metrics_port) if config.metrics_port else None
    agent = Agent(Node(config.member, config.node, config.skus), gpus, source, spool, clock, metrics)
    sender = Sender(spool, open_publisher, config.member, config.node, metrics)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in SIGNALS:
        loop.add_signal_handler(number, stop.set)
    try:
        if on_ready is not None:
            on_ready()
        tasks = [asyncio.create_task(agent.run(stop)), asyncio.create_task(sender.drain(stop))]
        if duration is not None:
            tasks.append(asyncio.create_task(_stop_after(clock, clock.now() + duration, stop)))
        await asyncio.gather(*tasks)
        flushed = await sender.flush(FLUSH_SECONDS)
        return summary(config, agent, metrics, flushed)
    finally:
        for number in SIGNALS:
            loop.remove_signal_handler(number)
        await sender.close()
        gpus.stop()
        spool.close()
        if server is not None:
            server.shutdown()


async def _stop_after(clock, instant: float, stop: asyncio.Event) -> None:
    await clock.sleep_until(instant, stop)
    stop.set()


def summary(config: CollectConfig, agent: Agent, metrics: Metrics, flushed: bool) -> dict:
    def total(name: str, **labels) -> int:
        return int(metrics.registry.get_sample_value(name, labels) or 0)

    unattributed = {
        sample.labels["reason"]: int(sample.value)
        for family in metrics.registry.collect() if family.name == "gpuledger_collect_unattributed_seconds"
        for sample in family.samples if sample.name.endswith("_total")
    }
    reading = agent.gpus.read()
    return {
        "member": config.member, "node": config.node,
        "gpus": [{"uuid": g.uuid, "name": g.name, "utilisation_percent": g.utilisation_percent,
                  "memory_used_bytes": g.memory_used_bytes} for g in (reading.gpus if reading else ())],
        "lost_gpus": reading.lost if reading else 0,
        "last_second": agent.last_second,
        "seconds": {"attributed": total("gpuledger_collect_attributed_seconds_total"),
                    "idle": total("gpuledger_collect_idle_seconds_total"),
                    "filled": total("gpuledger_collect_filled_seconds_total"),
                    "unattributed": unattributed,
                    "refused_by_full_spool": total("gpuledger_collect_spool_refused_seconds_total")},
        "events_sent": total("gpuledger_collect_events_sent_total"),
        "send_errors": total("gpuledger_collect_send_errors_total"),
        "spool_events": agent.spool.depth(), "flushed": flushed,
    }
