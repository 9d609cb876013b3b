"""An in-memory ledger built from the pure domain: the reference the tests compare with.

It applies SPEC.md's rules event by event with no Kafka and no PostgreSQL, so the
scenario and the property tests can check the rules fast, and the pipeline tests can
check that the real path gives the same numbers.
"""

from __future__ import annotations

from collections import Counter

from ledger.domain import events, rating
from ledger.domain.catalog import Catalog
from ledger.domain.catalog_file import parse_catalog
from ledger.domain.metering import Meter, Pieces
from ledger.domain.periods import next_period


class InMemoryLedger:
    def __init__(self) -> None:
        self.catalog = Catalog()
        self.closed_through: str | None = None
        self.closed: dict[str, dict] = {}
        self._meter: Meter | None = None

    def load_catalog(self, text: bytes) -> None:
        closed_before = None
        if self.closed_through is not None:
            closed_before = self.catalog.calendar.bounds(self.closed_through)[1]
        self.catalog = self.catalog.merge(parse_catalog(text), closed_before)
        if self._meter is None:
            self._meter = Meter(Pieces(self.catalog.calendar), self.closed_through)

    def receive(self, raw: bytes, receipt_ms: int) -> str:
        """Outcome of one received event: accepted, duplicate or the reject reason."""
        decoded = events.decode(raw)
        if isinstance(decoded, events.Rejection):
            return decoded.reason
        checked = events.check(decoded, receipt_ms, self.catalog)
        if isinstance(checked, events.Rejection):
            return checked.reason
        outcome = self._meter.apply(checked)
        return outcome.reason if isinstance(outcome, events.Rejection) else outcome

    def ingest(self, lines: list[bytes], receipt_ms: int) -> dict:
        counts = Counter(self.receive(line, receipt_ms) for line in lines)
        accepted, duplicate = counts.pop("accepted", 0), counts.pop("duplicate", 0)
        return {
            "received": len(lines),
            "accepted": accepted,
            "duplicate": duplicate,
            "rejected": dict(counts),
        }

    def _lines(self, period: str) -> list[rating.Line]:
        usages = [
            rating.HourUsage(
                key.attribution[1], key.attribution[2], key.attribution[0], key.attribution[3],
                key.service_period, key.hour_start, bits.bit_count(), bits,
            )
            for key, bits in self._meter._claims.items()
            if key.booking_period == period
        ]
        return rating.rate(self.catalog, usages)

    def settle(self, period: str, close: bool = False) -> dict:
        if close and (self.closed_through is None or period > self.closed_through):
            if self.closed_through is None:
                booked = [key.booking_period for key in self._meter._claims]
                first = min([period, *booked])
            else:
                first = next_period(self.closed_through)
            current = first
            while current <= period:
                self.closed[current] = rating.statement(
                    current, self.catalog, self._lines(current), closed=True
                )
                current = next_period(current)
            self.closed_through = period
            self._meter.closed_through = period
        if period in self.closed:
            return self.closed[period]
        return rating.statement(period, self.catalog, self._lines(period), closed=False)
