"""Dead letters, tokens and usage on the in-memory store: who may see and do what."""

from __future__ import annotations

import pytest

from ledger.domain.access import OPERATOR, Caller
from ledger.domain.errors import Forbidden, InputError, LedgerError, NotFound, TooLarge
from ledger.domain.usage import UsageFilter
from ledger.service import deadletters, tokens, usage
from ledger.service.intake import Intake
from tests.factories import DEFAULT_CATALOG, encode, ms, usage_event
from tests.service.conftest import LoopbackPublisher, deliver, load_catalog

KDDI = Caller("t1", "member", "kddi")
SAKURA = Caller("t2", "member", "sakura")
HIGHRESO = Caller("t3", "member", "highreso")
AUDITOR = Caller("t4", "auditor", None)


@pytest.fixture
async def rejected(store):
    """Two dead letters: sakura's GPU for kddi (no price), and kddi's own (no price)."""
    await load_catalog(store, DEFAULT_CATALOG)
    publisher = LoopbackPublisher(clock_ms=lambda: ms("2026-10-03T13:00:00Z"))
    events = [usage_event(sku="B200"), usage_event(sku="GB200", provider="kddi", gpu_uuid="GPU-k")]
    await publisher.send_events([encode(e) for e in events], "one")
    await deliver(publisher, Intake(store))
    return store, publisher


async def test_a_member_lists_the_dead_letters_that_name_it(rejected):
    store, _ = rejected
    assert len((await deadletters.page(store, "kddi"))["items"]) == 2
    assert [i["provider"] for i in (await deadletters.page(store, "sakura"))["items"]] == ["sakura"]
    assert (await deadletters.page(store, "highreso"))["items"] == []
    page = await deadletters.page(store, None, limit=1)
    assert page["next_cursor"] == str(page["items"][0]["id"])


async def test_only_a_provider_replays_and_what_it_may_not_see_does_not_exist(rejected):
    store, publisher = rejected
    items = (await deadletters.page(store, None))["items"]
    ids = [item["id"] for item in items]
    sakuras = [item["id"] for item in items if item["provider"] == "sakura"]
    with pytest.raises(Forbidden):
        await deadletters.replay(store, AUDITOR, ids=ids)
    with pytest.raises(Forbidden, match="own GPUs"):
        await deadletters.replay(store, KDDI, ids=ids)
    with pytest.raises(NotFound):
        await deadletters.replay(store, HIGHRESO, ids=sakuras)
    with pytest.raises(NotFound):
        await deadletters.replay(store, OPERATOR, ids=[ids[-1] + 10])
    done = await deadletters.replay(store, SAKURA, ids=sakuras)
    assert done["replayed"] == 1


async def test_a_replay_needs_ids_or_a_filter_within_the_limits(rejected):
    store, publisher = rejected
    with pytest.raises(InputError):
        await deadletters.replay(store, OPERATOR)
    with pytest.raises(InputError):
        await deadletters.replay(store, OPERATOR, ids=[1], reason="no_price")
    with pytest.raises(InputError, match="reason must be one of"):
        await deadletters.replay(store, OPERATOR, reason="bogus")
    with pytest.raises(TooLarge):
        await deadletters.replay(store, OPERATOR, ids=list(range(1, deadletters.MAX_REPLAY + 2)))
    assert (await deadletters.replay(store, OPERATOR, reason="no_price"))["replayed"] == 2


async def test_a_token_expires_and_remembers_its_last_use(store):
    await load_catalog(store, DEFAULT_CATALOG)
    token_id, token = await tokens.create(store, "auditor", None, "ops", lifetime_seconds=3600, now=1_000_000)
    assert await tokens.authenticate(store, token, now=1_000_100) is not None
    assert (await store.token(token_id)).last_used_at == 1_000_100
    await tokens.authenticate(store, token, now=1_000_130)  # within a minute: not written again
    assert (await store.token(token_id)).last_used_at == 1_000_100
    assert await tokens.authenticate(store, token, now=1_003_600) is None  # expired
    listed = await tokens.listing(store)
    assert [(t["id"], t["expires_at"], t["revoked"]) for t in listed] == [(token_id, "1970-01-12T14:46:40Z", False)]
    assert tokens.parse_lifetime("90") == tokens.parse_lifetime("90d") == 90 * 86400
    assert tokens.parse_lifetime("12h") == 43200
    for bad in ("0m", "6000d", "1w", "-1", ""):
        with pytest.raises(InputError):
            tokens.parse_lifetime(bad)


async def test_a_token_opens_until_it_is_revoked(store):
    await load_catalog(store, DEFAULT_CATALOG)
    token_id, token = await tokens.create(store, "member", "kddi", "ops")
    assert await tokens.authenticate(store, token) == Caller(token_id, "member", "kddi")
    assert await tokens.authenticate(store, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert await tokens.revoke(store, token_id) is True
    assert await tokens.authenticate(store, token) is None
    with pytest.raises(LedgerError):
        await tokens.revoke(store, "0" * 16)
    with pytest.raises(InputError):
        await tokens.create(store, "member", "nobody")
    with pytest.raises(InputError):
        await tokens.create(store, "auditor", "kddi")


async def test_usage_ranges_are_checked_and_scoped(rejected):
    store, publisher = rejected
    await publisher.send_events([encode(usage_event(tenant="acme")), encode(usage_event(provider="kddi", reseller="kddi", sku="H100", gpu_uuid="G2"))], "two")
    await deliver(publisher, Intake(store))
    catalog, _ = await store.catalog()
    request = usage.UsageRequest(where=UsageFilter(service_period="2026-10"), group_by=("tenant",))
    sakura = await usage.query(store, catalog, SAKURA, b"k" * 32, request)
    assert [item["tenant"].startswith("tenant-") for item in sakura["items"]] == [True]
    assert sakura["items"][0]["retail_yen_estimate"] is None
    kddi = await usage.query(store, catalog, KDDI, b"k" * 32, request)
    assert sorted(item["tenant"] for item in kddi["items"]) == ["acme"]
    with pytest.raises(InputError):
        await usage.query(store, catalog, KDDI, b"", usage.UsageRequest(start="2026-10-02T00:00:00Z", end="2026-10-01T00:00:00Z"))
    with pytest.raises(InputError):
        await usage.query(store, catalog, KDDI, b"", usage.UsageRequest(where=UsageFilter(service_period="9999-12")))
