"""evidence.ndjson of format /4, streamed: one line per GPU and UTC day, its billed
seconds as runs (docs/auditor-bundle.md, "evidence.ndjson (format /4)").

A line is checked on its own: its runs are sorted and disjoint by construction of the
format (each starts at or after the previous one's end), so no GPU-second is billed twice
within a day, and the file's order (gpu_uuid, day, each pair once) makes the days of a
GPU distinct. Memory holds one line and the GPU-seconds per statement line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

from auditor.catalog import Catalog
from auditor.errors import VerificationError
from auditor.evidence import GPU_UUID, TENANT, EvidenceResult, decode_line, rate_span
from auditor.instants import format_instant, is_period
from auditor.strictjson import is_int

FILE = "evidence.ndjson"
KEYS = frozenset({"gpu_uuid", "day", "attributions", "seconds", "billed", "elsewhere"})
DAY = 86_400
HOUR = 3_600
LINE_LIMIT = 16 << 20  # bytes; a day of one GPU alternating billed and idle seconds is ~1.5 MiB
_DAY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

Attribution = tuple[str, str, str, str, str]  # provider, reseller, tenant, sku, service_period


def check_runs(lines: Iterable[bytes], period: str, catalog: Catalog) -> EvidenceResult:
    """Check every line in order, raising at the first problem; sum the GPU-seconds."""
    result = EvidenceResult()
    reader = _Reader(catalog, period)
    previous: tuple[str, str] | None = None
    number = 0
    for raw in lines:
        number += 1
        where = f"{FILE} line {number}: "
        line = decode_line(raw, where, KEYS, LINE_LIMIT)
        gpu, day_text, midnight = _gpu_and_day(line, where)
        if previous is not None and (gpu, day_text) <= previous:
            what = "repeats line" if (gpu, day_text) == previous else "sorts before line"
            raise VerificationError(f"{where}{what} {number - 1} (lines are sorted by gpu_uuid, day, each pair once)")
        previous = (gpu, day_text)
        attributions = reader.attributions(line["attributions"], where)
        billed = _billed(line["billed"], len(attributions), where)
        _check_seconds(line["seconds"], billed, where)
        _elsewhere(line["elsewhere"], billed, midnight, where)
        reader.service_periods(billed, attributions, midnight, where)
        if result.deferred is None:
            result.deferred = _rate(catalog, result, where, billed, attributions, midnight)
    result.lines = number
    return result


def _gpu_and_day(line: dict, where: str) -> tuple[str, str, int]:
    gpu = line["gpu_uuid"]
    if not isinstance(gpu, str) or GPU_UUID.fullmatch(gpu) is None:
        raise VerificationError(f"{where}gpu_uuid is not 1-128 characters 0x21-0x7E")
    text = line["day"]
    match = _DAY.fullmatch(text) if isinstance(text, str) else None
    try:
        day = date(*(int(part) for part in match.groups())) if match else None
    except ValueError:
        day = None
    if day is None:
        raise VerificationError(f"{where}day {text!r} is not a date YYYY-MM-DD")
    return gpu, text, (day.toordinal() - _EPOCH_ORDINAL) * DAY


class _Reader:
    """Checks attributions and service periods; remembers what it has seen, to check it once."""

    def __init__(self, catalog: Catalog, period: str) -> None:
        self.catalog = catalog
        self.period = period
        self.members = set(catalog.members)
        self.good: set[Attribution] = set()  # attributions already found well-formed

    def attributions(self, value: object, where: str) -> list[Attribution]:
        if not isinstance(value, list) or not value:
            raise VerificationError(f"{where}attributions is not a non-empty list")
        found: list[Attribution] = []
        for index, item in enumerate(value):
            if not isinstance(item, list) or len(item) != 5 or not all(isinstance(x, str) for x in item):
                raise VerificationError(f"{where}attributions[{index}] is not 5 strings "
                                        "[provider, reseller, tenant, sku, service_period]")
            attribution: Attribution = tuple(item)  # type: ignore[assignment]
            if attribution not in self.good:
                self._attribution(attribution, f"{where}attributions[{index}]: ")
            if found and attribution <= found[-1]:
                raise VerificationError(f"{where}attributions[{index}] is not after attributions[{index - 1}] "
                                        "(sorted, each once)")
            found.append(attribution)
        return found

    def _attribution(self, attribution: Attribution, where: str) -> None:
        provider, reseller, tenant, sku, service_period = attribution
        for name, value in (("provider", provider), ("reseller", reseller)):
            if value not in self.members:
                raise VerificationError(f"{where}{name} {value!r} is not a member of the catalog")
        if TENANT.fullmatch(tenant) is None:
            raise VerificationError(f"{where}tenant is not 1-64 characters 0x20-0x7E")
        if sku not in self.catalog.skus:
            raise VerificationError(f"{where}sku {sku!r} is not a SKU of the catalog")
        if not is_period(service_period):
            raise VerificationError(f"{where}service_period {service_period!r} is not a period YYYY-MM")
        if service_period > self.period:
            raise VerificationError(f"{where}service_period {service_period} is after the bundle's period {self.period}")
        self.good.add(attribution)

    def service_periods(self, billed: list[list[int]], attributions: list[Attribution], midnight: int,
                        where: str) -> None:
        """Every run inside its attribution's service period (in the catalog's time zone)."""
        for number, (start, end, index) in enumerate(billed, 1):
            service_period = attributions[index][4]
            first, last = self.catalog.periods.bounds(service_period)
            if midnight + start < first or midnight + end > last:
                outside = midnight + start if midnight + start < first else midnight + end - 1
                raise VerificationError(
                    f"{where}billed run {number}: second {format_instant(outside)} is outside its service "
                    f"period {service_period} (in {self.catalog.timezone})"
                )


def _pair(item: object, size: int) -> bool:
    return (isinstance(item, list) and len(item) == size and all(is_int(x) for x in item)
            and 0 <= item[0] < item[1] <= DAY)


def _billed(value: object, attributions: int, where: str) -> list[list[int]]:
    """[start, end, attribution] runs: sorted, disjoint, maximal, every attribution used."""
    if not isinstance(value, list) or not value:
        raise VerificationError(f"{where}billed is not a non-empty list")
    used = [False] * attributions
    previous_end, previous_index = -1, -1
    for number, run in enumerate(value, 1):
        if not _pair(run, 3) or not 0 <= run[2] < attributions:
            raise VerificationError(f"{where}billed run {number} is not [start, end, attribution] with "
                                    f"0 <= start < end <= 86400 and an attribution index below {attributions}")
        start, _, index = run
        if start < previous_end:
            raise VerificationError(f"{where}billed run {number} starts at {start}, before run {number - 1} "
                                    f"ends ({previous_end}): a GPU-second is billed twice or out of order")
        if start == previous_end and index == previous_index:
            raise VerificationError(f"{where}billed run {number} continues run {number - 1} of the same "
                                    "attribution: runs are maximal")
        used[index] = True
        previous_end, previous_index = run[1], index
    if not all(used):
        raise VerificationError(f"{where}attributions[{used.index(False)}] has no billed run")
    return value


def _check_seconds(value: object, billed: list[list[int]], where: str) -> None:
    total = sum(end - start for start, end, _ in billed)
    if not is_int(value) or value != total:
        raise VerificationError(f"{where}seconds is {value!r}, the billed runs hold {total}")


def _elsewhere(value: object, billed: list[list[int]], midnight: int, where: str) -> None:
    """[start, end] runs billed outside the bundle: sorted, maximal, inside the hours the
    line bills, disjoint from its billed runs."""
    if not isinstance(value, list):
        raise VerificationError(f"{where}elsewhere is not a list")
    hours = {hour for start, end, _ in billed for hour in range(start // HOUR, (end - 1) // HOUR + 1)}
    previous_end = -1
    cursor = 0
    for number, run in enumerate(value, 1):
        if not _pair(run, 2) or run[0] <= previous_end:
            raise VerificationError(f"{where}elsewhere run {number} is not [start, end] with 0 <= start < end "
                                    "<= 86400, after the previous run's end and apart from it")
        start, end = run
        if any(hour not in hours for hour in range(start // HOUR, (end - 1) // HOUR + 1)):
            raise VerificationError(f"{where}elsewhere run {number} is outside the hours the line bills")
        while cursor < len(billed) and billed[cursor][1] <= start:
            cursor += 1
        if cursor < len(billed) and billed[cursor][0] < end:
            second = midnight + max(start, billed[cursor][0])
            raise VerificationError(f"{where}second {format_instant(second)} is in both billed and elsewhere "
                                    "(billed in this bundle and outside it)")
        previous_end = end


def _rate(catalog: Catalog, result: EvidenceResult, where: str, billed: list[list[int]],
          attributions: list[Attribution], midnight: int) -> VerificationError | None:
    """Add every run's seconds to the statement lines they fall in, split at version changes."""
    for start, end, index in billed:
        problem = rate_span(catalog, result.usage, where, midnight + start, midnight + end, attributions[index],
                            lambda low, high: (high - low, low))
        if problem is not None:
            return problem
    return None
