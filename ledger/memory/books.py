"""The books on a MemoryStore's state (`BooksWriter` and `ExportReader`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from ledger.domain import evidence
from ledger.domain.capacity import BilledSeconds
from ledger.domain.catalog import Catalog
from ledger.domain.correction_records import DisputeRow
from ledger.domain.errors import LedgerError
from ledger.domain.journal import GENESIS_HASH, ChainedEntry
from ledger.domain.metering import ClaimKey
from ledger.domain.payments import Payment, Transfer
from ledger.domain.periods import next_period
from ledger.domain.ports import Evidence, RollupCheck, VoidedBits, VoidRow
from ledger.domain.rating import HourUsage
from ledger.domain.usage import Coarsening, coarsen
from ledger.memory import payments as payment_rows


class MemoryBooks:
    def __init__(self, state, clock: Callable[[], float]) -> None:
        self.state = state
        self.clock = clock

    async def closed_through(self) -> str | None:
        return self.state.closed_through

    async def catalog(self) -> Catalog:
        return self.state.catalog

    async def hour_usages(
        self, booking_period: str, split_hours: list[int], *, coarse: Coarsening | None = None,
    ) -> list[HourUsage]:
        split = set(split_hours)
        totals: dict[tuple, int] = defaultdict(int)
        usages = []
        left = self.state.voided_bits(returned=False)  # what left the period's lines while open
        for key, claimed in self.state.claims.items():
            if key.booking_period != booking_period:
                continue
            bits = claimed & ~left.get(key, 0)
            if not bits:
                continue
            provider, reseller, tenant, sku = key.attribution
            group = (reseller, tenant, provider, sku, key.service_period, key.hour_start)
            if key.hour_start in split:
                usages.append(HourUsage(*group, bits.bit_count(), bits))
            else:
                totals[group] += bits.bit_count()
        return coarsen([HourUsage(*group, seconds) for group, seconds in totals.items()], coarse) + usages

    async def returned(self, through: str) -> list[VoidedBits]:
        return [part for part in self.state.voided if part.returned_in is not None and part.returned_in <= through]

    async def voids(self, member: str | None = None, limit: int | None = 1000) -> list[VoidRow]:
        found = [v for v in self.state.voids if member is None or member in v.void.attribution[:2]]
        return found[:limit]

    async def closed_statement(self, period: str) -> bytes | None:
        return self.state.closed_statements.get(period)

    async def closed_statements(self) -> dict[str, bytes]:
        return dict(self.state.closed_statements)

    async def members_at_close(self, period: str) -> list[str] | None:
        covering = sorted((through, members) for through, members in self.state.period_closes if through >= period)
        return covering[0][1] if covering else None

    async def closed_at(self, period: str) -> int | None:
        if period in self.state.closed_statements:
            return self.state.closed_at[period]
        covering = sorted(through for through, _ in self.state.period_closes if through >= period)
        return self.state.closed_at["through " + covering[0]] if covering else None

    async def journal(self, period: str | None = None):
        for entry in list(self.state.journal):
            if period is None or entry.period == period:
                yield entry

    async def earliest_booking_period(self) -> str | None:
        return min((key.booking_period for key in self.state.claims), default=None)

    async def check_rollups(self, limit: int) -> RollupCheck:
        # No rollups are kept here: the rows they would have, and nothing to differ.
        catalog = self.state.catalog
        billed = self.state.billed_now()
        rows = {
            (key.hour_start, key.attribution, key.service_period, key.booking_period,
             catalog.region_of(key.gpu_uuid, key.attribution[0], key.attribution[3]))
            for key, bits in billed.items() if bits
        }
        return RollupCheck(len(rows), sum(bits.bit_count() for bits in billed.values()), (), 0)

    async def now(self) -> int:
        return int(self.clock())

    async def store_closed_statement(self, period: str, document: bytes) -> None:
        if period in self.state.closed_statements:
            raise LedgerError(f"closed_statements: {period} is stored already")
        closed = self.state.closed_through
        if closed is not None and period <= closed:
            raise LedgerError(f"closed_statements: {period} is closed already; only the close of a period stores it")
        self.state.closed_statements[period] = document
        self.state.closed_at[period] = int(self.clock())

    async def journal_head(self) -> tuple[int, bytes]:
        journal = self.state.journal
        return (journal[-1].seq, journal[-1].hash) if journal else (0, GENESIS_HASH)

    async def append_journal(self, entries: list[ChainedEntry]) -> None:
        for entry in entries:
            total = sum(amount for _, amount in entry.postings)
            if len(entry.postings) < 2 or total != 0:
                raise LedgerError(f"journal entry {entry.seq} does not balance: {total} yen")
        self.state.journal.extend(entries)

    async def record_close(self, closed_through: str, member_ids: list[str]) -> None:
        previous = self.state.closed_through
        if previous is not None and closed_through <= previous:
            raise LedgerError(f"books: closed through {previous}, they cannot move back")
        if previous is not None:
            current = next_period(previous)
        else:
            current = min(closed_through, await self.earliest_booking_period() or closed_through)
        missing = []
        while current <= closed_through:
            if current not in self.state.closed_statements:
                missing.append(current)
            current = next_period(current)
        if missing:
            raise LedgerError(
                f"books: closing through {closed_through} needs the stored statement of every period it "
                f"closes; none is stored for {', '.join(missing)}"
            )
        self.state.period_closes.append((closed_through, list(member_ids)))
        self.state.closed_at["through " + closed_through] = int(self.clock())
        self.state.closed_through = closed_through

    async def evidence(self, booking_period: str):
        claims, voided = self.state.claims, self.state.voided
        mine = sorted(
            (key for key in claims if key.booking_period == booking_period),
            key=lambda k: (k.gpu_uuid, k.hour_start, *k.attribution, k.service_period),
        )
        for key in mine:
            hour = [part for part in voided if (part.key.gpu_uuid, part.key.hour_start) == (key.gpu_uuid, key.hour_start)]
            bits = evidence.as_booked(key, claims[key], hour)
            if not bits:
                continue
            others = [
                (other, other_bits) for other, other_bits in claims.items()
                if (other.gpu_uuid, other.hour_start) == (key.gpu_uuid, key.hour_start)
                and other.booking_period != booking_period
            ]
            yield Evidence(key, bits, evidence.elsewhere(booking_period, others, hour))

    async def void_parts(self, returned_in: str | None = None) -> list[tuple[str, VoidedBits]]:
        pairs = list(zip(self.state.voided_by, self.state.voided, strict=True))
        wanted = {void_id for void_id, part in pairs if returned_in is None or part.returned_in == returned_in}
        order = {row.id: index for index, row in enumerate(self.state.voids)}
        found = [(void_id, part) for void_id, part in pairs if void_id in wanted]
        return sorted(found, key=lambda pair: (order[pair[0]], pair[1].key))

    async def dispute_rows(self) -> list[DisputeRow]:
        moves = self.state.dispute_moves
        return [
            DisputeRow(f"dispute-{n}", dispute, tuple(moves[f"dispute-{n}"][seq] for seq in sorted(moves[f"dispute-{n}"])))
            for n, dispute in enumerate(self.state.disputes, start=1)
        ]

    async def claim_bits(self, keys: list[ClaimKey]) -> dict[ClaimKey, int]:
        return {key: self.state.claims[key] for key in keys if key in self.state.claims}

    async def capacity_billed(self, service_period: str) -> list[BilledSeconds]:
        catalog = self.state.catalog
        totals: dict[tuple, int] = defaultdict(int)
        for key, bits in self.state.billed_now().items():
            if key.service_period != service_period or not bits:
                continue
            provider, reseller, _, sku = key.attribution
            group = (provider, sku, catalog.region_of(key.gpu_uuid, provider, sku), reseller != provider)
            totals[group] += bits.bit_count()
        return [BilledSeconds(*group, seconds) for group, seconds in totals.items()]

    async def dead_letter_counts(self, since_ms: int, until_ms: int) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for letter in self.state.dead_letters:
            if since_ms <= letter.received_ms < until_ms:
                counts[letter.reason] += 1
        return dict(sorted(counts.items()))

    async def transfers(self, period: str | None = None) -> list[Transfer]:
        return payment_rows.transfers(self.state, period)

    async def payments(self, period: str | None = None, payment_id: str | None = None) -> list[Payment]:
        return payment_rows.payments(self.state, period, payment_id)
