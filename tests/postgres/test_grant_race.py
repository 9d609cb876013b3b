"""A catalog load racing a close: a grant starting in the period being closed is either
drawn by the stored statement (the load won) or refused (the close won), never loaded
and left out of a closed statement (SPEC.md: no stored statement could have drawn on it).
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from ledger.dev.processes import run_coroutine
from ledger.domain.errors import CatalogError
from ledger.domain.records import Record
from ledger.postgres.store import PostgresStore
from ledger.service import books
from ledger.service import catalog as catalog_service
from ledger.service.intake import Intake
from schemas.wire import CONTENT_TYPE_HEADER, INGEST_HEADER, SINGLE_CONTENT_TYPE
from tests.domain.test_registry import grant
from tests.factories import DEFAULT_CATALOG, encode, ms, usage_event
from tests.postgres.conftest import new_database

pytestmark = pytest.mark.infra

ROUNDS = 8


async def one_round(url: str) -> str:
    store = await PostgresStore.connect(url, max_connections=4)
    try:
        await catalog_service.load(store, DEFAULT_CATALOG.encode(), "base")
        event = usage_event(time="2026-09-10T00:00:00Z", seconds=3600, gpu_uuid="GPU-race")
        headers = {CONTENT_TYPE_HEADER: SINGLE_CONTENT_TYPE, INGEST_HEADER: b"race"}
        await Intake(store).apply([Record("gpu.usage", 0, 0, ms("2026-09-10T01:00:00Z"), encode(event), headers)])
        text = DEFAULT_CATALOG + grant("race", amount=100, first="2026-09", last="2026-12")
        load = asyncio.create_task(catalog_service.load(store, text.encode(), "race"))
        close = asyncio.create_task(books.statement(store, "2026-09", close=True))
        loaded, closed = await asyncio.gather(load, close, return_exceptions=True)
        assert not isinstance(closed, BaseException), closed
        drawn = {d["grant"]: d["amount_yen"] for d in orjson.loads(closed)["grant_draws"]}
        if isinstance(loaded, CatalogError):
            assert "closed" in str(loaded) and not drawn
            assert "race" not in (await store.catalog())[0].grants
            return "close won"
        assert not isinstance(loaded, BaseException), loaded
        assert drawn == {"race": 100}, "a loaded grant must be drawn by the statement closed after it"
        return "load won"
    finally:
        await store.close()


def test_a_grant_is_drawn_or_refused_never_lost(postgres_server):
    outcomes = [run_coroutine(one_round(new_database(postgres_server))) for _ in range(ROUNDS)]
    assert set(outcomes) <= {"close won", "load won"}, outcomes
