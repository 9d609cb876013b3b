"""The agent's disk: what the broker has not acknowledged, and the samples of open minutes.

One SQLite file (the standard library's; WAL, every commit synced). Each tick of the
agent is one transaction: the second's samples, the cursor (the last second sampled),
and, when a minute is over, its events in and its samples out. So a process killed at
any point restarts with every second it sampled either still a sample or already an
event, never both and never neither, and resumes after the cursor.

`outbox` holds events until the broker acknowledges them (`acknowledge` deletes them);
a restart sends again whatever is left, the same bytes under the same ids, so an event
sent but not yet recorded as acknowledged is a duplicate in the ledger, never a second
billing.

The bound: at most `max_events` events wait. Past it a closed minute's events are
refused (their seconds counted, `gpuledger_collect_spool_refused_seconds_total`, and
alerted on) and the events already held are kept: the spool never drops an event it
accepted. docs/collector.md sizes it (an hour's outage of 8 GPUs is at most 480 events
when every GPU is held by one tenant a minute).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ledger.collect.usage import MINUTE_SECONDS, Attribution, Sample

DEFAULT_MAX_EVENTS = 200_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    start INTEGER NOT NULL,
    seconds INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    gpu_uuid TEXT NOT NULL,
    second INTEGER NOT NULL,
    reseller TEXT NOT NULL,
    tenant TEXT NOT NULL,
    sku TEXT NOT NULL,
    utilisation_percent INTEGER,
    memory_used_bytes INTEGER,
    PRIMARY KEY (gpu_uuid, second)
);
CREATE TABLE IF NOT EXISTS cursor (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    last_second INTEGER NOT NULL
);
"""
INSERT_SAMPLE = "INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)"
SET_CURSOR = "INSERT INTO cursor (one, last_second) VALUES (1, ?) ON CONFLICT (one) DO UPDATE SET last_second = excluded.last_second"
DELETE_MINUTE = "DELETE FROM samples WHERE second >= ? AND second < ?"
INSERT_EVENT = "INSERT OR IGNORE INTO outbox (event_id, start, seconds, value) VALUES (?, ?, ?, ?)"


@dataclass(frozen=True)
class SpooledEvent:
    event_id: str
    start: int
    seconds: int
    value: bytes


class Spool:
    def __init__(self, path: str | Path, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        assert max_events > 0
        self.path, self.max_events = Path(path), max_events
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def last_second(self) -> int | None:
        row = self.db.execute("SELECT last_second FROM cursor").fetchone()
        return None if row is None else row[0]

    def samples(self) -> list[Sample]:
        """The samples of minutes not yet closed (after a restart: where the last run stopped)."""
        rows = self.db.execute("SELECT * FROM samples ORDER BY gpu_uuid, second").fetchall()
        return [Sample(gpu, second, Attribution(reseller, tenant, sku), utilisation, memory)
                for gpu, second, reseller, tenant, sku, utilisation, memory in rows]

    def commit_tick(
        self, second: int, samples: Iterable[Sample], closed_minutes: Iterable[int], events: Iterable[SpooledEvent],
    ) -> int:
        """One tick, atomically: record `samples` (the attributed ones; the others bill
        nothing), move the cursor to `second`, forget the samples of `closed_minutes` and
        hold their `events`. Returns the seconds of events refused at the bound."""
        refused = 0
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(INSERT_SAMPLE, [
                (s.gpu_uuid, s.second, s.attribution.reseller, s.attribution.tenant, s.attribution.sku,
                 s.utilisation_percent, s.memory_used_bytes)
                for s in samples if s.attribution is not None
            ])
            self.db.execute(SET_CURSOR, (second,))
            for minute in closed_minutes:
                self.db.execute(DELETE_MINUTE, (minute, minute + MINUTE_SECONDS))
            depth = self.depth()
            for event in events:
                if depth >= self.max_events:
                    refused += event.seconds
                    continue
                depth += self.db.execute(INSERT_EVENT, (event.event_id, event.start, event.seconds, event.value)).rowcount
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return refused

    def take(self, limit: int) -> list[tuple[int, bytes]]:
        """The oldest `limit` events waiting: (sequence number, bytes)."""
        return self.db.execute("SELECT seq, value FROM outbox ORDER BY seq LIMIT ?", (limit,)).fetchall()

    def acknowledge(self, seqs: Iterable[int]) -> None:
        """The broker has these: forget them."""
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany("DELETE FROM outbox WHERE seq = ?", [(seq,) for seq in seqs])
        self.db.execute("COMMIT")

    def depth(self) -> int:
        return self.db.execute("SELECT count(*) FROM outbox").fetchone()[0]

    def oldest_start(self) -> int | None:
        """The first second of the oldest event waiting (its age is how far behind the broker is)."""
        return self.db.execute("SELECT min(start) FROM outbox").fetchone()[0]
