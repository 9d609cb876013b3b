"""Statements for many readers: one alliance statement per period and ledger version,
every member's side of it derived from that one.

A statement is the whole alliance's work: every line of every member is rated, and the
nets and transfers need them all. Computing it again for each member that asks, as
each asked, made one member's volume every member's wait (100,000 one-second tenants on
one member's GPU: another member's statement went from 52 ms to 3.8 s). Here it is
computed once per (period, ledger version), by one caller however many ask at the same
time, and kept as bytes: the alliance's document for auditors and admins, and each
member's side (`access.member_view`, pseudonyms included) ready to send.

`compute` is the computation itself, a plain function of the store that the API runs
away from its event loop (`ledger.http.offload`); `StatementCache` is the keeping and
the sharing, whoever computes.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson

from ledger.domain import access
from ledger.domain.access import Caller
from ledger.domain.errors import NotFound
from ledger.domain.periods import parse_period
from ledger.domain.ports import Store
from ledger.domain.statement import GrantDraw
from ledger.service import books

Version = tuple[int, int]  # Store.ledger_version(): (catalog revision, batches metered)


@dataclass(frozen=True)
class Computed:
    """One period's alliance statement at one ledger version, as bytes, with each member's side."""

    period: str
    closed: bool
    document: bytes  # the alliance's statement, as `gpuledger settle` prints it
    views: dict[str, bytes]  # member -> its side of it
    grant_draws: tuple[GrantDraw, ...] = ()  # what grants drew (the usage API's credit estimate)
    size_bytes: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size_bytes", len(self.document) + sum(len(v) for v in self.views.values()))

    def for_caller(self, caller: Caller) -> bytes:
        """What `caller` may read of it: all (auditor, admin) or its member's side."""
        if caller.member is None:
            return self.document
        view = self.views.get(caller.member)
        if view is None:  # tokens are made only for members of the catalog
            raise NotFound(f"no member {caller.member!r}")
        return view

    def draws_for(self, caller: Caller) -> list[GrantDraw]:
        """The grant draws of grants the caller funds or whose tenants it bills (an auditor: all)."""
        return [d for d in self.grant_draws if caller.member is None or caller.member in (d.funder, d.reseller)]


async def compute(store: Store, period: str, pseudonym_key: bytes) -> Computed:
    """The statement of `period` as it stands (a closed period's stored bytes), and every
    member's side of it."""
    parse_period(period)
    async with store.books() as reader:
        closed_through = await reader.closed_through()
        catalog = await reader.catalog()
        if closed_through is not None and period <= closed_through:
            data = await books.closed_document(reader, period, catalog)
            statement = books.read(data)
        else:
            statement = await books.compute_statement(reader, period, catalog, closed=False)
            data = books.render(statement)
    members = sorted(set(catalog.members) | set(statement.net_yen))
    views = {m: orjson.dumps(access.member_view(statement, m, pseudonym_key)) for m in members}
    return Computed(period, statement.closed, data, views, statement.draws)


class StatementCache:
    """The latest computed statement of each period, at most MAX_PERIODS of them and
    MAX_BYTES in all (least recently used first out), and the computations under way.

    An open period's statement is good for its ledger version; a closed period's bytes
    never change, so it is good for as long as the catalog is (a new member needs its
    side). Callers asking for a (period, version) being computed wait for that same
    computation: one computation, however many ask.
    """

    MAX_PERIODS = 12
    MAX_BYTES = 512 * 1024 * 1024

    def __init__(self) -> None:
        self.entries: OrderedDict[str, tuple[Version, Computed]] = OrderedDict()
        self.running: dict[tuple[str, Version], asyncio.Future] = {}
        self.hits = self.misses = 0

    def _fresh(self, period: str, version: Version) -> Computed | None:
        found = self.entries.get(period)
        if found is None:
            return None
        kept_version, computed = found
        if kept_version == version or (computed.closed and kept_version[0] == version[0]):
            self.entries.move_to_end(period)
            return computed
        return None

    async def get(self, period: str, version: Version, compute: Callable[[], Awaitable[Computed]]) -> Computed:
        """The statement of `period` at `version`: kept, being computed, or computed now."""
        found = self._fresh(period, version)
        if found is not None:
            self.hits += 1
            return found
        key = (period, version)
        running = self.running.get(key)
        if running is None:
            self.misses += 1
            running = self.running[key] = asyncio.ensure_future(compute())
            running.add_done_callback(lambda done: self._done(key, done))
        # Shielded: a caller that goes away does not cancel the others' computation.
        return await asyncio.shield(running)

    def _done(self, key: tuple[str, Version], done: asyncio.Future) -> None:
        self.running.pop(key, None)
        if done.cancelled() or done.exception() is not None:
            return
        self._keep(key[0], key[1], done.result())

    def _keep(self, period: str, version: Version, computed: Computed) -> None:
        self.entries.pop(period, None)
        self.entries[period] = (version, computed)
        while len(self.entries) > self.MAX_PERIODS or (
            len(self.entries) > 1 and sum(c.size_bytes for _, c in self.entries.values()) > self.MAX_BYTES
        ):
            self.entries.popitem(last=False)
