"""Allocated seconds per GPU and minute, from once-a-second samples: the agent's core, pure.

The agent samples each GPU once a second (`Sample`: the GPU, the second, to whom it was
allocated, and the evidence). A `MinuteBook` holds the samples of the minutes still
open and, once a minute is over, turns it into `Run`s: the seconds of that minute that
one attribution held without a gap. Each run is one usage event (`ledger.collect.events`),
so a minute holds as many events as it has allocation edges: a GPU held for the whole
minute is one event of 60 seconds, one handed from one tenant to another mid-minute is
two, one released mid-minute is one partial event.

The billable quantity is allocated seconds, never utilisation: utilisation and memory
ride along as evidence. A second is billed only if it was sampled with an attribution:
a GPU off the bus, or held by no one the sources know, is not billed (the agent counts
it). A gap of at most `MAX_FILLED_GAP_SECONDS` missed samples (the agent's loop late by
a moment) is filled when the GPU had the same attribution on both sides of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MINUTE_SECONDS = 60
MAX_FILLED_GAP_SECONDS = 5


@dataclass(frozen=True, order=True)
class Attribution:
    """Who a GPU's second is billed to; the provider is the agent's own member."""

    reseller: str
    tenant: str
    sku: str


@dataclass(frozen=True)
class Sample:
    """One GPU during one second `[second, second + 1)`."""

    gpu_uuid: str
    second: int
    attribution: Attribution | None  # None: on the bus, attributed to no one (not billed)
    utilisation_percent: int | None = None
    memory_used_bytes: int | None = None


@dataclass(frozen=True)
class Run:
    """Seconds `[start, start + seconds)` of one minute that one attribution held."""

    gpu_uuid: str
    attribution: Attribution
    start: int
    seconds: int
    utilisation_percent: int | None  # mean over the run's samples, floored
    memory_used_bytes: int | None  # peak

    @property
    def minute(self) -> int:
        return minute_of(self.start)


def minute_of(second: int) -> int:
    """The first second of the minute that holds `second`."""
    return second - second % MINUTE_SECONDS


def runs_of(samples: Iterable[Sample]) -> list[Run]:
    """The runs of some samples: consecutive seconds of one GPU, one attribution and one
    minute. Unattributed samples bill nothing and end a run. Sorted by GPU and start."""
    ordered = sorted((s for s in samples if s.attribution is not None), key=lambda s: (s.gpu_uuid, s.second))
    runs: list[Run] = []
    current: list[Sample] = []
    for sample in ordered:
        if current and not _continues(current[-1], sample):
            runs.append(_run(current))
            current = []
        current.append(sample)
    if current:
        runs.append(_run(current))
    return runs


def _continues(last: Sample, sample: Sample) -> bool:
    return (
        sample.gpu_uuid == last.gpu_uuid and sample.second == last.second + 1
        and sample.attribution == last.attribution and minute_of(sample.second) == minute_of(last.second)
    )


def _run(samples: list[Sample]) -> Run:
    utilisations = [s.utilisation_percent for s in samples if s.utilisation_percent is not None]
    memories = [s.memory_used_bytes for s in samples if s.memory_used_bytes is not None]
    first = samples[0]
    assert first.attribution is not None
    return Run(
        gpu_uuid=first.gpu_uuid, attribution=first.attribution, start=first.second, seconds=len(samples),
        utilisation_percent=sum(utilisations) // len(utilisations) if utilisations else None,
        memory_used_bytes=max(memories) if memories else None,
    )


def filled_gap(before: Iterable[Sample], after: Iterable[Sample]) -> list[Sample]:
    """Samples for the seconds missed between two ticks (`before` at second b, `after` at
    a, b + 1 < a <= b + 1 + MAX_FILLED_GAP_SECONDS): each GPU that had one attribution at
    both ends held it through the gap. Anything else is left unbilled."""
    last = {s.gpu_uuid: s for s in before}
    filled: list[Sample] = []
    for sample in after:
        earlier = last.get(sample.gpu_uuid)
        if earlier is None or sample.attribution is None or earlier.attribution != sample.attribution:
            continue
        missed = sample.second - earlier.second - 1
        if not 0 < missed <= MAX_FILLED_GAP_SECONDS:
            continue
        filled.extend(
            Sample(sample.gpu_uuid, second, sample.attribution, earlier.utilisation_percent, earlier.memory_used_bytes)
            for second in range(earlier.second + 1, sample.second)
        )
    return filled


class MinuteBook:
    """The samples of the minutes not yet over, and the runs of those that are."""

    def __init__(self, samples: Iterable[Sample] = ()) -> None:
        self.open: dict[int, list[Sample]] = {}
        self.add(samples)

    def add(self, samples: Iterable[Sample]) -> None:
        for sample in samples:
            self.open.setdefault(minute_of(sample.second), []).append(sample)

    def close_before(self, second: int) -> tuple[list[int], list[Run]]:
        """Closes every minute that ends at or before `second`: their first seconds and runs."""
        over = sorted(minute for minute in self.open if minute + MINUTE_SECONDS <= second)
        return over, runs_of(sample for minute in over for sample in self.open.pop(minute))

    def close_all(self) -> tuple[list[int], list[Run]]:
        """Closes every minute, the current one as far as it was sampled (at shutdown)."""
        return self.close_before(max(self.open, default=0) + MINUTE_SECONDS)

    @property
    def held(self) -> int:
        return sum(len(samples) for samples in self.open.values())
