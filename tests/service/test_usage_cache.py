"""Answers of the usage API kept for dashboards that poll: never another caller's, never
older than the ledger's version; the same question asked again within the hour is the
same query, and a kept page is written once."""

from __future__ import annotations

import asyncio

import orjson

from ledger.domain.access import Caller
from ledger.domain.events import FUTURE_TOLERANCE_MS
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


async def billed(store, publisher: LoopbackPublisher, seconds: int, gpu: str, tenant: str = "acme") -> None:
    await publisher.send_events([encode(usage_event(seconds=seconds, gpu_uuid=gpu, tenant=tenant))], gpu)
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


async def test_an_answer_no_one_asks_again_goes_and_the_cache_stays_bounded(store):
    await load_catalog(store, DEFAULT_CATALOG)
    publisher = LoopbackPublisher(clock_ms=lambda: ms("2026-10-03T13:00:00Z"))
    await billed(store, publisher, 10, "GPU-a")
    clock = Clock()
    cache = usage.PageCache(clock)
    await answer(store, cache, KDDI)
    clock.now += usage.PageCache.MAX_AGE_SECONDS + 0.1
    await answer(store, cache, KDDI)
    assert (cache.hits, cache.misses) == (0, 2) and cache.items == 1
    cache.MAX_ENTRIES = 3
    for hour in range(5):
        request = usage.UsageRequest(start=f"2026-10-03T{hour:02d}:00:00Z", end="2026-10-04T00:00:00Z")
        await page_json(store, cache, KDDI, request)
    assert len(cache.entries) == 3 and cache.page_bytes == sum(len(p) for a in cache.entries.values() for p in a.pages.values())
    cache.MAX_PAGE_BYTES = 0
    await page_json(store, cache, KDDI, usage.UsageRequest(start="2026-10-02T00:00:00Z", end="2026-10-04T00:00:00Z"))
    assert list(cache.entries.values())[-1].pages == {}


async def page_json(store, cache, caller, request=OCTOBER, now=None) -> bytes:
    catalog, _ = await store.catalog()
    return await usage.page_json(store, catalog, caller, b"k" * 32, request, cache=cache,
                                 version=await store.ledger_version(), now=now)


async def test_a_kept_page_is_written_once_and_is_the_page_of_the_answer(store):
    await load_catalog(store, DEFAULT_CATALOG)
    publisher = LoopbackPublisher(clock_ms=lambda: ms("2026-10-03T13:00:00Z"))
    await billed(store, publisher, 10, "GPU-a")
    await billed(store, publisher, 20, "GPU-c", tenant="zenith")
    cache = usage.PageCache(Clock())
    first = usage.UsageRequest(where=UsageFilter(service_period="2026-10"), group_by=("tenant",), limit=1)
    second = usage.UsageRequest(where=UsageFilter(service_period="2026-10"), group_by=("tenant",), limit=1, offset=1)
    written = await page_json(store, cache, KDDI, first)
    assert orjson.loads(written) == await answer(store, usage.PageCache(Clock()), KDDI, first)
    assert await page_json(store, cache, KDDI_OTHER_TOKEN, first) is written  # the same bytes
    assert orjson.loads(written)["items"][0]["tenant"] == "acme" and orjson.loads(written)["next_cursor"] == "1"
    assert orjson.loads(await page_json(store, cache, KDDI, second))["items"][0]["tenant"] == "zenith"
    assert (cache.misses, cache.hits) == (1, 2)  # the second page: the same answer
    await billed(store, publisher, 5, "GPU-b")
    assert await page_json(store, cache, KDDI, first) != written  # a new version, a new page


def test_an_open_range_ends_with_the_last_hour_that_can_hold_usage():
    tolerance = FUTURE_TOLERANCE_MS // 1000
    for now in (ms("2026-10-03T13:00:00Z") // 1000 + offset for offset in (0, 1, 1799, 3600 - tolerance - 1,
                                                                            3600 - tolerance, 3599)):
        end = usage.open_end(now)
        assert end % 3600 == 0 and end > now + tolerance and end - 3600 <= now + tolerance


async def test_the_same_question_without_an_end_is_answered_from_the_cache_within_the_hour(store):
    await load_catalog(store, DEFAULT_CATALOG)
    publisher = LoopbackPublisher(clock_ms=lambda: ms("2026-10-03T13:00:00Z"))
    await billed(store, publisher, 10, "GPU-a")
    cache = usage.PageCache(Clock())
    request = usage.UsageRequest(start="2026-10-01T00:00:00Z", group_by=("tenant",))
    at = ms("2026-10-03T13:10:00Z") // 1000
    written = await page_json(store, cache, KDDI, request, now=at)
    assert orjson.loads(written)["end"] == "2026-10-03T14:00:00Z"
    assert await page_json(store, cache, KDDI, request, now=at + 1200) is written and cache.hits == 1
    later = orjson.loads(await page_json(store, cache, KDDI, request, now=at + 3000))
    assert later["end"] == "2026-10-03T15:00:00Z" and cache.misses == 2


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
