"""The agent's loop: once a second, sample every GPU, attribute it, and keep it on disk.

Each tick, for second s:
1. read the GPUs (NVML) and ask the attribution source who holds each one; a source
   that fails leaves that tick's GPUs unattributed (`source_unavailable`), counted;
2. make each GPU's sample: its attribution (the holder, and the SKU of its NVML name
   unless the holder names one), or none; fill a short gap since the last tick;
3. close every minute that is over and turn its runs into events;
4. commit the samples, the cursor and the events to the spool in one transaction.
A crash before 4 loses only second s (never sampled, as if the agent had been down); a
crash after it loses nothing. The sender drains the spool on its own schedule.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ledger.collect.attribution import AttributionSource, Holder, Unattributed
from ledger.collect.events import event_id, usage_event
from ledger.collect.gpus import GpuReading, NvmlGpus
from ledger.collect.metrics import Metrics
from ledger.collect.spool import Spool, SpooledEvent
from ledger.collect.usage import (
    MAX_FILLED_GAP_SECONDS,
    Attribution,
    MinuteBook,
    Run,
    Sample,
    filled_gap,
)

log = logging.getLogger("gpuledger.collect")
EVERY_NAME = "*"


@dataclass(frozen=True)
class Node:
    member: str  # the provider: the member that owns this node's GPUs
    name: str  # the node's name in events' source
    skus: dict[str, str] = field(default_factory=dict)  # NVML product name (or "*") -> catalog SKU

    def sku_of(self, gpu: GpuReading) -> str | None:
        return self.skus.get(gpu.name) or self.skus.get(EVERY_NAME)


def sample_of(node: Node, second: int, gpu: GpuReading, holding: Holder | Unattributed | None) -> tuple[Sample, str]:
    """A GPU's sample for one second, and its outcome: `attributed`, `idle` or a reason."""
    if holding is None:
        return Sample(gpu.uuid, second, None, gpu.utilisation_percent, gpu.memory_used_bytes), "idle"
    if isinstance(holding, Unattributed):
        return Sample(gpu.uuid, second, None, gpu.utilisation_percent, gpu.memory_used_bytes), holding.reason
    sku = holding.sku or node.sku_of(gpu)
    if sku is None:
        return Sample(gpu.uuid, second, None, gpu.utilisation_percent, gpu.memory_used_bytes), "no_sku"
    attribution = Attribution(holding.reseller, holding.tenant, sku)
    return Sample(gpu.uuid, second, attribution, gpu.utilisation_percent, gpu.memory_used_bytes), "attributed"


def spooled(node: Node, runs: Sequence[Run]) -> list[SpooledEvent]:
    return [SpooledEvent(event_id(node.member, run), run.start, run.seconds, usage_event(node.member, node.name, run))
            for run in runs]


class Agent:
    def __init__(self, node: Node, gpus: NvmlGpus, source: AttributionSource, spool: Spool, clock, metrics: Metrics) -> None:
        self.node, self.gpus, self.source, self.spool, self.clock, self.metrics = node, gpus, source, spool, clock, metrics
        self.book = MinuteBook(spool.samples())
        last = spool.last_second()
        self.last_second = last
        self.last_samples: list[Sample] = []

    def _holders(self, second: int, gpus: Sequence[GpuReading]) -> dict[str, Holder | Unattributed]:
        try:
            return self.source.holders(second, gpus)
        except Exception as exc:  # a kubelet away, a file unreadable: this tick bills nothing
            self.metrics.source_errors.inc()
            log.warning("collect: attribution source failed: %s", exc)
            return {gpu.uuid: Unattributed("source_unavailable") for gpu in gpus}

    def tick(self, second: int) -> int:
        """Sample `second`; the events spooled."""
        reading = self.gpus.read()
        holders = self._holders(second, reading.gpus)
        self.metrics.gpus.labels("present").set(len(reading.gpus))
        self.metrics.gpus.labels("lost").set(reading.lost)
        samples = []
        for gpu in reading.gpus:
            sample, outcome = sample_of(self.node, second, gpu, holders.get(gpu.uuid))
            samples.append(sample)
            self._count(outcome)
        on_bus = {gpu.uuid for gpu in reading.gpus}
        for uuid, holding in holders.items():  # held, but no GPU NVML can read: a MIG instance, a lost GPU
            if uuid not in on_bus:
                self._count(holding.reason if isinstance(holding, Unattributed) else "gpu_not_readable")
        filled = []
        if self.last_second is not None and 1 < second - self.last_second <= MAX_FILLED_GAP_SECONDS + 1:
            filled = filled_gap(self.last_samples, samples)
            self.metrics.filled.inc(len(filled))
        self.book.add(filled)
        self.book.add(samples)
        closed, runs = self.book.close_before(second)
        return self._commit(second, filled + samples, closed, runs)

    def _count(self, outcome: str) -> None:
        if outcome == "attributed":
            self.metrics.attributed.inc()
        elif outcome == "idle":
            self.metrics.idle.inc()
        else:
            self.metrics.unattributed.labels(outcome).inc()

    def _commit(self, second: int, samples: list[Sample], closed: list[int], runs: list[Run]) -> int:
        events = spooled(self.node, runs)
        refused = self.spool.commit_tick(second, samples, closed, events)
        if refused:
            self.metrics.refused.inc(refused)
            log.error("collect: the spool is full (%d events): %d GPU-seconds were not spooled", self.spool.max_events, refused)
        self.last_second, self.last_samples = second, samples
        self._spool_metrics()
        self.metrics.ticked()
        return len(events)

    def _spool_metrics(self) -> None:
        oldest = self.spool.oldest_start()
        age = 0.0 if oldest is None else max(0.0, self.clock.now() - oldest)
        self.metrics.spooled(self.spool.depth(), self.spool.max_events, age)

    def close_all(self) -> int:
        """At shutdown: the minute in progress becomes events as far as it was sampled."""
        closed, runs = self.book.close_all()
        if self.last_second is None:
            return 0
        return self._commit(self.last_second, [], closed, runs)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick once a second until `stop`; then close the minute in progress."""
        next_second = math.floor(self.clock.now()) if self.last_second is None else self.last_second + 1
        while not stop.is_set():
            now = math.floor(self.clock.now())
            if now < next_second:
                await self.clock.sleep_until(next_second, stop)
                continue
            # A fake node's clock samples every second in turn, late if need be, so a test
            # is exact on a busy machine; the real one samples now (a gap is filled or lost).
            second = next_second if getattr(self.clock, "sequential", False) else now
            self.tick(second)
            next_second = second + 1
            await asyncio.sleep(0)
        self.close_all()
