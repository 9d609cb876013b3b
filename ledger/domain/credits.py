"""Credits: what grants draw on a booking period's lines (SPEC.md, "Credits (grants)").

A grant covers the retail amount of its tenant's lines of the SKUs it lists, on the GPUs
of the providers it lists (when it lists providers), whose service period lies within
[first_period, last_period], until its amount is used up.
Draws are computed per booking period, periods in order, from each grant's balance at
the start of the period. Within a tenant invoice, lines are taken in statement order;
on each line, the grants covering it draw in ascending order of last_period, then id,
each `min(what is left of the line's retail_yen, what is left of its balance)`. Whole
yen; nothing is rounded.

When the funder is not the reseller, the funder owes the reseller every draw, without
consumption tax; when it is, the draw is simply the reseller's discount.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ledger.domain.rating import Line
from ledger.domain.registry import Grant


@dataclass
class Draws:
    """What grants drew in one booking period."""

    by_invoice: dict[tuple[str, str], int] = field(default_factory=dict)  # (reseller, tenant) -> yen
    by_grant: dict[str, int] = field(default_factory=dict)  # grant id -> yen (only > 0)
    # line key -> (grant id, yen) in the order they drew: what a return restores, last first
    by_line: dict = field(default_factory=dict)


def _covering(grants: Iterable[Grant], line: Line) -> list[Grant]:
    key = line.key
    found = [g for g in grants if g.covers(key.reseller, key.tenant, key.sku, key.service_period, key.provider)]
    return sorted(found, key=lambda g: (g.last_period, g.id))


def draw(lines: list[Line], grants: Mapping[str, Grant], balances: dict[str, int]) -> Draws:
    """The draws on a booking period's lines (in statement order); `balances` (grant id ->
    yen at the start of the period) are brought down by what is drawn."""
    result = Draws()
    if not grants:
        return result
    by_tenant: dict[tuple[str, str], list[Grant]] = {}
    for grant in grants.values():
        by_tenant.setdefault((grant.reseller, grant.tenant), []).append(grant)
    for line in lines:  # already in statement order: one invoice's lines together
        pair = (line.key.reseller, line.key.tenant)
        candidates = by_tenant.get(pair)
        if not candidates:
            continue
        left = line.retail_yen
        for grant in _covering(candidates, line):
            amount = min(left, balances.get(grant.id, 0))
            if amount <= 0:
                continue
            balances[grant.id] -= amount
            left -= amount
            result.by_grant[grant.id] = result.by_grant.get(grant.id, 0) + amount
            result.by_invoice[pair] = result.by_invoice.get(pair, 0) + amount
            result.by_line.setdefault(line.key, []).append((grant.id, amount))
            if left == 0:
                break
    return result


def opening_balances(grants: Mapping[str, Grant]) -> dict[str, int]:
    return {grant_id: grant.amount_yen for grant_id, grant in grants.items()}


def first_period_of(grants: Mapping[str, Grant]) -> str | None:
    """The earliest booking period any grant can draw in (its first covered service period)."""
    return min((grant.first_period for grant in grants.values()), default=None)
