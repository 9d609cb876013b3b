"""Returns: voided seconds of a closed booking period's line, given back in a later period.

SPEC.md, "Corrections (voids and returns)". Seconds voided while their booking period B
was open simply leave B's lines. Seconds voided once B was closed are returned in the
first open booking period P: one return per original line of B with seconds voided into
P. With S the original line's seconds (as stored in B's statement), R0 the seconds of it
returned in booking periods before P and R those returned in P, a return gives back

    amount(S - R0) - amount(S - R0 - R)

of the line's retail (and wholesale) formula, so a line and all its returns always add
up to the amount of the seconds still billed. It gives back first what the tenant paid
on the line (its retail less the grants' draws on it, less what earlier returns gave
back), then restores the grants that drew on it, the one that drew last first, each up
to what it drew less what was restored to it before.

Everything here is computed from the history of one original line, in booking-period
order, so that a return of P never depends on anything but stored statements, the
seconds voided, and the draws the line's own period made.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ledger.domain.catalog import Catalog
from ledger.domain.rating import HourUsage, Line, LineKey, rate


@dataclass(frozen=True, slots=True)
class ReturnedSeconds:
    """Seconds of one original line, voided after its period B closed, returned in P."""

    booking_period: str  # B, the closed period whose statement holds the original line
    key: LineKey
    return_period: str  # P
    gpu_seconds: int


@dataclass(frozen=True, slots=True)
class Original:
    """An original line as its closed period's statement holds it, and what grants drew
    on it, in draw order."""

    line: Line  # gpu_seconds is S, as stored
    draws: tuple[tuple[str, int], ...]  # (grant id, yen), in the order they drew


@dataclass(frozen=True, slots=True)
class Return:
    booking_period: str
    return_period: str
    line: Line  # the original line's key and versions; gpu_seconds = R, the seconds returned
    retail_yen: int
    wholesale_yen: int
    tenant_refund_yen: int
    credit_restored_yen: int
    restored: tuple[tuple[str, int], ...]  # (grant id, yen) the return gives back to each grant

    @property
    def key(self) -> LineKey:
        return self.line.key

    @property
    def gpu_seconds(self) -> int:
        return self.line.gpu_seconds


def _amounts(line: Line, seconds: int) -> tuple[int, int]:
    """(retail, wholesale) of the line's formula for `seconds` seconds."""
    priced = Line(line.key, seconds, line.price, line.agreement)
    return priced.retail_yen, priced.wholesale_yen


def statement_order(item: Return) -> tuple:
    """SPEC.md: returns sort by reseller, tenant, provider, sku, service_period,
    booking_period, retail_price_from, agreement_from (no agreement first)."""
    key = item.key
    return (key.reseller, key.tenant, key.provider, key.sku, key.service_period, item.booking_period,
            key.retail_price_from, key.agreement_from)


def returns_of_line(original: Original, returned: list[ReturnedSeconds]) -> list[Return]:
    """Every return of one original line, in booking-period order (`returned`: its
    seconds per return period, at most one entry per period)."""
    line = original.line
    total = line.gpu_seconds
    paid = line.retail_yen - sum(amount for _, amount in original.draws)  # T before any return
    restorable = dict(original.draws)  # what each grant may still get back from this line
    order = [grant for grant, _ in reversed(original.draws)]  # the one that drew last first
    before = 0  # R0
    found = []
    for part in sorted(returned, key=lambda r: r.return_period):
        seconds = part.gpu_seconds
        assert 0 < seconds <= total - before, "a line never returns more seconds than it billed"
        high_retail, high_wholesale = _amounts(line, total - before)
        low_retail, low_wholesale = _amounts(line, total - before - seconds)
        retail, wholesale = high_retail - low_retail, high_wholesale - low_wholesale
        refund = min(retail, paid)
        restored_total = retail - refund
        restored, left = [], restored_total
        for grant in order:
            amount = min(left, restorable[grant])
            if amount > 0:
                restored.append((grant, amount))
                restorable[grant] -= amount
                left -= amount
        assert left == 0, "what a line's grants drew covers what its returns restore"
        found.append(Return(
            part.booking_period, part.return_period, Line(line.key, seconds, line.price, line.agreement),
            retail, wholesale, refund, restored_total, tuple(restored),
        ))
        paid -= refund
        before += seconds
    return found


def returns_through(
    period: str, returned: Iterable[ReturnedSeconds], originals: dict[tuple[str, LineKey], Original],
) -> list[Return]:
    """Every return of every booking period up to and including `period`, in period and
    statement order."""
    by_line: dict[tuple[str, LineKey], list[ReturnedSeconds]] = defaultdict(list)
    for part in returned:
        if part.return_period <= period:
            by_line[(part.booking_period, part.key)].append(part)
    found = [r for origin, parts in by_line.items() for r in returns_of_line(originals[origin], parts)]
    return sorted(found, key=lambda r: (r.return_period, *statement_order(r)))


def returned_seconds(catalog: Catalog, voided: Iterable) -> list[ReturnedSeconds]:
    """Voided seconds of closed booking periods (`ports.VoidedBits` with `returned_in`),
    per original line: each second falls in the line of its attribution, service period
    and the versions in effect then, as when it was rated."""
    seconds: dict[tuple[str, str, LineKey], int] = defaultdict(int)
    for part in voided:
        key = part.key
        provider, reseller, tenant, sku = key.attribution
        usage = HourUsage(reseller, tenant, provider, sku, key.service_period, key.hour_start,
                          part.bits.bit_count(), part.bits)
        for line in rate(catalog, [usage]):
            seconds[(key.booking_period, part.returned_in, line.key)] += line.gpu_seconds
    return [ReturnedSeconds(booked, line_key, returned_in, count)
            for (booked, returned_in, line_key), count in sorted(seconds.items())]


def restorations(returns: Iterable[Return]) -> dict[str, dict[str, int]]:
    """Per booking period, what its returns restored to each grant."""
    found: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item in returns:
        for grant, amount in item.restored:
            found[item.return_period][grant] += amount
    return {period: dict(grants) for period, grants in found.items()}
