"""Catalog files (TOML): parsed and checked on their own, before any stored state is read.

SPEC.md, "Catalog (TOML)". The shape is `schemas.catalog`'s; this module adds what the
shape cannot say (instants in whole seconds, positive prices, exactly one kind of
agreement, no key twice with different values) and builds the domain's values.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from pydantic import ValidationError

from ledger.domain.catalog import (
    DEFAULT_SETTINGS,
    LATE_SETTINGS,
    AgreementKey,
    AgreementVersion,
    CatalogFileContent,
    Member,
    PriceKey,
    PriceVersion,
    Sku,
    price_to_units,
)
from ledger.domain.errors import CatalogError
from ledger.domain.instants import parse_instant
from ledger.domain.registry import Grant, Registration
from schemas import catalog as wire


def _instant(value: str | datetime, where: str, name: str = "effective_from") -> int:
    if isinstance(value, datetime):
        # A fraction was refused on the file's text already (parse_catalog): TOML's
        # parser drops digits past microseconds, so the value alone cannot show it.
        if value.tzinfo is None or value.microsecond:
            raise CatalogError(f"{where}: {name} needs an offset and whole seconds")
        return int(value.timestamp())
    instant = parse_instant(value, allow_fraction=False)
    if instant is None:
        raise CatalogError(
            f"{where}: {name} {value!r} is not an RFC 3339 instant with an offset in whole seconds"
        )
    return instant


def _positive_price(text: str, where: str) -> int:
    units = price_to_units(text)
    if units <= 0:
        raise CatalogError(f"{where}: price {text!r} must be greater than 0")
    return units


def _price(price: wire.RetailPrice, where: str) -> tuple[PriceKey, PriceVersion]:
    version = PriceVersion(_instant(price.effective_from, where), _positive_price(price.yen_per_gpu_hour, where))
    return (price.reseller, price.sku), version


def _agreement(agreement: wire.Agreement, where: str) -> tuple[AgreementKey, AgreementVersion]:
    fixed, share = agreement.wholesale_yen_per_gpu_hour, agreement.provider_share_bps
    if (fixed is None) == (share is None):
        raise CatalogError(f"{where}: give exactly one of wholesale_yen_per_gpu_hour and provider_share_bps")
    version = AgreementVersion(
        _instant(agreement.effective_from, where),
        _positive_price(fixed, where) if fixed is not None else None,
        share,
    )
    return (agreement.reseller, agreement.provider, agreement.sku), version


def gpu(entry: wire.Gpu, where: str) -> Registration:
    retired = entry.retired_from
    return Registration(
        entry.uuid, entry.provider, entry.sku, entry.region,
        _instant(entry.registered_from, where, "registered_from"),
        None if retired is None else _instant(retired, where, "retired_from"),
    )


def _grant(entry: wire.Grant) -> Grant:
    return Grant(
        entry.id, entry.funder, entry.reseller, entry.tenant, entry.amount_yen,
        None if entry.skus is None else frozenset(entry.skus), entry.first_period, entry.last_period,
        None if entry.providers is None else frozenset(entry.providers),
    )


# An unquoted TOML date-time with a fractional second (quoted strings are checked exactly).
_UNQUOTED_FRACTION = re.compile(
    rb"(effective_from|registered_from|retired_from)\s*=\s*([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]+)"
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
            f"{source}: {fraction.group(1).decode()} {fraction.group(2).decode(errors='replace')!r} has a "
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
    prices = [_price(price, f"{source}: retail_prices[{i}]") for i, price in enumerate(parsed.retail_prices)]
    agreements = [_agreement(a, f"{source}: agreements[{i}]") for i, a in enumerate(parsed.agreements)]
    gpus = [gpu(entry, f"{source}: gpus[{i}]") for i, entry in enumerate(parsed.gpus)]
    grants = [_grant(entry) for entry in parsed.grants]
    settings = {
        name: getattr(parsed, name) for name in (*DEFAULT_SETTINGS, *LATE_SETTINGS) if getattr(parsed, name) is not None
    }
    content = CatalogFileContent(settings, members, skus, prices, agreements, gpus, grants)
    check_unique_within_file(content, source)
    return content


def check_unique_within_file(content: CatalogFileContent, source: str) -> None:
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
    for what, ids in (("GPU", [g.uuid for g in content.gpus]), ("grant", [g.id for g in content.grants])):
        repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
        if repeated:
            raise CatalogError(f"{source}: {what} {repeated[0]!r} appears more than once")
