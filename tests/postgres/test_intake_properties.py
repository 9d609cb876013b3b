"""Any record, through the real write path into PostgreSQL, gets a verdict and is stored.

Given generated records (any bytes, any headers, any timestamp, hostile strings in every
field, batches of any layout), when the intake service decides and writes them through
`PostgresStore`, then nothing raises, and every received event is counted once:
accepted + duplicate + rejected = received, in the result and in the stored tallies,
with one dead letter per rejection.
"""

from __future__ import annotations

import itertools
import time

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.dev.processes import run_coroutine
from ledger.domain.catalog import Catalog
from ledger.domain.catalog_file import parse_catalog
from ledger.domain.errors import InputError
from ledger.domain.ports import DeadLetter
from ledger.domain.records import Record
from ledger.postgres.store import PostgresStore
from ledger.service import catalog as catalog_service
from ledger.service.intake import Intake, dead_letters, decide
from schemas.wire import (
    BATCH_CONTENT_TYPE,
    CONTENT_TYPE_HEADER,
    INGEST_HEADER,
    SINGLE_CONTENT_TYPE,
    encode_batch,
)
from tests.factories import DEFAULT_CATALOG

pytestmark = pytest.mark.infra

NOW_MS = int(time.time() * 1000)
HOSTILE = st.one_of(
    st.sampled_from(["sakura", "kddi", "acme", "H200", "GPU-1", "k\x00ddi", "\x00", "", "a" * 300, "\ud7ff"]),
    st.text(max_size=20),
)
offsets = itertools.count()


def events_strategy():
    data = st.fixed_dictionaries({
        "provider": HOSTILE, "reseller": HOSTILE, "tenant": HOSTILE, "gpu_uuid": HOSTILE, "sku": HOSTILE,
        "seconds": st.one_of(st.integers(-5, 4000), st.just("60"), st.floats(allow_nan=False)),
    })
    moment = st.integers(NOW_MS // 1000 - 40 * 86400, NOW_MS // 1000 + 3600).map(
        lambda s: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s)))
    return st.fixed_dictionaries({
        "specversion": st.sampled_from(["1.0", "0.3"]), "type": st.just("gpu.usage.v1"),
        "id": HOSTILE, "source": HOSTILE, "time": st.one_of(moment, HOSTILE), "data": data,
    })


def values():
    event_bytes = events_strategy().map(orjson.dumps)
    return st.one_of(
        event_bytes,
        st.binary(max_size=200),
        st.lists(event_bytes, max_size=5).map(encode_batch),
        st.lists(st.one_of(event_bytes, st.binary(max_size=20)), max_size=5).map(lambda v: b"[" + b",".join(v) + b"]"),
        st.just(b""),
    )


def headers():
    content_type = st.sampled_from([BATCH_CONTENT_TYPE, SINGLE_CONTENT_TYPE, b"\xff\x00", b""])
    ingest = st.one_of(st.just(b"prop"), st.binary(max_size=80))
    other = st.dictionaries(st.text(max_size=10), st.binary(max_size=10), max_size=2)
    return st.tuples(content_type, ingest, other).map(
        lambda t: {**t[2], CONTENT_TYPE_HEADER: t[0], INGEST_HEADER: t[1]})


def records():
    stamp = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.integers(NOW_MS - 40 * 86_400_000, NOW_MS))
    return st.tuples(values(), headers(), stamp, st.integers(0, 3))


async def apply(url: str, drawn: list[tuple]) -> None:
    store = await PostgresStore.connect(url)
    try:
        if (await store.catalog())[1] == 0:
            await catalog_service.load_parsed(store, parse_catalog(DEFAULT_CATALOG.encode()), "0" * 64, "test")
        before = await _totals(store)
        batch = [Record("gpu.usage", p, next(offsets), ts, value, hdrs) for value, hdrs, ts, p in drawn]
        result = await Intake(store).apply(batch)
        after = await _totals(store)
    finally:
        await store.close()
    assert sum(result.outcomes.values()) == result.received
    rejected = sum(n for outcome, n in result.outcomes.items() if outcome not in ("accepted", "duplicate"))
    assert after["received"] - before["received"] == result.received
    assert after["dead_letters"] - before["dead_letters"] == rejected


async def _totals(store: PostgresStore) -> dict:
    async with store.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT (SELECT coalesce(sum(received), 0) FROM intake_tallies) AS received, "
            "(SELECT count(*) FROM dead_letters) AS dead_letters"
        )
    return dict(row)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(records(), min_size=1, max_size=6))
def test_any_records_get_a_verdict_and_are_stored(fresh_database, drawn):
    run_coroutine(apply(fresh_database, drawn))


async def test_a_nul_is_refused_by_postgres_and_never_sent_by_the_intake(fresh_database):
    """The poison is real (PostgreSQL's text holds no NUL), and the intake never writes it."""
    store = await PostgresStore.connect(fresh_database)
    try:
        with pytest.raises(InputError):
            async with store.intake() as tx:
                await tx.write_dead_letters([DeadLetter("schema", "k\x00", b"", 0, None, None, None, None, "", None, None)])
        value = orjson.dumps({"specversion": "1.0", "data": {"provider": "k\x00ddi"}, "type": "\x00"})
        record = Record("gpu.usage", 0, 0, NOW_MS, value, {INGEST_HEADER: b"a\x00b"})
        letters = dead_letters(decide(record, Catalog()))
        assert [(d.provider, d.ingest_id, "\x00" in d.detail) for d in letters] == [(None, "", False)]
        async with store.intake() as tx:
            await tx.write_dead_letters(letters)
    finally:
        await store.close()
