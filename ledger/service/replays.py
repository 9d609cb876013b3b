"""Replay records in a batch: header `gpuledger-replay: <dead letter id>`.

A replay is processed from the dead letter's row, never from the record: its stored
bytes, at its stored receipt time (so `future` and `too_late` are judged as they were
on arrival), against the catalog of now. The record's value and timestamp are only for
people reading the topic. A rejected replay writes a new dead letter (with the original
receipt time), which may itself be replayed once.

Counted once: a dead letter is replayed at most once, recorded by the store in the same
transaction as the outcome's claims and tallies. A replay record redelivered after a
crash or a rebalance never gets here (intake step 2 drops records below the stored
positions, written in that same transaction); a second record for the same dead letter
(a producer's retry, a second replay request) has its own offset and is skipped here,
uncounted, because the replay is recorded. Concurrent batches replaying the same dead
letter are serialized by the store's lock on the replayed ids, taken before the GPU
locks, so every worker takes its locks in the same order. A replay naming no dead
letter (unknown id, or not a number) is received and rejected `malformed`, with the
record's value as its bytes: never lost, never fatal.
"""

from __future__ import annotations

from ledger.domain import events
from ledger.domain.catalog import Catalog
from ledger.domain.errors import StoreBusy
from ledger.domain.ports import IntakeTransaction, ReplayTarget
from ledger.domain.records import Received, Record
from schemas.wire import REPLAY_HEADER

UNKNOWN_DEAD_LETTER = "unknown dead letter"
MAX_ID_DIGITS = 18


class Replays:
    def __init__(self, targets: dict[int, ReplayTarget]) -> None:
        self.targets = targets
        self.done = {i for i, target in targets.items() if target.replayed}
        self.replayed: list[tuple[int, Received]] = []

    @staticmethod
    def is_replay(record: Record) -> bool:
        return REPLAY_HEADER in record.headers

    @classmethod
    async def load(cls, tx: IntakeTransaction, records: list[Record]) -> Replays:
        ids = sorted({i for r in records if (i := replay_id(r)) is not None})
        return cls(await tx.replay_targets(ids) if ids else {})

    def unpack(self, record: Record, catalog: Catalog) -> list[Received]:
        dead_letter_id = replay_id(record)
        target = self.targets.get(dead_letter_id)
        if target is None:
            named = record.headers.get(REPLAY_HEADER, b"").decode("ascii", "replace")[:64]
            rejection = events.Rejection(events.MALFORMED, f"{UNKNOWN_DEAD_LETTER}: {named}"[:300])
            return [Received(record, 0, record.value or b"", rejection)]
        if dead_letter_id in self.done:
            return []
        self.done.add(dead_letter_id)
        original = record._replace(timestamp_ms=target.received_ms, value=target.raw)
        verdict = events.decode(target.raw)
        if isinstance(verdict, dict):
            verdict = events.check(verdict, original.timestamp_ms, catalog)
        item = Received(original, 0, target.raw, verdict)
        self.replayed.append((dead_letter_id, item))
        return [item]

    async def record(self, tx: IntakeTransaction) -> None:
        """Record each replay with its outcome (the items' verdicts are final by now)."""
        if not self.replayed:
            return
        outcomes = [(dead_letter_id, item.outcome) for dead_letter_id, item in self.replayed]
        if await tx.record_replays(outcomes) != len(outcomes):
            # Cannot happen while the store's replay locks hold; if it ever does, the
            # whole batch is retried and then sees the replay as done.
            raise StoreBusy("dead letters replayed concurrently")


def replay_id(record: Record) -> int | None:
    text = record.headers.get(REPLAY_HEADER, b"")
    if not (0 < len(text) <= MAX_ID_DIGITS and text.isdigit()):
        return None
    return int(text)
