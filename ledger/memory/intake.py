"""One batch's transaction on a MemoryStore's working state (`IntakeTransaction`)."""

from __future__ import annotations

from ledger.domain.catalog import Catalog
from ledger.domain.errors import LedgerError
from ledger.domain.metering import ClaimKey
from ledger.domain.ports import DeadLetter, NewVoid, ReplayTarget, Tally, VoidedBits, VoidRow
from schemas.wire import MAX_EVENT_BYTES


class MemoryIntake:
    def __init__(self, state, clock=lambda: 0.0) -> None:
        self.state = state
        self.clock = clock

    async def closed_through(self) -> str | None:
        return self.state.closed_through

    async def positions(self, topic: str, partitions: list[int]) -> dict[int, int]:
        found = {p: self.state.positions.get((topic, p)) for p in partitions}
        return {p: offset for p, offset in found.items() if offset is not None}

    async def catalog_revision(self) -> int:
        return self.state.revision

    async def catalog(self) -> tuple[Catalog, int]:
        return self.state.catalog, self.state.revision

    async def replay_targets(self, ids: list[int]) -> dict[int, ReplayTarget]:
        state = self.state
        targets = {}
        for i in ids:
            if 1 <= i <= len(state.dead_letters):
                letter = state.dead_letters[i - 1]
                targets[i] = ReplayTarget(
                    state.kept_bytes(letter), letter.received_ms, i in state.replays, letter.sender,
                    state.whole(letter), letter.raw_of if letter.raw_of is not None else i,
                )
        return targets

    async def lock_gpus(self, gpu_uuids: list[str]) -> None:
        """Nothing to lock: the store runs one transaction at a time."""

    async def claims(self, pairs: list[tuple[str, int]]) -> list[tuple[ClaimKey, int]]:
        wanted = set(pairs)
        return [
            (key, bits) for key, bits in self.state.claims.items()
            if (key.gpu_uuid, key.hour_start) in wanted
        ]

    async def voided(self, pairs: list[tuple[str, int]]) -> list[tuple[ClaimKey, int]]:
        wanted = set(pairs)
        return [(key, bits) for key, bits in self.state.voided_bits().items() if (key.gpu_uuid, key.hour_start) in wanted]

    async def write_void(self, void: NewVoid, taken: list[VoidedBits]) -> str:
        claimed = self.state.claims
        for part in taken:
            if part.bits & ~claimed.get(part.key, 0) or part.bits & self.state.voided_bits().get(part.key, 0):
                raise LedgerError(f"voided_seconds: bits of gpu {part.key.gpu_uuid} not billed to that claim")
        void_id = f"void-{len(self.state.voids) + 1}"
        returned_in = min((p.returned_in for p in taken if p.returned_in is not None), default=None)
        self.state.voids.append(VoidRow(void_id, void, int(self.clock()), returned_in))
        self.state.voided.extend(taken)
        self.state.voided_by.extend(void_id for _ in taken)
        return void_id

    async def write_claims(self, changed: list[tuple[ClaimKey, int]]) -> None:
        closed = self.state.closed_through
        for key, bits in changed:
            if closed is not None and key.booking_period <= closed:
                raise LedgerError(f"claims: {key.booking_period} is closed; seconds cannot be booked into it")
            old = self.state.claims.get(key, 0)
            if old & ~bits:
                raise LedgerError(f"claims: billed seconds cannot be removed (gpu {key.gpu_uuid}, hour {key.hour_start})")
            self.state.claims[key] = bits

    async def write_dead_letters(self, letters: list[DeadLetter]) -> None:
        for letter in letters:  # as PostgreSQL's foreign key and checks hold them
            if letter.raw_of is not None:
                if not 1 <= letter.raw_of <= len(self.state.dead_letters):
                    raise LedgerError(f"dead_letters: raw_of {letter.raw_of} does not exist")
                if self.state.dead_letters[letter.raw_of - 1].raw_of is not None:
                    raise LedgerError(f"dead_letters: raw_of {letter.raw_of} refers to another's bytes itself")
                if letter.raw:
                    raise LedgerError("dead_letters: a dead letter that refers to another's bytes keeps none")
            if len(letter.raw) > MAX_EVENT_BYTES:
                raise LedgerError(f"dead_letters: {len(letter.raw)} bytes kept, more than {MAX_EVENT_BYTES}")
        self.state.dead_letters.extend(letters)

    async def write_tallies(self, tallies: list[Tally]) -> None:
        self.state.tallies.extend(tallies)

    async def record_replays(self, outcomes: list[tuple[int, str]]) -> int:
        new = 0
        for dead_letter_id, outcome in outcomes:
            if dead_letter_id not in self.state.replays:
                self.state.replays[dead_letter_id] = outcome
                new += 1
        return new

    async def advance_positions(self, topic: str, next_offsets: dict[int, int]) -> None:
        for partition, offset in next_offsets.items():
            key = (topic, partition)
            self.state.positions[key] = max(self.state.positions.get(key, 0), offset)
