"""`gpuledger verify --db`: the voids against the claims they took from and the closes.

SPEC.md, "Corrections". For every stored void: it took something; its `gpu_seconds` are the
bits stored for it; each part is of the void's GPU and attribution, inside its [from, to),
within the bits its claim was billed with, and no second of a claim is voided twice; a
part of a booking period the void found closed is returned in the first open one (after
that period), one it found open is not returned; and the closes agree: a returned part's
booking period was closed when the void was made, a part not returned was of a period
still open then, and the period that returns it was not closed before the void was made.
(What the returns then give back is in the closed statements, which are recomputed.)

The closes are compared by time, and a transaction's time is when it began (PostgreSQL's
now()): a void that began just before a close and waited for it finds the period closed
although its `made_at` is earlier. The comparisons allow `CLOCK_SLACK_SECONDS` for that;
where the seconds go is decided by `closed_through`, which is checked exactly.
"""

from __future__ import annotations

from collections import defaultdict

from ledger.domain.correction_records import VoidedBits, VoidRow
from ledger.domain.errors import VerificationFailed
from ledger.domain.instants import format_utc
from ledger.domain.metering import HOUR_SECONDS, ClaimKey
from ledger.domain.periods import next_period
from ledger.domain.ports import ExportReader

CLOCK_SLACK_SECONDS = 60


async def check_voids(books: ExportReader) -> int:
    """Check every void (see the module docstring); how many there are."""
    rows = await books.voids(None, None)
    parts: dict[str, list[VoidedBits]] = defaultdict(list)
    for void_id, part in await books.void_parts():
        parts[void_id].append(part)
    unknown = sorted(set(parts) - {row.id for row in rows})
    if unknown:
        raise VerificationFailed(f"voided seconds are stored for {unknown[0]}, which is not a stored void")
    claims = await books.claim_bits(sorted({part.key for found in parts.values() for part in found}))
    taken: dict[ClaimKey, tuple[str, int]] = {}
    for row in rows:
        _check_seconds(row, parts[row.id])
        await _check_books_then(books, row)
        for part in parts[row.id]:
            _check_part(row, part, claims, taken)
            await _check_closes(books, row, part)
    return len(rows)


def _check_seconds(row: VoidRow, parts: list[VoidedBits]) -> None:
    counted = sum(part.bits.bit_count() for part in parts)
    if not parts or counted != row.void.gpu_seconds:
        raise VerificationFailed(
            f"{row.id} says it voided {row.void.gpu_seconds} GPU-seconds, but the bits stored for it hold {counted}"
        )


def _check_part(row: VoidRow, part: VoidedBits, claims: dict[ClaimKey, int],
                taken: dict[ClaimKey, tuple[str, int]]) -> None:
    void, key = row.void, part.key
    where = f"{row.id}: its seconds of {key.gpu_uuid} at {format_utc(key.hour_start)} booked in {key.booking_period}"
    if (key.gpu_uuid, key.attribution) != (void.gpu_uuid, void.attribution):
        raise VerificationFailed(f"{where} are of another GPU or attribution than the void's")
    first = key.hour_start + (part.bits & -part.bits).bit_length() - 1
    last = key.hour_start + part.bits.bit_length() - 1
    if not part.bits or first < void.start or last >= void.end or part.bits >> HOUR_SECONDS:
        raise VerificationFailed(f"{where} are not all inside the void's [{format_utc(void.start)}, "
                                 f"{format_utc(void.end)})")
    if part.bits & ~claims.get(key, 0):
        raise VerificationFailed(f"{where} were never billed with its attribution (not in the claim's bits)")
    earlier = taken.get(key)
    if earlier is not None and earlier[1] & part.bits:
        raise VerificationFailed(f"{where} were voided already by {earlier[0]}")
    taken[key] = (row.id, part.bits | (earlier[1] if earlier else 0))
    closed = void.closed_through is not None and key.booking_period <= void.closed_through
    expected = next_period(void.closed_through) if closed else None
    if part.returned_in != expected:
        raise VerificationFailed(
            f"{where} are returned in {part.returned_in or 'no period'}, but the void found the books closed "
            f"through {void.closed_through or 'no period'}: they belong " +
            (f"to the statement of {expected}" if closed else "to no return (they left an open period's lines)")
        )


async def _check_books_then(books: ExportReader, row: VoidRow) -> None:
    """The books were closed through the void's `closed_through` when it was made: that
    period was closed by then, and the next one was not."""
    through, made_at = row.void.closed_through, row.made_at
    closed = None if through is None else await books.closed_at(through)
    after = await books.closed_at(next_period(through)) if through is not None else None
    if (through is not None and (closed is None or closed > made_at + CLOCK_SLACK_SECONDS)) or (
        after is not None and after < made_at - CLOCK_SLACK_SECONDS
    ):
        raise VerificationFailed(
            f"{row.id} says the books were closed through {through or 'no period'} when it was made "
            f"({format_utc(made_at)}), which the closes contradict"
        )


async def _check_closes(books: ExportReader, row: VoidRow, part: VoidedBits) -> None:
    """The closes as the void found them: what it returns was closed then, what it does not
    return was open, and the period that returns it was not closed yet."""
    booked, made_at = part.key.booking_period, row.made_at
    booked_closed = await books.closed_at(booked)
    if part.returned_in is not None:
        if booked_closed is None or booked_closed > made_at + CLOCK_SLACK_SECONDS:
            raise VerificationFailed(
                f"{row.id} returns seconds booked in {booked}, which was not closed when the void was made "
                f"({format_utc(made_at)})"
            )
        returned_closed = await books.closed_at(part.returned_in)
        if returned_closed is not None and returned_closed < made_at - CLOCK_SLACK_SECONDS:
            raise VerificationFailed(
                f"{row.id} returns seconds in {part.returned_in}, which was closed at {format_utc(returned_closed)}, "
                f"before the void was made ({format_utc(made_at)})"
            )
    elif booked_closed is not None and booked_closed < made_at - CLOCK_SLACK_SECONDS:
        raise VerificationFailed(
            f"{row.id} took seconds off the lines of {booked} as if it were open, but it was closed at "
            f"{format_utc(booked_closed)}, before the void was made ({format_utc(made_at)})"
        )
