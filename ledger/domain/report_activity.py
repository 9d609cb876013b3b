"""What a member's settlement report says beyond the statement: its voids, its open
disputes and its payments, as they stood on the report's date.

A report is dated by its period's close (an open period's draft by when it was made), and
everything here is read as of that instant, so a closed period's report stays the same
bytes however the disputes and payments move on afterwards: a void, a dispute or a
payment counts once it was made by then, a dispute's state and a payment's decision are
those they had then, and a transfer's status is SPEC.md's ("Payments") on that day in
the catalog's timezone.

Scope is strict, as everywhere in the report: only voids and disputes whose provider or
reseller is the member, only transfers and payments it pays or receives; other
resellers' tenants appear only as the member's pseudonyms. Pure: the service reads the
rows (`ledger.service.documents`), this module chooses and shapes them.

- Voids: those whose returns this period's statement holds, and those that returned
  nothing (their seconds left an open period's lines) of seconds in this service period.
- Disputes: those still waiting for an answer, `open` (the provider's) or `escalated` (the
  operator's), with their age in days.
- Payments: every transfer of this period or earlier not yet paid, and any transfer with
  a payment recorded since the period began; those payments; and what is overdue.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime

from ledger.domain import payments as rules
from ledger.domain.access import pseudonym
from ledger.domain.catalog import Catalog
from ledger.domain.correction_records import DisputeRow, VoidRow
from ledger.domain.disputes import ESCALATED, OPEN
from ledger.domain.payments import CONFIRMED, RECORDED, REJECTED, Payment, Transfer

WAITING = {OPEN: "provider", ESCALATED: "operator"}  # whose answer an unresolved dispute waits for


@dataclass(frozen=True, slots=True)
class Activity:
    """The rows a period's reports read besides the statement: voids, disputes, the closed
    periods' transfers and their payments (all of them, or those a member may see)."""

    voids: tuple[VoidRow, ...] = ()
    disputes: tuple[DisputeRow, ...] = ()
    transfers: tuple[Transfer, ...] = ()
    payments: tuple[Payment, ...] = ()


NO_ACTIVITY = Activity()


def local_time(catalog: Catalog, instant: int) -> str:
    """An instant in the catalog's timezone, to the second: `2026-10-03T21:00:00+09:00`."""
    return datetime.fromtimestamp(instant, catalog.calendar.zone).isoformat()


def span(catalog: Catalog, start: int, end: int) -> str:
    """[start, end) as a reader reads it, in the catalog's timezone: `2026-10-03 21:00:00 –
    22:00:00 (+09:00)`, the end's date written out when it is another day."""
    first, last = (datetime.fromtimestamp(t, catalog.calendar.zone) for t in (start, end))
    shown = last.strftime("%H:%M:%S") if last.date() == first.date() else last.strftime("%Y-%m-%d %H:%M:%S")
    return f"{first.strftime('%Y-%m-%d %H:%M:%S')} – {shown} ({first.strftime('%z')[:3]}:{first.strftime('%z')[3:]})"


def _day(catalog: Catalog, instant: int) -> date:
    return rules.local_date(instant, catalog.calendar)


def _tenant(member: str, reseller: str, tenant: str, key: bytes) -> str:
    return tenant if reseller == member else pseudonym(key, member, reseller, tenant)


def _role(member: str, provider: str, reseller: str) -> str:
    if provider == reseller:
        return "own"
    return "provider" if member == provider else "reseller"


def voids(catalog: Catalog, period: str, member: str, key: bytes, rows: Iterable[VoidRow], as_of: int) -> list[dict]:
    """The member's voids that changed this period's statement (see the module)."""
    start, end = catalog.calendar.bounds(period)
    found = []
    for row in rows:
        v = row.void
        provider, reseller, tenant, sku = v.attribution
        if member not in (provider, reseller) or row.made_at > as_of:
            continue
        if not (row.returned_in == period or (row.returned_in is None and v.start < end and v.end > start)):
            continue
        found.append({
            "id": row.id, "role": _role(member, provider, reseller), "provider": provider, "reseller": reseller,
            "tenant": _tenant(member, reseller, tenant, key), "sku": sku, "gpu_uuid": v.gpu_uuid,
            "from": local_time(catalog, v.start), "to": local_time(catalog, v.end), "span": span(catalog, v.start, v.end),
            "reason": v.reason,
            "dispute": v.dispute_id, "gpu_seconds": v.gpu_seconds, "made_by": v.actor,
            "made_on": _day(catalog, row.made_at).isoformat(), "returned_in": row.returned_in,
        })
    return found


def open_disputes(catalog: Catalog, member: str, key: bytes, rows: Iterable[DisputeRow], as_of: int) -> list[dict]:
    """The member's disputes waiting for an answer on the report's date, oldest first."""
    today = _day(catalog, as_of)
    found = []
    for row in rows:
        d = row.dispute
        provider, reseller, tenant, sku = d.attribution
        if member not in (provider, reseller) or d.opened_at > as_of:
            continue
        moves = [m for m in row.moves if m.at <= as_of]
        state = moves[-1].state if moves else OPEN
        if state not in WAITING:
            continue
        opened_on = _day(catalog, d.opened_at)
        found.append({
            "id": row.id, "state": state, "waiting_for": WAITING[state],
            "opened_by_you": member == reseller, "counterpart": provider if member == reseller else reseller,
            "tenant": _tenant(member, reseller, tenant, key), "sku": sku, "gpu_uuid": d.gpu_uuid,
            "from": local_time(catalog, d.start), "to": local_time(catalog, d.end), "span": span(catalog, d.start, d.end),
            "reason": d.reason,
            "gpu_seconds": d.gpu_seconds, "opened_on": opened_on.isoformat(), "age_days": (today - opened_on).days,
        })
    return found


def payment_as_of(payment: Payment, as_of: int) -> Payment | None:
    """A payment as it stood at `as_of`: None before it was recorded; still `recorded`
    when decided after."""
    if payment.recorded_at is not None and payment.recorded_at > as_of:
        return None
    if payment.state in (CONFIRMED, REJECTED) and payment.decided_at is not None and payment.decided_at > as_of:
        return replace(payment, state=RECORDED, note="", decided_by=None, decided_at=None)
    return payment


def payments(catalog: Catalog, period: str, member: str, activity: Activity, as_of: int) -> dict:
    """The member's transfers as payer and payee with their status on the report's date,
    the payments recorded since the period began, and what is overdue either way."""
    on = _day(catalog, as_of)
    since = catalog.calendar.bounds(period)[0]
    held = [p for p in (payment_as_of(p, as_of) for p in activity.payments) if p is not None]
    mine = [p for p in held if member in (p.payer, p.payee)]
    recent = [p for p in mine if p.recorded_at is None or p.recorded_at >= since]
    touched = {p.transfer_key for p in recent}
    rows = []
    for transfer in activity.transfers:
        if transfer.period > period or member not in (transfer.payer, transfer.payee):
            continue
        state = rules.transfer_state(transfer, mine, catalog.payment_terms_days, on)
        if state["status"] != "paid" or transfer.key in touched:
            you_pay = transfer.payer == member
            rows.append({**state, "you_pay": you_pay, "counterpart": transfer.payee if you_pay else transfer.payer,
                         "open_yen": transfer.amount_yen - state["paid_yen"]})
    overdue = [r for r in rows if r["status"] == "overdue"]
    return {
        "as_of": on.isoformat(), "since": _day(catalog, since).isoformat(), "transfers": rows,
        "payments": [{**rules.document(p), "you_pay": p.payer == member} for p in recent],
        "overdue_payable_yen": sum(r["open_yen"] for r in overdue if r["you_pay"]),
        "overdue_receivable_yen": sum(r["open_yen"] for r in overdue if not r["you_pay"]),
    }


def activity_content(catalog: Catalog, period: str, member: str, key: bytes, activity: Activity, as_of: int) -> dict:
    """The report's activity sections of `member` (see the module)."""
    return {
        "as_of": _day(catalog, as_of).isoformat(),
        "voids": voids(catalog, period, member, key, activity.voids, as_of),
        "disputes": open_disputes(catalog, member, key, activity.disputes, as_of),
        "payments": payments(catalog, period, member, activity, as_of),
    }
