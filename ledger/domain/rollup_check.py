"""What `BooksReader.check_rollups` gives (`ledger.domain.ports`): the stored hourly
rollups held against the billed seconds they sum (`gpuledger verify --db`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RollupDifference:
    """One hour of one attribution, periods and region where the stored hourly rollups
    differ from the billed seconds they sum."""

    hour_start: int
    attribution: tuple[str, str, str, str]  # provider, reseller, tenant, sku
    service_period: str
    booking_period: str
    region: str | None
    rolled_seconds: int  # what the rollups hold (0: no row)
    billed_seconds: int  # what the bitmaps give


@dataclass(frozen=True, slots=True)
class RollupCheck:
    """The hourly rollups compared with the billed seconds: how many rows (hour,
    attribution, service and booking period, region) and seconds they hold, and where
    they differ (the first few, and how many in all)."""

    rows: int
    gpu_seconds: int
    differences: tuple[RollupDifference, ...]
    differences_total: int
