"""A fake NVML: the pynvml functions the agent uses (`ledger.collect.gpus.NVML_FUNCTIONS`),
driven by a scenario and a clock, so the whole agent runs without a GPU.

A scenario is a TOML file (or the same as a dict):

    [clock]                  # only for `gpuledger collect --fake-node`: the agent's clock
    start = "2026-12-07T09:00:00Z"   # the node's time when the agent starts (default: now)
    speed = 10               # scenario seconds per real second (default 1)

    [[gpus]]
    uuid = "GPU-fake-0"
    name = "NVIDIA H100 80GB HBM3"
    appears = 0              # seconds after clock.start it is on the bus (default 0)
    lost = 200               # from then on NVML answers GPU_IS_LOST for it (optional)
    back = 260               # ...until then (optional)
    utilisation_percent = 80
    memory_used_bytes = 1073741824

A lost GPU still counts in nvmlDeviceGetCount, as on a real node whose GPU fell off the
bus: every query of it raises NVMLError with NVML_ERROR_GPU_IS_LOST.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from ledger.domain.errors import InputError
from ledger.domain.instants import parse_instant

NVML_ERROR_GPU_IS_LOST = 15  # pynvml's value
NVML_ERROR_UNINITIALIZED = 1


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


@dataclass(frozen=True)
class FakeGpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    appears: int = 0
    lost: int | None = None
    back: int | None = None
    utilisation_percent: int = 0
    memory_used_bytes: int = 0

    def present(self, offset: float) -> bool:
        return offset >= self.appears

    def is_lost(self, offset: float) -> bool:
        return self.lost is not None and self.lost <= offset and (self.back is None or offset < self.back)


@dataclass(frozen=True)
class Scenario:
    start: int  # Unix seconds: the node's time when the agent starts
    speed: float
    gpus: tuple[FakeGpu, ...]


def load_scenario(path: str | Path, now: float | None = None) -> Scenario:
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"fake node scenario {path}: {exc}") from exc
    return scenario_of(document, now)


def scenario_of(document: dict, now: float | None = None) -> Scenario:
    clock = document.get("clock", {})
    start = int(time.time() if now is None else now)
    if "start" in clock:
        parsed = parse_instant(str(clock["start"]), allow_fraction=False)
        if parsed is None:
            raise InputError(f"fake node scenario: clock.start {clock['start']!r} is not an RFC 3339 instant")
        start = parsed
    try:
        gpus = tuple(FakeGpu(**gpu) for gpu in document.get("gpus", []))
    except TypeError as exc:
        raise InputError(f"fake node scenario: a [[gpus]] entry: {exc}") from exc
    return Scenario(start=start, speed=float(clock.get("speed", 1)), gpus=gpus)


class FakeNvml:
    """The functions of pynvml the agent calls, answering from `gpus` at `clock()`, a
    Unix time; offsets in the scenario count from `start`."""

    NVMLError = NVMLError
    NVML_ERROR_GPU_IS_LOST = NVML_ERROR_GPU_IS_LOST

    def __init__(self, gpus: tuple[FakeGpu, ...], start: int, clock: Callable[[], float]) -> None:
        self.gpus, self.start, self.clock = gpus, start, clock
        self.initialised = False

    def _offset(self) -> float:
        if not self.initialised:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        return self.clock() - self.start

    def nvmlInit(self) -> None:  # noqa: N802 (pynvml's names)
        self.initialised = True

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.initialised = False

    def _present(self) -> list[FakeGpu]:
        offset = self._offset()
        return [gpu for gpu in self.gpus if gpu.present(offset)]

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self._present())

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:  # noqa: N802
        gpu = self._present()[index]
        self._check(gpu)
        return gpu

    def _check(self, gpu: FakeGpu) -> None:
        if gpu.is_lost(self._offset()):
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)

    def nvmlDeviceGetUUID(self, handle: FakeGpu) -> str:  # noqa: N802
        self._check(handle)
        return handle.uuid

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str:  # noqa: N802
        self._check(handle)
        return handle.name

    def nvmlDeviceGetUtilizationRates(self, handle: FakeGpu) -> SimpleNamespace:  # noqa: N802
        self._check(handle)
        return SimpleNamespace(gpu=handle.utilisation_percent, memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: FakeGpu) -> SimpleNamespace:  # noqa: N802
        self._check(handle)
        return SimpleNamespace(used=handle.memory_used_bytes, total=0, free=0)
