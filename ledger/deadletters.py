"""Dead letters: listing rejected events, and asking the workers to replay them.

A replay (after a catalog fix, say) is one record per dead letter on the usage topic,
with the header `gpuledger-replay: <dead letter id>` and a fresh `gpuledger-ingest` id.
The worker processes the dead letter's stored bytes at its stored receipt time, under
the same rules as any event, and records the replay in `dead_letter_replays` in the same
transaction (`ledger.intake._Replays`): a dead letter is replayed at most once, and a
replayed event is counted again, as received, under the replay's ingest id (its first
rejection stays counted under the ingest that brought it). A replay rejected again
writes a new dead letter, which may itself be replayed once.

Who may do what: a member sees the dead letters that name it as provider or reseller,
and may replay only those of its own GPUs (it is the provider); auditors see all and
replay nothing; admins (and the operator's CLI) see and replay all. What a caller may
not see is reported exactly like what does not exist.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from ledger.domain.errors import InputError, LedgerError, ServiceUnavailable
from ledger.domain.events import MAX_EVENT_BYTES, REASONS
from ledger.intake import INGEST_HEADER, REPLAY_HEADER
from ledger.tokens import Caller

MAX_REPLAY = 10_000  # dead letters per replay request
MAX_LIST = 1000  # dead letters per page
RAW_PREVIEW_BYTES = 4096
# A replay record's value is the event's bytes, as on arrival: the worker never reads it,
# but sizes its transactions by record values. Raws over the event limit (only `ingest`
# dead-letters those itself) travel as an empty value, as no broker would take them.
REPLAY_VALUE_MAX_BYTES = MAX_EVENT_BYTES
FETCH_CHUNK = 500  # dead letters' bytes read at a time while publishing
MAX_ID = (1 << 63) - 1

OPERATOR = Caller(token_id="cli", role="admin", member=None)


class DeadLettersNotFound(InputError):
    """Ids that do not exist, or that the caller may not see (told apart by no one)."""

    def __init__(self, ids: list[int]) -> None:
        shown = ", ".join(str(i) for i in ids[:20]) + (", ..." if len(ids) > 20 else "")
        super().__init__(f"no such dead letters: {shown}")
        self.ids = ids


class ReplayForbidden(LedgerError):
    """The caller may see these dead letters but not replay them."""

    exit_code = 2


class TooManyDeadLetters(InputError):
    """A replay request over MAX_REPLAY dead letters."""


SELECT_PAGE = """
SELECT d.id, d.reason, d.detail, d.received_ms, d.provider, d.reseller, d.ingest_id,
       substring(d.raw FROM 1 FOR $7) AS raw_head, length(d.raw) AS raw_bytes,
       r.dead_letter_id IS NOT NULL AS replayed, r.outcome AS replay_outcome
FROM dead_letters d LEFT JOIN dead_letter_replays r ON r.dead_letter_id = d.id
WHERE ($1::text IS NULL OR d.provider = $1 OR d.reseller = $1)
  AND ($2::text IS NULL OR d.reason = $2)
  AND ($3::bigint IS NULL OR d.received_ms >= $3)
  AND ($4::bigint IS NULL OR d.received_ms < $4)
  AND d.id > $5
ORDER BY d.id
LIMIT $6
"""

SELECT_BY_IDS = """
SELECT d.id, d.provider, d.reseller, r.dead_letter_id IS NOT NULL AS replayed
FROM dead_letters d LEFT JOIN dead_letter_replays r ON r.dead_letter_id = d.id
WHERE d.id = ANY($1::bigint[])
"""

FILTER = """
FROM dead_letters d LEFT JOIN dead_letter_replays r ON r.dead_letter_id = d.id
WHERE ($1::text IS NULL OR d.provider = $1)
  AND ($2::text IS NULL OR d.reason = $2)
  AND ($3::bigint IS NULL OR d.received_ms >= $3)
  AND ($4::bigint IS NULL OR d.received_ms < $4)
"""

SELECT_UNREPLAYED_BY_FILTER = (
    "SELECT d.id" + FILTER + "  AND r.dead_letter_id IS NULL\nORDER BY d.id\nLIMIT $5\n"
)

COUNT_REPLAYED_BY_FILTER = "SELECT count(*)" + FILTER + "  AND r.dead_letter_id IS NOT NULL\n"

SELECT_RAWS = "SELECT id, raw FROM dead_letters WHERE id = ANY($1::bigint[]) ORDER BY id"


def format_received(received_ms: int) -> str | None:
    """`2026-10-03T12:00:00.123Z` (None for a timestamp no calendar holds: a producer's
    record timestamp is whatever it says)."""
    try:
        instant = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=received_ms)
    except OverflowError:
        return None
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"


def _check_reason(reason: str | None) -> None:
    if reason is not None and reason not in REASONS:
        raise InputError(f"reason must be one of {', '.join(REASONS)}")


def _item(row: asyncpg.Record) -> dict:
    return {
        "id": row["id"],
        "reason": row["reason"],
        "detail": row["detail"],
        "received_at": format_received(row["received_ms"]),
        "received_ms": row["received_ms"],
        "provider": row["provider"],
        "reseller": row["reseller"],
        "ingest_id": row["ingest_id"],
        "raw": bytes(row["raw_head"]).decode("utf-8", "replace"),
        "raw_bytes": row["raw_bytes"],
        "replayed": row["replayed"],
        "replay_outcome": row["replay_outcome"],
    }


async def list_dead_letters(
    conn: asyncpg.Connection,
    caller_member: str | None,
    reason: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    limit: int = 100,
    after_id: int | None = None,
) -> list[dict]:
    """Dead letters in id order, received in [since_ms, until_ms), after `after_id`.

    `caller_member` scopes the list to the dead letters naming that member as provider
    or reseller (None: all). `raw` is the first RAW_PREVIEW_BYTES of the event's bytes,
    as UTF-8 with replacement characters; `raw_bytes` is their full size.
    """
    _check_reason(reason)
    if not 1 <= limit <= MAX_LIST + 1:
        raise InputError(f"limit must be 1..{MAX_LIST}")
    rows = await conn.fetch(
        SELECT_PAGE, caller_member, reason, since_ms, until_ms, after_id or 0, limit, RAW_PREVIEW_BYTES
    )
    return [_item(row) for row in rows]


async def page(conn: asyncpg.Connection, caller_member: str | None, limit: int = 100, **filters) -> dict:
    """One page of `list_dead_letters`: {"items", "next_cursor"} (the last id, or None)."""
    items = await list_dead_letters(conn, caller_member, limit=limit + 1, **filters)
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next_cursor": str(items[-1]["id"]) if more else None}


async def replay(
    conn: asyncpg.Connection,
    producer,
    topic: str,
    caller: Caller,
    *,
    ids: list[int] | None = None,
    reason: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> dict:
    """Publish a replay record for each dead letter named by `ids`, or matching the filter,
    that was not replayed yet. All or nothing: any id the caller may not replay refuses
    the request before anything is published.

    Returns {"ingest_id", "replayed", "skipped_already_replayed"}. A dead letter whose
    replay is published but not yet processed counts as not replayed: replaying it again
    publishes a second record, which the worker skips (uncounted).
    """
    if caller.role == "admin":
        member = None
    elif caller.role == "member" and caller.member is not None:
        member = caller.member
    else:
        raise ReplayForbidden("auditors cannot replay dead letters")
    _check_reason(reason)
    if ids is not None:
        if reason is not None or since_ms is not None or until_ms is not None:
            raise InputError("give dead letter ids or a filter (reason, since, until), not both")
        to_replay, skipped = await _by_ids(conn, ids, member)
    else:
        if reason is None and since_ms is None and until_ms is None:
            raise InputError("give dead letter ids, or a filter: reason, since and/or until")
        to_replay = [
            row["id"] for row in await conn.fetch(
                SELECT_UNREPLAYED_BY_FILTER, member, reason, since_ms, until_ms, MAX_REPLAY + 1
            )
        ]
        if len(to_replay) > MAX_REPLAY:
            raise TooManyDeadLetters(
                f"more than {MAX_REPLAY} dead letters match: narrow the filter (since, until)"
            )
        skipped = await conn.fetchval(COUNT_REPLAYED_BY_FILTER, member, reason, since_ms, until_ms)
    ingest_id = uuid.uuid4().hex
    await _publish(conn, producer, topic, to_replay, ingest_id)
    return {"ingest_id": ingest_id, "replayed": len(to_replay), "skipped_already_replayed": skipped}


async def _by_ids(conn: asyncpg.Connection, ids: list[int], member: str | None) -> tuple[list[int], int]:
    """(ids to replay, count already replayed); refuses the lot if the member may not."""
    wanted = sorted(set(ids))
    if len(wanted) > MAX_REPLAY:
        raise TooManyDeadLetters(f"at most {MAX_REPLAY} dead letters per replay")
    if any(not 1 <= i <= MAX_ID for i in wanted):
        raise DeadLettersNotFound([i for i in wanted if not 1 <= i <= MAX_ID])
    rows = {row["id"]: row for row in await conn.fetch(SELECT_BY_IDS, wanted)}
    if member is not None:  # what it may not see does not exist, for it
        rows = {i: row for i, row in rows.items() if member in (row["provider"], row["reseller"])}
    missing = [i for i in wanted if i not in rows]
    if missing:
        raise DeadLettersNotFound(missing)
    if member is not None:
        others = [i for i in wanted if rows[i]["provider"] != member]
        if others:
            raise ReplayForbidden(
                f"a member may replay only usage of its own GPUs; not: {', '.join(map(str, others[:20]))}"
            )
    to_replay = [i for i in wanted if not rows[i]["replayed"]]
    return to_replay, len(wanted) - len(to_replay)


async def _publish(conn: asyncpg.Connection, producer, topic: str, ids: list[int], ingest_id: str) -> None:
    """One record per dead letter, in id order, keyed by the event's GPU when it names one
    (so one GPU's replays keep their order), and wait until the broker has them all."""
    from aiokafka.errors import KafkaError

    from streams.publish import SINGLE_CONTENT_TYPE, gpu_key

    pending = []
    ingest = (INGEST_HEADER, ingest_id.encode("ascii"))
    try:
        for start in range(0, len(ids), FETCH_CHUNK):
            for row in await conn.fetch(SELECT_RAWS, ids[start : start + FETCH_CHUNK]):
                raw = bytes(row["raw"])
                key = gpu_key(raw) if len(raw) <= MAX_EVENT_BYTES else None
                headers = [
                    ("content-type", SINGLE_CONTENT_TYPE),
                    ingest,
                    (REPLAY_HEADER, str(row["id"]).encode("ascii")),
                ]
                value = raw if len(raw) <= REPLAY_VALUE_MAX_BYTES else b""
                pending.append(await producer.send(topic, value, key=key, headers=headers))
        await asyncio.gather(*pending)
    except KafkaError as exc:
        raise ServiceUnavailable(f"publishing replays to Kafka failed: {exc}") from exc
