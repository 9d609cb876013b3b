"""Payments of the netting's transfers: recorded by the payer, confirmed or rejected by the payee.

SPEC.md, "Payments". Each transfer of a closed period's statement is owed by its `from` to
its `to`, due `payment_terms_days` after the period's last day. A transfer's state on a
date is what its confirmed and undecided payments make of it. Pure: dates are
`datetime.date` (days in the catalog's timezone), instants Unix seconds, amounts integer yen.

What a confirmed payment posts in the journal is `ledger.domain.payment_journal`'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ledger.domain.errors import Forbidden, InputError, NotFound
from ledger.domain.instants import format_utc
from ledger.domain.periods import Calendar, next_period, parse_period

RECORDED, CONFIRMED, REJECTED = "recorded", "confirmed", "rejected"
DECISIONS = (CONFIRMED, REJECTED)
MAX_REFERENCE_CHARS = 200
MAX_NOTE_CHARS = 2_000
# Ids are numbered in recording order, alliance-wide: "pay-1", "pay-2", ...
ID_PATTERN = re.compile(r"pay-[1-9][0-9]{0,17}")


class PaymentRefused(InputError):
    """A payment SPEC.md does not allow (over the transfer, already decided)."""

    http_status = 409
    code = "payment_refused"


@dataclass(frozen=True, slots=True)
class Transfer:
    """One transfer of a closed period's statement, as owed."""

    period: str
    payer: str  # the statement's `from`
    payee: str  # its `to`
    amount_yen: int
    index: int = 0  # its place in the statement's `transfers` (0-based)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.period, self.payer, self.payee


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    period: str
    payer: str
    payee: str
    amount_yen: int
    paid_on: date
    reference: str
    state: str
    recorded_by: str = ""  # the token that recorded it ("cli": the command line)
    recorded_at: int | None = None  # Unix seconds; set by the store
    note: str = ""  # the payee's, with its decision (a rejection always has one)
    decided_by: str | None = None
    decided_at: int | None = None

    @property
    def transfer_key(self) -> tuple[str, str, str]:
        return self.period, self.payer, self.payee


def transfers_in(period: str, statement: dict) -> list[Transfer]:
    """The transfers a closed period's statement owes, in its order: the one place a
    statement's `transfers` are read for payments (SPEC.md's wire names)."""
    return [
        Transfer(period, row["from"], row["to"], row["amount_yen"], index)
        for index, row in enumerate(statement.get("transfers", []))
    ]


def due_date(period: str, payment_terms_days: int) -> date:
    """The period's last day plus the terms (2026-10 with 30 days: 2026-11-30)."""
    year, month = parse_period(next_period(period))
    return date(year, month, 1) - timedelta(days=1) + timedelta(days=payment_terms_days)


def local_date(instant: int, calendar: Calendar) -> date:
    """The day an instant falls on in the catalog's timezone ("today" for `payments list`)."""
    return datetime.fromtimestamp(instant, calendar.zone).date()


def parse_date(text: str, what: str) -> date:
    try:
        parsed = date.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None or len(text) != 10:
        raise InputError(f"{what} {text!r} is not a date YYYY-MM-DD")
    return parsed


def check_paid_on(paid_on: date, today: date) -> date:
    """A payment is recorded once made: its date is not after today (catalog's timezone)."""
    if paid_on > today:
        raise InputError(f"paid-on {paid_on.isoformat()} is after today ({today.isoformat()}): record a payment once it is made")
    return paid_on


def check_reference(reference: str) -> str:
    if not reference.strip():
        raise InputError("a payment needs a reference (the bank's, say)")
    if len(reference) > MAX_REFERENCE_CHARS or "\x00" in reference:
        raise InputError(f"a reference is at most {MAX_REFERENCE_CHARS} characters, without NUL")
    return reference


def check_note(note: str, required: bool) -> str:
    if required and not note.strip():
        raise InputError("a rejection needs a note saying why (--note TEXT)")
    if len(note) > MAX_NOTE_CHARS or "\x00" in note:
        raise InputError(f"a note is at most {MAX_NOTE_CHARS:,} characters, without NUL")
    return note


def check_id(payment_id: str) -> str:
    """An id that cannot name a payment is reported as one that names none."""
    if ID_PATTERN.fullmatch(payment_id) is None:
        raise NotFound(f"no payment {payment_id!r} (ids look like pay-1)")
    return payment_id


def transfer_to_record(transfers: Iterable[Transfer], member: str | None, payee: str) -> Transfer | None:
    """The transfer `member` owes `payee`, or None. Refused before that: a caller that is no
    member, and the payee trying to record what it is owed (it may see the transfer)."""
    if member is None:
        raise Forbidden("a payment is recorded by the member that pays it (--as MEMBER)")
    for transfer in transfers:
        if (transfer.payer, transfer.payee) == (member, payee):
            return transfer
        if (transfer.payer, transfer.payee) == (payee, member):
            raise Forbidden(f"only {transfer.payer}, which owes this transfer, records payments of it")
    return None


def check_record(transfer: Transfer | None, payer: str | None, amount_yen: int, payments: list[Payment]) -> None:
    """A payment the payer may record against `transfer` (None: there is none)."""
    if payer is None:
        raise Forbidden("a payment is recorded by the member that pays it (--as MEMBER)")
    if transfer is None:
        raise NotFound("no such transfer: the period is not closed, or its statement has none to that member")
    if payer != transfer.payer:
        raise Forbidden(f"only {transfer.payer}, which owes this transfer, records payments of it")
    if isinstance(amount_yen, bool) or not isinstance(amount_yen, int) or amount_yen <= 0:
        raise InputError("a payment's amount is an integer number of yen greater than 0")
    held = held_yen(transfer, payments)
    if held + amount_yen > transfer.amount_yen:
        raise PaymentRefused(
            f"the transfer is {transfer.amount_yen:,} yen; {held:,} are confirmed or awaiting the payee: "
            f"{amount_yen:,} more would exceed it"
        )


def held_yen(transfer: Transfer, payments: Iterable[Payment]) -> int:
    """What a transfer's confirmed and undecided payments hold of it (at most its amount)."""
    return sum(p.amount_yen for p in payments if p.transfer_key == transfer.key and p.state in (RECORDED, CONFIRMED))


def check_decision(payment: Payment, member: str | None) -> None:
    """Only the payee decides, and only a payment still recorded."""
    if member is not None and member not in (payment.payer, payment.payee):
        raise NotFound("no such payment")
    if member != payment.payee:
        raise Forbidden(f"only the payee ({payment.payee}) confirms or rejects a payment")
    if payment.state != RECORDED:
        raise PaymentRefused(f"the payment is already {payment.state}")


def sees(member: str | None, payer: str, payee: str) -> bool:
    """A member sees the transfers (and their payments) it pays or receives; the operator
    and auditors (member None) see all."""
    return member is None or member in (payer, payee)


def transfer_state(transfer: Transfer, payments: list[Payment], payment_terms_days: int, on: date) -> dict:
    """SPEC.md's row of `payments list` for one transfer on a date."""
    due = due_date(transfer.period, payment_terms_days)
    mine = [p for p in payments if p.transfer_key == transfer.key]
    paid = sum(p.amount_yen for p in mine if p.state == CONFIRMED)
    pending = sum(p.amount_yen for p in mine if p.state == RECORDED)
    if paid == transfer.amount_yen:
        status = "paid"
    elif on > due:
        status = "overdue"
    else:
        status = "due"
    return {
        "period": transfer.period, "from": transfer.payer, "to": transfer.payee,
        "amount_yen": transfer.amount_yen, "due": due.isoformat(), "paid_yen": paid, "pending_yen": pending,
        "status": status, "days_overdue": (on - due).days if status == "overdue" else 0,
    }


def overdue_yen(states: Iterable[dict]) -> dict[str, int]:
    """What each payer owes past its transfers' due dates and has not paid (confirmed)."""
    owed: dict[str, int] = {}
    for row in states:
        if row["status"] == "overdue":
            owed[row["from"]] = owed.get(row["from"], 0) + row["amount_yen"] - row["paid_yen"]
    return owed


def document(payment: Payment) -> dict:
    return {
        "id": payment.id, "period": payment.period, "from": payment.payer, "to": payment.payee,
        "amount_yen": payment.amount_yen, "paid_on": payment.paid_on.isoformat(),
        "reference": payment.reference, "state": payment.state,
        "recorded_at": None if payment.recorded_at is None else format_utc(payment.recorded_at),
        "decided_at": None if payment.decided_at is None else format_utc(payment.decided_at),
        "note": payment.note,
    }
