"""Statements for many readers (ledger/service/statements.py): one alliance statement per
period and ledger version, computed once however many ask, each member's side of it the
member view of that one statement."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from ledger.domain.access import Caller, member_view
from ledger.domain.errors import NotFound
from ledger.service import books, statements
from ledger.service.intake import Intake
from tests.factories import DEFAULT_CATALOG, encode, ms, usage_event
from tests.service.conftest import LoopbackPublisher, deliver, load_catalog

KEY = b"k" * 32
KDDI = Caller("t1", "member", "kddi")
SAKURA = Caller("t2", "member", "sakura")
AUDITOR = Caller("t3", "auditor", None)


async def billed(store, seconds: int, gpu: str, tenant: str = "acme") -> None:
    publisher = LoopbackPublisher(clock_ms=lambda: ms("2026-10-03T13:00:00Z"))
    await publisher.send_events([encode(usage_event(seconds=seconds, gpu_uuid=gpu, tenant=tenant))], gpu)
    await deliver(publisher, Intake(store))


class Counting:
    """`statements.compute` on a store, counting the computations (and holding each one
    until released, to have callers arrive while it runs)."""

    def __init__(self, store) -> None:
        self.store = store
        self.count = 0
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> statements.Computed:
        self.count += 1
        await self.release.wait()
        return await statements.compute(self.store, "2026-10", KEY)


async def test_each_callers_side_is_the_member_view_of_the_one_statement(store):
    await load_catalog(store, DEFAULT_CATALOG)
    await billed(store, 3600, "GPU-a")
    computed = await statements.compute(store, "2026-10", KEY)
    alliance = books.read(await books.statement(store, "2026-10"))
    assert computed.for_caller(AUDITOR) == await books.statement(store, "2026-10")
    for caller in (KDDI, SAKURA):
        assert orjson.loads(computed.for_caller(caller)) == member_view(alliance, caller.member, KEY)
    assert computed.size_bytes == len(computed.document) + sum(len(v) for v in computed.views.values())
    with pytest.raises(NotFound):
        computed.for_caller(Caller("t4", "member", "nobody"))


async def test_callers_asking_at_once_share_one_computation(store):
    await load_catalog(store, DEFAULT_CATALOG)
    await billed(store, 60, "GPU-a")
    cache, compute = statements.StatementCache(), Counting(store)
    compute.release.clear()
    version = await store.ledger_version()
    waiting = [asyncio.create_task(cache.get("2026-10", version, compute)) for _ in range(5)]
    await asyncio.sleep(0)
    compute.release.set()
    answers = await asyncio.gather(*waiting)
    assert compute.count == 1 and all(a is answers[0] for a in answers)
    assert await cache.get("2026-10", version, compute) is answers[0] and compute.count == 1


async def test_a_new_ledger_version_is_a_new_statement(store):
    await load_catalog(store, DEFAULT_CATALOG)
    await billed(store, 60, "GPU-a")
    cache, compute = statements.StatementCache(), Counting(store)
    first = await cache.get("2026-10", await store.ledger_version(), compute)
    await billed(store, 30, "GPU-b", tenant="other")
    second = await cache.get("2026-10", await store.ledger_version(), compute)
    assert compute.count == 2
    gpu_seconds = [sum(line["gpu_seconds"] for line in orjson.loads(c.document)["lines"]) for c in (first, second)]
    assert gpu_seconds == [60, 90]


async def test_a_failed_computation_is_not_kept(store):
    await load_catalog(store, DEFAULT_CATALOG)
    cache = statements.StatementCache()

    async def failing() -> statements.Computed:
        raise RuntimeError("the database went away")

    version = await store.ledger_version()
    for _ in range(2):
        with pytest.raises(RuntimeError, match="went away"):
            await cache.get("2026-10", version, failing)
    assert cache.misses == 2 and not cache.entries and not cache.running


async def test_a_closed_statement_is_kept_across_versions_of_one_catalog():
    cache = statements.StatementCache()
    closed = statements.Computed("2026-09", True, b"{}", {"kddi": b"{}"})
    opened = statements.Computed("2026-10", False, b"{}", {"kddi": b"{}"})

    async def never() -> statements.Computed:
        raise AssertionError("computed again")

    cache._keep("2026-09", (3, 10), closed)
    cache._keep("2026-10", (3, 10), opened)
    assert await cache.get("2026-09", (3, 99), never) is closed  # a batch metered: the bytes stand
    assert cache._fresh("2026-09", (4, 99)) is None  # a new catalog: a new member may need its side
    assert cache._fresh("2026-10", (3, 11)) is None


async def test_the_cache_keeps_at_most_its_periods_and_bytes():
    cache = statements.StatementCache()
    cache.MAX_PERIODS, cache.MAX_BYTES = 3, 25
    for month in range(1, 6):
        cache._keep(f"2026-{month:02d}", (1, 1), statements.Computed(f"2026-{month:02d}", False, b"x" * 10, {}))
    assert list(cache.entries) == ["2026-04", "2026-05"]  # 3 periods would be 30 bytes
