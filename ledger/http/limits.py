"""How the API is shared: a rate of expensive requests per token, documents per member.

`RateLimiter` is a token bucket per API token: each expensive request (a statement, a
document or its list, a capacity report, a usage query not answered from the cache)
takes one unit; a token holds at most `burst` units and gets `per_second` back each
second. An empty bucket answers 429 with Retry-After: the seconds until a unit is back.
Buckets live in the API process (several API processes each keep their own).

`MemberSlots` bounds the documents (or usage queries) one caller (a member, or an
auditor's or admin's token) has in its pool at once, so one member asking for many
PDFs, or many queries over its 100,000 tenants, queues behind itself and never holds
the whole pool; beyond `queued` waiting, 429.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from contextlib import asynccontextmanager

from ledger.domain.access import Caller
from ledger.domain.errors import TooManyRequests


class RateLimiter:
    MAX_TOKENS = 100_000  # buckets kept; the fullest (idlest) are dropped first beyond it

    def __init__(self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        assert per_second > 0 and burst >= 1, (per_second, burst)
        self.per_second = per_second
        self.burst = burst
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}  # token id -> (units, when counted)

    def take(self, caller: Caller, what: str) -> None:
        """Take one unit of the caller's token, or raise TooManyRequests."""
        now = self.clock()
        units, then = self.buckets.get(caller.token_id, (float(self.burst), now))
        units = min(float(self.burst), units + (now - then) * self.per_second)
        if units < 1:
            self.buckets[caller.token_id] = (units, now)
            wait = math.ceil((1 - units) / self.per_second)
            raise TooManyRequests(
                f"{what}: this token's {self.burst} requests at once, {self.per_second:g} a second after, "
                f"are used up; ask again in {wait} s",
                retry_after_seconds=wait,
            )
        self.buckets[caller.token_id] = (units - 1, now)
        if len(self.buckets) > self.MAX_TOKENS:
            self._forget_full(now)

    def _forget_full(self, now: float) -> None:
        for token_id, (units, then) in list(self.buckets.items()):
            if units + (now - then) * self.per_second >= self.burst:
                del self.buckets[token_id]


class MemberSlots:
    """At most `per_member` tasks of one caller at once, `queued` more waiting; `what`
    they are (`documents`, `queries`) names them in the 429."""

    def __init__(self, per_member: int, queued: int, what: str = "documents") -> None:
        assert per_member >= 1 and queued >= 0, (per_member, queued)
        self.per_member = per_member
        self.queued = queued
        self.what = what
        self.semaphores: dict[str, asyncio.Semaphore] = {}
        self.users: dict[str, int] = {}  # owner -> its tasks running or waiting

    @staticmethod
    def owner(caller: Caller) -> str:
        return f"member:{caller.member}" if caller.member is not None else f"token:{caller.token_id}"

    @asynccontextmanager
    async def slot(self, caller: Caller):
        owner = self.owner(caller)
        users = self.users.get(owner, 0)
        if users >= self.per_member + self.queued:
            raise TooManyRequests(
                f"{self.per_member} of your {self.what} in the making and {self.queued} waiting; "
                "ask again when one is done", retry_after_seconds=2, code=f"too_many_{self.what}",
            )
        semaphore = self.semaphores.setdefault(owner, asyncio.Semaphore(self.per_member))
        self.users[owner] = users + 1
        try:
            async with semaphore:
                yield
        finally:
            self.users[owner] -= 1
            if not self.users[owner]:  # nobody holds or awaits it: forget the owner
                del self.users[owner], self.semaphores[owner]
