"""Payments on the in-memory store (ledger/service/payments.py): who records and decides,
over-payments, open periods, what each member sees, the states on a date, and the journal.

Given October 2026 closed with two transfers, kddi -> highreso 1,201 yen (a share agreement)
and kddi -> sakura 572 yen (wholesale), due 2026-11-30, and a clock the test moves.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import orjson
import pytest

from ledger.domain import journal, payment_journal
from ledger.domain.access import OPERATOR, Caller
from ledger.domain.errors import Forbidden, InputError, NotFound, VerificationFailed
from ledger.domain.payments import PaymentRefused
from ledger.memory.store import MemoryStore
from ledger.service import books, verification
from ledger.service import payments as service
from ledger.service.intake import Intake
from tests.factories import DEFAULT_CATALOG, encode, instant, usage_event
from tests.service.conftest import LoopbackPublisher, deliver, load_catalog

KDDI = Caller("t-kddi", "member", "kddi")
SAKURA = Caller("t-sakura", "member", "sakura")
HIGHRESO = Caller("t-highreso", "member", "highreso")
AUDITOR = Caller("t-auditor", "auditor", None)
NOV_2_JST = instant("2026-11-02T00:00:00+09:00")


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


async def closed_october(clock: Clock, transfers_owed: bool = True) -> MemoryStore:
    store = MemoryStore(clock=clock)
    await load_catalog(store, DEFAULT_CATALOG)
    publisher = LoopbackPublisher(clock_ms=lambda: instant("2026-10-31T00:00:00Z") * 1000, batch=False)
    for gpu, provider, hour in (("GPU-s", "sakura", 12), ("GPU-h", "highreso", 12), ("GPU-h", "highreso", 13)):
        event = usage_event(gpu_uuid=gpu, provider=provider, seconds=3600, time=f"2026-10-03T{hour}:00:00Z",
                            event_id=f"{gpu}-{hour}")
        await publisher.send_events([encode(event)], gpu)
    await deliver(publisher, Intake(store))
    if transfers_owed:
        await books.statement(store, "2026-10", close=True)
    else:  # as a period closed before payments existed posted its transfers
        original = journal.entries_for_statement
        journal.entries_for_statement = lambda statement, transfers_owed=True: original(statement, False)
        try:
            await books.statement(store, "2026-10", close=True)
        finally:
            journal.entries_for_statement = original
    return store


@pytest.fixture
def clock() -> Clock:
    return Clock(NOV_2_JST)


@pytest.fixture
async def store(clock) -> MemoryStore:
    return await closed_october(clock)


async def pay(store, who=KDDI, to="highreso", amount=600, paid_on="2026-11-01", period="2026-10") -> dict:
    return await service.record(store, who, period, to, amount, paid_on, "BANK-1")


def balances(store) -> dict[str, int]:
    found: dict[str, int] = defaultdict(int)
    for entry in store.state.journal:
        for account, amount in entry.postings:
            found[account] += amount
    return found


async def test_the_closed_statement_owes_what_the_payments_list_shows(store):
    statement = orjson.loads(await books.statement(store, "2026-10"))
    assert [(t["from"], t["to"], t["amount_yen"]) for t in statement["transfers"]] == [
        ("kddi", "highreso", 1201), ("kddi", "sakura", 572)]
    listed = await service.listing(store, OPERATOR, "2026-11-15")
    assert listed == {"as_of": "2026-11-15", "transfers": [
        {"period": "2026-10", "from": "kddi", "to": "highreso", "amount_yen": 1201, "due": "2026-11-30",
         "paid_yen": 0, "pending_yen": 0, "status": "due", "days_overdue": 0},
        {"period": "2026-10", "from": "kddi", "to": "sakura", "amount_yen": 572, "due": "2026-11-30",
         "paid_yen": 0, "pending_yen": 0, "status": "due", "days_overdue": 0}]}


async def test_the_payer_records_and_the_payee_confirms(store):
    recorded = await pay(store)
    assert recorded | {"recorded_at": None} == {
        "id": "pay-1", "period": "2026-10", "from": "kddi", "to": "highreso", "amount_yen": 600,
        "paid_on": "2026-11-01", "reference": "BANK-1", "state": "recorded", "recorded_at": None,
        "decided_at": None, "note": ""}
    assert recorded["recorded_at"] == "2026-11-01T15:00:00Z"
    confirmed = await service.confirm(store, HIGHRESO, "pay-1")
    assert confirmed["state"] == "confirmed" and confirmed["decided_at"] == "2026-11-01T15:00:00Z"
    row = (await service.listing(store, HIGHRESO, "2026-11-15"))["transfers"][0]
    assert (row["paid_yen"], row["pending_yen"], row["status"]) == (600, 0, "due")


@pytest.mark.parametrize("who, to, error", [
    (HIGHRESO, "kddi", Forbidden),  # the payee cannot record what it is owed
    (SAKURA, "highreso", NotFound),  # a stranger to the transfer does not see it
    (SAKURA, "kddi", Forbidden),  # sakura is paid by kddi: it is the payee
    (HIGHRESO, "sakura", NotFound),  # no such transfer
    (OPERATOR, "highreso", Forbidden),
    (AUDITOR, "highreso", Forbidden),
])
async def test_only_the_payer_records(store, who, to, error):
    with pytest.raises(error):
        await pay(store, who=who, to=to)
    assert store.state.payments == []


async def test_only_the_payee_decides_and_only_once(store):
    await pay(store)
    with pytest.raises(Forbidden, match="only the payee"):
        await service.confirm(store, KDDI, "pay-1")  # one's own payment
    for stranger in (SAKURA, Caller("t-x", "member", "nobody")):
        with pytest.raises(NotFound):
            await service.confirm(store, stranger, "pay-1")
    with pytest.raises(Forbidden):
        await service.confirm(store, OPERATOR, "pay-1")
    await service.confirm(store, HIGHRESO, "pay-1")
    with pytest.raises(PaymentRefused, match="already confirmed"):
        await service.reject(store, HIGHRESO, "pay-1", "too late")
    with pytest.raises(NotFound):
        await service.confirm(store, HIGHRESO, "pay-2")
    with pytest.raises(NotFound):
        await service.confirm(store, HIGHRESO, "payment-1")


async def test_a_rejection_needs_a_note_and_frees_the_transfer(store):
    await pay(store, amount=1201)
    with pytest.raises(PaymentRefused, match="exceed"):
        await pay(store, amount=1)
    with pytest.raises(InputError, match="note"):
        await service.reject(store, HIGHRESO, "pay-1", "  ")
    rejected = await service.reject(store, HIGHRESO, "pay-1", "not received")
    assert (rejected["state"], rejected["note"]) == ("rejected", "not received")
    assert (await pay(store, amount=1201))["id"] == "pay-2"
    assert [e.kind for e in store.state.journal].count("payment") == 0


async def test_over_payment_counts_confirmed_and_pending_payments(store):
    await pay(store, amount=1000)
    await service.confirm(store, HIGHRESO, "pay-1")
    await pay(store, amount=200)
    with pytest.raises(PaymentRefused, match="1,200 are confirmed or awaiting"):
        await pay(store, amount=2)
    await pay(store, amount=1)
    row = (await service.listing(store, KDDI, "2026-12-01"))["transfers"][0]
    assert (row["paid_yen"], row["pending_yen"], row["status"], row["days_overdue"]) == (1000, 201, "overdue", 1)


@pytest.mark.parametrize("period, to, match", [
    ("2026-11", "highreso", "not closed"), ("2026-09", "highreso", "no such transfer"),
    ("2026-13", "highreso", "YYYY-MM"),
])
async def test_an_open_period_or_a_missing_transfer_is_refused(store, period, to, match):
    with pytest.raises(InputError, match=match):
        await pay(store, period=period, to=to)


@pytest.mark.parametrize("amount, paid_on, reference, match", [
    (0, "2026-11-01", "B", "greater than 0"), (-5, "2026-11-01", "B", "greater than 0"),
    (True, "2026-11-01", "B", "greater than 0"),
    (5, "2026-11-03", "B", "after today"), (5, "2026/11/01", "B", "YYYY-MM-DD"),
    (5, "2026-11-01", "", "reference"), (5, "2026-11-01", "x" * 201, "200"), (5, "2026-11-01", "a\x00b", "NUL"),
])
async def test_a_payment_is_a_positive_amount_a_past_day_and_a_reference(store, amount, paid_on, reference, match):
    with pytest.raises(InputError, match=match):
        await service.record(store, KDDI, "2026-10", "highreso", amount, paid_on, reference)


async def test_a_member_sees_only_the_transfers_it_pays_or_receives(store):
    await pay(store)
    await pay(store, to="sakura", amount=5)
    listed = {who.member: await service.listing(store, who, "2026-11-15", with_payments=True)
              for who in (KDDI, SAKURA, HIGHRESO)}
    assert [t["to"] for t in listed["kddi"]["transfers"]] == ["highreso", "sakura"]
    assert [(t["from"], t["to"]) for t in listed["sakura"]["transfers"]] == [("kddi", "sakura")]
    assert [p["id"] for p in listed["sakura"]["transfers"][0]["payments"]] == ["pay-2"]
    assert [p["id"] for p in listed["highreso"]["transfers"][0]["payments"]] == ["pay-1"]
    with pytest.raises(NotFound):
        await service.show(store, SAKURA, "pay-1")
    assert (await service.show(store, AUDITOR, "pay-1"))["to"] == "highreso"


async def test_the_states_on_a_date(store, clock):
    await pay(store, amount=1201)
    await service.confirm(store, HIGHRESO, "pay-1")
    rows = (await service.listing(store, OPERATOR, "2027-01-15"))["transfers"]
    assert [(r["status"], r["days_overdue"], r["paid_yen"]) for r in rows] == [("paid", 0, 1201), ("overdue", 46, 0)]
    rows = (await service.listing(store, OPERATOR, "2026-11-30"))["transfers"]
    assert rows[1]["status"] == "due"
    # today in the catalog's timezone: 2026-11-30T15:30Z is already 1 December in Tokyo
    clock.now = instant("2026-11-30T15:30:00Z")
    listed = await service.listing(store, OPERATOR)
    assert listed["as_of"] == "2026-12-01" and listed["transfers"][1]["days_overdue"] == 1
    assert await service.overdue_by_member(store) == {"kddi": 572, "sakura": 0, "highreso": 0}
    with pytest.raises(InputError):
        await service.listing(store, OPERATOR, "tomorrow")


async def test_a_confirmed_payment_is_in_the_journal_and_the_books_verify(store):
    await pay(store, amount=1000)
    await service.confirm(store, HIGHRESO, "pay-1")
    entry = store.state.journal[-1]
    assert (entry.period, entry.kind, entry.reference) == ("2026-10", "payment", {"payment": "pay-1", "transfer": 0})
    assert journal.check_chain(store.state.journal)[0] == entry.seq
    owed = balances(store)
    assert (owed["kddi/payable/transfer/highreso"], owed["highreso/receivable/transfer/kddi"]) == (-201, 201)
    assert (owed["kddi/cash"], owed["highreso/cash"], owed["kddi/payable/transfer/sakura"]) == (-1000, 1000, -572)
    report = await verification.verify(store)
    assert report["payments"] == 1 and report["trial_balance_yen"] == 0


async def test_a_transfer_posted_as_paid_at_an_old_close_is_restated_at_its_first_payment(clock):
    store = await closed_october(clock, transfers_owed=False)
    assert "transfer" in [e.kind for e in store.state.journal]
    await verification.verify(store)
    for amount in (1000, 201):
        payment = await pay(store, amount=amount)
        await service.confirm(store, HIGHRESO, payment["id"])
    assert [e.kind for e in store.state.journal[-3:]] == ["transfer_restated", "payment", "payment"]
    owed = balances(store)
    assert (owed["kddi/payable/transfer/highreso"], owed["highreso/receivable/transfer/kddi"]) == (0, 0)
    # the other transfer, never paid, still stands as paid at the close (its cash)
    assert (owed["kddi/cash"], owed["highreso/cash"], owed["sakura/cash"]) == (-1773, 1201, 572)
    await verification.verify(store)


async def test_verify_finds_a_payment_entry_that_does_not_match_its_payment(store):
    await pay(store, amount=1000)
    await service.confirm(store, HIGHRESO, "pay-1")
    store.state.payments[0] = replace(store.state.payments[0], amount_yen=999)
    with pytest.raises(VerificationFailed, match="not what payment pay-1 posts"):
        await verification.verify(store)


async def test_verify_finds_a_confirmation_without_its_entry(store):
    await pay(store, amount=1000)
    await service.confirm(store, HIGHRESO, "pay-1")
    last = store.state.journal.pop()
    assert last.kind == payment_journal.PAYMENT
    with pytest.raises(VerificationFailed, match="confirmed but has no journal entry"):
        await verification.verify(store)
