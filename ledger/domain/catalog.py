"""The catalog: members, SKUs, and the versioned retail prices and agreements.

A `Catalog` is an immutable value. `parse_catalog` turns a TOML file into one (or a
`CatalogError`); `Catalog.merge` applies a newly loaded file to the catalog already
stored, all or nothing, with the rules of SPEC.md; the store persists what `merge`
says is new. Prices are kept as integers of 1/10,000 yen per GPU-hour, so every
amount derived from them is exact.
"""

from __future__ import annotations

import bisect
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from pydantic import ValidationError

from ledger.domain.errors import CatalogError, PeriodError
from ledger.domain.instants import format_utc, parse_instant
from ledger.domain.periods import calendar
from schemas import catalog as wire

PRICE_SCALE = 10_000  # prices are stored in 1/10,000 yen per GPU-hour

DEFAULT_SETTINGS = {
    "currency": "JPY",
    "timezone": "Asia/Tokyo",
    "tax_rate_percent": 10,
    "acceptance_horizon_days": 35,
}


def price_to_units(text: str) -> int:
    """`"860.5"` -> 8_605_000 (1/10,000 yen)."""
    whole, _, fraction = text.partition(".")
    return int(whole) * PRICE_SCALE + int(fraction.ljust(4, "0") or "0")


def units_to_price(units: int) -> str:
    """8_605_000 -> `"860.5"`: the shortest exact decimal string."""
    whole, fraction = divmod(units, PRICE_SCALE)
    if fraction == 0:
        return str(whole)
    return f"{whole}.{fraction:04d}".rstrip("0")


@dataclass(frozen=True, order=True)
class PriceVersion:
    effective_from: int
    yen_per_gpu_hour_units: int

    @property
    def yen_per_gpu_hour(self) -> str:
        return units_to_price(self.yen_per_gpu_hour_units)


@dataclass(frozen=True, order=True)
class AgreementVersion:
    effective_from: int
    wholesale_units: int | None  # fixed rate, 1/10,000 yen per GPU-hour
    share_bps: int | None  # share of the line's exact retail amount


@dataclass(frozen=True)
class Member:
    id: str
    name: str
    invoice_registration: str | None = None


@dataclass(frozen=True)
class Sku:
    id: str
    description: str = ""


PriceKey = tuple[str, str]  # (reseller, sku)
AgreementKey = tuple[str, str, str]  # (reseller, provider, sku)


def _version_at(versions: list, starts: list[int], instant: int):
    index = bisect.bisect_right(starts, instant) - 1
    return versions[index] if index >= 0 else None


@dataclass(frozen=True)
class Catalog:
    currency: str = "JPY"
    timezone: str = "Asia/Tokyo"
    tax_rate_percent: int = 10
    acceptance_horizon_days: int = 35
    loaded: bool = False  # False until a first file has set the top-level settings
    members: dict[str, Member] = field(default_factory=dict)
    skus: dict[str, Sku] = field(default_factory=dict)
    prices: dict[PriceKey, tuple[PriceVersion, ...]] = field(default_factory=dict)
    agreements: dict[AgreementKey, tuple[AgreementVersion, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Start instants per key, for bisect; derived, so kept out of equality.
        object.__setattr__(
            self, "_price_starts", {k: [v.effective_from for v in vs] for k, vs in self.prices.items()}
        )
        object.__setattr__(
            self,
            "_agreement_starts",
            {k: [v.effective_from for v in vs] for k, vs in self.agreements.items()},
        )

    @property
    def calendar(self):
        return calendar(self.timezone)

    def price_at(self, reseller: str, sku: str, instant: int) -> PriceVersion | None:
        key = (reseller, sku)
        versions = self.prices.get(key)
        if not versions:
            return None
        return _version_at(versions, self._price_starts[key], instant)

    def agreement_at(
        self, reseller: str, provider: str, sku: str, instant: int
    ) -> AgreementVersion | None:
        key = (reseller, provider, sku)
        versions = self.agreements.get(key)
        if not versions:
            return None
        return _version_at(versions, self._agreement_starts[key], instant)

    def price_starts(self, reseller: str, sku: str) -> list[int]:
        return self._price_starts.get((reseller, sku), [])

    def agreement_starts(self, reseller: str, provider: str, sku: str) -> list[int]:
        return self._agreement_starts.get((reseller, provider, sku), [])

    def priced_from(self, reseller: str, sku: str) -> int | None:
        """The first instant with a retail price: every later second has one."""
        starts = self._price_starts.get((reseller, sku))
        return starts[0] if starts else None

    def agreed_from(self, reseller: str, provider: str, sku: str) -> int | None:
        starts = self._agreement_starts.get((reseller, provider, sku))
        return starts[0] if starts else None

    # -- loading ---------------------------------------------------------------

    def merge(self, incoming: CatalogFileContent, closed_before: int | None) -> Catalog:
        """The catalog after loading `incoming`, or CatalogError if any rule refuses it.

        `closed_before` is the end of the last closed period (None when nothing is
        closed): a new version taking effect before it would reprice closed books.
        """
        settings = {}
        for name, default in DEFAULT_SETTINGS.items():
            stated = incoming.settings.get(name)
            if not self.loaded:
                settings[name] = default if stated is None else stated
                continue
            current = getattr(self, name)
            if stated is not None and stated != current:
                raise CatalogError(
                    f"{name} is {current!r} in the loaded catalog; a file may not change it to {stated!r}"
                )
            settings[name] = current
        if settings["currency"] != "JPY":
            raise CatalogError(f"currency {settings['currency']!r} is not supported: only JPY")
        try:
            calendar(settings["timezone"])
        except PeriodError as exc:
            raise CatalogError(str(exc)) from exc

        members = dict(self.members)
        for member in incoming.members:
            existing = members.get(member.id)
            if existing is not None and existing != member:
                raise CatalogError(f"member {member.id!r} is already loaded with other details")
            members[member.id] = member
        skus = dict(self.skus)
        for sku in incoming.skus:
            existing = skus.get(sku.id)
            if existing is not None and existing != sku:
                raise CatalogError(f"SKU {sku.id!r} is already loaded with another description")
            skus[sku.id] = sku

        def check_new_version(what: str, effective_from: int) -> None:
            if closed_before is not None and effective_from < closed_before:
                raise CatalogError(
                    f"{what} takes effect at {format_utc(effective_from)}, inside a closed period"
                )

        prices = {k: list(v) for k, v in self.prices.items()}
        for (reseller, sku), version in incoming.prices:
            if reseller not in members:
                raise CatalogError(f"retail price for unknown reseller {reseller!r}")
            if sku not in skus:
                raise CatalogError(f"retail price for unknown SKU {sku!r}")
            versions = prices.setdefault((reseller, sku), [])
            same_start = [v for v in versions if v.effective_from == version.effective_from]
            if same_start:
                if same_start[0] != version:
                    raise CatalogError(
                        f"retail price of ({reseller}, {sku}) from {format_utc(version.effective_from)} "
                        "is already loaded with another value"
                    )
                continue
            check_new_version(f"retail price of ({reseller}, {sku})", version.effective_from)
            versions.append(version)

        agreements = {k: list(v) for k, v in self.agreements.items()}
        for (reseller, provider, sku), version in incoming.agreements:
            for member in (reseller, provider):
                if member not in members:
                    raise CatalogError(f"agreement names unknown member {member!r}")
            if sku not in skus:
                raise CatalogError(f"agreement for unknown SKU {sku!r}")
            if reseller == provider:
                raise CatalogError(
                    f"agreement of {reseller!r} with itself: a member reselling its own GPUs needs none"
                )
            versions = agreements.setdefault((reseller, provider, sku), [])
            same_start = [v for v in versions if v.effective_from == version.effective_from]
            if same_start:
                if same_start[0] != version:
                    raise CatalogError(
                        f"agreement ({reseller}, {provider}, {sku}) from "
                        f"{format_utc(version.effective_from)} is already loaded with another value"
                    )
                continue
            check_new_version(f"agreement ({reseller}, {provider}, {sku})", version.effective_from)
            versions.append(version)

        return replace(
            self,
            **settings,
            loaded=True,
            members=members,
            skus=skus,
            prices={k: tuple(sorted(v)) for k, v in prices.items()},
            agreements={k: tuple(sorted(v)) for k, v in agreements.items()},
        )


@dataclass(frozen=True)
class CatalogFileContent:
    """A parsed catalog file: what it states, before it is merged into the stored one."""

    settings: dict
    members: list[Member]
    skus: list[Sku]
    prices: list[tuple[PriceKey, PriceVersion]]
    agreements: list[tuple[AgreementKey, AgreementVersion]]


def _instant(value: str | datetime, where: str) -> int:
    if isinstance(value, datetime):
        # A fraction was refused on the file's text already (parse_catalog): TOML's
        # parser drops digits past microseconds, so the value alone cannot show it.
        if value.tzinfo is None or value.microsecond:
            raise CatalogError(f"{where}: effective_from needs an offset and whole seconds")
        return int(value.timestamp())
    instant = parse_instant(value, allow_fraction=False)
    if instant is None:
        raise CatalogError(
            f"{where}: effective_from {value!r} is not an RFC 3339 instant with an offset in whole seconds"
        )
    return instant


def _positive_price(text: str, where: str) -> int:
    units = price_to_units(text)
    if units <= 0:
        raise CatalogError(f"{where}: price {text!r} must be greater than 0")
    return units


# An unquoted TOML date-time with a fractional second (quoted strings are checked exactly).
_UNQUOTED_FRACTION = re.compile(
    rb"effective_from\s*=\s*([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]+)"
)


def parse_catalog(data: bytes, source: str = "catalog") -> CatalogFileContent:
    """Parse a catalog file's bytes, checking everything that needs no stored state."""
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{source}: not valid TOML: {exc}") from exc
    fraction = _UNQUOTED_FRACTION.search(data)
    if fraction:
        raise CatalogError(
            f"{source}: effective_from {fraction.group(1).decode(errors='replace')!r} has a "
            "fraction of a second; instants are whole seconds"
        )
    try:
        parsed = wire.CatalogFile.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise CatalogError(f"{source}: {location}: {first['msg']}") from exc

    members = [Member(m.id, m.name, m.invoice_registration) for m in parsed.members]
    skus = [Sku(s.id, s.description) for s in parsed.skus]
    prices = []
    for index, price in enumerate(parsed.retail_prices):
        where = f"{source}: retail_prices[{index}]"
        prices.append(
            (
                (price.reseller, price.sku),
                PriceVersion(
                    _instant(price.effective_from, where),
                    _positive_price(price.yen_per_gpu_hour, where),
                ),
            )
        )
    agreements = []
    for index, agreement in enumerate(parsed.agreements):
        where = f"{source}: agreements[{index}]"
        fixed, share = agreement.wholesale_yen_per_gpu_hour, agreement.provider_share_bps
        if (fixed is None) == (share is None):
            raise CatalogError(
                f"{where}: give exactly one of wholesale_yen_per_gpu_hour and provider_share_bps"
            )
        agreements.append(
            (
                (agreement.reseller, agreement.provider, agreement.sku),
                AgreementVersion(
                    _instant(agreement.effective_from, where),
                    _positive_price(fixed, where) if fixed is not None else None,
                    share,
                ),
            )
        )
    settings = {
        name: getattr(parsed, name)
        for name in DEFAULT_SETTINGS
        if getattr(parsed, name) is not None
    }
    content = CatalogFileContent(settings, members, skus, prices, agreements)
    _check_unique_within_file(content, source)
    return content


def _check_unique_within_file(content: CatalogFileContent, source: str) -> None:
    def check(pairs: Iterable[tuple[object, object]], what: str) -> None:
        seen: dict = {}
        for key, value in pairs:
            if key in seen and seen[key] != value:
                raise CatalogError(f"{source}: {what} {key!r} is given twice with different values")
            seen[key] = value

    check(((m.id, m) for m in content.members), "member")
    check(((s.id, s) for s in content.skus), "SKU")
    check((((k, v.effective_from), v) for k, v in content.prices), "retail price")
    check((((k, v.effective_from), v) for k, v in content.agreements), "agreement")
