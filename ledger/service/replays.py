"""Replaying dead letters: decided by the ledger itself, never by a record on the topic.

A replay (after a catalog fix, say) is requested through the API or the CLI and decided
at once, in one store transaction: each dead letter's stored bytes are judged at its
stored receipt time (so `future` and `too_late` are as they were on arrival), as the
member it came from (check 4 holds it to that again), against the catalog of now, and metered, written and counted like any received event, under the
replay's own ingest id (the first rejection stays counted where it was). A rejected
replay writes a new dead letter with the original receipt time, which may itself be
replayed once; it refers to the stored bytes of the dead letter it came from
(`DeadLetter.raw_of`) instead of copying them, so replays never multiply bytes. A dead
letter that keeps only a prefix of its event (over 1 MiB, or a compressed batch that was
not read) is never judged: there is no event to judge.

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
    were skipped because they had been replayed already, or keep only a prefix). Unknown
    ids, and prefixes, are the caller's to refuse before calling."""
    async with store.intake() as tx:
        closed_through = await tx.closed_through()
        catalog, _ = await tx.catalog()
        targets = await tx.replay_targets(sorted(set(ids)))
        received: list[tuple[int, Received]] = []
        headers = {INGEST_HEADER: ingest_id.encode("ascii")}
        for dead_letter_id in sorted(targets):
            target = targets[dead_letter_id]
            if target.replayed or not target.whole:  # the caller refuses prefixes first
                continue
            record = Record(None, None, None, target.received_ms, target.raw, headers, target.sender)
            # A dead letter is one received event: decide() sees its bytes as one event.
            for item in decide(record, catalog):
                item.raw_of = target.bytes_of if target.bytes_of is not None else dead_letter_id
                received.append((dead_letter_id, item))
        result = BatchResult(received=len(received))
        items = [item for _, item in received]
        result.outcomes = await settle(tx, items, Meter(Pieces(catalog.calendar), closed_through))
        await tx.record_replays([(dead_letter_id, item.outcome) for dead_letter_id, item in received])
    return result, len(targets) - len(received)
