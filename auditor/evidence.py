"""evidence.ndjson, streamed: the per-line checks, and the GPU-seconds of every line.

Memory holds the GPU-seconds per statement line (SPEC.md's grouping key) and the lines
of the current (gpu_uuid, hour_start) only; the file is required to be sorted, which is
what makes the disjointness check across lines of one GPU and hour local.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
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
GPU_UUID = re.compile(r"[\x21-\x7e]{1,128}")
TENANT = re.compile(r"[\x20-\x7e]{1,64}")
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


@dataclass(slots=True)
class _Line:
    """One line's fields, each checked."""

    gpu: str
    hour: int
    provider: str
    reseller: str
    tenant: str
    sku: str
    service_period: str
    seconds: int
    bits: int
    elsewhere_text: str
    elsewhere: int

    @property
    def key(self) -> tuple:
        """The fields the file is sorted by."""
        return (self.gpu, self.hour, self.provider, self.reseller, self.tenant, self.sku,
                self.service_period)


def check_evidence(lines: Iterable[bytes], period: str, catalog: Catalog) -> EvidenceResult:
    """Check every line in order, raising at the first problem; sum the GPU-seconds."""
    reader = _Reader(catalog)
    result = EvidenceResult()
    previous: tuple | None = None
    gpu_hour = _GpuHour()
    number = 0
    for raw in lines:
        number += 1
        where = f"{FILE} line {number}: "
        line = reader.read(raw, where)
        _check_order(line.key, previous, where, number)
        previous = line.key
        _check_bits(line, where)
        gpu_hour.add(line, number, where)
        _check_service_period(line, where, period, catalog)
        if result.deferred is None:
            result.deferred = _rate(catalog, result.usage, where, line)
    result.lines = number
    return result


class _Reader:
    """Decodes lines and checks each field; remembers what it has seen, to check it once."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.members = set(catalog.members)
        self.hours: dict[str, int] = {}  # a bounded cache of parsed hour_start values
        self.good_periods: set[str] = set()  # service periods already found well-formed

    def read(self, raw: bytes, where: str) -> _Line:
        line = decode_line(raw, where)
        gpu = line["gpu_uuid"]
        if not isinstance(gpu, str) or GPU_UUID.fullmatch(gpu) is None:
            raise VerificationError(f"{where}gpu_uuid is not 1-128 characters 0x21-0x7E")
        hour = self._hour(line["hour_start"], where)
        provider, reseller = line["provider"], line["reseller"]
        for name, value in (("provider", provider), ("reseller", reseller)):
            if not isinstance(value, str) or value not in self.members:
                raise VerificationError(f"{where}{name} {value!r} is not a member of the catalog")
        tenant = line["tenant"]
        if not isinstance(tenant, str) or TENANT.fullmatch(tenant) is None:
            raise VerificationError(f"{where}tenant is not 1-64 characters 0x20-0x7E")
        sku = line["sku"]
        if not isinstance(sku, str) or sku not in self.catalog.skus:
            raise VerificationError(f"{where}sku {sku!r} is not a SKU of the catalog")
        service_period = self._service_period(line["service_period"], where)
        seconds = line["seconds"]
        if not is_int(seconds) or not 1 <= seconds <= _HOUR:
            raise VerificationError(f"{where}seconds {seconds!r} is not an integer 1..3600")
        bits = _bitmap(line["bits"], "bits", where)
        elsewhere_text = line["elsewhere"]
        elsewhere = _bitmap(elsewhere_text, "elsewhere", where)
        return _Line(gpu, hour, provider, reseller, tenant, sku, service_period, seconds, bits,
                     elsewhere_text, elsewhere)

    def _hour(self, text: object, where: str) -> int:
        hour = self.hours.get(text) if isinstance(text, str) else None
        if hour is None:
            hour = parse_instant(text)
            if hour is not None and len(self.hours) < 8192:
                self.hours[text] = hour
        if hour is None or hour % _HOUR:
            raise VerificationError(f"{where}hour_start {text!r} is not a UTC hour YYYY-MM-DDTHH:00:00Z")
        return hour

    def _service_period(self, value: object, where: str) -> str:
        if not (isinstance(value, str) and value in self.good_periods) and not is_period(value):
            raise VerificationError(f"{where}service_period {value!r} is not a period YYYY-MM")
        self.good_periods.add(value)
        return value


def decode_line(raw: bytes, where: str, keys: frozenset = KEYS, limit: int = LINE_LIMIT) -> dict:
    """A line (read up to `limit` bytes) as a JSON object of exactly `keys` (by default the
    evidence keys and line limit of formats /1-/3)."""
    if not raw.endswith(b"\n"):
        if len(raw) >= limit:
            raise VerificationError(f"{where}longer than {limit} bytes")
        raise VerificationError(f"{where}does not end with a newline")
    try:
        line = parse(raw[:-1])
    except JSONProblem as exc:
        raise VerificationError(f"{where}{exc}") from None
    if not isinstance(line, dict):
        raise VerificationError(f"{where}is not a JSON object")
    if line.keys() != keys:
        missing, extra = sorted(keys - line.keys()), sorted(line.keys() - keys)
        raise VerificationError(
            f"{where}" + (f"the key {missing[0]!r} is missing" if missing else f"unexpected key {extra[0]!r}")
        )
    return line


def _check_order(key: tuple, previous: tuple | None, where: str, number: int) -> None:
    if previous is not None and key <= previous:
        if key == previous:
            raise VerificationError(
                f"{where}repeats line {number - 1}'s GPU, hour, attribution and service period"
            )
        raise VerificationError(
            f"{where}out of order: lines must be sorted by gpu_uuid, hour_start, provider, "
            f"reseller, tenant, sku, service_period, and it sorts before line {number - 1}"
        )


def _check_bits(line: _Line, where: str) -> None:
    counted = line.bits.bit_count()
    if counted != line.seconds:
        raise VerificationError(f"{where}bits has {counted} seconds set, the line says {line.seconds}")
    both = line.bits & line.elsewhere
    if both:
        raise VerificationError(
            f"{where}second {format_instant(line.hour + _lowest(both))} is set in both bits and "
            "elsewhere (billed in this bundle and outside it)"
        )


@dataclass
class _GpuHour:
    """The lines of the current (gpu_uuid, hour_start): the file's order brings them together."""

    key: tuple[str, int] | None = None
    lines: list[tuple[int, int]] = field(default_factory=list)  # (line number, bits)
    union: int = 0
    elsewhere: str = ""

    def add(self, line: _Line, number: int, where: str) -> None:
        """Refuse a line that disagrees with, or bills a second of, an earlier line of its hour."""
        if (line.gpu, line.hour) != self.key:
            self.key = (line.gpu, line.hour)
            self.lines = [(number, line.bits)]
            self.union = line.bits
            self.elsewhere = line.elsewhere_text
            return
        if line.elsewhere_text != self.elsewhere:
            raise VerificationError(
                f"{where}elsewhere differs from line {self.lines[0][0]}'s, of the same GPU and hour"
            )
        if line.bits & self.union:
            for other, other_bits in self.lines:
                if line.bits & other_bits:
                    second = format_instant(line.hour + _lowest(line.bits & other_bits))
                    raise VerificationError(
                        f"{where}second {second} is also billed on line {other} "
                        "(same GPU and hour): a GPU-second is billed twice"
                    )
        self.lines.append((number, line.bits))
        self.union |= line.bits


def _check_service_period(line: _Line, where: str, period: str, catalog: Catalog) -> None:
    start, end = catalog.periods.bounds(line.service_period)
    first, last = line.hour + _lowest(line.bits), line.hour + line.bits.bit_length() - 1
    if first < start or last >= end:
        outside = first if first < start else last
        raise VerificationError(
            f"{where}second {format_instant(outside)} is outside its service period "
            f"{line.service_period} (in {catalog.timezone})"
        )
    if line.service_period > period:
        raise VerificationError(
            f"{where}service_period {line.service_period} is after the bundle's period {period}"
        )


def _rate(
    catalog: Catalog, usage: dict[UsageKey, int], where: str, line: _Line
) -> VerificationError | None:
    """Add the line's seconds to the statement lines they fall in, split at version changes."""
    return rate_bits(catalog, usage, where, line.hour, line.bits, line.provider, line.reseller, line.tenant,
                     line.sku, line.service_period)


def rate_bits(
    catalog: Catalog, usage: dict[UsageKey, int], where: str, hour: int, bits: int,
    provider: str, reseller: str, tenant: str, sku: str, service_period: str,
) -> VerificationError | None:
    """Add the seconds `bits` of one GPU-hour and attribution to the statement lines they
    fall in, split at version changes; a second with no price or agreement is returned."""

    def count(low: int, high: int) -> tuple[int, int]:
        part = (bits >> (low - hour)) & ((1 << (high - low)) - 1)
        return part.bit_count(), (low + _lowest(part) if part else low)

    return rate_span(catalog, usage, where, hour, hour + _HOUR, (provider, reseller, tenant, sku, service_period),
                     count)


def rate_span(
    catalog: Catalog, usage: dict[UsageKey, int], where: str, start: int, end: int,
    attribution: tuple[str, str, str, str, str], count: Callable[[int, int], tuple[int, int]],
) -> VerificationError | None:
    """Add the seconds of [start, end) of one attribution to the statement lines they fall
    in, split at version changes: `count(low, high)` is (how many seconds of [low, high)
    are billed, the first of them). A billed second with no price or agreement is returned."""
    provider, reseller, tenant, sku, service_period = attribution
    prices = catalog.retail.get((reseller, sku))
    own = provider == reseller
    agreements = None if own else catalog.agreements.get((reseller, provider, sku))
    cuts: set[int] = set()
    if prices is not None:
        cuts.update(prices.changes_within(start, end))
    if agreements is not None:
        cuts.update(agreements.changes_within(start, end))
    bounds = [start, *sorted(cuts), end]
    for low, high in zip(bounds, bounds[1:], strict=False):
        seconds, first = count(low, high)
        if not seconds:
            continue
        price = prices.at(low) if prices is not None else None
        if price is None:
            return VerificationError(
                f"{where}second {format_instant(first)} has no retail price of ({reseller}, {sku}) in effect"
            )
        agreement_from = None
        if not own:
            agreement = agreements.at(low) if agreements is not None else None
            if agreement is None:
                return VerificationError(
                    f"{where}second {format_instant(first)} has no agreement of "
                    f"({reseller}, {provider}, {sku}) in effect"
                )
            agreement_from = agreement.effective_from
        key = (reseller, tenant, provider, sku, service_period, price.effective_from, agreement_from)
        usage[key] = usage.get(key, 0) + seconds
    return None
