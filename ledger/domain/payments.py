"""Payments of the netting's transfers: recorded by the payer, confirmed or rejected by the payee.

SPEC.md, "Payments". Each transfer of a closed period's statement is owed by its `from` to
its `to`, due `payment_terms_days` after the period's last day. A transfer's state on a
date is what its confirmed and undecided payments make of it. Pure: dates are
`datetime.date`, amounts integer yen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from ledger.domain.errors import Forbidden, InputError, NotFound
from ledger.domain.periods import next_period, parse_period

RECORDED, CONFIRMED, REJECTED = "recorded", "confirmed", "rejected"
MAX_REFERENCE_CHARS = 200
MAX_NOTE_CHARS = 2_000


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


def due_date(period: str, payment_terms_days: int) -> date:
    """The period's last day plus the terms (2026-10 with 30 days: 2026-11-30)."""
    year, month = parse_period(next_period(period))
    return date(year, month, 1) - timedelta(days=1) + timedelta(days=payment_terms_days)


def parse_date(text: str, what: str) -> date:
    try:
        parsed = date.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None or len(text) != 10:
        raise InputError(f"{what} {text!r} is not a date YYYY-MM-DD")
    return parsed


def check_reference(reference: str) -> str:
    if not reference.strip():
        raise InputError("a payment needs a reference (the bank's, say)")
    if len(reference) > MAX_REFERENCE_CHARS or "\x00" in reference:
        raise InputError(f"a reference is at most {MAX_REFERENCE_CHARS} characters, without NUL")
    return reference


def check_record(transfer: Transfer | None, payer: str | None, amount_yen: int, payments: list[Payment]) -> None:
    """A payment the payer may record against `transfer` (None: there is none)."""
    if payer is None:
        raise Forbidden("a payment is recorded by the member that pays it (--as MEMBER)")
    if transfer is None:
        raise NotFound("no such transfer: the period is not closed, or its statement has none to that member")
    if payer != transfer.payer:
        raise Forbidden(f"only {transfer.payer}, which owes this transfer, records payments of it")
    if amount_yen <= 0:
        raise InputError("a payment's amount is an integer number of yen greater than 0")
    held = sum(p.amount_yen for p in payments if p.state in (RECORDED, CONFIRMED))
    if held + amount_yen > transfer.amount_yen:
        raise PaymentRefused(
            f"the transfer is {transfer.amount_yen:,} yen; {held:,} are confirmed or awaiting the payee: "
            f"{amount_yen:,} more would exceed it"
        )


def check_decision(payment: Payment, member: str | None) -> None:
    """Only the payee decides, and only a payment still recorded."""
    if member is not None and member not in (payment.payer, payment.payee):
        raise NotFound("no such payment")
    if member != payment.payee:
        raise Forbidden(f"only the payee ({payment.payee}) confirms or rejects a payment")
    if payment.state != RECORDED:
        raise PaymentRefused(f"the payment is already {payment.state}")


def transfer_state(transfer: Transfer, payments: list[Payment], payment_terms_days: int, on: date) -> dict:
    """SPEC.md's row of `payments list` for one transfer on a date."""
    due = due_date(transfer.period, payment_terms_days)
    paid = sum(p.amount_yen for p in payments if p.state == CONFIRMED)
    pending = sum(p.amount_yen for p in payments if p.state == RECORDED)
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


def document(payment: Payment) -> dict:
    return {
        "id": payment.id, "period": payment.period, "from": payment.payer, "to": payment.payee,
        "amount_yen": payment.amount_yen, "paid_on": payment.paid_on.isoformat(),
        "reference": payment.reference, "state": payment.state,
    }
