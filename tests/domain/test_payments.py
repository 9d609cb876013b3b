"""SPEC.md, "Payments": due dates, who records and decides, over-payments, a transfer's state."""

from __future__ import annotations

from datetime import date

import pytest

from ledger.domain import payments
from ledger.domain.errors import Forbidden, InputError, NotFound
from ledger.domain.payments import Payment, PaymentRefused, Transfer

TRANSFER = Transfer("2026-09", "kddi", "highreso", 65090)


def payment(amount: int, state: str = "recorded", pid: str = "p-1") -> Payment:
    return Payment(pid, "2026-09", "kddi", "highreso", amount, date(2026, 10, 28), "BANK", state)


@pytest.mark.parametrize("period, days, due", [
    ("2026-10", 30, "2026-11-30"), ("2026-09", 30, "2026-10-30"), ("2026-12", 30, "2027-01-30"),
    ("2027-02", 0, "2027-02-28"), ("2028-02", 1, "2028-03-01"),
])
def test_a_transfer_is_due_the_terms_after_its_periods_last_day(period, days, due):
    assert payments.due_date(period, days).isoformat() == due


def test_only_the_payer_records_and_never_beyond_the_transfer():
    payments.check_record(TRANSFER, "kddi", 32545, [])
    with pytest.raises(Forbidden):
        payments.check_record(TRANSFER, "highreso", 1, [])
    with pytest.raises(NotFound):
        payments.check_record(None, "kddi", 1, [])
    with pytest.raises(InputError):
        payments.check_record(TRANSFER, "kddi", 0, [])
    held = [payment(32545, "confirmed"), payment(32545, "recorded", "p-2")]
    with pytest.raises(PaymentRefused, match="exceed"):
        payments.check_record(TRANSFER, "kddi", 1, held)
    payments.check_record(TRANSFER, "kddi", 32545, [payment(32545, "confirmed"), payment(32545, "rejected")])


def test_only_the_payee_decides_a_recorded_payment():
    payments.check_decision(payment(10), "highreso")
    with pytest.raises(Forbidden):
        payments.check_decision(payment(10), "kddi")
    with pytest.raises(NotFound):
        payments.check_decision(payment(10), "sakura")
    with pytest.raises(PaymentRefused, match="confirmed"):
        payments.check_decision(payment(10, "confirmed"), "highreso")


def test_a_transfers_state_on_a_date():
    found = payments.transfer_state(TRANSFER, [payment(32545, "confirmed"), payment(32545, "rejected")], 30,
                                    date(2027, 1, 15))
    assert found == {"period": "2026-09", "from": "kddi", "to": "highreso", "amount_yen": 65090,
                     "due": "2026-10-30", "paid_yen": 32545, "pending_yen": 0, "status": "overdue",
                     "days_overdue": 77}
    assert payments.transfer_state(TRANSFER, [], 30, date(2026, 10, 30))["status"] == "due"
    paid = payments.transfer_state(TRANSFER, [payment(65090, "confirmed")], 30, date(2027, 1, 15))
    assert (paid["status"], paid["days_overdue"]) == ("paid", 0)
    pending = payments.transfer_state(TRANSFER, [payment(100)], 30, date(2026, 10, 1))
    assert (pending["pending_yen"], pending["paid_yen"], pending["status"]) == (100, 0, "due")


@pytest.mark.parametrize("text", ["2026-13-01", "2026-1-1", "20261001", "", "2026-10-01T00:00:00"])
def test_a_date_is_yyyy_mm_dd(text):
    with pytest.raises(InputError):
        payments.parse_date(text, "paid-on")
