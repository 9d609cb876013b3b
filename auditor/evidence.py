"""evidence.ndjson, streamed: the per-line checks, and the GPU-seconds of every line.

Memory holds the GPU-seconds per statement line (SPEC.md's grouping key) and the lines
of the current (gpu_uuid, hour_start) only; the file is required to be sorted, which is
what makes the disjointness check across lines of one GPU and hour local.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from auditor.catalog import Catalog
from auditor.errors import VerificationError
from auditor.instants import format_instant, is_period, parse_instant
from auditor.strictjson import JSONProblem, is_int, parse

FILE = "evidence.ndjson"
KEYS = frozenset(
    {"gpu_uuid", "hour_start", "provider", "reseller", "tenant", "sku", "service_period",
     "seconds", "bits", "elsewhere"}
)
_GPU_UUID = re.compile(r"[\x21-\x7e]{1,128}")
_TENANT = re.compile(r"[\x20-\x7e]{1,64}")
_HOUR = 3600
LINE_LIMIT = 1 << 16  # bytes; a well-formed line is under 3 KiB

# A statement line's grouping key (SPEC.md, "Rating"): reseller, tenant, provider, sku,
# service_period, the retail price version's and the agreement version's effective_from
# (epoch seconds; None for the agreement when provider == reseller).
UsageKey = tuple[str, str, str, str, str, int, int | None]


@dataclass
class EvidenceResult:
    lines: int = 0
    usage: dict[UsageKey, int] = field(default_factory=dict)
    # A rating problem (a second with no price or agreement in effect) belongs to the
    # statement check, which comes after every evidence check: it is held until the
    # whole file has passed those.
    deferred: VerificationError | None = None


def _lowest(bits: int) -> int:
    return (bits & -bits).bit_length() - 1


def _bitmap(value: object, name: str, where: str) -> int:
    # fromhex skips whitespace, so 900 characters giving 450 bytes are 900 hex digits.
    try:
        data = bytes.fromhex(value) if isinstance(value, str) and len(value) == 900 else b""
    except ValueError:
        data = b""
    if len(data) != 450 or value.lower() != value:
        raise VerificationError(f"{where}{name} is not 900 lowercase hex digits (450 bytes)")
    return int.from_bytes(data, "little")


def check_evidence(lines: Iterable[bytes], period: str, catalog: Catalog) -> EvidenceResult:
    """Check every line in order, raising at the first problem; sum the GPU-seconds."""
    members = set(catalog.members)
    periods = catalog.periods
    result = EvidenceResult()
    usage = result.usage
    previous: tuple | None = None
    group: tuple[str, int] | None = None
    group_lines: list[tuple[int, int]] = []  # (line number, bits) of the current GPU and hour
    group_union = 0
    group_elsewhere = ""
    hours: dict[str, int] = {}  # a bounded cache of parsed hour_start values
    good_periods: set[str] = set()
    number = 0
    for raw in lines:
        number += 1
        where = f"{FILE} line {number}: "
        if not raw.endswith(b"\n"):
            if len(raw) >= LINE_LIMIT:
                raise VerificationError(f"{where}longer than {LINE_LIMIT} bytes")
            raise VerificationError(f"{where}does not end with a newline")
        try:
            line = parse(raw[:-1])
        except JSONProblem as exc:
            raise VerificationError(f"{where}{exc}") from None
        if not isinstance(line, dict):
            raise VerificationError(f"{where}is not a JSON object")
        if line.keys() != KEYS:
            missing, extra = sorted(KEYS - line.keys()), sorted(line.keys() - KEYS)
            raise VerificationError(
                f"{where}" + (f"the key {missing[0]!r} is missing" if missing else f"unexpected key {extra[0]!r}")
            )

        gpu = line["gpu_uuid"]
        if not isinstance(gpu, str) or _GPU_UUID.fullmatch(gpu) is None:
            raise VerificationError(f"{where}gpu_uuid is not 1-128 characters 0x21-0x7E")
        hour_text = line["hour_start"]
        hour = hours.get(hour_text) if isinstance(hour_text, str) else None
        if hour is None:
            hour = parse_instant(hour_text)
            if hour is not None and len(hours) < 8192:
                hours[hour_text] = hour
        if hour is None or hour % _HOUR:
            raise VerificationError(f"{where}hour_start {hour_text!r} is not a UTC hour YYYY-MM-DDTHH:00:00Z")
        provider, reseller = line["provider"], line["reseller"]
        for name, value in (("provider", provider), ("reseller", reseller)):
            if not isinstance(value, str) or value not in members:
                raise VerificationError(f"{where}{name} {value!r} is not a member of the catalog")
        tenant = line["tenant"]
        if not isinstance(tenant, str) or _TENANT.fullmatch(tenant) is None:
            raise VerificationError(f"{where}tenant is not 1-64 characters 0x20-0x7E")
        sku = line["sku"]
        if not isinstance(sku, str) or sku not in catalog.skus:
            raise VerificationError(f"{where}sku {sku!r} is not a SKU of the catalog")
        service_period = line["service_period"]
        if not (isinstance(service_period, str) and service_period in good_periods) and not is_period(
            service_period
        ):
            raise VerificationError(f"{where}service_period {service_period!r} is not a period YYYY-MM")
        good_periods.add(service_period)
        seconds = line["seconds"]
        if not is_int(seconds) or not 1 <= seconds <= _HOUR:
            raise VerificationError(f"{where}seconds {seconds!r} is not an integer 1..3600")
        bits = _bitmap(line["bits"], "bits", where)
        elsewhere_text = line["elsewhere"]
        elsewhere = _bitmap(elsewhere_text, "elsewhere", where)

        key = (gpu, hour, provider, reseller, tenant, sku, service_period)
        if previous is not None and key <= previous:
            if key == previous:
                raise VerificationError(
                    f"{where}repeats line {number - 1}'s GPU, hour, attribution and service period"
                )
            raise VerificationError(
                f"{where}out of order: lines must be sorted by gpu_uuid, hour_start, provider, "
                f"reseller, tenant, sku, service_period, and it sorts before line {number - 1}"
            )
        previous = key

        counted = bits.bit_count()
        if counted != seconds:
            raise VerificationError(f"{where}bits has {counted} seconds set, the line says {seconds}")
        both = bits & elsewhere
        if both:
            raise VerificationError(
                f"{where}second {format_instant(hour + _lowest(both))} is set in both bits and "
                "elsewhere (billed in this bundle and outside it)"
            )
        if (gpu, hour) == group:
            if elsewhere_text != group_elsewhere:
                raise VerificationError(
                    f"{where}elsewhere differs from line {group_lines[0][0]}'s, of the same GPU and hour"
                )
            if bits & group_union:
                for other, other_bits in group_lines:
                    if bits & other_bits:
                        second = format_instant(hour + _lowest(bits & other_bits))
                        raise VerificationError(
                            f"{where}second {second} is also billed on line {other} "
                            "(same GPU and hour): a GPU-second is billed twice"
                        )
            group_lines.append((number, bits))
            group_union |= bits
        else:
            group = (gpu, hour)
            group_lines = [(number, bits)]
            group_union = bits
            group_elsewhere = elsewhere_text

        start, end = periods.bounds(service_period)
        first, last = hour + _lowest(bits), hour + bits.bit_length() - 1
        if first < start or last >= end:
            outside = first if first < start else last
            raise VerificationError(
                f"{where}second {format_instant(outside)} is outside its service period "
                f"{service_period} (in {catalog.timezone})"
            )
        if service_period > period:
            raise VerificationError(
                f"{where}service_period {service_period} is after the bundle's period {period}"
            )

        if result.deferred is None:
            result.deferred = _rate(catalog, usage, where, hour, bits, provider, reseller, tenant,
                                    sku, service_period)
    result.lines = number
    return result


def _rate(
    catalog: Catalog,
    usage: dict[UsageKey, int],
    where: str,
    hour: int,
    bits: int,
    provider: str,
    reseller: str,
    tenant: str,
    sku: str,
    service_period: str,
) -> VerificationError | None:
    """Add the line's seconds to the statement lines they fall in, split at version changes."""
    prices = catalog.retail.get((reseller, sku))
    own = provider == reseller
    agreements = None if own else catalog.agreements.get((reseller, provider, sku))
    end = hour + _HOUR
    cuts: set[int] = set()
    if prices is not None:
        cuts.update(prices.changes_within(hour, end))
    if agreements is not None:
        cuts.update(agreements.changes_within(hour, end))
    offsets = [0, *sorted(cut - hour for cut in cuts), _HOUR]
    for low, high in zip(offsets, offsets[1:], strict=False):
        part = (bits >> low) & ((1 << (high - low)) - 1)
        if not part:
            continue
        instant = hour + low
        price = prices.at(instant) if prices is not None else None
        if price is None:
            return VerificationError(
                f"{where}second {format_instant(instant + _lowest(part))} has no retail price of "
                f"({reseller}, {sku}) in effect"
            )
        agreement_from = None
        if not own:
            agreement = agreements.at(instant) if agreements is not None else None
            if agreement is None:
                return VerificationError(
                    f"{where}second {format_instant(instant + _lowest(part))} has no agreement of "
                    f"({reseller}, {provider}, {sku}) in effect"
                )
            agreement_from = agreement.effective_from
        key = (reseller, tenant, provider, sku, service_period, price.effective_from, agreement_from)
        usage[key] = usage.get(key, 0) + part.bit_count()
    return None
