"""statement.json's lines, recomputed from the evidence's GPU-seconds and the catalog.

SPEC.md, "Rating": a line's retail is floor(seconds * price / 3600), its wholesale the
agreement's formula, each with exact arithmetic on the prices' fractions and one floor.
Returns (auditor.returns) use the same formulas on an original line's seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from auditor.catalog import Catalog
from auditor.errors import VerificationError
from auditor.evidence import UsageKey
from auditor.instants import format_instant

FILE = "statement.json"


def _fail(what: str) -> VerificationError:
    return VerificationError(f"{FILE}: {what}")


@dataclass(frozen=True)
class Line:
    reseller: str
    tenant: str
    provider: str
    sku: str
    service_period: str
    retail_price_from: int
    agreement_from: int | None
    gpu_seconds: int
    price_text: str
    price: Fraction
    retail_yen: int
    wholesale_yen: int

    @property
    def key(self) -> tuple:
        # Strings compare by code point, instants as instants; a null agreement_from
        # (provider == reseller) sorts first, though it never meets a non-null one on
        # otherwise equal key fields.
        agreement = (0, 0) if self.agreement_from is None else (1, self.agreement_from)
        return (self.reseller, self.tenant, self.provider, self.sku, self.service_period,
                self.retail_price_from, agreement)

    @property
    def label(self) -> str:
        return f"({self.reseller} {self.tenant} {self.provider} {self.sku} {self.service_period})"

    @property
    def versions(self) -> str:
        agreement = "none" if self.agreement_from is None else format_instant(self.agreement_from)
        return f"retail price from {format_instant(self.retail_price_from)}, agreement from {agreement}"


def amounts(key: UsageKey, seconds: int, catalog: Catalog) -> tuple[Fraction, int, int]:
    """(price, retail_yen, wholesale_yen) of `seconds` seconds of the line `key` (SPEC.md's
    formulas, one floor each), with the catalog's versions the key names."""
    reseller, _, provider, sku, _, retail_from, agreement_from = key
    price = catalog.retail[(reseller, sku)].by_start[retail_from].yen_per_gpu_hour
    retail = seconds * price.numerator // (3600 * price.denominator)
    if agreement_from is None:
        return price, retail, 0
    agreement = catalog.agreements[(reseller, provider, sku)].by_start[agreement_from]
    if agreement.wholesale_yen_per_gpu_hour is not None:
        rate = agreement.wholesale_yen_per_gpu_hour
        return price, retail, seconds * rate.numerator // (3600 * rate.denominator)
    return price, retail, seconds * price.numerator * agreement.provider_share_bps // (36_000_000 * price.denominator)


def recompute_lines(usage: dict[UsageKey, int], catalog: Catalog) -> list[Line]:
    lines = []
    for key, seconds in usage.items():
        price, retail, wholesale = amounts(key, seconds, catalog)
        lines.append(Line(*key, seconds, price_text(price), price, retail, wholesale))
    lines.sort(key=lambda line: line.key)
    return lines


def price_text(price: Fraction) -> str:
    # The exact decimal of a price of at most 4 fractional digits, for messages.
    whole, rest = divmod(price.numerator * 10_000 // price.denominator, 10_000)
    return str(whole) if not rest else f"{whole}.{rest:04d}".rstrip("0")


def compare_lines(stated: list[Line], recomputed: list[Line]) -> None:
    i = j = 0
    while i < len(stated) or j < len(recomputed):
        if j == len(recomputed) or (i < len(stated) and stated[i].key < recomputed[j].key):
            line = stated[i]
            raise _fail(
                f"line {i + 1} {line.label}: no GPU-second of the evidence rates into it "
                f"({line.versions})"
            )
        if i == len(stated) or recomputed[j].key < stated[i].key:
            line = recomputed[j]
            raise _fail(
                f"lacks the line {line.label} of {line.gpu_seconds} GPU-seconds recomputed from "
                f"the evidence ({line.versions})"
            )
        mine, theirs = stated[i], recomputed[j]
        where = f"line {i + 1} {mine.label}"
        if mine.gpu_seconds != theirs.gpu_seconds:
            raise _fail(f"{where}: gpu_seconds is {mine.gpu_seconds}, recomputed {theirs.gpu_seconds}")
        if mine.price != theirs.price:
            raise _fail(
                f"{where}: retail_yen_per_gpu_hour is {mine.price_text}, the catalog's price from "
                f"{format_instant(theirs.retail_price_from)} is {price_text(theirs.price)}"
            )
        if mine.retail_yen != theirs.retail_yen:
            raise _fail(f"{where}: retail_yen is {mine.retail_yen}, recomputed {theirs.retail_yen}")
        if mine.wholesale_yen != theirs.wholesale_yen:
            raise _fail(f"{where}: wholesale_yen is {mine.wholesale_yen}, recomputed {theirs.wholesale_yen}")
        i += 1
        j += 1


