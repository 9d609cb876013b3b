"""Dead letters: listing rejected events, and replaying them.

A replay (after a catalog fix, say) judges the dead letter's stored bytes at its stored
receipt time, under the same rules as any event, at once (`ledger.service.replays`): a
dead letter is replayed at most once, and a replayed event is counted again, as
received, under the replay's ingest id (its first rejection stays counted under the
ingest that brought it).

Who may do what: a member sees the dead letters that name it as provider or reseller,
and may replay only those of its own GPUs (it is the provider); auditors see all and
replay nothing; admins (and the operator's CLI) see and replay all. What a caller may
not see is reported exactly like what does not exist.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson

from ledger.domain.access import Caller, pseudonym
from ledger.domain.errors import Forbidden, InputError, NotFound, TooLarge
from ledger.domain.events import REASONS
from ledger.domain.ports import DeadLetterFilter, Store
from ledger.domain.records import RAW_PREFIX_BYTES
from ledger.service import ingest, replays
from ledger.service.replays import MAX_REPLAY

MAX_LIST = 1000  # dead letters per page
RAW_PREVIEW_BYTES = 4096
MAX_ID = (1 << 63) - 1


class DeadLettersNotReplayable(InputError):
    """Dead letters that keep only a prefix of their event: there is nothing whole to judge."""

    http_status = 409
    code = "not_replayable"

    def __init__(self, ids: list[int]) -> None:
        shown = ", ".join(str(i) for i in ids[:20]) + (", ..." if len(ids) > 20 else "")
        super().__init__(
            f"dead letters {shown} keep only the first {RAW_PREFIX_BYTES} bytes of their event "
            "(over 1 MiB, or a compressed batch that was not read): they cannot be replayed"
        )
        self.ids = ids


class DeadLettersNotFound(NotFound):
    """Ids that do not exist, or that the caller may not see (told apart by no one)."""

    def __init__(self, ids: list[int]) -> None:
        shown = ", ".join(str(i) for i in ids[:20]) + (", ..." if len(ids) > 20 else "")
        super().__init__(f"no such dead letters: {shown}")
        self.ids = ids


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


def _raw(row: dict, viewer: str | None, key: bytes) -> tuple[str | None, bool]:
    """(the raw bytes as the viewer may see them, whether they were redacted).

    A tenant id is its reseller's: a member that is not the event's reseller (its provider)
    sees the event with the tenant as its pseudonym, or not at all when the event is too
    long to show whole or is not an object whose data names a tenant.
    """
    head = bytes(row["raw_head"])
    if viewer is None or viewer == row["reseller"]:
        return head.decode("utf-8", "replace"), False
    if row["raw_bytes"] > len(head):
        return None, True
    try:
        event = orjson.loads(head)
    except orjson.JSONDecodeError:
        return None, True
    data = event.get("data") if isinstance(event, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("tenant"), str):
        return (None, True) if b"tenant" in head else (head.decode("utf-8", "replace"), False)
    data["tenant"] = pseudonym(key, viewer, str(row["reseller"]), data["tenant"])
    return orjson.dumps(event).decode(), True


def _item(row: dict, viewer: str | None, key: bytes) -> dict:
    raw, redacted = _raw(row, viewer, key)
    return {
        "id": row["id"],
        "reason": row["reason"],
        "detail": row["detail"],
        "received_at": format_received(row["received_ms"]),
        "received_ms": row["received_ms"],
        "provider": row["provider"],
        "reseller": row["reseller"],
        "ingest_id": row["ingest_id"],
        "raw": raw,
        "raw_bytes": row["raw_bytes"],
        "raw_whole": row["raw_whole"],
        "raw_sha256": bytes(row["raw_sha256"]).hex(),
        "raw_redacted": redacted,
        "replayed": row["replayed"],
        "replay_outcome": row["replay_outcome"],
    }


async def page(
    store: Store, caller_member: str | None, limit: int = 100, *, reason: str | None = None,
    since_ms: int | None = None, until_ms: int | None = None, after_id: int | None = None,
    pseudonym_key: bytes = b"",
) -> dict:
    """One page of dead letters in id order: {"items", "next_cursor"} (the last id, or None).

    `caller_member` scopes the list to the dead letters naming that member as provider
    or reseller (None: all). `raw` is the first RAW_PREVIEW_BYTES of the event's bytes,
    as UTF-8 with replacement characters, with another reseller's tenant as its
    pseudonym (`raw_redacted`); `raw_bytes` is their full size and `raw_sha256` their
    hash; `raw_whole` says whether the ledger keeps them whole (else only their first
    RAW_PREFIX_BYTES, and the dead letter cannot be replayed).
    """
    _check_reason(reason)
    if not 1 <= limit <= MAX_LIST:
        raise InputError(f"limit must be 1..{MAX_LIST}")
    where = DeadLetterFilter(caller_member, reason, since_ms, until_ms)
    rows = await store.dead_letter_page(where, after_id or 0, limit + 1, RAW_PREVIEW_BYTES)
    items = [_item(row, caller_member, pseudonym_key) for row in rows[:limit]]
    return {"items": items, "next_cursor": str(items[-1]["id"]) if len(rows) > limit else None}


async def replay(
    store: Store, caller: Caller, *, ids: list[int] | None = None,
    reason: str | None = None, since_ms: int | None = None, until_ms: int | None = None,
) -> dict:
    """Replay each dead letter named by `ids`, or matching the filter, that was not replayed
    yet. All or nothing: any id the caller may not replay refuses the request before
    anything is decided.

    A dead letter that keeps only a prefix of its event cannot be replayed: named by id,
    it refuses the request (`DeadLettersNotReplayable`); matched by a filter, it is left
    out and counted in `skipped_not_replayable`.

    Returns {"ingest_id", "replayed", "skipped_already_replayed", "skipped_not_replayable"}
    and the replay's counts as `ingest --wait` prints them.
    """
    if caller.role == "admin":
        member = None
    elif caller.role == "member" and caller.member is not None:
        member = caller.member
    else:
        raise Forbidden("auditors cannot replay dead letters", code="read_only")
    _check_reason(reason)
    if ids is not None:
        if reason is not None or since_ms is not None or until_ms is not None:
            raise InputError("give dead letter ids or a filter (reason, since, until), not both")
        to_replay, skipped = await _by_ids(store, ids, member)
        not_replayable = 0
    else:
        if reason is None and since_ms is None and until_ms is None:
            raise InputError("give dead letter ids, or a filter: reason, since and/or until")
        where = DeadLetterFilter(member, reason, since_ms, until_ms)
        to_replay = await store.unreplayed_dead_letters(where, MAX_REPLAY + 1)
        if len(to_replay) > MAX_REPLAY:
            raise TooLarge(
                f"more than {MAX_REPLAY} dead letters match: narrow the filter (since, until)",
                code="too_many_dead_letters",
            )
        skipped = await store.count_replayed(where)
        not_replayable = await store.count_not_replayable(where)
    ingest_id = uuid.uuid4().hex
    decided, raced = await replays.replay(store, to_replay, ingest_id)
    counts = await ingest.tally(store, ingest_id)
    return {"ingest_id": ingest_id, "replayed": decided.received, "skipped_already_replayed": skipped + raced,
            "skipped_not_replayable": not_replayable, **counts}


async def _by_ids(store: Store, ids: list[int], member: str | None) -> tuple[list[int], int]:
    """(ids to replay, count already replayed); refuses the lot if the member may not."""
    wanted = sorted(set(ids))
    if len(wanted) > MAX_REPLAY:
        raise TooLarge(f"at most {MAX_REPLAY} dead letters per replay", code="too_many_dead_letters")
    if any(not 1 <= i <= MAX_ID for i in wanted):
        raise DeadLettersNotFound([i for i in wanted if not 1 <= i <= MAX_ID])
    refs = await store.dead_letter_refs(wanted)
    if member is not None:  # what it may not see does not exist, for it
        refs = {i: ref for i, ref in refs.items() if member in (ref.provider, ref.reseller)}
    missing = [i for i in wanted if i not in refs]
    if missing:
        raise DeadLettersNotFound(missing)
    if member is not None:
        others = [i for i in wanted if refs[i].provider != member]
        if others:
            raise Forbidden(
                f"a member may replay only usage of its own GPUs; not: {', '.join(map(str, others[:20]))}",
                code="not_your_gpus",
            )
    to_replay = [i for i in wanted if not refs[i].replayed]
    prefixes = [i for i in to_replay if not refs[i].whole]
    if prefixes:
        raise DeadLettersNotReplayable(prefixes)
    return to_replay, len(wanted) - len(to_replay)
