"""Payments of closed periods' transfers (SPEC.md "Payments"): record, confirm, reject, list.

Each action is one store transaction (`Store.payments()`). Recording and deciding hold
the transfer (`lock_transfer`) before reading its payments, so two payments recorded at
once cannot together exceed it and a payment is decided once. Confirming appends the
payment's journal entry (`ledger.domain.payment_journal`) in the same transaction as the
decision: a confirmed payment is in the hash chain, or not confirmed.

Who may do what is the domain's (`ledger.domain.payments`): only the payer records, only
the payee decides; a member sees only the transfers it pays or receives, and what lies
outside that is reported as not existing. Dates are days in the catalog's timezone.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from ledger.domain import journal, payment_journal
from ledger.domain import payments as rules
from ledger.domain.access import Caller
from ledger.domain.errors import NotFound
from ledger.domain.payment_ports import PaymentsTransaction
from ledger.domain.payments import CONFIRMED, REJECTED, Payment, Transfer
from ledger.domain.periods import parse_period
from ledger.domain.ports import Store


async def record(
    store: Store, caller: Caller, period: str, payee: str, amount_yen: int, paid_on: str | date, reference: str,
) -> dict:
    """The payer (`caller`) records a payment of what it owes `payee` for `period`."""
    parse_period(period)
    paid = rules.parse_date(paid_on, "paid-on") if isinstance(paid_on, str) else paid_on
    rules.check_reference(reference)
    async with store.payments() as tx:
        catalog = await tx.catalog()
        rules.check_paid_on(paid, rules.local_date(await tx.now(), catalog.calendar))
        transfer = rules.transfer_to_record(await _owed_in(tx, period), caller.member, payee)
        if transfer is not None:
            # 1. hold the transfer: a payment recorded at the same time waits, then sees this one
            await tx.lock_transfer(transfer)
        held = await tx.payments(period=period) if transfer is not None else []
        # 2. the rules: the payer, an amount over 0, never beyond the transfer
        rules.check_record(transfer, caller.member, amount_yen, held)
        # 3. stored (the database checks the amount again, under the same lock)
        stored = await tx.insert_payment(Payment(
            "", period, transfer.payer, transfer.payee, amount_yen, paid, reference, rules.RECORDED,
            recorded_by=caller.token_id,
        ))
    return rules.document(stored)


async def confirm(store: Store, caller: Caller, payment_id: str) -> dict:
    """The payee confirms a recorded payment; its journal entry is posted with it."""
    return await _decide(store, caller, payment_id, CONFIRMED, "")


async def reject(store: Store, caller: Caller, payment_id: str, note: str) -> dict:
    """The payee rejects a recorded payment, saying why."""
    rules.check_note(note, required=True)
    return await _decide(store, caller, payment_id, REJECTED, note)


async def show(store: Store, caller: Caller, payment_id: str) -> dict:
    rules.check_id(payment_id)
    async with store.payments() as tx:
        found = await tx.payments(payment_id=payment_id)
    if not found or not rules.sees(caller.member, found[0].payer, found[0].payee):
        raise NotFound(f"no payment {payment_id!r}")
    return rules.document(found[0])


async def listing(store: Store, caller: Caller, as_of: str | None = None, with_payments: bool = False) -> dict:
    """Every transfer of the closed periods the caller pays or receives, with its state on
    `as_of` (default: today in the catalog's timezone): periods ascending, each period's
    transfers in its statement's order. `with_payments`: each row also lists its payments."""
    on = rules.parse_date(as_of, "as-of") if as_of is not None else None
    async with store.payments() as tx:
        catalog = await tx.catalog()
        on = on or rules.local_date(await tx.now(), catalog.calendar)
        transfers = await tx.transfers()
        payments = await tx.payments()
    rows = []
    for transfer in transfers:
        if not rules.sees(caller.member, transfer.payer, transfer.payee):
            continue
        row = rules.transfer_state(transfer, payments, catalog.payment_terms_days, on)
        if with_payments:
            row["payments"] = [rules.document(p) for p in payments if p.transfer_key == transfer.key]
        rows.append(row)
    return {"as_of": on.isoformat(), "transfers": rows}


async def overdue_by_member(store: Store) -> dict[str, int]:
    """Each member's overdue yen today (as payer; 0 for a member that owes nothing past due)."""
    async with store.payments() as tx:
        catalog = await tx.catalog()
        today = rules.local_date(await tx.now(), catalog.calendar)
        transfers = await tx.transfers()
        payments = await tx.payments()
    states = [rules.transfer_state(t, payments, catalog.payment_terms_days, today) for t in transfers]
    return {member: 0 for member in catalog.members} | rules.overdue_yen(states)


async def _owed_in(tx: PaymentsTransaction, period: str) -> list[Transfer]:
    """The transfers of a closed period (refused for an open one: nothing is owed yet)."""
    closed_through = await tx.closed_through()
    if closed_through is None or period > closed_through:
        raise NotFound(f"{period} is not closed: its transfers are owed once it is")
    return await tx.transfers(period)


async def _decide(store: Store, caller: Caller, payment_id: str, state: str, note: str) -> dict:
    rules.check_id(payment_id)
    async with store.payments() as tx:
        found = await tx.payments(payment_id=payment_id)
        if not found or not rules.sees(caller.member, found[0].payer, found[0].payee):
            raise NotFound(f"no payment {payment_id!r}")
        transfer = _transfer_of(found[0], await tx.transfers(found[0].period))
        # 1. hold the transfer, then read the payment again: a decision made meanwhile counts
        await tx.lock_transfer(transfer)
        payment = (await tx.payments(payment_id=payment_id))[0]
        # 2. the rules: the payee, a payment still recorded
        rules.check_decision(payment, caller.member)
        # 3. a confirmation's journal entry, then the decision that names it
        seq = await _post(tx, payment, transfer) if state == CONFIRMED else None
        await tx.decide(payment.id, state, note, caller.token_id, seq)
        decided = (await tx.payments(payment_id=payment_id))[0]
    return rules.document(decided)


def _transfer_of(payment: Payment, transfers: Iterable[Transfer]) -> Transfer:
    found = next((t for t in transfers if t.key == payment.transfer_key), None)
    assert found is not None, f"payment {payment.id} names no stored transfer"  # a foreign key in the store
    return found


async def _post(tx: PaymentsTransaction, payment: Payment, transfer: Transfer) -> int:
    """Append what confirming `payment` posts after the chain's head; the seq of its entry."""
    kinds = await tx.transfer_entry_kinds(transfer.period, transfer.index)
    planned = payment_journal.entries_for_confirmation(payment, transfer, kinds)
    last_seq, last_hash = await tx.journal_head()
    entries = journal.chain(transfer.period, planned, last_seq, last_hash)
    await tx.append_journal(entries)
    return entries[-1].seq
