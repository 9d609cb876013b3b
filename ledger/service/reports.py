"""Reports for every member: the alliance capacity report (`ledger.domain.capacity`)."""

from __future__ import annotations

from ledger.domain.capacity import capacity_report
from ledger.domain.errors import PeriodError
from ledger.domain.ports import Store
from ledger.service.usage import known_period


async def capacity(store: Store, period: str) -> dict:
    """The capacity report of a service period, from one consistent view of the store."""
    if not known_period(period):
        raise PeriodError(f"period {period!r} is not of the form YYYY-MM (0001-01 to 9999-11)")
    async with store.snapshot() as reader:
        catalog = await reader.catalog()
        billed = await reader.capacity_billed(period)
    return capacity_report(period, catalog, billed)
