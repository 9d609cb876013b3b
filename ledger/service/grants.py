"""Grants as their funders and resellers follow them: amount, draws per booking period,
balance, and what lapsed.

Who sees what: the funder sees the grants it funds (it agreed to fund that tenant), the
reseller the grants of its tenants, an auditor or the operator all; any other member
none. A balance lapses for good once no covered usage can still arrive: the acceptance
horizon after the end of the grant's last period.
"""

from __future__ import annotations

import time

from ledger.domain.access import Caller
from ledger.domain.catalog import Catalog
from ledger.domain.periods import next_period
from ledger.domain.ports import Store
from ledger.domain.registry import Grant
from ledger.service.credit_history import History


def visible(caller: Caller, grant: Grant) -> bool:
    return caller.member is None or caller.member in (grant.funder, grant.reseller)


def _lapse_final(catalog: Catalog, grant: Grant, now: int) -> bool:
    end = catalog.calendar.bounds(grant.last_period)[1]
    return now >= end + catalog.acceptance_horizon_days * 86400


def _document(catalog: Catalog, grant: Grant, drawn: dict[str, int], restored: dict[str, int], now: int) -> dict:
    total = sum(drawn.values())
    balance = grant.amount_yen - total + sum(restored.values())
    lapsed = balance if balance and _lapse_final(catalog, grant, now) else 0
    return {
        "id": grant.id, "funder": grant.funder, "reseller": grant.reseller, "tenant": grant.tenant,
        "amount_yen": grant.amount_yen, "skus": None if grant.skus is None else sorted(grant.skus),
        "providers": None if grant.providers is None else sorted(grant.providers),
        "first_period": grant.first_period, "last_period": grant.last_period,
        "drawn": drawn, "drawn_yen": total, "restored": restored, "restored_yen": sum(restored.values()),
        "balance_yen": balance, "lapsed_yen": lapsed,
    }


async def report(store: Store, caller: Caller, through: str | None = None, now: int | None = None) -> dict:
    """The caller's grants with their draws per booking period through `through` (default:
    the current period), from one consistent view of the books."""
    now = int(time.time()) if now is None else now
    async with store.snapshot() as reader:
        catalog = await reader.catalog()
        through = through or catalog.calendar.period_of(now)
        shown = {gid: g for gid, g in sorted(catalog.grants.items()) if visible(caller, g)}
        drawn: dict[str, dict[str, int]] = {gid: {} for gid in shown}
        restored: dict[str, dict[str, int]] = {gid: {} for gid in shown}
        if shown:
            history = await History.through(reader, through, catalog)
            await history.walk_to(next_period(through))
            for period, found in sorted(history.periods.items()):
                for per_period, amounts in ((drawn, found.drawn), (restored, found.restored)):
                    for gid, amount in amounts.items():
                        if gid in per_period and amount:
                            per_period[gid][period] = amount
    return {"through": through, "grants": [_document(catalog, g, drawn[gid], restored[gid], now) for gid, g in shown.items()]}
