"""SPEC.md, "Payments": due dates, who records and decides, over-payments, a transfer's state,
and what payments post in the journal (ledger/domain/payments.py, payment_journal.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain import journal, payment_journal, payments
from ledger.domain.errors import Forbidden, InputError, NotFound
from ledger.domain.payments import Payment, PaymentRefused, Transfer
from ledger.domain.periods import calendar
from ledger.domain.statement import Statement
from tests.factories import instant

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


# -- reading transfers, dates, who may do what ------------------------------------------


def test_a_statements_transfers_are_read_in_its_order_with_their_index():
    statement = {"transfers": [{"from": "kddi", "to": "sakura", "amount_yen": 5},
                               {"from": "highreso", "to": "sakura", "amount_yen": 7}]}
    assert payments.transfers_in("2026-10", statement) == [
        Transfer("2026-10", "kddi", "sakura", 5, 0), Transfer("2026-10", "highreso", "sakura", 7, 1)]
    assert payments.transfers_in("2026-10", {"transfers": []}) == []


def test_today_is_the_day_in_the_catalogs_timezone():
    tokyo = calendar("Asia/Tokyo")
    assert payments.local_date(instant("2026-11-30T14:59:59Z"), tokyo) == date(2026, 11, 30)
    assert payments.local_date(instant("2026-11-30T15:00:00Z"), tokyo) == date(2026, 12, 1)
    assert payments.local_date(instant("2026-11-30T15:00:00Z"), calendar("UTC")) == date(2026, 11, 30)


def test_a_payment_is_made_before_it_is_recorded():
    assert payments.check_paid_on(date(2026, 11, 2), date(2026, 11, 2)) == date(2026, 11, 2)
    with pytest.raises(InputError, match="after today"):
        payments.check_paid_on(date(2026, 11, 3), date(2026, 11, 2))


@pytest.mark.parametrize("note, required, ok", [
    ("", False, True), ("", True, False), ("  ", True, False), ("not received", True, True),
    ("x" * 2000, True, True), ("x" * 2001, True, False), ("a\x00", False, False),
])
def test_a_rejection_says_why_in_at_most_2000_characters(note, required, ok):
    if ok:
        assert payments.check_note(note, required) == note
    else:
        with pytest.raises(InputError):
            payments.check_note(note, required)


@pytest.mark.parametrize("text", ["pay-1", "pay-42", "pay-999999999999999999"])
def test_payment_ids(text):
    assert payments.check_id(text) == text


@pytest.mark.parametrize("text", ["pay-0", "pay-01", "PAY-1", "pay-", "1", "pay-1 ", "pay-1000000000000000000"])
def test_what_cannot_be_a_payment_id_names_none(text):
    with pytest.raises(NotFound):
        payments.check_id(text)


def test_the_transfer_to_record_is_the_one_the_member_owes():
    owed = [TRANSFER, Transfer("2026-09", "sakura", "highreso", 26158, 1)]
    assert payments.transfer_to_record(owed, "kddi", "highreso") == TRANSFER
    assert payments.transfer_to_record(owed, "kddi", "sakura") is None
    with pytest.raises(Forbidden, match="only kddi"):
        payments.transfer_to_record(owed, "highreso", "kddi")  # the payee may see it, not record it
    with pytest.raises(Forbidden):
        payments.transfer_to_record(owed, None, "highreso")


def test_a_member_sees_what_it_pays_or_receives_and_the_operator_all():
    assert payments.sees("kddi", "kddi", "highreso") and payments.sees("highreso", "kddi", "highreso")
    assert not payments.sees("sakura", "kddi", "highreso")
    assert payments.sees(None, "kddi", "highreso")


def test_overdue_yen_is_what_payers_owe_past_due_and_have_not_paid():
    other = Transfer("2026-10", "kddi", "sakura", 1000, 0)
    rows = [payments.transfer_state(TRANSFER, [payment(32545, "confirmed"), payment(10)], 30, date(2026, 11, 1)),
            payments.transfer_state(other, [], 30, date(2026, 11, 1))]
    assert [r["status"] for r in rows] == ["overdue", "due"]
    assert payments.overdue_yen(rows) == {"kddi": 65090 - 32545}


def test_a_payment_as_printed():
    printed = payments.document(replace(payment(10, "rejected"), recorded_at=instant("2026-10-28T01:00:00Z"),
                                        decided_at=instant("2026-10-29T01:00:00Z"), note="no"))
    assert printed == {"id": "p-1", "period": "2026-09", "from": "kddi", "to": "highreso", "amount_yen": 10,
                       "paid_on": "2026-10-28", "reference": "BANK", "state": "rejected",
                       "recorded_at": "2026-10-28T01:00:00Z", "decided_at": "2026-10-29T01:00:00Z", "note": "no"}


# -- the journal ------------------------------------------------------------------------


def closing(transfer: Transfer, owed: bool) -> list[journal.Entry]:
    statement = Statement.from_document({
        "period": "2026-10", "currency": "JPY", "closed": True, "lines": [], "tenant_invoices": [],
        "member_invoices": [], "returns": [], "grant_draws": [], "net_yen": {},
        "transfers": [{"from": transfer.payer, "to": transfer.payee, "amount_yen": transfer.amount_yen}]})
    return journal.entries_for_statement(statement, transfers_owed=owed)


def test_a_close_posts_a_transfer_as_owed_or_as_periods_closed_before_payments_did():
    owed, paid = closing(TRANSFER, True)[0], closing(TRANSFER, False)[0]
    assert (owed.kind, owed.postings) == ("transfer_owed", [
        ("kddi/settlement/clearing", 65090), ("kddi/payable/transfer/highreso", -65090),
        ("highreso/receivable/transfer/kddi", 65090), ("highreso/settlement/clearing", -65090)])
    assert (paid.kind, paid.postings) == ("transfer", [
        ("kddi/settlement/clearing", 65090), ("kddi/cash", -65090),
        ("highreso/cash", 65090), ("highreso/settlement/clearing", -65090)])


def test_a_confirmation_posts_its_payment_and_restates_a_transfer_paid_at_the_close_once():
    paid = payment(100, "confirmed")
    assert [e.kind for e in payment_journal.entries_for_confirmation(paid, TRANSFER, ["transfer_owed"])] == ["payment"]
    assert [e.kind for e in payment_journal.entries_for_confirmation(paid, TRANSFER, ["transfer"])] == [
        "transfer_restated", "payment"]
    assert [e.kind for e in payment_journal.entries_for_confirmation(
        paid, TRANSFER, ["transfer", "transfer_restated"])] == ["payment"]
    entry = payment_journal.payment_entry(paid, TRANSFER)
    assert entry.reference == {"payment": "p-1", "transfer": 0}
    assert entry.postings == [("kddi/payable/transfer/highreso", 100), ("kddi/cash", -100),
                              ("highreso/cash", 100), ("highreso/receivable/transfer/kddi", -100)]


AMOUNTS = st.integers(min_value=1, max_value=50_000)


@settings(max_examples=200, deadline=None)
@given(owed=st.booleans(), amount=st.integers(min_value=1, max_value=100_000),
       attempts=st.lists(st.tuples(AMOUNTS, st.sampled_from(["confirmed", "rejected", "recorded"])), max_size=12))
def test_whatever_is_paid_the_books_balance_and_the_posted_entries_check(owed, amount, attempts):
    """Given a transfer and payments recorded and decided in any order, then no payment is
    accepted beyond the transfer, every entry balances, the payable and receivable hold
    what is still owed (or, for a transfer paid at the close, are cleared once paid), cash
    moved by what was confirmed, and `check_posted` accepts the journal as posted."""
    transfer = Transfer("2026-09", "kddi", "highreso", amount, 0)
    entries = closing(transfer, owed)
    kinds = [e.kind for e in entries]
    stored: list[Payment] = []
    for number, (yen, decision) in enumerate(attempts, start=1):
        try:
            payments.check_record(transfer, "kddi", yen, stored)
        except PaymentRefused:
            assert payments.held_yen(transfer, stored) + yen > amount
            continue
        made = Payment(f"pay-{number}", "2026-09", "kddi", "highreso", yen, date(2026, 10, 1), "B", decision)
        if decision == "confirmed":
            posted = payment_journal.entries_for_confirmation(made, transfer, kinds)
            entries += posted
            kinds += [e.kind for e in posted]
        stored.append(made)
        assert payments.held_yen(transfer, stored) <= amount
    assert not journal.unbalanced(entries)
    totals: dict[str, int] = {}
    for entry in entries:
        for account, yen in entry.postings:
            totals[account] = totals.get(account, 0) + yen
    paid = sum(p.amount_yen for p in stored if p.state == "confirmed")
    restated = owed or paid > 0
    assert totals["kddi/payable/transfer/highreso" if restated else "kddi/cash"] == -(amount - paid if restated else amount)
    assert totals.get("highreso/receivable/transfer/kddi", 0) == (amount - paid if restated else 0)
    assert totals.get("kddi/cash", 0) == (-paid if restated else -amount)
    chained = journal.chain("2026-09", entries, 0, journal.GENESIS_HASH)
    later = [e for e in chained if e.kind in payment_journal.POSTED_AFTER_CLOSE]
    payment_journal.check_posted("2026-09", [transfer], owed, later, stored)


def test_check_posted_names_what_the_payments_did_not_post():
    transfer = replace(TRANSFER, amount_yen=100)
    confirmed = Payment("pay-1", "2026-09", "kddi", "highreso", 60, date(2026, 10, 1), "B", "confirmed")
    posted = journal.chain("2026-09", [payment_journal.payment_entry(confirmed, transfer)], 9, bytes(32))
    payment_journal.check_posted("2026-09", [transfer], True, posted, [confirmed])
    with pytest.raises(ValueError, match="confirmed but has no journal entry"):
        payment_journal.check_posted("2026-09", [transfer], True, [], [confirmed])
    with pytest.raises(ValueError, match="no confirmed payment's entry"):
        payment_journal.check_posted("2026-09", [transfer], True, posted + posted, [confirmed])
    with pytest.raises(ValueError, match="not what payment pay-1 posts"):
        payment_journal.check_posted("2026-09", [transfer], True, posted, [replace(confirmed, amount_yen=59)])
    with pytest.raises(ValueError, match="not restated before"):
        payment_journal.check_posted("2026-09", [transfer], False, posted, [confirmed])
    with pytest.raises(ValueError, match="more than its"):
        payment_journal.check_posted("2026-09", [transfer], True, posted,
                                     [confirmed, replace(confirmed, id="pay-2", state="recorded", amount_yen=41)])
    with pytest.raises(ValueError, match="pays no transfer"):
        payment_journal.check_posted("2026-09", [transfer], True, [], [replace(confirmed, payee="sakura", state="recorded")])
