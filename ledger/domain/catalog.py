"""The catalog: members, SKUs, and the versioned retail prices and agreements.

A `Catalog` is an immutable value. `ledger.domain.catalog_file.parse_catalog` turns a
TOML file into a `CatalogFileContent` (or a `CatalogError`); `Catalog.merge` applies it
to the catalog already stored, all or nothing, with the rules of SPEC.md; the store
persists what `merge` says is new. Prices are kept as integers of 1/10,000 yen per GPU-hour, so every
amount derived from them is exact.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace

from ledger.domain import catalog_rules as rules
from ledger.domain.errors import CatalogError, PeriodError
from ledger.domain.instants import format_utc
from ledger.domain.periods import calendar
from ledger.domain.registry import Grant, Registration

PRICE_SCALE = 10_000  # prices are stored in 1/10,000 yen per GPU-hour

DEFAULT_SETTINGS = {
    "currency": "JPY",
    "timezone": "Asia/Tokyo",
    "tax_rate_percent": 10,
    "acceptance_horizon_days": 35,
    "require_registered_gpus": False,
}
# Settings SPEC.md added later (2026-12-07): unset until a file sets them, which any later
# file may do once; their defaults apply meanwhile.
LATE_SETTINGS = {
    "dispute_window_days": 60,
    "payment_terms_days": 30,
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
    require_registered_gpus: bool = False
    dispute_window_days_set: int | None = None  # None: no file has set it (LATE_SETTINGS)
    payment_terms_days_set: int | None = None
    loaded: bool = False  # False until a first file has set the top-level settings
    members: dict[str, Member] = field(default_factory=dict)
    skus: dict[str, Sku] = field(default_factory=dict)
    prices: dict[PriceKey, tuple[PriceVersion, ...]] = field(default_factory=dict)
    agreements: dict[AgreementKey, tuple[AgreementVersion, ...]] = field(default_factory=dict)
    gpus: dict[str, Registration] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)

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

    @property
    def dispute_window_days(self) -> int:
        stated = self.dispute_window_days_set
        return LATE_SETTINGS["dispute_window_days"] if stated is None else stated

    @property
    def payment_terms_days(self) -> int:
        stated = self.payment_terms_days_set
        return LATE_SETTINGS["payment_terms_days"] if stated is None else stated

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
        settings = _merged_settings(self, incoming)
        members = _merged_entities(self.members, incoming.members, "member", "other details")
        rules.check_new_members(self.members, members)
        skus = _merged_entities(self.skus, incoming.skus, "SKU", "another description")
        prices = _merged_versions(self.prices, incoming.prices, closed_before, _price_rules(members, skus))
        agreements = _merged_versions(
            self.agreements, incoming.agreements, closed_before, _agreement_rules(members, skus)
        )
        gpus = rules.merged_gpus(self.gpus, incoming.gpus, members, skus)
        grants = rules.merged_grants(
            self.grants, incoming.grants, members, skus, calendar(settings["timezone"]), closed_before
        )
        return replace(
            self, **settings, loaded=True, members=members, skus=skus, prices=prices,
            agreements=agreements, gpus=gpus, grants=grants,
        )

    def region_of(self, gpu_uuid: str, provider: str, sku: str) -> str | None:
        """The region of a GPU's registration when it has this provider and SKU, else None."""
        registration = self.gpus.get(gpu_uuid)
        if registration is None or (registration.provider, registration.sku) != (provider, sku):
            return None
        return registration.region


@dataclass(frozen=True)
class CatalogFileContent:
    """A parsed catalog file: what it states, before it is merged into the stored one."""

    settings: dict
    members: list[Member]
    skus: list[Sku]
    prices: list[tuple[PriceKey, PriceVersion]]
    agreements: list[tuple[AgreementKey, AgreementVersion]]
    gpus: list[Registration] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)


# -- the load rules (SPEC.md, "Catalog (TOML)") ------------------------------------------


def _merged_settings(current: Catalog, incoming: CatalogFileContent) -> dict:
    """Top-level settings: a first load sets them (or the defaults); later loads may only
    repeat them (an omitted setting stays as stored)."""
    settings = {}
    for name, default in DEFAULT_SETTINGS.items():
        stated = incoming.settings.get(name)
        if not current.loaded:
            settings[name] = default if stated is None else stated
            continue
        stored = getattr(current, name)
        if stated is not None and stated != stored:
            raise CatalogError(f"{name} is {stored!r} in the loaded catalog; a file may not change it to {stated!r}")
        settings[name] = stored
    for name in LATE_SETTINGS:
        stored, stated = getattr(current, f"{name}_set"), incoming.settings.get(name)
        if stored is not None and stated is not None and stated != stored:
            raise CatalogError(f"{name} is {stored!r} in the loaded catalog; a file may not change it to {stated!r}")
        settings[f"{name}_set"] = stated if stored is None else stored
    if settings["currency"] != "JPY":
        raise CatalogError(f"currency {settings['currency']!r} is not supported: only JPY")
    try:
        calendar(settings["timezone"])
    except PeriodError as exc:
        raise CatalogError(str(exc)) from exc
    return settings


def _merged_entities(current: dict, incoming: list, what: str, differs: str) -> dict:
    """Members or SKUs: new ones are added; a known one may only be repeated identically."""
    merged = dict(current)
    for entity in incoming:
        existing = merged.get(entity.id)
        if existing is not None and existing != entity:
            raise CatalogError(f"{what} {entity.id!r} is already loaded with {differs}")
        merged[entity.id] = entity
    return merged


def _price_rules(members: dict, skus: dict):
    def check(key: PriceKey) -> str:
        reseller, sku = key
        if reseller not in members:
            raise CatalogError(f"retail price for unknown reseller {reseller!r}")
        if sku not in skus:
            raise CatalogError(f"retail price for unknown SKU {sku!r}")
        return f"retail price of ({reseller}, {sku})"

    return check


def _agreement_rules(members: dict, skus: dict):
    def check(key: AgreementKey) -> str:
        reseller, provider, sku = key
        for member in (reseller, provider):
            if member not in members:
                raise CatalogError(f"agreement names unknown member {member!r}")
        if sku not in skus:
            raise CatalogError(f"agreement for unknown SKU {sku!r}")
        if reseller == provider:
            raise CatalogError(f"agreement of {reseller!r} with itself: a member reselling its own GPUs needs none")
        return f"agreement ({reseller}, {provider}, {sku})"

    return check


def _merged_versions(current: dict, incoming: list, closed_before: int | None, check) -> dict:
    """Versions of prices or agreements: `check(key)` refuses unknown references and names
    the key; a version identical to a stored one changes nothing, another value under the
    same key and start refuses the file, and a new one may not start in a closed period."""
    merged = {k: list(v) for k, v in current.items()}
    for key, version in incoming:
        what = check(key)
        versions = merged.setdefault(key, [])
        same_start = [v for v in versions if v.effective_from == version.effective_from]
        if same_start:
            if same_start[0] != version:
                raise CatalogError(
                    f"{what} from {format_utc(version.effective_from)} is already loaded with another value"
                )
            continue
        if closed_before is not None and version.effective_from < closed_before:
            raise CatalogError(f"{what} takes effect at {format_utc(version.effective_from)}, inside a closed period")
        versions.append(version)
    return {k: tuple(sorted(v)) for k, v in merged.items()}
