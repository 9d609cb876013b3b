"""evidence.ndjson of format /4 (docs/auditor-bundle.md): the billed seconds of a booking
period as runs, one line per GPU and UTC day.

The store yields the evidence per GPU-hour and attribution (a bitmap of billed seconds and
one of the seconds billed elsewhere), sorted by GPU and hour; here each day of a GPU is
gathered (at most 24 hours of it), cut into maximal runs of one attribution, and written.
A fully used day of one tenant is one run, where the hourly bitmaps took 24 lines of 2 KB.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable

import orjson

from ledger.domain.instants import format_utc
from ledger.domain.metering import HOUR_SECONDS
from ledger.domain.ports import Evidence

DAY_SECONDS = 86_400
_FULL_HOUR = (1 << HOUR_SECONDS) - 1

Attribution = tuple[str, str, str, str, str]  # provider, reseller, tenant, sku, service_period


def bit_runs(bits: int) -> list[tuple[int, int]]:
    """The maximal [start, end) runs of set bits (bit i: second i), in order."""
    if bits == _FULL_HOUR:
        return [(0, HOUR_SECONDS)]
    found = []
    offset = 0
    while bits:
        skip = (bits & -bits).bit_length() - 1
        bits >>= skip
        offset += skip
        length = ((bits + 1) & ~bits).bit_length() - 1  # the trailing ones
        found.append((offset, offset + length))
        bits >>= length
        offset += length
    return found


def _start(run: tuple) -> int:
    return run[0]


def _merged(runs: Iterable[tuple[int, int, object]]) -> list[list]:
    """Sorted runs, a run that starts where the previous one of the same tag ends joined to it."""
    out: list[list] = []
    for start, end, tag in sorted(runs, key=_start):
        if out and out[-1][1] == start and out[-1][2] == tag:
            out[-1][1] = end
        else:
            out.append([start, end, tag])
    return out


def day_line(gpu_uuid: str, day: int, hours: list[Evidence]) -> bytes:
    """The line of one GPU and UTC day (`day`: its midnight, epoch seconds) from the
    evidence of its hours (any order)."""
    billed: list[tuple[int, int, Attribution]] = []
    elsewhere: dict[int, int] = {}
    for evidence in hours:
        key = evidence.key
        offset = key.hour_start - day
        attribution = (*key.attribution, key.service_period)
        if evidence.bits == _FULL_HOUR:
            billed.append((offset, offset + HOUR_SECONDS, attribution))
        else:
            billed.extend((offset + s, offset + e, attribution) for s, e in bit_runs(evidence.bits))
        if evidence.elsewhere:
            elsewhere[offset] = elsewhere.get(offset, 0) | evidence.elsewhere
    runs = _merged(billed)
    attributions = sorted({run[2] for run in runs})
    index = {attribution: n for n, attribution in enumerate(attributions)}
    other = _merged((offset + s, offset + e, None) for offset, bits in elsewhere.items() for s, e in bit_runs(bits))
    return orjson.dumps({
        "gpu_uuid": gpu_uuid,
        "day": format_utc(day)[:10],
        "attributions": [list(attribution) for attribution in attributions],
        "seconds": sum(end - start for start, end, _ in runs),
        "billed": [[start, end, index[attribution]] for start, end, attribution in runs],
        "elsewhere": [[start, end] for start, end, _ in other],
    }) + b"\n"


async def write_runs(
    evidence: AsyncIterator[Evidence], write: Callable[[bytes], None], on_progress: Callable[[int], None] | None,
) -> None:
    """Write the lines of `evidence` (sorted by GPU and hour) with `write`, one GPU-day at a time."""
    current: tuple[str, int] | None = None
    hours: list[Evidence] = []
    written = 0
    async for item in evidence:
        day = item.key.hour_start - item.key.hour_start % DAY_SECONDS
        if (item.key.gpu_uuid, day) != current:
            if hours:
                write(day_line(*current, hours))
            current, hours = (item.key.gpu_uuid, day), []
        hours.append(item)
        written += 1
        if on_progress is not None and written % 10_000 == 0:
            on_progress(written)
    if hours:
        write(day_line(*current, hours))
