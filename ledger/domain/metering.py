"""Which GPU-seconds an event bills: attribution, duplicates and conflicts.

The billing unit is one second of one GPU. Billed seconds are kept per GPU and UTC hour
as a 3600-bit integer (bit i is second `hour_start + i`), one per
`(attribution, service_period, booking_period)`; a `ClaimKey` names one such bitmap.
`Meter` holds the bitmaps of the (GPU, hour) pairs a batch touches, applies the batch's
events in order, and reports what changed for the store to write. It never forgets a
bit, so a replayed event can only be a duplicate.

Voids (SPEC.md, "Corrections") take seconds back from one attribution. Claims keep their
bits (they are what was billed, and when); a void's bits are kept apart and subtracted:
a second is billed now to the attribution whose claim has it and whose voids do not.
A second voided for A stays A's as far as A's events go (a re-send is a duplicate), but
is free for another attribution, whose event bills it anew: that is how a conflict is
resolved. The conflict check looks only at what is billed now.
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

from ledger.domain.events import CONFLICT, Rejection, Usage
from ledger.domain.periods import Calendar, next_period

HOUR_SECONDS = 3600
HOUR_BITS_BYTES = HOUR_SECONDS // 8  # a GPU-hour's bitmap, stored little-endian

ACCEPTED = "accepted"
DUPLICATE = "duplicate"

Attribution = tuple[str, str, str, str]  # (provider, reseller, tenant, sku)
CONFLICT_DETAIL = "some of these GPU-seconds are already billed under another attribution"


class ClaimKey(NamedTuple):
    gpu_uuid: str
    hour_start: int
    attribution: Attribution
    service_period: str
    booking_period: str


class Piece(NamedTuple):
    """Part of an event inside one hour and one service period."""

    hour_start: int
    mask: int
    service_period: str


def hours_of(usage: Usage) -> list[int]:
    first = usage.start - usage.start % HOUR_SECONDS
    last = usage.start + usage.seconds - 1
    return list(range(first, last - last % HOUR_SECONDS + 1, HOUR_SECONDS))


class Pieces:
    """Splits events at hour and period boundaries; caches what it learns per hour."""

    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar
        self._hours: dict[int, tuple[str, int]] = {}

    def _hour(self, hour_start: int) -> tuple[str, int]:
        info = self._hours.get(hour_start)
        if info is None:
            info = (
                self.calendar.period_of(hour_start),
                self.calendar.next_boundary(hour_start),
            )
            self._hours[hour_start] = info
        return info

    def split(self, start: int, seconds: int) -> list[Piece]:
        end = start + seconds
        hour_start = start - start % HOUR_SECONDS
        if end <= hour_start + HOUR_SECONDS:
            # Most events: inside one hour, and no period boundary in [start, end).
            period, boundary = self._hour(hour_start)
            if boundary >= end:
                return [Piece(hour_start, ((1 << seconds) - 1) << (start - hour_start), period)]
        pieces = []
        moment = start
        while moment < end:
            hour_start = moment - moment % HOUR_SECONDS
            period, boundary = self._hour(hour_start)
            piece_end = min(end, hour_start + HOUR_SECONDS)
            if boundary <= moment:
                period = self.calendar.period_of(moment)
            elif boundary < piece_end:
                # A period boundary inside the hour (a zone whose offset is not whole
                # hours): split there too, so each piece has one service period.
                piece_end = boundary
            width = piece_end - moment
            mask = ((1 << width) - 1) << (moment - hour_start)
            pieces.append(Piece(hour_start, mask, period))
            moment = piece_end
        return pieces


def booking_period_for(service_period: str, closed_through: str | None) -> str:
    """Where a second is booked: its service period, or the first open one if that is closed."""
    if closed_through is None or service_period > closed_through:
        return service_period
    return next_period(closed_through)


class Meter:
    """The billed seconds of some (GPU, hour) pairs, and the rules that add to them."""

    def __init__(self, pieces: Pieces, closed_through: str | None) -> None:
        self.pieces = pieces
        self._closed_through = closed_through
        # (gpu, hour) -> attribution -> bits billed now (claimed, less voided), over
        # service and booking periods
        self._by_hour: dict[tuple[str, int], dict[Attribution, int]] = defaultdict(dict)
        # (gpu, hour) -> attribution -> bits voided for it (which stay its, unless billed again)
        self._voided: dict[tuple[str, int], dict[Attribution, int]] = defaultdict(dict)
        self._claims: dict[ClaimKey, int] = {}
        self._changed: set[ClaimKey] = set()
        self._keys: dict[tuple[str, int, Attribution, str], ClaimKey] = {}  # booking period known

    @property
    def closed_through(self) -> str | None:
        return self._closed_through

    @closed_through.setter
    def closed_through(self, value: str | None) -> None:
        """A close between events: the booking periods of new seconds may change."""
        self._closed_through = value
        self._keys = {}

    def load(self, key: ClaimKey, bits: int) -> None:
        """Add a bitmap already stored."""
        self._claims[key] = self._claims.get(key, 0) | bits
        hour = (key.gpu_uuid, key.hour_start)
        by_attribution = self._by_hour[hour]
        voided = self._voided[hour].get(key.attribution, 0) if hour in self._voided else 0
        by_attribution[key.attribution] = (by_attribution.get(key.attribution, 0) | bits) & ~voided

    def load_voided(self, gpu_uuid: str, hour_start: int, attribution: Attribution, bits: int) -> None:
        """Add seconds voided for an attribution (stored voids), in any order with `load`."""
        hour = (gpu_uuid, hour_start)
        voided = self._voided[hour]
        voided[attribution] = voided.get(attribution, 0) | bits
        held = self._by_hour[hour]
        if attribution in held:
            held[attribution] &= ~bits

    def apply(self, usage: Usage) -> str | Rejection:
        """ACCEPTED, DUPLICATE, or a `conflict` Rejection; the state changes only if accepted."""
        gpu_uuid, provider, reseller, tenant, sku, start, seconds = usage
        attribution = (provider, reseller, tenant, sku)
        by_hour = self._by_hour
        fresh: list[tuple[Piece, int, dict[Attribution, int] | None]] = []
        voids = self._voided
        for piece in self.pieces.split(start, seconds):
            held = by_hour.get((gpu_uuid, piece.hour_start))
            new = piece.mask
            if held:
                for other, bits in held.items():
                    if other != attribution and bits & new:
                        # Whose claim it is belongs to its parties: the detail says only that
                        # there is one (any member can send any uuid and read its dead letter).
                        return Rejection(CONFLICT, CONFLICT_DETAIL)
                new &= ~held.get(attribution, 0)
            if voids and new:
                voided = voids.get((gpu_uuid, piece.hour_start))
                if voided:
                    new &= ~voided.get(attribution, 0)
            if new:
                fresh.append((piece, new, held))
        if not fresh:
            return DUPLICATE
        claims, keys = self._claims, self._keys
        for piece, new, held in fresh:
            hour_start, _, service_period = piece
            # One ClaimKey per bitmap, not per event: the plain tuple is cheaper to build.
            name = (gpu_uuid, hour_start, attribution, service_period)
            key = keys.get(name)
            if key is None:
                key = keys[name] = ClaimKey(
                    gpu_uuid, hour_start, attribution, service_period,
                    booking_period_for(service_period, self._closed_through),
                )
            claims[key] = claims.get(key, 0) | new
            self._changed.add(key)
            if held is None:
                held = by_hour[(gpu_uuid, hour_start)]
            held[attribution] = held.get(attribution, 0) | new
        return ACCEPTED

    def changed(self) -> list[tuple[ClaimKey, int]]:
        """The bitmaps that gained seconds, with their whole new value."""
        return [(key, self._claims[key]) for key in self._changed]

    def billed(self, key: ClaimKey) -> int:
        """The bits of a claim billed now (its claimed bits less those voided for its attribution)."""
        voided = self._voided.get((key.gpu_uuid, key.hour_start), {}).get(key.attribution, 0)
        return self._claims.get(key, 0) & ~voided

    def billed_between(self, gpu_uuid: str, attribution: Attribution, start: int, end: int) -> list[tuple[ClaimKey, int]]:
        """The bits of [start, end) of one GPU billed now to `attribution`, by claim (loaded claims)."""
        found = []
        for key in sorted(k for k in self._claims if k.gpu_uuid == gpu_uuid and k.attribution == attribution):
            hour_end = key.hour_start + HOUR_SECONDS
            if key.hour_start >= end or hour_end <= start:
                continue
            first, last = max(start, key.hour_start) - key.hour_start, min(end, hour_end) - key.hour_start
            bits = self.billed(key) & (((1 << (last - first)) - 1) << first)
            if bits:
                found.append((key, bits))
        return found

    def void(self, gpu_uuid: str, attribution: Attribution, start: int, end: int) -> list[tuple[ClaimKey, int]]:
        """Void the seconds of [start, end) of one GPU billed now to `attribution` (its
        loaded claims): the bits each claim loses, by claim; [] when none is billed."""
        taken = self.billed_between(gpu_uuid, attribution, start, end)
        for key, bits in taken:
            self.load_voided(key.gpu_uuid, key.hour_start, attribution, bits)
        return taken
