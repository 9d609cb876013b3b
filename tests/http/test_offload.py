"""The API's worker processes (ledger/http/offload.py): a task runs in another process
on that process's own store, its errors come back as raised, and a process that dies
is replaced. The store here is the in-memory one, opened in the worker with the
default catalog (the API's is PostgreSQL, opened from a database URL)."""

from __future__ import annotations

import asyncio
import os

import orjson
import pytest

from ledger.domain.access import Caller
from ledger.domain.errors import PeriodError, ServiceUnavailable
from ledger.http.offload import ProcessPool
from ledger.memory.store import MemoryStore
from ledger.service import grants, statements
from tests.factories import DEFAULT_CATALOG
from tests.service.conftest import load_catalog

# The API's worker processes.
pytestmark = pytest.mark.heavy


async def open_catalogued_store() -> MemoryStore:
    """How a worker opens its store: picklable, a top-level function."""
    store = MemoryStore()
    await load_catalog(store, DEFAULT_CATALOG)
    return store


async def pid_of_worker(store) -> int:
    return os.getpid()


async def die(store) -> None:
    os._exit(1)


@pytest.fixture
async def pool():
    pool = ProcessPool("test", 1, open_catalogued_store, pause_gc=True)
    yield pool
    await pool.close()


async def test_a_task_runs_in_a_worker_process_on_its_own_store(pool):
    computed = await pool.run(statements.compute, "2026-10", b"k" * 32)
    assert orjson.loads(computed.document)["period"] == "2026-10"
    assert set(computed.views) == {"highreso", "kddi", "sakura"}
    assert await pool.run(pid_of_worker) != os.getpid()
    assert (await pool.run(grants.report, Caller("t1", "member", "kddi"), "2026-10"))["grants"] == []


async def test_a_tasks_ledger_error_reaches_the_caller_as_raised(pool):
    with pytest.raises(PeriodError) as raised:
        await pool.run(statements.compute, "2026-13", b"k" * 32)
    assert raised.value.code == "bad_period" and raised.value.http_status == 400


async def test_a_worker_that_dies_is_unavailable_once_then_replaced(pool):
    first = await pool.run(pid_of_worker)
    with pytest.raises(ServiceUnavailable, match="ask again"):
        await pool.run(die)
    second = await asyncio.wait_for(pool.run(pid_of_worker), timeout=60)
    assert second not in (first, os.getpid())
