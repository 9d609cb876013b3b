"""statement.json's returns, recomputed from corrections.json (bundle format /3).

SPEC.md, "Corrections". For each return of the bundle's period P, corrections.json holds
its original line as its closed period B's statement stores it (S seconds), the draws on
that line in draw order, and what returns of booking periods before P gave back of it
(R0 seconds, the tenant refunds, and restorations per grant). R, the seconds returned in
P, comes from the voids (auditor.corrections). Then, with amount(n) the line's formula
for n seconds (one floor):

    retail_yen    = amount(S - R0) - amount(S - R0 - R), wholesale_yen alike
    T             = the original retail_yen - its draws - the earlier tenant refunds
    tenant_refund = min(retail_yen, T); credit_restored = retail_yen - tenant_refund

and the restored yen go back to the grants that drew on the line, the one that drew last
first, each up to what it drew less what was restored to it before.

R0 and the earlier refunds and restorations depend on earlier periods, so one bundle
cannot prove them (as with grants' balances): the bundles of those periods can.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from auditor.catalog import Catalog
from auditor.corrections import Corrections
from auditor.corrections import fail as corrections_fail
from auditor.corrections import shape as corrections_shape
from auditor.errors import VerificationError
from auditor.evidence import UsageKey
from auditor.grants import Grant
from auditor.instants import format_instant, parse_decimal, parse_instant
from auditor.lines import amounts
from auditor.strictjson import is_int

STATEMENT = "statement.json"
_KEY = ("reseller", "tenant", "provider", "sku", "service_period")
_RETURN = frozenset({*_KEY, "booking_period", "retail_price_from", "agreement_from", "gpu_seconds",
                     "retail_yen_per_gpu_hour", "retail_yen", "wholesale_yen", "tenant_refund_yen",
                     "credit_restored_yen"})
_LINE = frozenset({*_KEY, "retail_price_from", "agreement_from", "gpu_seconds", "retail_yen_per_gpu_hour",
                   "retail_yen", "wholesale_yen"})


@dataclass(frozen=True)
class Return:
    reseller: str
    tenant: str
    provider: str
    sku: str
    service_period: str
    booking_period: str
    retail_price_from: int
    agreement_from: int | None
    gpu_seconds: int
    price_text: str
    price: Fraction
    retail_yen: int
    wholesale_yen: int
    tenant_refund_yen: int
    credit_restored_yen: int

    @property
    def line_key(self) -> UsageKey:
        return (self.reseller, self.tenant, self.provider, self.sku, self.service_period,
                self.retail_price_from, self.agreement_from)

    @property
    def order(self) -> tuple:
        agreement = (0, 0) if self.agreement_from is None else (1, self.agreement_from)
        return (*self.line_key[:5], self.booking_period, self.retail_price_from, agreement)

    @property
    def label(self) -> str:
        return (f"({self.reseller} {self.tenant} {self.provider} {self.sku} {self.service_period}, "
                f"booked {self.booking_period})")


def _fail(what: str) -> VerificationError:
    return VerificationError(f"{STATEMENT}: {what}")


def _int(raw: dict, name: str, where: str, minimum: int, problem=_fail) -> int:
    value = raw[name]
    if not is_int(value) or value < minimum:
        raise problem(f"{where}: {name} is not an integer >= {minimum}")
    return value


def _key_fields(raw: dict, where: str, problem) -> tuple[str, str, str, str, str, int, int | None, str, Fraction]:
    for name in _KEY:
        if not isinstance(raw[name], str) or not raw[name]:
            raise problem(f"{where}: {name} is not a non-empty string")
    retail_from = parse_instant(raw["retail_price_from"])
    agreement_from = None if raw["agreement_from"] is None else parse_instant(raw["agreement_from"])
    if retail_from is None or (raw["agreement_from"] is not None and agreement_from is None):
        raise problem(f"{where}: retail_price_from or agreement_from is not a UTC instant")
    price = parse_decimal(raw["retail_yen_per_gpu_hour"])
    if price is None:
        raise problem(f"{where}: retail_yen_per_gpu_hour is not a decimal string")
    return (*(raw[name] for name in _KEY), retail_from, agreement_from, raw["retail_yen_per_gpu_hour"], price)


def parse_returns(raws: list) -> list[Return]:
    """The statement's returns, each well-formed, sorted as SPEC.md sorts them, each once."""
    found: list[Return] = []
    for index, raw in enumerate(raws, start=1):
        where = f"return {index}"
        if not isinstance(raw, dict) or raw.keys() != _RETURN:
            raise _fail(f"{where} is not an object of exactly the keys of a return")
        if not isinstance(raw["booking_period"], str):
            raise _fail(f"{where}: booking_period is not a string")
        *key, price_text, price = _key_fields(raw, where, _fail)
        item = Return(*key[:5], raw["booking_period"], *key[5:], _int(raw, "gpu_seconds", where, 1),
                      price_text, price, *(_int(raw, name, where, 0) for name in
                                           ("retail_yen", "wholesale_yen", "tenant_refund_yen", "credit_restored_yen")))
        if found and item.order <= found[-1].order:
            raise _fail(f"{where} {item.label}: out of order or repeated: returns sort by reseller, tenant, "
                        "provider, sku, service_period, booking_period, retail_price_from, agreement_from")
        found.append(item)
    return found


def check_returns(returns: list[Return], corrections: Corrections, catalog: Catalog,
                  grants: dict[str, Grant]) -> dict[str, int]:
    """Every return recomputed; what the period's returns restore to each grant."""
    expected = dict(corrections.returned)
    for index, item in enumerate(returns, start=1):
        seconds = expected.pop((item.booking_period, item.line_key), None)
        if seconds is None:
            raise _fail(f"return {index} {item.label}: no void of corrections.json returns seconds of that line")
        if seconds != item.gpu_seconds:
            raise _fail(f"return {index} {item.label}: gpu_seconds is {item.gpu_seconds}, the voids of "
                        f"corrections.json return {seconds}")
    for (booked, key), seconds in sorted(expected.items()):
        raise _fail(f"returns lack the return of {seconds} GPU-seconds of the line ({' '.join(key[:5])}, "
                    f"booked {booked}) that corrections.json's voids return")
    if len(corrections.returns) != len(returns):
        raise corrections_fail(f"returns has {len(corrections.returns)} entries, the statement {len(returns)}")
    restored: dict[str, int] = {}
    for index, (item, raw) in enumerate(zip(returns, corrections.returns, strict=True), start=1):
        for grant, amount in _check_one(index, item, raw, catalog, grants):
            restored[grant] = restored.get(grant, 0) + amount
    return restored


def _check_one(index: int, item: Return, raw: Any, catalog: Catalog,
               grants: dict[str, Grant]) -> list[tuple[str, int]]:
    where = f"return {index} {item.label}"
    corrections_shape(raw, frozenset({"booking_period", "original", "draws", "returned_before"}), f"return {index}")
    if raw["booking_period"] != item.booking_period:
        raise corrections_fail(f"return {index}: booking_period is {raw['booking_period']!r}, the statement's "
                               f"return {item.booking_period}")
    total = _original(index, item, raw["original"], catalog)
    draws = _pairs(raw["draws"], f"return {index} draws")
    for grant, _ in draws:
        if grant not in grants or not grants[grant].covers(item):
            raise corrections_fail(f"return {index}: grant {grant} drew on the line, but grants.json carries "
                                   "no such grant covering it")
    before = corrections_shape(raw["returned_before"], frozenset({"gpu_seconds", "tenant_refund_yen", "restored"}),
                               f"return {index} returned_before")
    r0 = _int(before, "gpu_seconds", f"return {index} returned_before", 0, corrections_fail)
    refunded = _int(before, "tenant_refund_yen", f"return {index} returned_before", 0, corrections_fail)
    restorable = dict(draws)
    for grant, amount in _pairs(before["restored"], f"return {index} returned_before restored"):
        if restorable.get(grant, 0) < amount:
            raise corrections_fail(f"return {index}: {amount} yen restored to {grant} before, more than it drew")
        restorable[grant] -= amount
    if r0 + item.gpu_seconds > total:
        raise corrections_fail(f"return {index}: {r0} + {item.gpu_seconds} seconds returned of a line of {total}")
    _, high_retail, high_wholesale = amounts(item.line_key, total - r0, catalog)
    _, low_retail, low_wholesale = amounts(item.line_key, total - r0 - item.gpu_seconds, catalog)
    retail, wholesale = high_retail - low_retail, high_wholesale - low_wholesale
    paid = amounts(item.line_key, total, catalog)[1] - sum(amount for _, amount in draws) - refunded
    if paid < 0:
        raise corrections_fail(f"return {index}: the draws and earlier refunds exceed the original line's retail_yen")
    refund = min(retail, paid)
    recomputed = {"retail_yen": retail, "wholesale_yen": wholesale, "tenant_refund_yen": refund,
                  "credit_restored_yen": retail - refund}
    for name, value in recomputed.items():
        if getattr(item, name) != value:
            raise _fail(f"{where}: {name} is {getattr(item, name)}, recomputed {value} (S {total}, R0 {r0}, "
                        f"R {item.gpu_seconds}, from corrections.json)")
    return _restorations(index, retail - refund, draws, restorable)


def _restorations(index: int, amount: int, draws: list[tuple[str, int]],
                  restorable: dict[str, int]) -> list[tuple[str, int]]:
    """The restored yen to each grant, the one that drew last on the line first."""
    found, left = [], amount
    for grant, _ in reversed(draws):
        take = min(left, restorable[grant])
        if take:
            found.append((grant, take))
            left -= take
    if left:
        raise corrections_fail(f"return {index}: restores {amount} yen, but the grants that drew on its line "
                               f"can take back only {amount - left}")
    return found


def _original(index: int, item: Return, raw: Any, catalog: Catalog) -> int:
    """The original line: the return's key and price, and amounts its S seconds rate to; S."""
    where = f"return {index} original"
    corrections_shape(raw, _LINE, where)
    *key, price_text, price = _key_fields(raw, where, corrections_fail)
    if tuple(key) != item.line_key or price_text != item.price_text:
        raise corrections_fail(f"{where}: its key fields or price differ from the statement's return {item.label}")
    seconds = _int(raw, "gpu_seconds", where, 1, corrections_fail)
    try:
        catalog_price, retail, wholesale = amounts(item.line_key, seconds, catalog)
    except KeyError:
        raise corrections_fail(f"{where}: no version of the catalog takes effect at "
                               f"{format_instant(item.retail_price_from)} for its line") from None
    if catalog_price != price or (raw["retail_yen"], raw["wholesale_yen"]) != (retail, wholesale):
        raise corrections_fail(f"{where}: {seconds} seconds at the catalog's versions rate to {retail} retail and "
                               f"{wholesale} wholesale yen at {catalog_price}, not what it says")
    return seconds


def _pairs(raw: Any, where: str) -> list[tuple[str, int]]:
    """A list of {"grant", "amount_yen"}, each grant once, amounts >= 1."""
    if not isinstance(raw, list):
        raise corrections_fail(f"{where} is not a list")
    found: list[tuple[str, int]] = []
    for entry in raw:
        corrections_shape(entry, frozenset({"grant", "amount_yen"}), where)
        if not isinstance(entry["grant"], str) or entry["grant"] in dict(found):
            raise corrections_fail(f"{where}: a grant that is not a string, or listed twice")
        found.append((entry["grant"], _int(entry, "amount_yen", where, 1, corrections_fail)))
    return found
