"""Moves of one dispute racing each other on PostgreSQL: two acceptances void once; an
acceptance and a withdrawal never both happen; an acceptance racing the provider's own
void of the same seconds takes back each second once between them.
"""

from __future__ import annotations

import asyncio

import pytest

from ledger.dev.processes import run_coroutine
from ledger.domain.access import Caller
from ledger.domain.disputes import DisputeRefused, parse_interval
from ledger.domain.records import Record
from ledger.postgres.store import PostgresStore
from ledger.service import catalog as catalog_service
from ledger.service import corrections, disputes
from ledger.service.intake import Intake
from schemas.wire import CONTENT_TYPE_HEADER, INGEST_HEADER, SINGLE_CONTENT_TYPE
from tests.factories import DEFAULT_CATALOG, encode, ms, usage_event
from tests.postgres.conftest import new_database

pytestmark = pytest.mark.infra

ROUNDS = 4
SAKURA = Caller("t-sakura", "member", "sakura")
KDDI = Caller("t-kddi", "member", "kddi")
OPERATOR = Caller("t-admin", "admin", None)
INTERVAL = parse_interval("GPU-race", "2026-10-10T00:00:00Z", "2026-10-10T01:00:00Z", "sakura", "kddi", "acme", "H200")


async def disputed(url: str) -> tuple[PostgresStore, str]:
    """A ledger with an hour of acme's usage on GPU-race and a dispute of it opened."""
    store = await PostgresStore.connect(url, max_connections=4)
    # A window of years: the database's clock decides it, whatever today is.
    await catalog_service.load(store, ("dispute_window_days = 5000\n" + DEFAULT_CATALOG).encode(), "base")
    event = usage_event(time="2026-10-10T00:00:00Z", seconds=3600, gpu_uuid="GPU-race")
    headers = {CONTENT_TYPE_HEADER: SINGLE_CONTENT_TYPE, INGEST_HEADER: b"race"}
    await Intake(store).apply([Record("gpu.usage", 0, 0, ms("2026-10-10T01:00:00Z"), encode(event), headers)])
    return store, (await disputes.open_dispute(store, KDDI, INTERVAL, "not_used"))["id"]


async def race(url: str, *moves) -> tuple[list, list[dict]]:
    store, dispute_id = await disputed(url)
    try:
        outcomes = await asyncio.gather(*(move(store, dispute_id) for move in moves), return_exceptions=True)
        return outcomes, (await corrections.listing(store, OPERATOR))["voids"]
    finally:
        await store.close()


def accept(store, dispute_id):
    return disputes.move(store, SAKURA, dispute_id, "accept")


def withdraw(store, dispute_id):
    return disputes.move(store, KDDI, dispute_id, "withdraw")


def void(store, dispute_id):
    return corrections.void(store, SAKURA, INTERVAL, "outage")


def test_two_acceptances_at_once_void_once(postgres_server):
    for _ in range(ROUNDS):
        outcomes, voids = run_coroutine(race(new_database(postgres_server), accept, accept))
        done = [o for o in outcomes if isinstance(o, dict)]
        assert len(done) == 1 and isinstance(next(o for o in outcomes if o not in done), DisputeRefused), outcomes
        assert done[0]["voided_gpu_seconds"] == 3600 and [v["gpu_seconds"] for v in voids] == [3600]


def test_an_acceptance_and_a_withdrawal_never_both_happen(postgres_server):
    for _ in range(ROUNDS):
        outcomes, voids = run_coroutine(race(new_database(postgres_server), accept, withdraw))
        done = [o for o in outcomes if isinstance(o, dict)]
        assert len(done) == 1 and sum(isinstance(o, DisputeRefused) for o in outcomes) == 1, outcomes
        assert len(voids) == (1 if done[0]["state"] == "accepted" else 0)


def test_an_acceptance_racing_the_providers_void_takes_back_each_second_once(postgres_server):
    for _ in range(ROUNDS):
        (accepted, voided), voids = run_coroutine(race(new_database(postgres_server), accept, void))
        assert accepted["state"] == "accepted", accepted
        if isinstance(voided, corrections.NothingToVoid):  # the acceptance came first
            assert accepted["voided_gpu_seconds"] == 3600
        else:
            assert (accepted["voided_gpu_seconds"], voided["gpu_seconds"]) == (0, 3600)
        assert sum(v["gpu_seconds"] for v in voids) == 3600
