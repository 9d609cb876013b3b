"""What an auditor bundle's evidence line holds, with voids (docs/auditor-bundle.md).

A claim's seconds as its booking period's statement holds them are its bits less those
voids took while that period was open (`returned_in` None); seconds voided after the
close stay on the statement and are returned by a later one. `elsewhere` is what the
GPU-hour bills now in other booking periods (each claim less its own voids), less the
seconds of this period's claims of the hour that later periods returned: such a second
may be billed again elsewhere without being billed twice, since its return undoes it.
Pure: both stores hand the claims and voids of one GPU-hour in.
"""

from __future__ import annotations

from collections.abc import Iterable

from ledger.domain.correction_records import VoidedBits
from ledger.domain.metering import ClaimKey


def as_booked(key: ClaimKey, bits: int, voided: Iterable[VoidedBits]) -> int:
    """A claim's bits as its booking period's statement holds them."""
    for part in voided:
        if part.key == key and part.returned_in is None:
            bits &= ~part.bits
    return bits


def elsewhere(period: str, others: Iterable[tuple[ClaimKey, int]], voided: list[VoidedBits]) -> int:
    """The seconds of one GPU-hour billed now outside booking period `period`, less those
    `period`'s claims of the hour bill and later periods returned (`others`: the claims of
    the hour booked in other periods; `voided`: every void part of the hour)."""
    taken: dict[ClaimKey, int] = {}
    returned_here = 0
    for part in voided:
        taken[part.key] = taken.get(part.key, 0) | part.bits
        if part.key.booking_period == period and part.returned_in is not None:
            returned_here |= part.bits
    found = 0
    for key, bits in others:
        found |= bits & ~taken.get(key, 0)
    return found & ~returned_here
