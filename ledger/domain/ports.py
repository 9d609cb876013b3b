"""What the services need from the outside world, as interfaces (Protocols).

The use cases in `ledger.service` are written against these and nothing else, so they run
unchanged on PostgreSQL (`ledger.postgres.PostgresStore`) and in memory
(`ledger.memory.MemoryStore`); `tests/postgres/test_store_contract.py` holds both to the
same behaviour. A method's docstring is its contract: what it returns, what it locks,
and what it refuses. Values crossing a port are the frozen records below or domain
values (`Catalog`, `ClaimKey`, `HourUsage`, `ChainedEntry`, `RollupCheck`, and the records of
voids and disputes in `ledger.domain.correction_records`).

Transactions are async context managers: everything done through one commits together
when its block ends without an exception, and none of it when the block raises. Store
errors reach the services only as `ledger.domain.errors` (`StoreBusy` may be retried;
`ServiceUnavailable` means the store went away).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from ledger.domain.capacity import BilledSeconds
from ledger.domain.catalog import Catalog
from ledger.domain.correction_ports import CorrectionsReader
from ledger.domain.correction_records import NewVoid, VoidedBits, VoidRow
from ledger.domain.journal import ChainedEntry
from ledger.domain.metering import ClaimKey
from ledger.domain.payment_ports import PaymentsTransaction
from ledger.domain.payments import Payment, Transfer
from ledger.domain.rating import HourUsage
from ledger.domain.records import keep_raw
from ledger.domain.rollup_check import RollupCheck
from ledger.domain.usage import ANY_USAGE, Coarsening, UsageFilter

# -- records that cross the ports ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected event: its reason, its bytes as kept, and where it came from.

    Made with the event's bytes as `raw`; it keeps them as `records.keep_raw` says (whole
    within 1 MiB, else the first 4 KiB) with their full size and SHA-256. With `raw_of`
    (a replay rejected again) it keeps none: the bytes are those stored by dead letter
    `raw_of`, and `raw` is empty.
    """

    reason: str
    detail: str
    raw: bytes
    received_ms: int
    topic: str | None
    partition: int | None
    offset: int | None
    position: int | None
    ingest_id: str
    provider: str | None  # as the event names them, when it does: who may see it
    reseller: str | None
    sender: str | None = None  # the member it came from (None: the operator); a replay keeps it
    raw_of: int | None = None
    raw_bytes: int = -1  # set from raw: the event's full size
    raw_sha256: bytes = b""  # set from raw

    def __post_init__(self) -> None:
        if self.raw_bytes < 0:
            kept = keep_raw(self.raw)
            object.__setattr__(self, "raw", b"" if self.raw_of is not None else kept.stored)
            object.__setattr__(self, "raw_bytes", kept.size)
            object.__setattr__(self, "raw_sha256", kept.sha256)


@dataclass(frozen=True, slots=True)
class Tally:
    """Outcome counts of one ingest in one batch (or one replay, or one file's oversize lines)."""

    ingest_id: str
    topic: str | None
    partition: int | None
    counts: dict[str, int]  # accepted, duplicate, and reject reasons -> events


@dataclass(frozen=True, slots=True)
class ReplayTarget:
    """A dead letter named by a replay: its bytes, its receipt time, whether it was replayed,
    and the member it came from (a replay judges it again as that member's)."""

    raw: bytes
    received_ms: int
    replayed: bool
    sender: str | None = None
    whole: bool = True  # False: only a prefix of the event is kept, which no replay may judge
    bytes_of: int | None = None  # the dead letter whose row holds `raw` (itself, or its raw_of)


@dataclass(frozen=True, slots=True)
class DeadLetterRef:
    """Who a dead letter names, and whether it was replayed: enough to decide a replay request."""

    provider: str | None
    reseller: str | None
    replayed: bool
    whole: bool = True  # its event's bytes are kept whole: it can be replayed


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Which dead letters: naming `member` (as provider, or as reseller too when listing),
    of `reason`, received in [since_ms, until_ms). None: any."""

    member: str | None = None
    reason: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Evidence:
    """One bitmap of billed seconds of a booking period, with the bits of the same GPU-hour
    billed in other booking periods (what an auditor needs to recompute the lines)."""

    key: ClaimKey
    bits: int
    elsewhere: int


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token_id: str
    role: str
    member: str | None
    salt: bytes
    digest: bytes
    revoked: bool
    expires_at: int  # Unix seconds
    created_at: int | None = None  # set by the store
    last_used_at: int | None = None
    label: str = ""


# -- the ports ---------------------------------------------------------------------------


class IntakeTransaction(Protocol):
    """One batch of the usage topic, decided and written at once (ledger.service.intake)."""

    async def closed_through(self) -> str | None:
        """The last closed period; held (shared) until commit, so no close interleaves."""

    async def positions(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """The next offset to apply per partition (absent: 0), locked until commit."""

    async def catalog_revision(self) -> int:
        """The newest catalog revision (0: none loaded)."""

    async def catalog(self) -> tuple[Catalog, int]:
        """The stored catalog and its revision."""

    async def replay_targets(self, ids: list[int]) -> dict[int, ReplayTarget]:
        """The named dead letters that exist, locked against concurrent replays of the same ids."""

    async def lock_gpus(self, gpu_uuids: list[str]) -> None:
        """Hold these GPUs until commit; every caller locks in sorted order (no deadlock)."""

    async def claims(self, pairs: list[tuple[str, int]]) -> list[tuple[ClaimKey, int]]:
        """Every stored bitmap of these (gpu_uuid, hour_start) pairs."""

    async def voided(self, pairs: list[tuple[str, int]]) -> list[tuple[ClaimKey, int]]:
        """The bits voids took from the claims of these (gpu_uuid, hour_start) pairs, per claim."""

    async def write_void(self, void: NewVoid, taken: list[VoidedBits]) -> str:
        """Store a void and the bits it takes from each claim; returns its id (`void-N`).
        The rollups stop counting those seconds in the same transaction."""

    async def write_claims(self, changed: list[tuple[ClaimKey, int]]) -> None:
        """Store each bitmap's whole new value. Bits only grow; a closed booking period refuses."""

    async def write_dead_letters(self, letters: list[DeadLetter]) -> None: ...

    async def write_tallies(self, tallies: list[Tally]) -> None: ...

    async def record_replays(self, outcomes: list[tuple[int, str]]) -> int:
        """Mark dead letters replayed with their outcome; returns how many were new."""

    async def advance_positions(self, topic: str, next_offsets: dict[int, int]) -> None:
        """Store the next offset per partition; a position never moves back."""


class BooksReader(Protocol):
    """Reading statements and the journal (one consistent view for its lifetime)."""

    async def closed_through(self) -> str | None: ...

    async def catalog(self) -> Catalog: ...

    async def hour_usages(
        self, booking_period: str, split_hours: list[int], *, coarse: Coarsening | None = None,
    ) -> list[HourUsage]:
        """Billed seconds of a booking period per attribution, service period and hour, as
        its statement holds them: less the seconds voids took while it was open, with those
        returned later (by a later period's statement) still in; with `bits` for the hours
        in `split_hours` (where a version starts inside the hour). With `coarse`, the other
        hours are summed as `ledger.domain.usage.coarsen` does (the hours in `split_hours`
        never are)."""

    async def returned(self, through: str) -> list[VoidedBits]:
        """The bits voids took from claims of closed booking periods, returned in booking
        periods up to and including `through`."""

    async def voids(self, member: str | None = None, limit: int | None = 1000) -> list[VoidRow]:
        """Stored voids, oldest first: those of seconds `member` provided or resold (None: all);
        at most `limit` (None: every one)."""

    async def closed_statement(self, period: str) -> bytes | None:
        """The stored bytes of a closed period's statement (None: none stored)."""

    async def members_at_close(self, period: str) -> list[str] | None:
        """The members known at the close that covered `period` (None: not closed)."""

    async def closed_at(self, period: str) -> int | None:
        """When `period` was closed, Unix seconds (floored): the time its statement was
        stored, else that of the close that covered it; None while it is open."""

    def journal(self, period: str | None = None) -> AsyncIterator[ChainedEntry]:
        """Journal entries in sequence order (of one period, or all), streamed."""

    async def closed_statements(self) -> dict[str, bytes]: ...

    async def earliest_booking_period(self) -> str | None:
        """The first booking period with billed seconds (None: nothing billed)."""

    async def check_rollups(self, limit: int) -> RollupCheck:
        """Recompute the hourly rollups from the billed seconds (grouped with the registry
        as it is now) and compare them with the stored ones; at most `limit` differences
        are listed, in key order. A store that keeps no rollups sums its bitmaps (rows and
        seconds) and has nothing to differ."""

    async def capacity_billed(self, service_period: str) -> list[BilledSeconds]:
        """Billed seconds of a service period (any booking period) by provider, SKU, the
        region of the uuid's registration when it has that provider and SKU (else None),
        and whether resold."""


class BooksWriter(BooksReader, Protocol):
    """Closing periods: one transaction holding the books exclusively (`Store.books(close=True)`)."""

    async def now(self) -> int:
        """The store's clock, Unix seconds: whether a period has ended is decided by it."""

    async def store_closed_statement(self, period: str, document: bytes) -> None:
        """Store the statement of a period this transaction closes: a period closed already
        refuses, and so does the commit of a transaction that stored the statement of a
        period without closing the books through it (`record_close`)."""

    async def journal_head(self) -> tuple[int, bytes]:
        """(seq, hash) of the last entry; (0, 32 zero bytes) for an empty journal. Holds the
        journal until commit: appends (closes, payments' confirmations) are serialized."""

    async def append_journal(self, entries: list[ChainedEntry]) -> None:
        """Append entries; each must balance (the store refuses an unbalanced one)."""

    async def record_close(self, closed_through: str, member_ids: list[str]) -> None:
        """Move the books forward to `closed_through` (never back), remembering the members
        known at this close. Refused unless the statement of every period it closes is
        stored: from the one after the previous `closed_through` (or, at the first close,
        from the first booking period with billed seconds, if earlier) through it."""


class ExportReader(BooksReader, CorrectionsReader, Protocol):
    """A closed period's bundle, and `verify --db`: one read-only snapshot."""

    def evidence(self, booking_period: str) -> AsyncIterator[Evidence]:
        """The period's bitmaps, ordered by gpu_uuid, hour and attribution (code point order),
        as its statement holds them and with what is billed elsewhere (`ledger.domain.evidence`)."""

    async def dead_letter_counts(self, since_ms: int, until_ms: int) -> dict[str, int]: ...

    async def transfers(self, period: str | None = None) -> list[Transfer]:
        """As `PaymentsTransaction.transfers` (ledger.domain.payment_ports)."""

    async def payments(self, period: str | None = None, payment_id: str | None = None) -> list[Payment]: ...


class CatalogWriter(Protocol):
    """A catalog load: loads are serialized, and a concurrent close waits for this one."""

    async def closed_through(self) -> str | None: ...

    async def catalog(self) -> tuple[Catalog, int]: ...

    async def add(self, before: Catalog, after: Catalog, source: str, sha256: str) -> int:
        """Store what `after` has that `before` has not, as a new revision; returns it."""


class Store(Protocol):
    """Everything the ledger keeps."""

    def intake(self) -> AbstractAsyncContextManager[IntakeTransaction]: ...

    def books(self, *, close: bool = False) -> AbstractAsyncContextManager[BooksWriter]:
        """A transaction over the books; `close=True` holds them exclusively (closing)."""

    def snapshot(self) -> AbstractAsyncContextManager[ExportReader]: ...
    def catalog_load(self) -> AbstractAsyncContextManager[CatalogWriter]: ...
    def payments(self) -> AbstractAsyncContextManager[PaymentsTransaction]: ...
    async def catalog(self) -> tuple[Catalog, int]: ...
    async def catalog_revision(self) -> int: ...

    async def ledger_version(self) -> tuple[int, int]:
        """(catalog revision, a number that grows whenever workers meter a batch, and with
        every void, close and replay of dead letters): equal versions, equal books."""

    async def record_rejections(self, letters: list[DeadLetter], tally: Tally) -> None:
        """Dead letters and their tally, at once (events rejected before any worker saw them)."""

    async def ingest_tally(self, ingest_id: str) -> dict[str, int]:
        """Sums of every tally of an ingest: received, accepted, duplicate and each reason."""

    async def dead_letter_page(
        self, where: DeadLetterFilter, after_id: int, limit: int, preview_bytes: int
    ) -> list[dict]:
        """Dead letters after `after_id`, in id order, naming `where.member` as provider or
        reseller; each with the first `preview_bytes` of its kept bytes (its own, or those
        of its `raw_of`) as `raw_head`, the event's full size `raw_bytes`, `raw_sha256`,
        and `raw_whole` (whether the kept bytes are the whole event)."""

    async def dead_letter_refs(self, ids: list[int]) -> dict[int, DeadLetterRef]: ...

    async def unreplayed_dead_letters(self, where: DeadLetterFilter, limit: int) -> list[int]:
        """Ids of dead letters not yet replayed and kept whole, `where.member` as provider,
        in id order."""

    async def count_replayed(self, where: DeadLetterFilter) -> int: ...

    async def count_not_replayable(self, where: DeadLetterFilter) -> int:
        """Dead letters matching `where` (as `unreplayed_dead_letters`), not replayed, that
        keep only a prefix of their event."""

    async def hour_usage(
        self, start: int, end: int, *, member: str | None = None, where: UsageFilter = ANY_USAGE,
        coarse: Coarsening | None = None,
    ) -> list[HourUsage]:
        """Billed seconds per attribution, service period, region and hour in [start, end),
        naming `member` as provider or reseller (None: all), as `where` filters; `bits`
        not set. The region is that of the uuid's registration with the same provider and
        SKU. With `coarse`, hours may be summed as `ledger.domain.usage.coarsen` does."""

    async def member_exists(self, member: str) -> bool: ...

    async def insert_token(self, token: TokenRecord) -> None: ...

    async def token(self, token_id: str) -> TokenRecord | None: ...

    async def token_and_version(self, token_id: str) -> tuple[TokenRecord | None, tuple[int, int]]:
        """`token` and `ledger_version` read at once: what every API request reads first."""

    async def tokens(self) -> list[TokenRecord]:
        """Every token, oldest first."""

    async def touch_token(self, token_id: str, used_at: int) -> None:
        """Remember that a token was used at `used_at` (Unix seconds)."""

    async def revoke_token(self, token_id: str) -> bool | None:
        """True if newly revoked, False if it was already, None if there is no such token."""

    async def pseudonym_key(self, candidate: bytes) -> bytes:
        """The ledger's pseudonym key: `candidate` if none was stored yet, else the stored one."""

    async def forget_positions(self, topic: str) -> None:
        """Drop the stored positions of a topic that was recreated (empty, from offset 0)."""

    async def pipeline_positions(self) -> list[tuple[str, int, int, int | None]]:
        """Per partition applied: (topic, partition, next offset, last moved at or None)."""

    async def prepare_months(self) -> list[str]:
        """Make the storage of the coming months ready before their usage arrives
        (PostgreSQL: monthly partitions); the names of what was made."""

    async def close(self) -> None:
        """Release what the store holds (connections)."""


class Publisher(Protocol):
    """The usage topic, as the services write to it (`streams.publish.KafkaPublisher`)."""

    async def publish(
        self, lines: Iterable[bytes], ingest_id: str, *, batch_max_events: int,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Send a file's events (each at most 1 MiB) under one ingest id, one GPU's
        consecutive events together; wait until the broker has them all; return records sent."""

    async def send_events(self, raws: list[bytes], ingest_id: str, sender: str | None = None) -> int:
        """Send events (at most MAX_BATCH_EVENTS, each at most 1 MiB) as ONE record under one
        ingest id, and wait until the broker has it: all of them are in Kafka, or none.
        `sender`: the member they come from, whose own topic they go to (None: the usage topic)."""

    async def close(self) -> None: ...
