"""corrections.json (bundle format /3): the voids whose returns the bundle's period P
holds, the context of each return, and the disputes decided in P.

SPEC.md, "Corrections". Each void is checked against its own evidence: every part (the
bits it took from one claim: GPU-hour, attribution, service and booking period) has
`seconds` bits set, inside the void's [from, to) and the part's service period; the parts
add up to the void's `gpu_seconds`; a part of a booking period the void found closed is
returned in the first open one, which for at least one part is P; no second is voided
twice. The seconds returned in P are then rated into the original lines they return
(`returned`), which auditor.returns compares with the statement. The disputes are
checked in auditor.disputes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from auditor.catalog import Catalog
from auditor.errors import VerificationError, object_with_keys
from auditor.evidence import UsageKey, rate_bits
from auditor.instants import format_instant, is_period, parse_instant
from auditor.strictjson import JSONProblem, is_int, parse_document

FILE = "corrections.json"
REASONS = frozenset({"not_used", "wrong_tenant", "wrong_sku", "outage", "duplicate_report", "other"})
_VOID = frozenset({"id", "gpu_uuid", "from", "to", "provider", "reseller", "tenant", "sku", "reason", "dispute",
                   "made_by", "made_at", "closed_through", "gpu_seconds", "taken"})
_PART = frozenset({"hour_start", "service_period", "booking_period", "returned_in", "seconds", "bits"})
_VOID_ID = re.compile(r"void-[1-9][0-9]{0,17}")
_HOUR = 3600


@dataclass(frozen=True)
class Part:
    hour: int
    service_period: str
    booking_period: str
    returned_in: str | None
    bits: int


@dataclass(frozen=True)
class Void:
    id: str
    gpu_uuid: str
    start: int
    end: int
    attribution: tuple[str, str, str, str]  # provider, reseller, tenant, sku
    reason: str
    dispute: str | None
    gpu_seconds: int
    parts: tuple[Part, ...]


@dataclass
class Corrections:
    voids: list[Void]
    returns: list[dict]  # the context of each statement return, checked by auditor.returns
    disputes: list[dict]  # checked by auditor.disputes
    # (booking period, line key) -> seconds returned in the bundle's period, from the voids
    returned: dict[tuple[str, UsageKey], int] = field(default_factory=dict)


def fail(what: str) -> VerificationError:
    return VerificationError(f"{FILE}: {what}")


def shape(obj: Any, keys: frozenset[str], where: str) -> dict:
    return object_with_keys(FILE, obj, keys, where)


def instant(obj: dict, name: str, where: str) -> int:
    value = parse_instant(obj[name])
    if value is None:
        raise fail(f"{where}: {name} {obj[name]!r} is not a UTC instant YYYY-MM-DDTHH:MM:SSZ")
    return value


def text(obj: dict, name: str, where: str, allowed=None) -> str:
    value = obj[name]
    if not isinstance(value, str) or not value or (allowed is not None and value not in allowed):
        raise fail(f"{where}: {name} {value!r} is not " + ("a non-empty string" if allowed is None else "allowed here"))
    return value


def period_or_none(obj: dict, name: str, where: str) -> str | None:
    value = obj[name]
    if value is not None and not is_period(value):
        raise fail(f"{where}: {name} {value!r} is neither null nor a period YYYY-MM")
    return value


def parse_corrections(data: bytes, period: str, catalog: Catalog) -> Corrections:
    try:
        document = parse_document(data)
    except JSONProblem as exc:
        raise fail(str(exc)) from None
    shape(document, frozenset({"period", "voids", "returns", "disputes"}), "the document")
    if document["period"] != period:
        raise fail(f"period is {document['period']!r}, the manifest says {period}")
    for name in ("voids", "returns", "disputes"):
        if not isinstance(document[name], list):
            raise fail(f"{name} is not a list")
    voids = [_void(raw, period, catalog) for raw in document["voids"]]
    found = Corrections(voids, document["returns"], document["disputes"])
    _check_disjoint(voids)
    for void in voids:
        for part in void.parts:
            if part.returned_in == period:
                _rate(catalog, found.returned, void, part)
    return found


def _void(raw: Any, period: str, catalog: Catalog) -> Void:
    where = "a void"
    shape(raw, _VOID, where)
    void_id = raw["id"]
    if not isinstance(void_id, str) or _VOID_ID.fullmatch(void_id) is None:
        raise fail(f"{where}: id {void_id!r} is not void-N")
    where = void_id
    members = set(catalog.members)
    attribution = (text(raw, "provider", where, members), text(raw, "reseller", where, members),
                   text(raw, "tenant", where), text(raw, "sku", where, catalog.skus))
    start, end = instant(raw, "from", where), instant(raw, "to", where)
    if not start < end <= start + 45 * 86400:
        raise fail(f"{where}: [from, to) is not an interval of 1 second to 45 days")
    text(raw, "reason", where, REASONS)
    if raw["dispute"] is not None:
        text(raw, "dispute", where)
    if raw["made_by"] != "operator":
        text(raw, "made_by", where, {attribution[0]})  # SPEC: its provider or the operator
    instant(raw, "made_at", where)
    closed_through = period_or_none(raw, "closed_through", where)
    seconds = raw["gpu_seconds"]
    if not is_int(seconds) or seconds < 1:
        raise fail(f"{where}: gpu_seconds is not an integer >= 1")
    if not isinstance(raw["taken"], list) or not raw["taken"]:
        raise fail(f"{where}: taken is not a non-empty list")
    parts = tuple(
        _part(part, f"{where} part {n}", (start, end), closed_through, period, catalog)
        for n, part in enumerate(raw["taken"], start=1)
    )
    counted = sum(part.bits.bit_count() for part in parts)
    if counted != seconds:
        raise fail(f"{where}: gpu_seconds is {seconds}, but the bits of its parts add up to {counted} seconds")
    if all(part.returned_in != period for part in parts):
        raise fail(f"{where}: returns nothing in {period}, so it does not belong in its bundle")
    keys = [(part.hour, part.service_period, part.booking_period) for part in parts]
    if len(set(keys)) != len(keys):
        raise fail(f"{where}: two parts take from the same claim (GPU-hour, service and booking period)")
    return Void(void_id, text(raw, "gpu_uuid", where), start, end, attribution, raw["reason"], raw["dispute"], seconds, parts)


def _part(raw: Any, where: str, interval: tuple[int, int], closed_through: str | None, period: str,
          catalog: Catalog) -> Part:
    shape(raw, _PART, where)
    hour = instant(raw, "hour_start", where)
    if hour % _HOUR:
        raise fail(f"{where}: hour_start is not the start of a UTC hour")
    service, booked = raw["service_period"], raw["booking_period"]
    if not is_period(service) or not is_period(booked) or service > booked:
        raise fail(f"{where}: service_period and booking_period are not periods, service <= booking")
    returned_in = period_or_none(raw, "returned_in", where)
    bits = _bits(raw["bits"], where)
    if not is_int(raw["seconds"]) or bits.bit_count() != raw["seconds"] or not bits:
        raise fail(f"{where}: bits has {bits.bit_count()} seconds set, seconds says {raw['seconds']!r}")
    first, last = hour + _lowest(bits), hour + bits.bit_length() - 1
    if first < interval[0] or last >= interval[1]:
        outside = first if first < interval[0] else last
        raise fail(f"{where}: second {format_instant(outside)} is outside the void's [from, to)")
    low, high = catalog.periods.bounds(service)
    if first < low or last >= high:
        raise fail(f"{where}: its seconds are not all in service period {service} (in {catalog.timezone})")
    closed = closed_through is not None and booked <= closed_through
    expected = _next_period(closed_through) if closed else None
    if returned_in != expected:
        why = (f"{booked} was closed (through {closed_through}): returned in {expected}" if closed
               else f"{booked} was open: its seconds left its lines (returned_in null)")
        raise fail(f"{where}: returned_in is {returned_in!r}, but when the void was made {why}")
    if returned_in is not None and returned_in > period:
        raise fail(f"{where}: returned in {returned_in}, after the bundle's period {period}")
    return Part(hour, service, booked, returned_in, bits)


def _bits(value: object, where: str) -> int:
    try:
        data = bytes.fromhex(value) if isinstance(value, str) and len(value) == 900 and value.lower() == value else b""
    except ValueError:
        data = b""
    if len(data) != 450:
        raise fail(f"{where}: bits is not 900 lowercase hex digits (450 bytes)")
    return int.from_bytes(data, "little")


def _lowest(bits: int) -> int:
    return (bits & -bits).bit_length() - 1


def _next_period(period: str) -> str:
    year, month = int(period[:4]), int(period[5:])
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def _check_disjoint(voids: list[Void]) -> None:
    """No second of a claim is voided twice."""
    seen: dict[tuple, tuple[str, int]] = {}
    for void in voids:
        for part in void.parts:
            claim = (void.gpu_uuid, part.hour, void.attribution, part.service_period, part.booking_period)
            other = seen.get(claim)
            if other is not None and other[1] & part.bits:
                second = format_instant(part.hour + _lowest(other[1] & part.bits))
                raise fail(f"{void.id}: second {second} was voided already by {other[0]}")
            seen[claim] = (void.id, part.bits | (other[1] if other else 0))


def _rate(catalog: Catalog, returned: dict, void: Void, part: Part) -> None:
    """Add the part's seconds to the original lines they return (split at version changes)."""
    provider, reseller, tenant, sku = void.attribution
    usage: dict[UsageKey, int] = {}
    problem = rate_bits(catalog, usage, f"{FILE}: {void.id}: ", part.hour, part.bits, provider, reseller, tenant,
                        sku, part.service_period)
    if problem is not None:
        raise problem
    for key, seconds in usage.items():
        returned[(part.booking_period, key)] = returned.get((part.booking_period, key), 0) + seconds
