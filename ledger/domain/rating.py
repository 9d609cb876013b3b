"""Rating, invoices and netting: a booking period's billed seconds -> its statement.

Everything here is exact integer arithmetic with one floor where SPEC.md puts it: per
line for amounts, per invoice for tax. Prices are in 1/10,000 yen per GPU-hour
(`ledger.domain.catalog.PRICE_SCALE`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import NamedTuple

from ledger.domain.catalog import PRICE_SCALE, AgreementVersion, Catalog, PriceVersion
from ledger.domain.metering import HOUR_SECONDS
from ledger.domain.statement import (
    GrantDraw,
    MemberInvoice,
    Return,
    Statement,
    StatementLine,
    TenantInvoice,
    Transfer,
)


class HourUsage(NamedTuple):
    """Seconds of one attribution in one hour; `bits` is set when the hour must be split.

    A named tuple rather than a dataclass: a booking period reads one per attribution
    and hour (hundreds of thousands for a member with many tenants), and tuples are
    made, hashed and compared at C speed."""

    reseller: str
    tenant: str
    provider: str
    sku: str
    service_period: str
    hour_start: int
    seconds: int
    bits: int | None = None
    region: str | None = None  # read by the usage API only


class LineKey(NamedTuple):
    """What makes a line: its attribution, service period and versions; lines sort by
    it field by field (a named tuple, for the same reason as `HourUsage`)."""

    reseller: str
    tenant: str
    provider: str
    sku: str
    service_period: str
    retail_price_from: int
    agreement_from: int  # -1 when provider == reseller (no agreement)


class Line(NamedTuple):
    """Billed seconds of one line key and the versions that price them (a named tuple, as
    `HourUsage`)."""

    key: LineKey
    gpu_seconds: int
    price: PriceVersion
    agreement: AgreementVersion | None

    @property
    def retail_yen(self) -> int:
        return self.gpu_seconds * self.price.yen_per_gpu_hour_units // (HOUR_SECONDS * PRICE_SCALE)

    @property
    def wholesale_yen(self) -> int:
        if self.agreement is None:
            return 0
        if self.agreement.wholesale_units is not None:
            return self.gpu_seconds * self.agreement.wholesale_units // (HOUR_SECONDS * PRICE_SCALE)
        return (
            self.gpu_seconds
            * self.price.yen_per_gpu_hour_units
            * self.agreement.share_bps
            // (HOUR_SECONDS * PRICE_SCALE * 10_000)
        )


def split_hours(catalog: Catalog) -> set[int]:
    """Hours in which some version starts after the hour's first second.

    Seconds in such an hour may fall under two versions, so rating needs their bits;
    every other hour is priced whole by the versions in effect at its start.
    """
    starts = {v.effective_from for vs in catalog.prices.values() for v in vs}
    starts |= {v.effective_from for vs in catalog.agreements.values() for v in vs}
    return {s - s % HOUR_SECONDS for s in starts if s % HOUR_SECONDS}


def _segments(catalog: Catalog, usage: HourUsage) -> list[tuple[int, int]]:
    """(first second, seconds) of the parts of the hour under one pair of versions."""
    hour_end = usage.hour_start + HOUR_SECONDS
    cuts = {
        s
        for s in catalog.price_starts(usage.reseller, usage.sku)
        if usage.hour_start < s < hour_end
    }
    if usage.provider != usage.reseller:
        cuts |= {
            s
            for s in catalog.agreement_starts(usage.reseller, usage.provider, usage.sku)
            if usage.hour_start < s < hour_end
        }
    if not cuts:
        return [(usage.hour_start, usage.seconds)]
    assert usage.bits is not None, "an hour with a version change needs its bits"
    edges = [usage.hour_start, *sorted(cuts), hour_end]
    segments = []
    for first, end in zip(edges, edges[1:], strict=False):
        width = end - first
        mask = ((1 << width) - 1) << (first - usage.hour_start)
        count = (usage.bits & mask).bit_count()
        if count:
            segments.append((first, count))
    return segments


def _terms(catalog: Catalog, usage: HourUsage, first: int) -> tuple[PriceVersion, AgreementVersion | None]:
    """The price and agreement versions in effect at second `first` of a usage's hour."""
    price = catalog.price_at(usage.reseller, usage.sku, first)
    assert price is not None, "billed seconds always have a price (checked on intake)"
    if usage.provider == usage.reseller:
        return price, None
    agreement = catalog.agreement_at(usage.reseller, usage.provider, usage.sku, first)
    assert agreement is not None, "billed seconds always have an agreement"
    return price, agreement


def rate(catalog: Catalog, usages: Iterable[HourUsage]) -> list[Line]:
    """Group billed seconds into lines by attribution, service period and versions."""
    split = split_hours(catalog)
    seconds_by_key: dict[LineKey, int] = defaultdict(int)
    versions: dict[LineKey, tuple[PriceVersion, AgreementVersion | None]] = {}
    # Versions looked up once per (attribution, sku, first second): many tenants share an hour.
    terms_at: dict[tuple[str, str, str, int], tuple[PriceVersion, AgreementVersion | None]] = {}
    for usage in usages:
        # An hour no version starts within is priced whole (no bits needed, none read).
        segments = _segments(catalog, usage) if usage.hour_start in split else ((usage.hour_start, usage.seconds),)
        for first, count in segments:
            terms_key = (usage.reseller, usage.provider, usage.sku, first)
            terms = terms_at.get(terms_key)
            if terms is None:
                terms = terms_at[terms_key] = _terms(catalog, usage, first)
            price, agreement = terms
            key = LineKey(
                usage.reseller,
                usage.tenant,
                usage.provider,
                usage.sku,
                usage.service_period,
                price.effective_from,
                agreement.effective_from if agreement else -1,
            )
            seconds_by_key[key] += count
            versions[key] = terms
    return [
        Line(key, seconds_by_key[key], *versions[key]) for key in sorted(seconds_by_key)
    ]


def tax_yen(subtotal: int, tax_rate_percent: int) -> int:
    """Consumption tax of an invoice, rounded toward zero (floored unless a return makes the
    subtotal negative: a refund's tax is given back to the same yen)."""
    tax = abs(subtotal) * tax_rate_percent // 100
    return tax if subtotal >= 0 else -tax


def net_transfers(nets: dict[str, int]) -> list[tuple[str, str, int]]:
    """Debtor pays creditor, largest first, ties by member id; at most members - 1 transfers."""
    remaining = dict(nets)
    transfers = []
    while True:
        debtors = [m for m, v in remaining.items() if v < 0]
        creditors = [m for m, v in remaining.items() if v > 0]
        if not debtors or not creditors:
            assert not debtors and not creditors, "nets must sum to zero"
            return transfers
        debtor = min(debtors, key=lambda m: (remaining[m], m))
        creditor = min(creditors, key=lambda m: (-remaining[m], m))
        amount = min(-remaining[debtor], remaining[creditor])
        transfers.append((debtor, creditor, amount))
        remaining[debtor] += amount
        remaining[creditor] -= amount


def _statement_line(line: Line, price_text: dict[PriceVersion, str]) -> StatementLine:
    key = line.key
    price = price_text.get(line.price)
    if price is None:
        price = price_text[line.price] = line.price.yen_per_gpu_hour
    return StatementLine(
        key.reseller, key.tenant, key.provider, key.sku, key.service_period, key.retail_price_from,
        key.agreement_from if line.agreement else None,
        line.gpu_seconds, price, line.retail_yen, line.wholesale_yen,
    )


def _grant_draws(catalog: Catalog, drawn: dict[str, int], restored: dict[str, int]) -> tuple[GrantDraw, ...]:
    """One entry per grant whose draws or restorations in the period are more than 0."""
    return tuple(
        GrantDraw(gid, grant.funder, grant.reseller, grant.tenant, drawn.get(gid, 0), restored.get(gid, 0))
        for gid in sorted(set(drawn) | set(restored))
        if drawn.get(gid, 0) > 0 or restored.get(gid, 0) > 0
        for grant in (catalog.grants[gid],)
    )


def _statement_return(item, price_text: dict[PriceVersion, str]) -> Return:
    line = _statement_line(item.line, price_text)
    return Return(
        line.reseller, line.tenant, line.provider, line.sku, line.service_period, item.booking_period,
        line.retail_price_from, line.agreement_from, item.gpu_seconds, line.retail_yen_per_gpu_hour,
        item.retail_yen, item.wholesale_yen, item.tenant_refund_yen, item.credit_restored_yen,
    )


def _sums(lines: list[Line], draws, returns) -> tuple[dict, dict, dict, dict, dict]:
    """Per invoice, what its lines less its returns add up to: the tenant invoices' retail
    and credit, the member invoices' wholesale; per grant, what was drawn and restored."""
    tenant_retail: dict[tuple[str, str], int] = defaultdict(int)
    tenant_credit: dict[tuple[str, str], int] = defaultdict(int)
    member_subtotals: dict[tuple[str, str], int] = defaultdict(int)
    for line in lines:
        key = line.key
        tenant_retail[(key.reseller, key.tenant)] += line.retail_yen
        if key.provider != key.reseller:
            member_subtotals[(key.provider, key.reseller)] += line.wholesale_yen
    drawn = dict(draws.by_grant) if draws is not None else {}
    for pair, amount in (draws.by_invoice.items() if draws is not None else ()):
        tenant_credit[pair] += amount
    restored: dict[str, int] = defaultdict(int)
    for item in returns:
        key = item.key
        tenant_retail[(key.reseller, key.tenant)] -= item.retail_yen
        tenant_credit[(key.reseller, key.tenant)] -= item.credit_restored_yen
        if key.provider != key.reseller:
            member_subtotals[(key.provider, key.reseller)] -= item.wholesale_yen
        for grant_id, amount in item.restored:
            restored[grant_id] += amount
    return tenant_retail, tenant_credit, member_subtotals, drawn, restored


def statement(period: str, catalog: Catalog, lines: list[Line], closed: bool, draws=None, returns=()) -> Statement:
    """The settlement statement of SPEC.md (`Statement.to_document` is its JSON).

    `draws` (`ledger.domain.credits.Draws`) are the period's credits: each tenant
    invoice's `credit_yen`, the statement's `grant_draws`, and the reimbursements that
    funders owe resellers in the nets. None: nothing drew. `returns`
    (`ledger.domain.returns.Return`, in statement order) are what the period gives back
    of closed periods' lines: invoices and reimbursements are net of them.
    """
    tenant_retail, tenant_credit, member_subtotals, drawn, restored = _sums(lines, draws, returns)

    def invoice(subtotal: int) -> tuple[int, int, int]:
        tax = tax_yen(subtotal, catalog.tax_rate_percent)
        return subtotal, tax, subtotal + tax

    price_text: dict[PriceVersion, str] = {}  # the few versions' decimal text, made once
    tenant_invoices = tuple(
        TenantInvoice(reseller, tenant, retail, credit, *invoice(retail - credit))
        for (reseller, tenant), retail in sorted(tenant_retail.items())
        for credit in (tenant_credit.get((reseller, tenant), 0),)
    )
    member_invoices = tuple(
        MemberInvoice(provider, reseller, *invoice(subtotal))
        for (provider, reseller), subtotal in sorted(member_subtotals.items())
    )
    nets = dict.fromkeys(sorted(catalog.members), 0)
    for member_invoice in member_invoices:
        nets[member_invoice.provider] += member_invoice.total_yen
        nets[member_invoice.reseller] -= member_invoice.total_yen
    for gid in set(drawn) | set(restored):
        grant = catalog.grants[gid]
        if grant.funder != grant.reseller:  # the funder owes the reseller its draws less restorations
            amount = drawn.get(gid, 0) - restored.get(gid, 0)
            nets[grant.funder] -= amount
            nets[grant.reseller] += amount
    return Statement(
        period, catalog.currency, closed,
        tuple(_statement_line(line, price_text) for line in lines),
        tenant_invoices, member_invoices,
        tuple(_statement_return(item, price_text) for item in returns),
        _grant_draws(catalog, drawn, restored),
        nets,
        tuple(Transfer(debtor, creditor, amount) for debtor, creditor, amount in net_transfers(nets)),
    )
