"""Voids: GPU-seconds taken back from one attribution (SPEC.md, "Corrections").

A void names one GPU, an interval [from, to), an attribution and a reason; it takes the
seconds of that GPU in the interval billed now with exactly that attribution, in one
store transaction:

1. Hold the books (shared), as intake does: a close cannot interleave, so where each
   voided second goes is decided against the books as they stay until commit. If this
   fails, nothing was done.
2. Lock the GPU, as intake does: no event of it is metered meanwhile.
3. Read its claims and earlier voids in the interval's hours, and take the seconds billed
   now to the attribution (pure; `ledger.domain.metering.Meter.void`). None: refused,
   nothing stored.
4. Store the void and what it took from each claim, with where the seconds go: nowhere
   (their booking period is open: they leave its lines), or returned by the first open
   booking period's statement (their booking period is closed). The rollups stop counting
   them in the same statement. Then commit.

Only the provider of the seconds and the alliance operator void (a reseller disputes).
`take` runs steps 1-4 in a transaction the caller opened: an accepted dispute's void
commits with the move that accepts it (`ledger.service.disputes`).
"""

from __future__ import annotations

from ledger.domain import disputes
from ledger.domain.access import Caller
from ledger.domain.disputes import Interval
from ledger.domain.errors import Forbidden, InputError
from ledger.domain.instants import format_utc
from ledger.domain.metering import HOUR_SECONDS, Meter, Pieces
from ledger.domain.periods import next_period
from ledger.domain.ports import IntakeTransaction, NewVoid, Store, VoidedBits, VoidRow

OPERATOR = "operator"


class NothingToVoid(InputError):
    """No second of the interval is billed with that attribution."""

    code = "nothing_to_void"


def actor_of(caller: Caller, interval: Interval) -> str:
    """Who voids: the operator, or the provider of the seconds; anyone else is refused."""
    if caller.member is None:
        if not caller.can_write_ledger:
            raise Forbidden("an auditor reads the ledger and writes nothing")
        return OPERATOR
    if caller.member != interval.provider:
        raise Forbidden("only the provider of the seconds and the alliance operator void them; a reseller opens a dispute")
    return caller.member


def hours_of(interval: Interval) -> list[int]:
    first = interval.start - interval.start % HOUR_SECONDS
    return list(range(first, interval.end, HOUR_SECONDS))


async def void(
    store: Store, caller: Caller, interval: Interval, reason: str, dispute_id: str | None = None,
) -> dict:
    """Void the interval's seconds billed now with its attribution; {"void", "gpu_seconds"}.
    NothingToVoid when none is."""
    disputes.check_reason(reason)
    actor = actor_of(caller, interval)
    async with store.intake() as tx:
        return await take(tx, actor, interval, reason, dispute_id)


async def take(
    tx: IntakeTransaction, actor: str, interval: Interval, reason: str, dispute_id: str | None = None,
) -> dict:
    """The steps of a void inside the caller's transaction (an accepted dispute's commits
    with its move); `actor` as `actor_of` gives it. NothingToVoid, with nothing written,
    when no second is billed."""
    closed_through = await tx.closed_through()  # 1. books, held until commit
    await tx.lock_gpus([interval.gpu_uuid])  # 2.
    meter = await _meter(tx, interval, closed_through)  # 3.
    taken = meter.void(interval.gpu_uuid, interval.attribution, interval.start, interval.end)
    if not taken:
        raise NothingToVoid("no second of this GPU in that interval is billed with that attribution")
    first_open = None if closed_through is None else next_period(closed_through)
    parts = [
        VoidedBits(key, bits, first_open if closed_through is not None and key.booking_period <= closed_through else None)
        for key, bits in taken
    ]
    seconds = sum(bits.bit_count() for _, bits in taken)
    record = NewVoid(interval.gpu_uuid, interval.start, interval.end, interval.attribution, reason, dispute_id,
                     actor, seconds, closed_through)
    void_id = await tx.write_void(record, parts)  # 4.
    return {"void": void_id, "gpu_seconds": seconds}


async def _meter(tx: IntakeTransaction, interval: Interval, closed_through: str | None) -> Meter:
    """A meter loaded with the interval's hours of its GPU: claims and earlier voids."""
    catalog, _ = await tx.catalog()
    meter = Meter(Pieces(catalog.calendar), closed_through)
    pairs = [(interval.gpu_uuid, hour) for hour in hours_of(interval)]
    for key, bits in await tx.claims(pairs):
        meter.load(key, bits)
    for key, bits in await tx.voided(pairs):
        meter.load_voided(key.gpu_uuid, key.hour_start, key.attribution, bits)
    return meter


async def billed_seconds(store: Store, interval: Interval) -> int:
    """How many seconds of the interval are billed now with its attribution."""
    async with store.intake() as tx:
        return await billed_in(tx, interval)


async def billed_in(tx: IntakeTransaction, interval: Interval) -> int:
    """`billed_seconds` inside the caller's transaction (a dispute's `gpu_seconds` when opened)."""
    meter = await _meter(tx, interval, await tx.closed_through())
    parts = meter.billed_between(interval.gpu_uuid, interval.attribution, interval.start, interval.end)
    return sum(bits.bit_count() for _, bits in parts)


async def listing(store: Store, caller: Caller, limit: int = 1000) -> dict:
    """The voids the caller may see (SPEC.md: the provider and the reseller of their
    seconds, and the operator; an auditor reads all), oldest first."""
    async with store.snapshot() as reader:
        rows = await reader.voids(caller.member, limit)
    return {"voids": [void_document(row) for row in rows]}


def void_document(row: VoidRow) -> dict:
    v = row.void
    provider, reseller, tenant, sku = v.attribution
    return {
        "id": row.id, "gpu_uuid": v.gpu_uuid, "from": format_utc(v.start), "to": format_utc(v.end),
        "provider": provider, "reseller": reseller, "tenant": tenant, "sku": sku, "reason": v.reason,
        "dispute": v.dispute_id, "gpu_seconds": v.gpu_seconds, "made_by": v.actor, "made_at": format_utc(row.made_at),
        "returned_in": row.returned_in,
    }
