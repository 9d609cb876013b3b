"""catalog.json: members, SKUs and the versioned prices and agreements.

A version applies from its `effective_from` until the next version of the same key
(SPEC.md, "Catalog"): the retail price's key is (reseller, sku), an agreement's is
(reseller, provider, sku).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from auditor.errors import VerificationError
from auditor.instants import Periods, parse_decimal, parse_instant
from auditor.strictjson import JSONProblem, is_int, parse_document

FILE = "catalog.json"
_MEMBER_ID = re.compile(r"[a-z][a-z0-9-]{1,31}")
_REGISTRATION = re.compile(r"T[0-9]{13}")


@dataclass(frozen=True)
class RetailVersion:
    effective_from: int
    effective_from_text: str
    yen_per_gpu_hour: Fraction


@dataclass(frozen=True)
class AgreementVersion:
    effective_from: int
    effective_from_text: str
    wholesale_yen_per_gpu_hour: Fraction | None  # exactly one of these two is set
    provider_share_bps: int | None


@dataclass
class Versions:
    """The versions of one key, by `effective_from`."""

    starts: list[int] = field(default_factory=list)
    versions: list[Any] = field(default_factory=list)
    by_start: dict[int, Any] = field(default_factory=dict)

    def add(self, version: Any) -> bool:
        if version.effective_from in self.by_start:
            return False
        self.by_start[version.effective_from] = version
        return True

    def seal(self) -> None:
        self.starts = sorted(self.by_start)
        self.versions = [self.by_start[start] for start in self.starts]

    def at(self, instant: int) -> Any:
        """The version in effect at `instant`, or None."""
        index = bisect_right(self.starts, instant) - 1
        return self.versions[index] if index >= 0 else None

    def changes_within(self, start: int, end: int) -> list[int]:
        """The instants in (start, end) at which another version takes effect."""
        index = bisect_right(self.starts, start)
        found = []
        while index < len(self.starts) and self.starts[index] < end:
            found.append(self.starts[index])
            index += 1
        return found


@dataclass
class Catalog:
    currency: str
    timezone: str
    tax_rate_percent: int
    acceptance_horizon_days: int
    periods: Periods
    members: list[str]
    skus: set[str]
    retail: dict[tuple[str, str], Versions]
    agreements: dict[tuple[str, str, str], Versions]


def _fail(where: str, what: str) -> VerificationError:
    return VerificationError(f"{FILE}: {where}{what}")


def _keys(obj: Any, where: str, required: set[str], optional: frozenset[str] = frozenset()) -> None:
    if not isinstance(obj, dict):
        raise _fail(where, "is not an object")
    for name in sorted(required - obj.keys()):
        raise _fail(where, f"the key {name!r} is missing")
    for name in sorted(obj.keys() - required - optional):
        raise _fail(where, f"unexpected key {name!r}")


def _list(document: dict, name: str) -> list:
    value = document[name]
    if not isinstance(value, list):
        raise _fail("", f"{name} is not a list")
    return value


def parse_catalog(data: bytes) -> Catalog:
    try:
        document = parse_document(data)
    except JSONProblem as exc:
        raise _fail("", str(exc)) from None
    _keys(
        document,
        "",
        {"currency", "timezone", "tax_rate_percent", "acceptance_horizon_days", "members", "skus",
         "retail_prices", "agreements"},
    )
    zone_name, zone, tax, horizon = _settings(document)
    members = _members(document)
    skus = _skus(document)
    retail = _retail_prices(document, set(members), skus)
    agreements = _agreements(document, set(members), skus)
    for versions in (*retail.values(), *agreements.values()):
        versions.seal()
    return Catalog(
        currency=document["currency"],
        timezone=zone_name,
        tax_rate_percent=tax,
        acceptance_horizon_days=horizon,
        periods=Periods(zone),
        members=members,
        skus=skus,
        retail=retail,
        agreements=agreements,
    )


def _settings(document: dict) -> tuple[str, ZoneInfo, int, int]:
    """The top-level settings: (time zone name, time zone, tax rate, acceptance horizon)."""
    if document["currency"] != "JPY":
        raise _fail("", f"currency is {document['currency']!r}; JPY is the only currency")
    zone_name = document["timezone"]
    if not isinstance(zone_name, str) or not zone_name:
        raise _fail("", "timezone is not a time zone name")
    try:
        zone = ZoneInfo(zone_name)
    except (ValueError, OSError, LookupError) as exc:
        raise _fail("", f"timezone {zone_name!r} is not a known time zone ({exc})") from None
    tax = document["tax_rate_percent"]
    if not is_int(tax) or not 0 <= tax <= 100:
        raise _fail("", "tax_rate_percent is not a whole number 0-100")
    horizon = document["acceptance_horizon_days"]
    if not is_int(horizon) or horizon < 0:
        raise _fail("", "acceptance_horizon_days is not a whole number >= 0")
    return zone_name, zone, tax, horizon


def _members(document: dict) -> list[str]:
    members: list[str] = []
    for index, member in enumerate(_list(document, "members")):
        where = f"members[{index}]: "
        _keys(member, where, {"id", "name"}, frozenset({"invoice_registration"}))
        member_id = member["id"]
        if not isinstance(member_id, str) or _MEMBER_ID.fullmatch(member_id) is None:
            raise _fail(where, f"id {member_id!r} is not a member id (^[a-z][a-z0-9-]{{1,31}}$)")
        if member_id in members:
            raise _fail(where, f"the member {member_id} is listed twice")
        if not isinstance(member["name"], str):
            raise _fail(where, "name is not a string")
        registration = member.get("invoice_registration")
        if registration is not None and (
            not isinstance(registration, str) or _REGISTRATION.fullmatch(registration) is None
        ):
            raise _fail(where, "invoice_registration is neither null nor T and 13 digits")
        members.append(member_id)
    return members


def _skus(document: dict) -> set[str]:
    skus: set[str] = set()
    for index, sku in enumerate(_list(document, "skus")):
        where = f"skus[{index}]: "
        _keys(sku, where, {"id"}, frozenset({"description"}))
        if not isinstance(sku["id"], str) or not sku["id"]:
            raise _fail(where, "id is not a non-empty string")
        if sku["id"] in skus:
            raise _fail(where, f"the SKU {sku['id']} is listed twice")
        if "description" in sku and not isinstance(sku["description"], str | None):
            raise _fail(where, "description is not a string")
        skus.add(sku["id"])
    return skus


def _party(obj: dict, name: str, where: str, members: set[str]) -> str:
    value = obj[name]
    if not isinstance(value, str) or value not in members:
        raise _fail(where, f"{name} {value!r} is not a member of the catalog")
    return value


def _sku(obj: dict, where: str, skus: set[str]) -> str:
    value = obj["sku"]
    if not isinstance(value, str) or value not in skus:
        raise _fail(where, f"sku {value!r} is not a SKU of the catalog")
    return value


def _effective(obj: dict, where: str) -> tuple[int, str]:
    text = obj["effective_from"]
    epoch = parse_instant(text)
    if epoch is None:
        raise _fail(where, f"effective_from {text!r} is not a UTC instant YYYY-MM-DDTHH:MM:SSZ")
    return epoch, text


def _retail_prices(
    document: dict, members: set[str], skus: set[str]
) -> dict[tuple[str, str], Versions]:
    retail: dict[tuple[str, str], Versions] = {}
    for index, price in enumerate(_list(document, "retail_prices")):
        where = f"retail_prices[{index}]: "
        _keys(price, where, {"reseller", "sku", "effective_from", "yen_per_gpu_hour"})
        key = (_party(price, "reseller", where, members), _sku(price, where, skus))
        epoch, text = _effective(price, where)
        amount = parse_decimal(price["yen_per_gpu_hour"])
        if amount is None or amount <= 0:
            raise _fail(
                where,
                f"yen_per_gpu_hour {price['yen_per_gpu_hour']!r} is not a decimal string > 0 "
                "with at most 4 fractional digits",
            )
        if not retail.setdefault(key, Versions()).add(RetailVersion(epoch, text, amount)):
            raise _fail(where, f"a second version of ({key[0]}, {key[1]}) from {text}")
    return retail


def _agreements(
    document: dict, members: set[str], skus: set[str]
) -> dict[tuple[str, str, str], Versions]:
    agreements: dict[tuple[str, str, str], Versions] = {}
    for index, agreement in enumerate(_list(document, "agreements")):
        where = f"agreements[{index}]: "
        _keys(
            agreement,
            where,
            {"reseller", "provider", "sku", "effective_from", "wholesale_yen_per_gpu_hour",
             "provider_share_bps"},
        )
        key = (_party(agreement, "reseller", where, members),
               _party(agreement, "provider", where, members), _sku(agreement, where, skus))
        epoch, text = _effective(agreement, where)
        wholesale, share = _terms(agreement, where)
        version = AgreementVersion(epoch, text, wholesale, share)
        if not agreements.setdefault(key, Versions()).add(version):
            raise _fail(where, f"a second version of ({key[0]}, {key[1]}, {key[2]}) from {text}")
    return agreements


def _terms(agreement: dict, where: str) -> tuple[Fraction | None, int | None]:
    """An agreement's (wholesale rate, provider share): a fixed rate or a share, never both."""
    wholesale_text, share = agreement["wholesale_yen_per_gpu_hour"], agreement["provider_share_bps"]
    if (wholesale_text is None) == (share is None):
        raise _fail(
            where, "exactly one of wholesale_yen_per_gpu_hour and provider_share_bps must be set"
        )
    wholesale = None
    if wholesale_text is not None:
        wholesale = parse_decimal(wholesale_text)
        if wholesale is None:
            raise _fail(
                where,
                f"wholesale_yen_per_gpu_hour {wholesale_text!r} is not a decimal string "
                "with at most 4 fractional digits",
            )
    elif not is_int(share) or not 0 <= share <= 10000:
        raise _fail(where, f"provider_share_bps {share!r} is not an integer 0..10000")
    return wholesale, share
