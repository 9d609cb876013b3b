"""The alliance capacity report: what each provider offered and what was used.

SPEC.md, "Alliance capacity report (per service period)". For every member to see: no
tenants, no prices. Registered capacity comes from the registry as it is now; billed
seconds are counted by their service period, whatever their booking period.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ledger.domain import daily
from ledger.domain.catalog import Catalog
from ledger.domain.rating import HourUsage


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


def utilisation(billed: int, registered: int) -> str | None:
    """Billed as a share of registered GPU-seconds, in percent to one place (None: nothing
    registered, as for billed GPUs of no registration)."""
    return f"{billed * 100 / registered:.1f}" if registered else None


def capacity_page(report: dict, catalog: Catalog, usages: Iterable[HourUsage]) -> dict:
    """The capacity report with its figures in GPU-hours and utilisation, and each provider's
    utilisation per day of the period: billed GPU-seconds (`usages`, every booking period)
    over the seconds its registered GPUs were in service that day."""
    period = report["period"]
    rows = [
        {**row, "utilisation_percent": utilisation(row["billed_gpu_seconds"], row["registered_gpu_seconds"])}
        for row in report["rows"]
    ]
    calendar_days = daily.days(catalog, period)
    registered: dict[str, list[int]] = {}
    for registration in catalog.gpus.values():
        per_day = [registration.seconds_in_service(start, end) for _, start, end in calendar_days]
        if any(per_day):
            totals = registered.setdefault(registration.provider, [0] * len(calendar_days))
            registered[registration.provider] = [a + b for a, b in zip(totals, per_day, strict=True)]
    billed = daily.series(catalog, period, ((u.provider, u.hour_start, u.seconds) for u in usages))
    billed_hours = {s["label"]: s["hours"] for s in billed["series"]}
    over_time = [
        {"label": provider, "percent": [
            round(hours * 3600 * 100 / seconds, 1) if seconds else None
            for hours, seconds in zip(billed_hours.get(provider, [0.0] * len(calendar_days)), per_day, strict=True)
        ]}
        for provider, per_day in sorted(registered.items())
    ]
    return {
        "kind": "capacity_report", "period": period, "rows": rows,
        "totals": {key: sum(r[key] for r in rows) for key in (
            "registered_gpus", "registered_gpu_seconds", "billed_gpu_seconds", "resold_gpu_seconds")},
        "utilisation": {"days": [name for name, _, _ in calendar_days], "series": over_time},
    }
