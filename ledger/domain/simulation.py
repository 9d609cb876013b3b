"""A simulated fleet's usage reports: what `gpuledger simulate` sends, and when.

Each GPU of the fleet (`ledger.domain.fleet`) is rented to a tenant of a reseller that
can bill it for a random session, then idles, then gets a new tenant. While rented, its
first collector reports every GPU-second once, in reports of `window` seconds (1 by
default: one event per GPU-second). Around those reports, as real collectors do:

- **late**: a share of the reports is held back for minutes, well inside the catalog's
  acceptance horizon (never `too_late`);
- **re-sent**: a share is sent again a little later, the same bytes (a duplicate);
- **second collector**: on a share of the GPUs, a second collector reports the same
  GPU-seconds with the same attribution under its own source and event ids. SPEC.md bills
  a GPU-second once per attribution: whichever report arrives first bills it, the other
  is a duplicate, never a `conflict` (which only a different attribution makes).

Deterministic and pure: `Simulation(fleet, catalog, start, seed).advance(now)` returns
the reports due by `now` (Unix seconds), in the order to send them; the same seed gives
the same bytes for the same start however the clock is stepped, because every GPU draws
from its own generators and a report is never due before the second it covers has ended.
Runs with the same seed and another start repeat the pattern of sessions with new
event ids (tenants change with the time of day, `ledger.domain.fleet.Tenants`).
"""

from __future__ import annotations

import heapq
import random
import zlib
from dataclasses import dataclass
from typing import NamedTuple

import orjson

from ledger.domain.catalog import Catalog
from ledger.domain.events import MAX_SECONDS, usage_event
from ledger.domain.fleet import SimulatedGpu, Tenants, event_id, pick_reseller

ON_TIME = "on_time"
LATE = "late"
RESEND = "resend"
SECOND_COLLECTOR = "second_collector"

FOREVER = 1 << 62  # a state that never ends (a retired GPU stays idle)
# Late reports stay this far inside the horizon: a report is received when it is sent,
# and the sender may fall behind its own schedule for a while.
HORIZON_MARGIN_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """How the fleet behaves. Shares are fractions 0..1; delays are (min, max) seconds."""

    mean_session_seconds: int = 600
    mean_idle_seconds: int = 60
    late_share: float = 0.05
    late_delay_seconds: tuple[int, int] = (60, 600)
    resend_share: float = 0.02
    resend_delay_seconds: tuple[int, int] = (1, 30)
    second_collector_share: float = 0.25  # of the GPUs
    second_collector_lag_seconds: tuple[int, int] = (1, 5)

    @property
    def utilisation(self) -> float:
        """The long-run share of time a GPU is rented."""
        return self.mean_session_seconds / (self.mean_session_seconds + self.mean_idle_seconds)


class Report(NamedTuple):
    """One event to send at `send_at`. Sorted by (send_at, gpu_index, seq): unique."""

    send_at: int
    gpu_index: int
    seq: int
    kind: str  # ON_TIME, LATE, RESEND or SECOND_COLLECTOR
    raw: bytes
    start: int
    seconds: int


@dataclass
class Counts:
    """What was sent, by kind; `gpu_seconds` counts each simulated GPU-second once."""

    sent: int = 0
    reports: int = 0  # the first collector's, on time or late
    late: int = 0
    resent: int = 0
    second_collector: int = 0
    gpu_seconds: int = 0

    def add(self, reports: list[Report]) -> None:
        self.sent += len(reports)
        for report in reports:
            if report.kind in (ON_TIME, LATE):
                self.reports += 1
                self.gpu_seconds += report.seconds
                self.late += report.kind == LATE
            elif report.kind == RESEND:
                self.resent += 1
            else:
                self.second_collector += 1

    def as_dict(self) -> dict:
        return {
            "sent": self.sent, "reports": self.reports, "late": self.late, "resent": self.resent,
            "second_collector": self.second_collector, "gpu_seconds": self.gpu_seconds,
        }


def report_windows(gpus: int, rate: float | None, config: SimulationConfig, second_collectors: int) -> list[int]:
    """GPU-seconds per first-collector report, for each GPU, so that about `rate` events
    are sent per second in all (None: every GPU-second its own report).

    With `x` reports per second wanted from `gpus` GPUs, the windows are `k` and `k + 1`
    seconds, as many of each as makes x on average; never less than 1 second (a faster
    rate than the fleet can report in real time gets one report per GPU-second) nor more
    than SPEC.md's 3600.
    """
    if rate is None:
        return [1] * gpus
    events_per_report = 1 + config.resend_share + second_collectors / gpus
    wanted = rate / (config.utilisation * events_per_report)
    if wanted >= gpus:
        return [1] * gpus
    short = int(gpus // wanted)
    if short >= MAX_SECONDS:
        return [MAX_SECONDS] * gpus
    long = short + 1
    at_short = round((wanted - gpus / long) * short * long)
    at_short = min(max(at_short, 0), gpus)
    return [short] * at_short + [long] * (gpus - at_short)


class Simulation:
    """The reports of a fleet from `start` on; `advance` and `finish` hand them out."""

    def __init__(
        self, fleet: tuple[SimulatedGpu, ...], catalog: Catalog, start: int, seed: int,
        rate: float | None = None, config: SimulationConfig = SimulationConfig(),
    ) -> None:
        assert fleet, "a fleet of at least one GPU"
        self.config = config
        self.tenants = Tenants(catalog, seed, catalog.calendar.period_of(start))
        picker = random.Random(f"{seed}:second-collector")
        count = round(config.second_collector_share * len(fleet))
        seconds = set(picker.sample(range(len(fleet)), count))
        windows = report_windows(len(fleet), rate, config, len(seconds))
        self.late_delay = _late_delay(config, catalog.acceptance_horizon_days, max(windows))
        self.runs = [
            _GpuRun(self, index, gpu, windows[index], index in seconds, start, seed)
            for index, gpu in enumerate(fleet)
        ]
        self.windows = windows
        self.second_collectors = len(seconds)
        self._due: list[Report] = []
        self._finished = False

    @property
    def expected_rate(self) -> float:
        """Events per second on average over a long run."""
        config = self.config
        return sum(
            config.utilisation * (1 + config.resend_share + run.second) / run.window for run in self.runs
        )

    @property
    def held(self) -> int:
        """Reports generated and not yet due (late ones, re-sends, the second collector's)."""
        return len(self._due)

    def advance(self, now: int) -> list[Report]:
        """Every report due by `now`, in sending order."""
        assert not self._finished, "finish() ends a simulation"
        for run in self.runs:
            run.step(now)
        due = []
        while self._due and self._due[0].send_at <= now:
            due.append(heapq.heappop(self._due))
        return due

    def finish(self, end: int) -> list[Report]:
        """Stop at `end`: report every rented second before it, and hand out every report
        still held back (sent now, so every simulated GPU-second is reported)."""
        for run in self.runs:
            run.close(end)
        self._finished = True
        due = sorted(self._due)
        self._due.clear()
        return due

    def push(self, report: Report) -> None:
        heapq.heappush(self._due, report)


def _late_delay(config: SimulationConfig, horizon_days: int, window: int) -> tuple[int, int] | None:
    """The delays of late reports, within the acceptance horizon (None: none can be late)."""
    low, high = config.late_delay_seconds
    room = horizon_days * 86_400 - window - config.resend_delay_seconds[1] - HORIZON_MARGIN_SECONDS
    high = min(high, room)
    return (low, high) if config.late_share > 0 and low <= high else None


class _GpuRun:
    """One GPU's sessions and reports; draws only from its own generator."""

    def __init__(
        self, simulation: Simulation, index: int, gpu: SimulatedGpu, window: int, second: bool,
        start: int, seed: int,
    ) -> None:
        self.simulation, self.index, self.gpu = simulation, index, gpu
        self.window, self.phase, self.second = window, index % window, second
        self.rng = random.Random(f"{seed}:gpu:{gpu.uuid}")
        # Event ids also depend on the start: runs with the same seed never share an id.
        self.ids = random.Random(f"{seed}:{start}:ids:{gpu.uuid}")
        node = zlib.crc32(gpu.uuid.encode()) % 1000
        self.source = f"//{gpu.provider}/{gpu.region}/node-{node:03d}"
        self.second_source = f"//{gpu.provider}/{gpu.region}/telemetry-2"
        self.out_of_service = FOREVER if gpu.retired_from is None else gpu.retired_from
        self.seq = 0
        self.clock = self.run_from = start
        self.attribution: tuple[str, str] | None = None  # (reseller, tenant) while rented
        self.state_end = start
        if self.rng.random() < simulation.config.utilisation:
            self._rent(start)
        else:
            self._idle(start)

    def _length(self, mean: int) -> int:
        return max(1, round(self.rng.expovariate(1 / mean)))

    def _rent(self, at: int) -> None:
        if at >= self.out_of_service:
            self.attribution, self.state_end = None, FOREVER
            return
        reseller = pick_reseller(self.gpu, self.rng)
        self.attribution = (reseller, self.simulation.tenants.pick(reseller, at, self.rng))
        self.state_end = min(at + self._length(self.simulation.config.mean_session_seconds), self.out_of_service)
        self.run_from = at

    def _idle(self, at: int) -> None:
        self.attribution = None
        if at >= self.out_of_service:
            self.state_end = FOREVER
        else:
            self.state_end = at + self._length(self.simulation.config.mean_idle_seconds)

    def step(self, now: int) -> None:
        """Simulate up to `now`: report each window that ended, change state when due."""
        while self.clock < now:
            rented = self.attribution is not None
            window_end = self.clock + self.window - (self.clock - self.phase) % self.window
            stop = min(now, self.state_end, window_end if rented else FOREVER)
            self.clock = stop
            if rented and stop in (window_end, self.state_end):
                self._report(self.run_from, stop)
                self.run_from = stop
            if stop == self.state_end:
                (self._idle if rented else self._rent)(stop)

    def close(self, end: int) -> None:
        self.step(end)
        if self.attribution is not None and self.run_from < end:
            self._report(self.run_from, end)
            self.run_from = end

    def _report(self, start: int, end: int) -> None:
        """The first collector's report of [start, end), and what follows it."""
        rng, config, push = self.rng, self.simulation.config, self.simulation.push
        raw = self._event(event_id(self.ids), self.source, start, end - start)
        late = self.simulation.late_delay is not None and rng.random() < config.late_share
        sent_at = end + rng.randint(*self.simulation.late_delay) if late else end
        push(self._next(sent_at, LATE if late else ON_TIME, raw, start, end))
        if self.second:
            copy = self._event(event_id(self.ids), self.second_source, start, end - start)
            push(self._next(end + rng.randint(*config.second_collector_lag_seconds), SECOND_COLLECTOR, copy, start, end))
        if rng.random() < config.resend_share:
            push(self._next(sent_at + rng.randint(*config.resend_delay_seconds), RESEND, raw, start, end))

    def _next(self, send_at: int, kind: str, raw: bytes, start: int, end: int) -> Report:
        self.seq += 1
        return Report(send_at, self.index, self.seq, kind, raw, start, end - start)

    def _event(self, event_id_: str, source: str, start: int, seconds: int) -> bytes:
        reseller, tenant = self.attribution
        return orjson.dumps(usage_event(event_id_, source, start, {
            "provider": self.gpu.provider, "reseller": reseller, "tenant": tenant,
            "gpu_uuid": self.gpu.uuid, "sku": self.gpu.sku, "seconds": seconds,
        }))

