"""`gpuledger verify --db` and voids (ledger/service/void_checks.py): closed statements with
returns recompute, and a stored void that disagrees with its bits, its claims or the closes
is named. The ledger is tests/auditor/corrected_bundles.py's, on the in-memory store."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ledger.domain.errors import VerificationFailed
from ledger.service import verification
from tests.auditor.corrected_bundles import corrected_ledger


async def test_closed_statements_with_returns_recompute_and_every_void_checks():
    store = await corrected_ledger()
    checked = await verification.verify(store)
    assert (checked["voids"], checked["statements_recomputed"], checked["closed_through"]) == (3, 3, "2026-11")


async def failure(store) -> str:
    with pytest.raises(VerificationFailed) as caught:
        await verification.verify(store)
    return str(caught.value)


async def test_a_void_whose_seconds_are_not_its_bits_is_named():
    store = await corrected_ledger()
    row = store.state.voids[0]
    store.state.voids[0] = replace(row, void=replace(row.void, gpu_seconds=1799))
    assert await failure(store) == "void-1 says it voided 1799 GPU-seconds, but the bits stored for it hold 1800"


async def test_voided_bits_that_were_never_billed_are_named():
    store = await corrected_ledger()
    part = store.state.voided[2]  # void-3: 00:40-00:50 of acme; say it took 00:45 of a claim billed later
    other = part.key._replace(booking_period="2026-10")
    store.state.voided[2] = replace(part, key=other, returned_in=None)
    assert await failure(store) == (
        "void-3: its seconds of GPU-1 at 2026-09-29T00:00:00Z booked in 2026-10 were never billed with its "
        "attribution (not in the claim's bits)")


async def test_a_second_voided_twice_is_named():
    store = await corrected_ledger()
    store.state.voided[1] = replace(store.state.voided[1], bits=store.state.voided[1].bits | 1 << 1799)
    store.state.voids[1] = replace(store.state.voids[1], void=replace(
        store.state.voids[1].void, start=store.state.voids[1].void.start - 1, gpu_seconds=601))
    assert await failure(store) == (
        "void-2: its seconds of GPU-1 at 2026-09-29T00:00:00Z booked in 2026-09 were voided already by void-1")


async def test_a_return_in_another_period_than_the_first_open_one_is_named():
    store = await corrected_ledger()
    store.state.voided[0] = replace(store.state.voided[0], returned_in="2026-11")
    assert await failure(store) == (
        "void-1: its seconds of GPU-1 at 2026-09-29T00:00:00Z booked in 2026-09 are returned in 2026-11, but the "
        "void found the books closed through 2026-09: they belong to the statement of 2026-10")


async def test_books_said_closed_further_than_they_were_when_the_void_was_made_are_named():
    store = await corrected_ledger()
    row = store.state.voids[0]
    store.state.voids[0] = replace(row, void=replace(row.void, closed_through="2026-10"))
    store.state.voided[0] = replace(store.state.voided[0], returned_in="2026-11")
    assert await failure(store) == (
        "void-1 says the books were closed through 2026-10 when it was made (2026-10-02T00:00:00Z), which the "
        "closes contradict")
