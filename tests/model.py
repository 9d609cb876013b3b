"""An in-memory ledger built from the pure domain: the reference the tests compare with.

It applies SPEC.md's rules event by event with no Kafka and no PostgreSQL, so the
scenario and the property tests can check the rules fast, and the pipeline tests can
check that the real path gives the same numbers.
"""

from __future__ import annotations

from collections import Counter

from ledger.domain import credits, events, rating
from ledger.domain.capacity import BilledSeconds, capacity_report
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

    def receive(self, raw: bytes, receipt_ms: int, sender: str | None = None) -> str:
        """Outcome of one received event: accepted, duplicate or the reject reason. `sender`:
        the member whose own topic it came on (None: the operator's usage topic)."""
        decoded = events.decode(raw)
        if isinstance(decoded, events.Rejection):
            return decoded.reason
        checked = events.check(decoded, receipt_ms, self.catalog, sender)
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

    def _statement(self, period: str, closed: bool) -> dict:
        """A booking period's statement as JSON (as `settle` prints it), grants drawing from their balances carried over
        every earlier booking period (as stored when closed, as computed when open)."""
        balances = credits.opening_balances(self.catalog.grants)
        current = credits.first_period_of(self.catalog.grants)
        while current is not None and current < period:
            if current in self.closed:
                for drawn in self.closed[current]["grant_draws"]:
                    balances[drawn["grant"]] -= drawn["amount_yen"]
            else:
                credits.draw(self._lines(current), self.catalog.grants, balances)
            current = next_period(current)
        lines = self._lines(period)
        return rating.statement(
            period, self.catalog, lines, closed, credits.draw(lines, self.catalog.grants, balances)
        ).to_document()

    def capacity(self, period: str) -> dict:
        totals: dict[tuple, int] = {}
        for key, bits in self._meter._claims.items():
            if key.service_period == period:
                provider, reseller, _, sku = key.attribution
                group = (provider, sku, self.catalog.region_of(key.gpu_uuid, provider, sku), reseller != provider)
                totals[group] = totals.get(group, 0) + bits.bit_count()
        return capacity_report(period, self.catalog, [BilledSeconds(*g, n) for g, n in totals.items()])

    def settle(self, period: str, close: bool = False) -> dict:
        if close and (self.closed_through is None or period > self.closed_through):
            if self.closed_through is None:
                booked = [key.booking_period for key in self._meter._claims]
                first = min([period, *booked])
            else:
                first = next_period(self.closed_through)
            current = first
            while current <= period:
                self.closed[current] = self._statement(current, closed=True)
                current = next_period(current)
            self.closed_through = period
            self._meter.closed_through = period
        if period in self.closed:
            return self.closed[period]
        return self._statement(period, closed=False)
