"""Who holds each GPU: the attribution sources, and the static file of bare-metal rentals.

A source answers, for the GPUs on the bus at a second, who holds each one: a `Holder`
(reseller and tenant, perhaps the SKU), or the reason it cannot say (`Unattributed`: a
pod with no tenant, a GPU shared by several holders). A GPU it does not mention is idle.
Idle and unattributed seconds are not billed; the agent counts both.

The static source reads a TOML file of rentals, again whenever it changes:

    [[rentals]]
    gpu_uuid = "GPU-5f1c0b9e-..."   # or "*": every GPU of the node
    reseller = "kddi"
    tenant = "acme"
    sku = "H100"                    # optional: else the node's [skus] map of NVML names
    from = "2026-12-01T00:00:00+09:00"   # optional, inclusive
    until = "2027-01-01T00:00:00+09:00"  # optional, exclusive

A rental naming a GPU wins over a `*` one; two of the same kind at once leave the GPU
unattributed (`overlapping_rentals`): the agent never picks one tenant over another.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ledger.collect.gpus import GpuReading
from ledger.domain.errors import InputError
from ledger.domain.events import is_gpu_uuid, is_tenant
from ledger.domain.instants import parse_instant
from ledger.domain.records import MEMBER_ID

EVERY_GPU = "*"


@dataclass(frozen=True)
class Holder:
    reseller: str
    tenant: str
    sku: str | None = None  # None: the SKU of the GPU's NVML name


@dataclass(frozen=True)
class Unattributed:
    reason: str  # a metric label: `no_tenant`, `shared`, `overlapping_rentals`, ...


class AttributionSource(Protocol):
    def holders(self, second: int, gpus: Sequence[GpuReading]) -> dict[str, Holder | Unattributed]:
        """Who holds each of `gpus` during `second`, by UUID; a GPU left out is idle."""
        ...


def checked_holder(reseller: object, tenant: object, sku: object, where: str) -> Holder:
    """A holder whose ids an event can carry (SPEC.md's schema rules), or InputError."""
    if not isinstance(reseller, str) or not MEMBER_ID.fullmatch(reseller):
        raise InputError(f"{where}: reseller {reseller!r} is not a member id")
    if not is_tenant(tenant):
        raise InputError(f"{where}: tenant {tenant!r} is not 1-64 printable ASCII characters")
    if sku is not None and (not isinstance(sku, str) or not sku):
        raise InputError(f"{where}: sku {sku!r} is not a non-empty string")
    return Holder(reseller, tenant, sku)


@dataclass(frozen=True)
class Rental:
    gpu_uuid: str
    holder: Holder
    start: int | None
    end: int | None

    def covers(self, second: int) -> bool:
        return (self.start is None or self.start <= second) and (self.end is None or second < self.end)


def _instant(value: object, where: str) -> int | None:
    if value is None:
        return None
    instant = parse_instant(str(value), allow_fraction=False)
    if instant is None:
        raise InputError(f"{where}: {value!r} is not an RFC 3339 instant with an offset")
    return instant


def rentals_of(document: dict, where: str) -> list[Rental]:
    rentals = []
    for number, entry in enumerate(document.get("rentals", []), start=1):
        at = f"{where}, rental {number}"
        unknown = set(entry) - {"gpu_uuid", "reseller", "tenant", "sku", "from", "until"}
        if unknown:
            raise InputError(f"{at}: unknown keys {sorted(unknown)}")
        gpu = entry.get("gpu_uuid")
        if gpu != EVERY_GPU and not is_gpu_uuid(gpu):
            raise InputError(f"{at}: gpu_uuid {gpu!r} is neither a GPU UUID nor '*'")
        holder = checked_holder(entry.get("reseller"), entry.get("tenant"), entry.get("sku"), at)
        start, end = _instant(entry.get("from"), at), _instant(entry.get("until"), at)
        if start is not None and end is not None and end <= start:
            raise InputError(f"{at}: until is not after from")
        rentals.append(Rental(gpu, holder, start, end))
    return rentals


class StaticRentals:
    """`AttributionSource` from a TOML file of rentals, read again when it changes. A
    file that no longer parses keeps the last good rentals (`error` says why)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.stamp: tuple[int, int] | None = None
        self.rentals: list[Rental] = []
        self.error: str | None = None
        self.reload(strict=True)

    def reload(self, strict: bool = False) -> None:
        try:
            status = os.stat(self.path)
            stamp = (status.st_mtime_ns, status.st_size)
            if stamp == self.stamp:
                return
            document = tomllib.loads(self.path.read_text(encoding="utf-8"))
            self.rentals, self.stamp, self.error = rentals_of(document, str(self.path)), stamp, None
        except (OSError, tomllib.TOMLDecodeError, InputError) as exc:
            if strict:
                raise InputError(f"rentals file {self.path}: {exc}") from exc
            self.error = str(exc)

    def holders(self, second: int, gpus: Sequence[GpuReading]) -> dict[str, Holder | Unattributed]:
        self.reload()
        return holders_from_rentals(self.rentals, second, gpus)


def holders_from_rentals(rentals: list[Rental], second: int, gpus: Sequence[GpuReading]) -> dict[str, Holder | Unattributed]:
    found: dict[str, Holder | Unattributed] = {}
    for gpu in gpus:
        named = {r.holder for r in rentals if r.gpu_uuid == gpu.uuid and r.covers(second)}
        every = {r.holder for r in rentals if r.gpu_uuid == EVERY_GPU and r.covers(second)}
        chosen = named or every
        if len(chosen) == 1:
            found[gpu.uuid] = next(iter(chosen))
        elif chosen:
            found[gpu.uuid] = Unattributed("overlapping_rentals")
    return found
