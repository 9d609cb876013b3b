"""Replaying dead letters: decided by the ledger itself, never by a record on the topic.

A replay (after a catalog fix, say) is requested through the API or the CLI and decided
at once, in one store transaction: each dead letter's stored bytes are judged at its
stored receipt time (so `future` and `too_late` are as they were on arrival), as the
member it came from (check 4 holds it to that again), against the catalog of now, and metered, written and counted like any received event, under the
replay's own ingest id (the first rejection stays counted where it was). A rejected
replay writes a new dead letter with the original receipt time, which may itself be
replayed once.

Once only: the store records each replay with its outcome in the same transaction, and
holds the replayed ids against concurrent replays, taken before the GPU locks (the
order every transaction locks in). Nothing a producer puts on the usage topic can ask
for a replay: a header that once did is ignored, and its record judged as an ordinary
event.
"""

from __future__ import annotations

from ledger.domain.metering import Meter, Pieces
from ledger.domain.ports import Store
from ledger.domain.records import BatchResult, Received, Record
from ledger.service.intake import decide, settle
from schemas.wire import INGEST_HEADER

MAX_REPLAY = 10_000  # dead letters per replay request


async def replay(store: Store, ids: list[int], ingest_id: str) -> tuple[BatchResult, int]:
    """Replay the named dead letters not replayed yet; returns (what was decided, how many
    were skipped because they had been replayed already). Unknown ids are the caller's to
    refuse before calling."""
    async with store.intake() as tx:
        closed_through = await tx.closed_through()
        catalog, _ = await tx.catalog()
        targets = await tx.replay_targets(sorted(set(ids)))
        received: list[tuple[int, Received]] = []
        headers = {INGEST_HEADER: ingest_id.encode("ascii")}
        for dead_letter_id in sorted(targets):
            target = targets[dead_letter_id]
            if target.replayed:
                continue
            record = Record(None, None, None, target.received_ms, target.raw, headers, target.sender)
            # A dead letter is one received event: decide() sees its bytes as one event.
            received.extend((dead_letter_id, item) for item in decide(record, catalog))
        result = BatchResult(received=len(received))
        items = [item for _, item in received]
        result.outcomes = await settle(tx, items, Meter(Pieces(catalog.calendar), closed_through))
        await tx.record_replays([(dead_letter_id, item.outcome) for dead_letter_id, item in received])
    return result, len(targets) - len(received)
