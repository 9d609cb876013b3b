"""Answers of the usage API kept for dashboards that poll: never another caller's, never
older than the ledger's version, never older than two seconds."""

from __future__ import annotations

import asyncio

from ledger.domain.access import Caller
from ledger.domain.usage import UsageFilter
from ledger.service import usage
from ledger.service.intake import Intake
from tests.factories import DEFAULT_CATALOG, encode, ms, usage_event
from tests.service.conftest import LoopbackPublisher, deliver, load_catalog

KDDI = Caller("t1", "member", "kddi")
KDDI_OTHER_TOKEN = Caller("t9", "member", "kddi")
SAKURA = Caller("t2", "member", "sakura")
OCTOBER = usage.UsageRequest(where=UsageFilter(service_period="2026-10"), group_by=("tenant",))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def billed(store, publisher: LoopbackPublisher, seconds: int, gpu: str) -> None:
    await publisher.send_events([encode(usage_event(seconds=seconds, gpu_uuid=gpu))], gpu)
    await deliver(publisher, Intake(store))


async def answer(store, cache, caller, request=OCTOBER) -> dict:
    catalog, _ = await store.catalog()
    return await usage.query(store, catalog, caller, b"k" * 32, request, cache=cache,
                             version=await store.ledger_version())


def seconds(page: dict) -> int:
    return sum(item["gpu_seconds"] for item in page["items"])


async def test_a_cached_answer_is_the_callers_and_of_the_ledger_as_it_is(store):
    await load_catalog(store, DEFAULT_CATALOG)
    publisher = LoopbackPublisher(clock_ms=lambda: ms("2026-10-03T13:00:00Z"))
    await billed(store, publisher, 10, "GPU-a")
    cache = usage.PageCache(Clock())
    first = await answer(store, cache, KDDI)
    assert seconds(first) == 10 and cache.misses == 1
    assert await answer(store, cache, KDDI_OTHER_TOKEN) == first and cache.hits == 1
    # Another member asking the same question is another question (pseudonyms, scope).
    sakura = await answer(store, cache, SAKURA)
    assert cache.misses == 2 and sakura["items"][0]["tenant"] != "acme"
    assert sakura["items"][0]["retail_yen_estimate"] is None
    # A batch metered: a new version, a new answer at once.
    await billed(store, publisher, 5, "GPU-b")
    assert seconds(await answer(store, cache, KDDI)) == 15
    # Pages of one query share the entry.
    paged = usage.UsageRequest(where=UsageFilter(service_period="2026-10"), group_by=("tenant",), limit=1, offset=0)
    hits = cache.hits
    await answer(store, cache, KDDI, paged)
    assert cache.hits == hits + 1


async def test_an_answer_is_kept_two_seconds_at_most_and_the_cache_stays_bounded(store):
    await load_catalog(store, DEFAULT_CATALOG)
    publisher = LoopbackPublisher(clock_ms=lambda: ms("2026-10-03T13:00:00Z"))
    await billed(store, publisher, 10, "GPU-a")
    clock = Clock()
    cache = usage.PageCache(clock)
    await answer(store, cache, KDDI)
    clock.now += usage.PageCache.MAX_AGE_SECONDS + 0.1
    await answer(store, cache, KDDI)
    assert (cache.hits, cache.misses) == (0, 2)
    cache.MAX_ENTRIES = 3
    for hour in range(5):
        request = usage.UsageRequest(start=f"2026-10-03T{hour:02d}:00:00Z", end="2026-10-04T00:00:00Z")
        await answer(store, cache, KDDI, request)
    assert len(cache.entries) == 3


async def test_callers_asking_at_once_share_one_computation():
    cache = usage.PageCache(Clock())
    calls = []

    async def compute():
        calls.append(1)
        await asyncio.sleep(0.01)
        return [{"gpu_seconds": 1}], None

    answers = await asyncio.gather(*(cache.answer(("k",), compute) for _ in range(16)))
    assert len(calls) == 1 and all(a == answers[0] for a in answers)
    assert await cache.answer(("k",), compute) == answers[0] and len(calls) == 1
