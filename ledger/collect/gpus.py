"""The node's GPUs through NVML: which are on the bus, their UUIDs, names and evidence.

`NvmlGpus` reads through any object with the pynvml functions it uses (`NVML_FUNCTIONS`):
the real `pynvml` module (nvidia-ml-py) on a GPU node, `ledger.collect.fake_nvml` in
tests and on a fake node. Every second it enumerates the devices again, so a GPU that
appears is seen at once, and one that falls off the bus (NVML answers GPU_IS_LOST, or
the device cannot be read) is counted as lost and bills nothing until it is back.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.domain.errors import ServiceUnavailable

# What the agent asks of NVML; the fake implements exactly these.
NVML_FUNCTIONS = (
    "nvmlInit", "nvmlShutdown", "nvmlDeviceGetCount", "nvmlDeviceGetHandleByIndex", "nvmlDeviceGetUUID",
    "nvmlDeviceGetName", "nvmlDeviceGetUtilizationRates", "nvmlDeviceGetMemoryInfo",
)


@dataclass(frozen=True)
class GpuReading:
    uuid: str
    name: str
    utilisation_percent: int | None  # evidence only: None when NVML would not say
    memory_used_bytes: int | None


@dataclass(frozen=True)
class Reading:
    """One look at the node: the GPUs on the bus, and how many are present but lost."""

    gpus: tuple[GpuReading, ...]
    lost: int


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class NvmlGpus:
    """The GPUs as NVML sees them, through `nvml` (the pynvml module or a fake)."""

    def __init__(self, nvml) -> None:
        self.nvml = nvml

    def start(self) -> None:
        try:
            self.nvml.nvmlInit()
        except self.nvml.NVMLError as exc:  # no driver, no library, no permission
            raise ServiceUnavailable(f"NVML cannot be started on this machine: {exc}") from exc

    def stop(self) -> None:
        self.nvml.nvmlShutdown()

    def read(self) -> Reading:
        nvml = self.nvml
        found: list[GpuReading] = []
        lost = 0
        for index in range(nvml.nvmlDeviceGetCount()):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                uuid = _text(nvml.nvmlDeviceGetUUID(handle))
                name = _text(nvml.nvmlDeviceGetName(handle))
            except nvml.NVMLError:
                lost += 1  # GPU_IS_LOST, or any device NVML cannot read: nothing billed
                continue
            found.append(GpuReading(uuid, name, *self._evidence(handle)))
        return Reading(tuple(found), lost)

    def _evidence(self, handle) -> tuple[int | None, int | None]:
        nvml = self.nvml
        try:
            utilisation = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except nvml.NVMLError:  # e.g. NOT_SUPPORTED on a MIG-enabled GPU
            utilisation = None
        try:
            memory = int(nvml.nvmlDeviceGetMemoryInfo(handle).used)
        except nvml.NVMLError:
            memory = None
        return utilisation, memory


def real_nvml():
    """The pynvml module of nvidia-ml-py (it loads libnvidia-ml only at nvmlInit)."""
    # Imported when the agent runs on real GPUs, not by tests and fake nodes.
    import pynvml

    return pynvml
