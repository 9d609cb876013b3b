"""The alliance capacity report: what each provider offered and what was used.

SPEC.md, "Alliance capacity report (per service period)". For every member to see: no
tenants, no prices. Registered capacity comes from the registry as it is now; billed
seconds are counted by their service period, whatever their booking period.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ledger.domain.catalog import Catalog


@dataclass(frozen=True, slots=True)
class BilledSeconds:
    """Billed GPU-seconds of one service period, by provider, SKU, region and whether resold."""

    provider: str
    sku: str
    region: str | None  # of the uuid's registration when it has this provider and SKU
    resold: bool  # reseller != provider
    seconds: int


def _order(key: tuple[str, str, str | None]) -> tuple:
    provider, sku, region = key
    return (provider, sku, (0, "") if region is None else (1, region))  # null before any region


def capacity_report(period: str, catalog: Catalog, billed: Iterable[BilledSeconds]) -> dict:
    start, end = catalog.calendar.bounds(period)
    rows: dict[tuple[str, str, str | None], list[int]] = {}
    for registration in catalog.gpus.values():
        seconds = registration.seconds_in_service(start, end)
        if seconds:
            row = rows.setdefault((registration.provider, registration.sku, registration.region), [0, 0, 0, 0])
            row[0] += 1
            row[1] += seconds
    for found in billed:
        row = rows.setdefault((found.provider, found.sku, found.region), [0, 0, 0, 0])
        row[2] += found.seconds
        if found.resold:
            row[3] += found.seconds
    return {
        "period": period,
        "rows": [
            {
                "provider": provider, "sku": sku, "region": region,
                "registered_gpus": figures[0], "registered_gpu_seconds": figures[1],
                "billed_gpu_seconds": figures[2], "resold_gpu_seconds": figures[3],
            }
            for (provider, sku, region), figures in sorted(rows.items(), key=lambda item: _order(item[0]))
            if any(figures)
        ],
    }
