"""Disputes on the in-memory store (SPEC.md, "Disputes"): who opens one and when, every
move allowed and every one refused (a refused one changes nothing), who sees a dispute,
and what accepting takes back.

Usage is kddi's tenant acme on sakura's GPU-0001 in October 2026 (an hour, 12:00-13:00
UTC on the 3rd). The store's clock starts on 2026-11-02 JST and is moved by the tests:
the window (60 days, the catalog's default) and the 14 days of an escalation are
decided by it.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from ledger.domain.access import OPERATOR, Caller
from ledger.domain.disputes import DisputeRefused, parse_interval
from ledger.domain.errors import Forbidden, InputError, NotFound
from ledger.memory.store import MemoryStore
from ledger.service import books, corrections, disputes
from tests.factories import DEFAULT_CATALOG
from tests.service.conftest import LoopbackPublisher, load_catalog
from tests.service.test_books import NOV_1_JST, bill

DAY = 86_400
SAKURA = Caller("t-sakura", "member", "sakura")
KDDI = Caller("t-kddi", "member", "kddi")
HIGHRESO = Caller("t-highreso", "member", "highreso")
AUDITOR = Caller("t-auditor", "auditor", None)
START, END = "2026-10-03T12:00:00Z", "2026-10-03T13:00:00Z"


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


def acme(start: str = START, end: str = END, tenant: str = "acme", provider: str = "sakura", reseller: str = "kddi"):
    return parse_interval("GPU-0001", start, end, provider, reseller, tenant, "H200")


@pytest.fixture
async def ledger():
    """kddi's acme billed 12:00-13:00 on sakura's GPU-0001; the clock at 2026-11-02 JST."""
    clock = Clock(NOV_1_JST + DAY)
    store = MemoryStore(clock=clock)
    await load_catalog(store, DEFAULT_CATALOG)
    publisher = LoopbackPublisher(clock_ms=lambda: (NOV_1_JST - 3600) * 1000, batch=False)
    await bill(store, publisher, time=START, seconds=3600)
    return store, clock, publisher


async def opened(store, note: str = "the pod had ended", interval=None) -> dict:
    return await disputes.open_dispute(store, KDDI, interval or acme(), "not_used", note)


async def everything(store) -> tuple:
    """What a refused action must leave as it was: the disputes, the voids, the statement."""
    listed = await disputes.listing(store, OPERATOR)
    voids = await corrections.listing(store, OPERATOR)
    return listed, voids, await books.statement(store, "2026-10")


# -- opening ----------------------------------------------------------------------------


async def test_the_reseller_opens_a_dispute_of_seconds_billed_on_a_partners_gpu(ledger):
    store, clock, _ = ledger
    dispute = await opened(store, interval=acme("2026-10-03T12:30:00Z", "2026-10-03T14:00:00Z"))
    assert {k: dispute[k] for k in ("id", "state", "provider", "reseller", "tenant", "sku", "gpu_uuid", "from", "to",
                                     "reason", "gpu_seconds", "voided_gpu_seconds", "void")} == {
        "id": "dispute-1", "state": "open", "provider": "sakura", "reseller": "kddi", "tenant": "acme", "sku": "H200",
        "gpu_uuid": "GPU-0001", "from": "2026-10-03T12:30:00Z", "to": "2026-10-03T14:00:00Z", "reason": "not_used",
        "gpu_seconds": 1800, "voided_gpu_seconds": 0, "void": None,  # the billed seconds of the interval
    }
    assert dispute["opened_by"] == "kddi" and dispute["note"] == "the pod had ended"
    assert dispute["history"] == [{"action": "open", "state": "open", "by": "kddi", "at": "2026-11-01T15:00:00Z",
                                   "note": "the pod had ended", "voided_gpu_seconds": 0, "void": None}]
    assert (await opened(store, note=""))["id"] == "dispute-2"  # the note is optional


@pytest.mark.parametrize("who, interval, reason, note, error, code", [
    (OPERATOR, acme(), "not_used", "", Forbidden, "forbidden"),  # the operator does not open
    (AUDITOR, acme(), "not_used", "", Forbidden, "forbidden"),
    (SAKURA, acme(), "not_used", "", Forbidden, "forbidden"),  # the provider voids instead
    (HIGHRESO, acme(reseller="highreso"), "not_used", "", DisputeRefused, "nothing_billed"),  # not its seconds
    (KDDI, acme(tenant="beta"), "not_used", "", DisputeRefused, "nothing_billed"),
    (KDDI, acme("2026-10-03T13:00:00Z", "2026-10-03T14:00:00Z"), "not_used", "", DisputeRefused, "nothing_billed"),
    (KDDI, acme(), "because", "", InputError, "bad_request"),
    (KDDI, acme(), "not_used", "x" * 2001, InputError, "bad_request"),
])
async def test_an_opening_that_spec_refuses_stores_nothing(ledger, who, interval, reason, note, error, code):
    store, _, _ = ledger
    before = await everything(store)
    with pytest.raises(error) as refused:
        await disputes.open_dispute(store, who, interval, reason, note)
    assert refused.value.code == code
    assert await everything(store) == before
    assert (await disputes.listing(store, OPERATOR))["disputes"] == []


async def test_a_member_does_not_dispute_usage_of_its_own_gpus(ledger):
    store, _, publisher = ledger
    await bill(store, publisher, time=START, seconds=60, reseller="sakura", gpu_uuid="GPU-0002")
    own = parse_interval("GPU-0002", START, END, "sakura", "sakura", "acme", "H200")
    with pytest.raises(DisputeRefused, match="own GPUs"):
        await disputes.open_dispute(store, SAKURA, own, "other")
    assert (await disputes.listing(store, OPERATOR))["disputes"] == []


async def test_usage_is_disputed_within_the_window_after_its_period_ends(ledger):
    store, clock, _ = ledger
    clock.now = NOV_1_JST + 60 * DAY + 1
    with pytest.raises(DisputeRefused, match="60 days"):
        await opened(store)
    assert (await disputes.listing(store, OPERATOR))["disputes"] == []
    clock.now = NOV_1_JST + 60 * DAY
    assert (await opened(store))["state"] == "open"


# -- moves ------------------------------------------------------------------------------


async def in_state(store, clock, state: str) -> str:
    """A new dispute of acme's hour, moved to `state` (rejected_by_operator: decided rejected)."""
    dispute_id = (await opened(store))["id"]
    path = {
        "open": [], "accepted": [(SAKURA, "accept", "")], "rejected": [(SAKURA, "reject", "our logs show use")],
        "escalated": [(SAKURA, "reject", "logs"), (KDDI, "escalate", "")],
        "withdrawn": [(KDDI, "withdraw", "")],
        "rejected_by_operator": [(SAKURA, "reject", "logs"), (KDDI, "escalate", ""), (OPERATOR, "decide_reject", "")],
    }[state]
    for who, action, note in path:
        await disputes.move(store, who, dispute_id, action, note)
    return dispute_id


@pytest.mark.parametrize("state, who, action, note, expected", [
    ("open", SAKURA, "accept", "", "accepted"),
    ("open", SAKURA, "reject", "our logs show use", "rejected"),
    ("open", KDDI, "withdraw", "", "withdrawn"),
    ("rejected", KDDI, "escalate", "please look", "escalated"),
    ("escalated", KDDI, "withdraw", "", "withdrawn"),
    ("escalated", OPERATOR, "decide_accept", "", "accepted"),
    ("escalated", OPERATOR, "decide_reject", "the logs hold", "rejected"),
])
async def test_each_allowed_move(ledger, state, who, action, note, expected):
    store, clock, _ = ledger
    dispute_id = await in_state(store, clock, state)
    clock.now += 3600
    moved = await disputes.move(store, who, dispute_id, action, note)
    assert moved["state"] == expected
    last = moved["history"][-1]
    assert (last["action"], last["state"], last["note"]) == (action, expected, note)
    assert last["by"] == (who.member or "operator") and last["at"] == "2026-11-01T16:00:00Z"


@pytest.mark.parametrize("state, who, action, note, error", [
    ("open", KDDI, "accept", "", Forbidden),  # the reseller does not accept
    ("open", OPERATOR, "accept", "", Forbidden),  # the operator decides escalations only
    ("open", AUDITOR, "accept", "", Forbidden),
    ("open", HIGHRESO, "accept", "", NotFound),  # a third member sees no dispute
    ("open", HIGHRESO, "withdraw", "", NotFound),
    ("open", SAKURA, "reject", "", InputError),  # a rejection carries a note
    ("open", SAKURA, "reject", "  ", InputError),
    ("open", KDDI, "escalate", "", DisputeRefused),
    ("open", OPERATOR, "decide_accept", "", DisputeRefused),
    ("rejected", SAKURA, "accept", "", DisputeRefused),
    ("rejected", SAKURA, "escalate", "", Forbidden),
    ("rejected", KDDI, "withdraw", "", DisputeRefused),
    ("escalated", SAKURA, "accept", "", DisputeRefused),  # the operator's now
    ("escalated", KDDI, "decide_accept", "", Forbidden),
    ("escalated", SAKURA, "decide_reject", "", Forbidden),
    ("rejected_by_operator", KDDI, "escalate", "", DisputeRefused),  # a second escalation
    ("rejected_by_operator", OPERATOR, "decide_accept", "", DisputeRefused),  # final
    ("accepted", SAKURA, "reject", "too late", DisputeRefused),
    ("accepted", KDDI, "withdraw", "", DisputeRefused),
    ("withdrawn", SAKURA, "accept", "", DisputeRefused),
    ("withdrawn", KDDI, "escalate", "", DisputeRefused),
])
async def test_every_other_move_is_refused_and_changes_nothing(ledger, state, who, action, note, error):
    store, clock, _ = ledger
    dispute_id = await in_state(store, clock, state)
    before = await everything(store)
    with pytest.raises(error):
        await disputes.move(store, who, dispute_id, action, note)
    assert await everything(store) == before


async def test_a_rejection_is_escalated_within_14_days_only(ledger):
    store, clock, _ = ledger
    late, on_time = await in_state(store, clock, "open"), await in_state(store, clock, "open")
    for dispute_id in (late, on_time):
        rejected = await disputes.move(store, SAKURA, dispute_id, "reject", "logs")
        assert rejected["escalation_deadline"] == "2026-11-15T15:00:00Z"
    clock.now += 14 * DAY + 1
    before = await everything(store)
    with pytest.raises(DisputeRefused, match="14 days"):
        await disputes.move(store, KDDI, late, "escalate")
    assert await everything(store) == before
    clock.now -= 1
    escalated = await disputes.move(store, KDDI, on_time, "escalate")
    assert escalated["state"] == "escalated" and escalated["escalation_deadline"] is None


async def test_an_unknown_id_is_not_found(ledger):
    store, _, _ = ledger
    for dispute_id in ("dispute-9", "nothing", ""):
        with pytest.raises(NotFound):
            await disputes.move(store, SAKURA, dispute_id, "accept")
        with pytest.raises(NotFound):
            await disputes.show(store, OPERATOR, dispute_id)


# -- who sees it ------------------------------------------------------------------------


async def test_only_its_provider_its_reseller_the_operator_and_auditors_see_a_dispute(ledger):
    store, clock, _ = ledger
    dispute_id = await in_state(store, clock, "rejected")
    for who in (SAKURA, KDDI, OPERATOR, AUDITOR):
        assert [d["id"] for d in (await disputes.listing(store, who))["disputes"]] == [dispute_id]
        assert (await disputes.show(store, who, dispute_id))["history"][1]["note"] == "our logs show use"
    assert (await disputes.listing(store, HIGHRESO))["disputes"] == []
    with pytest.raises(NotFound):
        await disputes.show(store, HIGHRESO, dispute_id)


async def test_disputes_are_listed_in_the_order_they_were_opened(ledger):
    store, _, _ = ledger
    ids = [(await opened(store))["id"] for _ in range(12)]
    assert ids[9:] == ["dispute-10", "dispute-11", "dispute-12"]
    assert [d["id"] for d in (await disputes.listing(store, KDDI))["disputes"]] == ids


# -- what accepting takes back ----------------------------------------------------------


async def test_accepting_voids_the_seconds_still_billed_with_the_disputes_id_and_reason(ledger):
    store, _, _ = ledger
    dispute_id = (await opened(store, interval=acme(START, "2026-10-03T12:30:00Z")))["id"]
    accepted = await disputes.move(store, SAKURA, dispute_id, "accept")
    assert (accepted["state"], accepted["voided_gpu_seconds"]) == ("accepted", 1800)
    [void] = (await corrections.listing(store, OPERATOR))["voids"]
    assert (void["id"], void["dispute"], void["reason"], void["made_by"], void["gpu_seconds"]) == (
        accepted["void"], dispute_id, "not_used", "sakura", 1800)
    lines = orjson.loads(await books.statement(store, "2026-10"))["lines"]
    assert [line["gpu_seconds"] for line in lines] == [1800]


async def test_the_operators_decision_voids_as_the_operator(ledger):
    store, clock, _ = ledger
    dispute_id = await in_state(store, clock, "escalated")
    decided = await disputes.move(store, OPERATOR, dispute_id, "decide_accept")
    assert decided["voided_gpu_seconds"] == 3600
    [void] = (await corrections.listing(store, OPERATOR))["voids"]
    assert (void["made_by"], void["dispute"]) == ("operator", dispute_id)


async def test_accepting_what_is_no_longer_billed_voids_nothing(ledger):
    store, _, _ = ledger
    first, second = (await opened(store))["id"], (await opened(store))["id"]
    assert (await disputes.move(store, SAKURA, first, "accept"))["voided_gpu_seconds"] == 3600
    later = await disputes.move(store, SAKURA, second, "accept")
    assert (later["state"], later["voided_gpu_seconds"], later["void"]) == ("accepted", 0, None)
    assert len((await corrections.listing(store, OPERATOR))["voids"]) == 1
    with pytest.raises(DisputeRefused, match="nothing to dispute"):  # and nothing is left to dispute
        await opened(store)


async def test_seconds_of_a_closed_period_are_returned_by_the_first_open_one(ledger):
    store, _, _ = ledger
    dispute_id = (await opened(store))["id"]
    await books.statement(store, "2026-10", close=True)
    accepted = await disputes.move(store, SAKURA, dispute_id, "accept")
    [void] = (await corrections.listing(store, OPERATOR))["voids"]
    assert (accepted["voided_gpu_seconds"], void["returned_in"]) == (3600, "2026-11")


async def test_two_acceptances_at_once_void_once(ledger):
    store, _, _ = ledger
    dispute_id = (await opened(store))["id"]
    outcomes = await asyncio.gather(
        disputes.move(store, SAKURA, dispute_id, "accept"), disputes.move(store, SAKURA, dispute_id, "accept"),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["DisputeRefused", "dict"]
    assert len((await corrections.listing(store, OPERATOR))["voids"]) == 1
