"""`gpuledger ingest`: a file's events onto the usage topic, and counting them back.

Every line is a received event (SPEC.md, "How events arrive"). Lines over 1 MiB never
reach Kafka (a broker would refuse them): they are dead-lettered here as `malformed`,
counted under the ingest like any other event. `wait` counts an ingest's events by the
id its records carry, from the tallies the workers write in the same transaction as
what they decided: never by end offsets or lag, which the test broker reports wrongly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from ledger.domain import events
from ledger.domain.errors import LedgerError, ServiceUnavailable
from ledger.domain.ports import DeadLetter, Publisher, Store, Tally
from schemas.wire import MAX_EVENT_BYTES

# An indexed sum over the ingest's tally rows: cheap enough to read often, so that the
# command returns soon after its last event is decided.
POLL_SECONDS = 0.05
STALL_NOTICE_SECONDS = 30
# Records a worker fetched before the broker went away are still written: events are
# called lost only once nothing more arrives for this long after.
LOST_GRACE_SECONDS = 10


@dataclass
class Published:
    received: int = 0
    records: int = 0
    oversize: list[bytes] = field(default_factory=list)


async def publish(
    store: Store, publisher: Publisher, lines: Iterable[bytes], ingest_id: str, *,
    batch_max_events: int, on_progress: Callable[[int], None] | None = None,
) -> Published:
    """Publish a file's lines under `ingest_id`; dead-letter those too large for Kafka."""
    result = Published()

    def sendable() -> Iterator[bytes]:
        for line in lines:
            result.received += 1
            if len(line) > MAX_EVENT_BYTES:
                result.oversize.append(line)
            else:
                yield line

    result.records = await publisher.publish(
        sendable(), ingest_id, batch_max_events=batch_max_events,
        on_progress=(lambda _: on_progress(result.received)) if on_progress else None,
    )
    await record_oversize(store, ingest_id, result.oversize, int(time.time() * 1000))
    return result


async def accept_request(
    store: Store, publisher: Publisher, raws: list[bytes], ingest_id: str, sender: str | None = None,
) -> None:
    """An HTTP request's events: those over 1 MiB dead-lettered here (no broker takes
    them), the rest sent as one record, so the request is in Kafka whole or not at all.
    `sender`: the member whose token sent them (its own topic); None: the operator."""
    sendable = [raw for raw in raws if len(raw) <= MAX_EVENT_BYTES]
    await publisher.send_events(sendable, ingest_id, sender)
    oversize = [raw for raw in raws if len(raw) > MAX_EVENT_BYTES]
    await record_oversize(store, ingest_id, oversize, int(time.time() * 1000), sender)


async def record_oversize(
    store: Store, ingest_id: str, raws: list[bytes], received_ms: int, sender: str | None = None,
) -> None:
    """Dead-letter events too large for a Kafka record: `malformed` whatever they hold."""
    if not raws:
        return
    detail = "{} bytes, more than " + str(MAX_EVENT_BYTES)
    letters = [
        DeadLetter(events.MALFORMED, detail.format(len(raw)), raw, received_ms,
                   None, None, None, None, ingest_id, None, None, sender)
        for raw in raws
    ]
    await store.record_rejections(letters, Tally(ingest_id, None, None, {events.MALFORMED: len(raws)}))


async def tally(store: Store, ingest_id: str) -> dict:
    """SPEC.md's counts for the events of one ingest."""
    sums = await store.ingest_tally(ingest_id)
    return {
        "received": sums["received"],
        "accepted": sums["accepted"],
        "duplicate": sums["duplicate"],
        "rejected": {name: sums[name] for name in events.REASONS if sums[name]},
    }


class EventsLost(LedgerError):
    """Events that were published will never be decided (the embedded broker lost them)."""


async def wait(
    store: Store, ingest_id: str, received: int, timeout: float,
    on_progress: Callable[[int, bool], None], notice: Callable[[str], None],
    lost: Callable[[], str | None] = lambda: None,
) -> dict:
    """Poll the ingest's tally until every received event is decided; return the counts.

    Rides through a database outage (the counts are read again once it is back), and
    stops with EventsLost when `lost()` says the events can no longer arrive: it never
    returns counts that are not the whole ingest's.
    """
    started = last_change = time.monotonic()
    last_seen = -1
    counts = {"received": 0}
    while True:
        try:
            counts = await tally(store, ingest_id)
        except ServiceUnavailable as exc:
            notice(f"cannot read the counts yet ({exc}); trying again")
        done = counts["received"]
        why = lost() if done < received else None
        if why and time.monotonic() - last_change > LOST_GRACE_SECONDS:
            raise EventsLost(
                f"{why}: {done} of {received} events of ingest {ingest_id} were decided and the "
                "rest can no longer be; ingest the file again (what was billed is a duplicate)"
            )
        on_progress(done, done >= received)
        if done >= received:
            return counts
        now = time.monotonic()
        if done != last_seen:
            last_seen, last_change = done, now
        elif now - last_change > STALL_NOTICE_SECONDS:
            notice(
                f"no progress for {STALL_NOTICE_SECONDS} s ({done}/{received} processed): "
                "are the workers running? (gpuledger dev status)"
            )
            last_change = now
        if timeout and now - started > timeout:
            raise LedgerError(
                f"timed out after {timeout:.0f} s with {done} of {received} events processed "
                f"(ingest {ingest_id}); they will still be processed when the workers catch up"
            )
        await asyncio.sleep(POLL_SECONDS)
