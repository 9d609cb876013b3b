"""`ingest --wait`: counts only when they are the whole ingest's, through outages."""

from __future__ import annotations

import asyncio

import pytest

from ledger.domain.errors import ServiceUnavailable
from ledger.domain.ports import Tally
from ledger.memory.store import MemoryStore
from ledger.service import ingest

INGEST = "ingest-1"


class FlakyStore(MemoryStore):
    """The memory store, unavailable for its first `outage` reads of a tally."""

    def __init__(self, outage: int) -> None:
        super().__init__()
        self.outage = outage

    async def ingest_tally(self, ingest_id: str) -> dict[str, int]:
        if self.outage:
            self.outage -= 1
            raise ServiceUnavailable("lost the connection to PostgreSQL")
        return await super().ingest_tally(ingest_id)


async def _decide(store: MemoryStore, accepted: int, after: float) -> None:
    await asyncio.sleep(after)
    await store.record_rejections([], Tally(INGEST, None, None, {"accepted": accepted}))


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(ingest, "LOST_GRACE_SECONDS", 0.2)


def test_a_database_outage_is_ridden_through_and_the_counts_are_whole() -> None:
    store = FlakyStore(outage=3)
    notices: list[str] = []

    async def scenario() -> dict:
        decided = asyncio.create_task(_decide(store, 5, after=0.05))
        counts = await ingest.wait(store, INGEST, 5, 10, lambda done, final: None, notices.append)
        await decided
        return counts

    counts = asyncio.run(scenario())

    assert counts["received"] == counts["accepted"] == 5
    assert len(notices) == 3 and all("trying again" in n for n in notices)


def test_events_a_restarted_broker_lost_stop_the_wait_with_what_was_decided() -> None:
    store = MemoryStore()

    async def scenario() -> None:
        await _decide(store, 3, after=0)
        await ingest.wait(store, INGEST, 5, 10, lambda done, final: None, lambda text: None,
                          lambda: "the embedded broker restarted after the file was published")

    with pytest.raises(ingest.EventsLost, match="3 of 5 events of ingest ingest-1 were decided"):
        asyncio.run(scenario())


def test_a_restart_after_every_event_was_decided_is_not_a_loss() -> None:
    store = MemoryStore()

    async def scenario() -> dict:
        await _decide(store, 5, after=0)
        return await ingest.wait(store, INGEST, 5, 10, lambda done, final: None, lambda text: None,
                                 lambda: "the embedded broker restarted")

    assert asyncio.run(scenario())["accepted"] == 5
