"""Given alliance-2026-q4 after its steps 1-8, when every step of its steps.json runs
through the `gpuledger` commands on the in-memory store, then each prints what
expected.json shows and each refused one exits 2 and changes nothing.

The commands run in this process (the CLI's store is the test's `MemoryStore`), so the
whole cycle of corrections, disputes and payments is checked in seconds; the same steps
run through the real broker, workers and PostgreSQL in tests/e2e/test_scenario_pipeline.py.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from contextlib import asynccontextmanager

import orjson
import pytest

from ledger.cli import wiring
from ledger.cli.main import cli
from ledger.domain.access import OPERATOR
from ledger.domain.errors import LedgerError
from ledger.memory.store import MemoryStore
from ledger.service import books, disputes, payments, reports
from ledger.service.intake import Intake
from tests.scenario import (
    _ID_ARGUMENT,
    SCENARIOS,
    batch_lines,
    expected,
    later_steps,
    shown,
)
from tests.service.conftest import LoopbackPublisher, load_catalog
from tests.service.test_scenarios import ingest

# A whole public scenario in this process: seconds each, left to make test (not test-fast).
pytestmark = pytest.mark.slow

DIRECTORY = SCENARIOS / "alliance-2026-q4"


async def _first_steps(store: MemoryStore) -> None:
    publisher = LoopbackPublisher()
    intake = Intake(store)
    await load_catalog(store, (DIRECTORY / "catalog.toml").read_bytes())
    await ingest(store, publisher, intake, batch_lines(DIRECTORY, "batch1"), "one")
    await books.statement(store, "2026-09", close=True)
    await ingest(store, publisher, intake, batch_lines(DIRECTORY, "batch2"), "two")
    await books.statement(store, "2026-10", close=True)


class InProcessCli:
    """`gpuledger ARGS` in this process, on `store`: (exit code, what it printed)."""

    def __init__(self, store: MemoryStore, monkeypatch) -> None:
        @asynccontextmanager
        async def the_store(settings):
            yield store

        monkeypatch.setattr(wiring, "store", the_store)

    def __call__(self, *args: str) -> tuple[int, bytes]:
        saved, sys.stdout = sys.stdout, io.TextIOWrapper(io.BytesIO())
        try:
            cli.main(list(args), standalone_mode=False)
            code = 0
        except LedgerError as exc:
            code = exc.exit_code
        finally:
            sys.stdout.flush()
            out, sys.stdout = sys.stdout.buffer.getvalue(), saved
        return code, out


def _replay(run: InProcessCli, event_id: str) -> None:
    found, cursor = [], None
    while True:
        code, out = run("dlq", "list", "--reason", "conflict", "--limit", "1000", *(["--after", cursor] if cursor else []))
        assert code == 0
        page = json.loads(out)
        found += [item["id"] for item in page["items"] if event_id in item["raw"]]
        if (cursor := page["next_cursor"]) is None:
            break
    [found] = found
    code, out = run("dlq", "replay", str(found))
    assert code == 0 and json.loads(out)["replayed"] == 1, out


@pytest.fixture(scope="module")
def printed_steps():
    """Every step of steps.json, run in order: (key -> exit code, key -> printed JSON, store)."""
    store = MemoryStore()
    asyncio.run(_first_steps(store))
    monkeypatch = pytest.MonkeyPatch()
    run = InProcessCli(store, monkeypatch)
    codes, printed = {}, {}
    try:
        for step in later_steps(DIRECTORY):
            if "replay_event" in step:
                _replay(run, step["replay_event"])
                continue
            args = [_ID_ARGUMENT.sub(lambda m: printed[m.group(1)]["id"], arg) for arg in step["args"]]
            before = asyncio.run(_books_now(store)) if step.get("exit") == 2 else None
            codes[step["key"]], out = run(*args)
            if out.strip():
                printed[step["key"]] = json.loads(out)
            if before is not None:
                assert asyncio.run(_books_now(store)) == before, f"{step['key']} changed the books"
    finally:
        monkeypatch.undo()
    return codes, printed, store


async def _books_now(store: MemoryStore) -> bytes:
    """What a refused step must leave alone: the open statements, voids and disputes, payments."""
    async with store.snapshot() as snapshot:
        voids = await snapshot.voids()
    return orjson.dumps([
        (await books.statement(store, "2026-11")).decode(), (await books.statement(store, "2026-12")).decode(),
        [str(v) for v in voids], await reports.capacity(store, "2026-10"),
        await disputes.listing(store, OPERATOR), await payments.listing(store, OPERATOR, with_payments=True),
    ])


@pytest.mark.parametrize("step", later_steps(DIRECTORY), ids=lambda s: s["key"])
def test_each_step_exits_and_prints_what_the_scenario_expects(printed_steps, step):
    codes, printed, _ = printed_steps
    if "replay_event" in step:
        return  # replayed in the fixture: it must find and replay exactly that dead letter
    assert codes[step["key"]] == step.get("exit", 0), step["key"]
    want = expected(DIRECTORY).get(step["key"])
    if step.get("exit") == 2:
        assert step["key"] not in printed
    elif want is not None:
        assert shown(printed[step["key"]], want) == shown(want, want), step["key"]
