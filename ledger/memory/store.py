"""`MemoryStore`: the ledger's `Store` (ledger.domain.ports) in one process's memory.

What it is for: running the services with no database (their tests, the model of the
ledger), and pinning what the ports promise, since `tests/postgres/test_store_contract.py`
runs the same cases against this store and PostgreSQL. It keeps the invariants the
database enforces: billed seconds only grow and never in a closed period, the books only
move forward and only over stored statements, a closed statement is stored by its close
and once, a replay is stored once, journal entries balance.

Transactions are serialized by one lock and work on a copy of the state, which replaces
the state only when the block ends without an exception: all or nothing, as in
PostgreSQL. Nothing here is durable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

from ledger.domain.catalog import Catalog
from ledger.domain.correction_records import DisputeMove, NewDispute
from ledger.domain.errors import InputError, LedgerError
from ledger.domain.events import REASONS
from ledger.domain.journal import ChainedEntry
from ledger.domain.metering import ClaimKey
from ledger.domain.payments import Payment
from ledger.domain.ports import (
    DeadLetter,
    DeadLetterFilter,
    DeadLetterRef,
    Tally,
    TokenRecord,
    VoidedBits,
    VoidRow,
)
from ledger.domain.rating import HourUsage
from ledger.domain.usage import ANY_USAGE, Coarsening, UsageFilter, coarsen
from ledger.memory.books import MemoryBooks
from ledger.memory.disputes import MemoryDisputes
from ledger.memory.intake import MemoryIntake
from ledger.memory.payments import MemoryPayments


@dataclass
class State:
    """Everything a MemoryStore holds. Values are immutable; `copy` copies the containers."""

    catalog: Catalog = field(default_factory=Catalog)
    revision: int = 0
    loads: list[tuple[str, str]] = field(default_factory=list)  # (source, sha256) per revision
    closed_through: str | None = None
    closed_statements: dict[str, bytes] = field(default_factory=dict)
    period_closes: list[tuple[str, list[str]]] = field(default_factory=list)
    closed_at: dict[str, int] = field(default_factory=dict)  # period, or "through " + closed_through: Unix s
    claims: dict[ClaimKey, int] = field(default_factory=dict)
    voids: list[VoidRow] = field(default_factory=list)  # id = "void-" + (index + 1)
    voided: list[VoidedBits] = field(default_factory=list)
    voided_by: list[str] = field(default_factory=list)  # the void id of each part of `voided`
    disputes: list[NewDispute] = field(default_factory=list)  # id = "dispute-" + (index + 1)
    dispute_moves: dict[str, dict[int, DisputeMove]] = field(default_factory=dict)  # id -> seq -> move
    dead_letters: list[DeadLetter] = field(default_factory=list)  # id = index + 1
    replays: dict[int, str] = field(default_factory=dict)
    tallies: list[Tally] = field(default_factory=list)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    journal: list[ChainedEntry] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)  # pay-N at index N - 1, with its decision
    tokens: dict[str, TokenRecord] = field(default_factory=dict)
    token_uses: dict[str, int] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    pseudonym_key: bytes | None = None

    def copy(self) -> State:
        return replace(
            self,
            loads=list(self.loads),
            closed_statements=dict(self.closed_statements),
            period_closes=list(self.period_closes),
            closed_at=dict(self.closed_at),
            claims=dict(self.claims),
            voids=list(self.voids),
            voided=list(self.voided),
            voided_by=list(self.voided_by),
            disputes=list(self.disputes),
            dispute_moves={dispute_id: dict(moves) for dispute_id, moves in self.dispute_moves.items()},
            dead_letters=list(self.dead_letters),
            replays=dict(self.replays),
            tallies=list(self.tallies),
            positions=dict(self.positions),
            journal=list(self.journal),
            payments=list(self.payments),
            tokens=dict(self.tokens),
            token_uses=dict(self.token_uses),
            revoked=set(self.revoked),
        )

    def voided_bits(self, returned: bool | None = None) -> dict[ClaimKey, int]:
        """Per claim, the bits voids took (`returned`: only those returned by a later
        statement, True, or only those that left an open period's lines, False)."""
        found: dict[ClaimKey, int] = {}
        for part in self.voided:
            if returned is None or returned == (part.returned_in is not None):
                found[part.key] = found.get(part.key, 0) | part.bits
        return found

    def billed_now(self) -> dict[ClaimKey, int]:
        """Every claim's bits billed now: claimed, less voided."""
        voided = self.voided_bits()
        if not voided:
            return self.claims
        return {key: bits & ~voided.get(key, 0) for key, bits in self.claims.items()}

    def dead_letter_refs(self) -> list[tuple[int, DeadLetter]]:
        return list(enumerate(self.dead_letters, start=1))

    def kept_bytes(self, letter: DeadLetter) -> bytes:
        """The bytes a dead letter keeps: its own, or those of the one it refers to."""
        return letter.raw if letter.raw_of is None else self.dead_letters[letter.raw_of - 1].raw

    def whole(self, letter: DeadLetter) -> bool:
        return len(self.kept_bytes(letter)) == letter.raw_bytes


class MemoryCatalogWriter:
    def __init__(self, state: State) -> None:
        self.state = state

    async def closed_through(self) -> str | None:
        return self.state.closed_through

    async def catalog(self) -> tuple[Catalog, int]:
        return self.state.catalog, self.state.revision

    async def add(self, before: Catalog, after: Catalog, source: str, sha256: str) -> int:
        if before != self.state.catalog:
            raise LedgerError("the catalog changed during the load")
        self.state.catalog = after
        self.state.revision += 1
        self.state.loads.append((source, sha256))
        return self.state.revision


def _matches(letter: DeadLetter, where: DeadLetterFilter, *, as_reseller: bool) -> bool:
    if where.member is not None:
        named = (letter.provider, letter.reseller) if as_reseller else (letter.provider,)
        if where.member not in named:
            return False
    if where.reason is not None and letter.reason != where.reason:
        return False
    if where.since_ms is not None and letter.received_ms < where.since_ms:
        return False
    return where.until_ms is None or letter.received_ms < where.until_ms


def _no_nul(*values: str | None) -> None:
    # What PostgreSQL's text cannot hold, this store refuses too.
    if any(value is not None and "\x00" in value for value in values):
        raise InputError("PostgreSQL cannot store or compare this value: a NUL character", code="bad_value")


class MemoryStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.state = State()
        self.clock = clock
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def _transaction(self):
        async with self._lock:
            working = self.state.copy()
            yield working
            self.state = working

    @asynccontextmanager
    async def intake(self):
        async with self._transaction() as state:
            yield MemoryIntake(state, self.clock)

    @asynccontextmanager
    async def books(self, *, close: bool = False):
        async with self._transaction() as state:
            yield MemoryBooks(state, self.clock)
            # As PostgreSQL at commit: a statement is stored only by the close of its period.
            for period in state.closed_statements:
                if state.closed_through is None or period > state.closed_through:
                    raise LedgerError(
                        f"closed_statements: {period} was stored, but the books were not closed "
                        "through it in the same transaction"
                    )

    @asynccontextmanager
    async def disputes(self):
        async with self._transaction() as state:
            yield MemoryDisputes(state, self.clock)

    @asynccontextmanager
    async def snapshot(self):
        yield MemoryBooks(self.state.copy(), self.clock)

    @asynccontextmanager
    async def payments(self):
        async with self._transaction() as state:
            yield MemoryPayments(state, self.clock, MemoryBooks(state, self.clock))

    @asynccontextmanager
    async def catalog_load(self):
        async with self._transaction() as state:
            yield MemoryCatalogWriter(state)

    async def catalog(self) -> tuple[Catalog, int]:
        return self.state.catalog, self.state.revision

    async def catalog_revision(self) -> int:
        return self.state.revision

    async def ledger_version(self) -> tuple[int, int]:
        # Metering moves the positions; a void, a close or a replay changes the books too.
        changes = len(self.state.voids) + len(self.state.period_closes) + len(self.state.replays)
        return self.state.revision, sum(self.state.positions.values()) + changes

    async def record_rejections(self, letters: list[DeadLetter], tally: Tally) -> None:
        async with self._transaction() as state:
            state.dead_letters.extend(letters)
            state.tallies.append(tally)

    async def ingest_tally(self, ingest_id: str) -> dict[str, int]:
        _no_nul(ingest_id)
        sums: dict[str, int] = {"received": 0}
        for tally in self.state.tallies:
            if tally.ingest_id == ingest_id:
                for outcome, count in tally.counts.items():
                    sums[outcome] = sums.get(outcome, 0) + count
                    sums["received"] += count
        return {name: sums.get(name, 0) for name in ("received", "accepted", "duplicate", *REASONS)}

    async def dead_letter_page(self, where: DeadLetterFilter, after_id: int, limit: int, preview_bytes: int) -> list[dict]:
        _no_nul(where.member, where.reason)
        rows = []
        for letter_id, letter in self.state.dead_letter_refs():
            if letter_id <= after_id or not _matches(letter, where, as_reseller=True):
                continue
            rows.append({
                "id": letter_id, "reason": letter.reason, "detail": letter.detail,
                "received_ms": letter.received_ms, "provider": letter.provider,
                "reseller": letter.reseller, "ingest_id": letter.ingest_id,
                "raw_head": self.state.kept_bytes(letter)[:preview_bytes], "raw_bytes": letter.raw_bytes,
                "raw_sha256": letter.raw_sha256, "raw_whole": self.state.whole(letter),
                "replayed": letter_id in self.state.replays,
                "replay_outcome": self.state.replays.get(letter_id),
            })
            if len(rows) == limit:
                break
        return rows

    async def dead_letter_refs(self, ids: list[int]) -> dict[int, DeadLetterRef]:
        letters = self.state.dead_letters
        return {
            i: DeadLetterRef(letters[i - 1].provider, letters[i - 1].reseller, i in self.state.replays,
                             self.state.whole(letters[i - 1]))
            for i in ids
            if 1 <= i <= len(letters)
        }

    async def unreplayed_dead_letters(self, where: DeadLetterFilter, limit: int) -> list[int]:
        _no_nul(where.member, where.reason)
        found = [
            i for i, letter in self.state.dead_letter_refs()
            if i not in self.state.replays and self.state.whole(letter) and _matches(letter, where, as_reseller=False)
        ]
        return found[:limit]

    async def count_replayed(self, where: DeadLetterFilter) -> int:
        return sum(
            1 for i, letter in self.state.dead_letter_refs()
            if i in self.state.replays and _matches(letter, where, as_reseller=False)
        )

    async def count_not_replayable(self, where: DeadLetterFilter) -> int:
        _no_nul(where.member, where.reason)
        return sum(
            1 for i, letter in self.state.dead_letter_refs()
            if i not in self.state.replays and not self.state.whole(letter)
            and _matches(letter, where, as_reseller=False)
        )

    async def hour_usage(
        self, start: int, end: int, *, member: str | None = None, where: UsageFilter = ANY_USAGE,
        coarse: Coarsening | None = None,
    ) -> list[HourUsage]:
        _no_nul(member, where.provider, where.reseller, where.sku, where.service_period, where.region)
        catalog = self.state.catalog
        totals: dict[tuple, int] = {}
        for key, bits in self.state.billed_now().items():
            p, r, tenant, s = key.attribution
            if not start <= key.hour_start < end or (member is not None and member not in (p, r)):
                continue
            found_region = catalog.region_of(key.gpu_uuid, p, s)
            if any(want is not None and got != want for want, got in
                   ((where.provider, p), (where.reseller, r), (where.sku, s),
                    (where.service_period, key.service_period), (where.region, found_region))):
                continue
            group = (r, tenant, p, s, key.service_period, key.hour_start, found_region)
            totals[group] = totals.get(group, 0) + bits.bit_count()
        hourly = [HourUsage(*group[:6], seconds, None, group[6]) for group, seconds in totals.items()]
        return coarsen(hourly, coarse)

    async def member_exists(self, member: str) -> bool:
        return member in self.state.catalog.members

    async def insert_token(self, token: TokenRecord) -> None:
        async with self._transaction() as state:
            if token.token_id in state.tokens:
                raise LedgerError(f"token {token.token_id} exists")
            state.tokens[token.token_id] = replace(token, created_at=int(self.clock()))

    async def token(self, token_id: str) -> TokenRecord | None:
        found = self.state.tokens.get(token_id)
        if found is None:
            return None
        return replace(found, revoked=token_id in self.state.revoked, last_used_at=self.state.token_uses.get(token_id))

    async def token_and_version(self, token_id: str) -> tuple[TokenRecord | None, tuple[int, int]]:
        return await self.token(token_id), await self.ledger_version()

    async def tokens(self) -> list[TokenRecord]:
        return [await self.token(token_id) for token_id in self.state.tokens]

    async def touch_token(self, token_id: str, used_at: int) -> None:
        async with self._transaction() as state:
            state.token_uses[token_id] = used_at

    async def revoke_token(self, token_id: str) -> bool | None:
        async with self._transaction() as state:
            if token_id not in state.tokens:
                return None
            newly = token_id not in state.revoked
            state.revoked.add(token_id)
            return newly

    async def pseudonym_key(self, candidate: bytes) -> bytes:
        async with self._transaction() as state:
            if state.pseudonym_key is None:
                state.pseudonym_key = candidate
            return state.pseudonym_key

    async def close(self) -> None:
        """Nothing to release."""

    async def prepare_months(self) -> list[str]:
        return []  # memory needs no preparing

    async def pipeline_positions(self) -> list[tuple[str, int, int, int | None]]:
        return [(topic, partition, offset, None) for (topic, partition), offset in sorted(self.state.positions.items())]

    async def forget_positions(self, topic: str) -> None:
        async with self._transaction() as state:
            for key in [k for k in state.positions if k[0] == topic]:
                del state.positions[key]
