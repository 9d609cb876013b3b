"""Disputes between members: who may open one, and the moves from state to state.

SPEC.md, "Disputes". A reseller billed for usage on another provider's GPU opens a
dispute naming what a void names (one GPU, [from, to), the attribution) with a reason;
the provider accepts or rejects it; a rejected dispute may be escalated once, within 14
days, to the alliance operator, whose decision is final; the reseller may withdraw an
open or escalated one. Accepting voids the seconds still billed (`ledger.service`). Pure:
the store keeps disputes and their history, the service decides with these functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.domain.errors import Forbidden, InputError, NotFound
from ledger.domain.instants import parse_instant
from ledger.domain.periods import Calendar, next_period

REASONS = ("not_used", "wrong_tenant", "wrong_sku", "outage", "duplicate_report", "other")
MAX_INTERVAL_SECONDS = 45 * 86_400
MAX_NOTE_CHARS = 2_000
ESCALATION_WINDOW_SECONDS = 14 * 86_400
EARLIEST, LATEST = 0, 7_258_118_399  # 1970-01-01 .. 2199-12-31T23:59:59Z: the ledger's calendar

OPEN, ACCEPTED, REJECTED, ESCALATED, WITHDRAWN = "open", "accepted", "rejected", "escalated", "withdrawn"
STATES = (OPEN, ACCEPTED, REJECTED, ESCALATED, WITHDRAWN)

# Who moves a dispute from which state to which: (action) -> (from states, party, to state).
# The party is "provider", "reseller" or "operator" (the alliance operator).
ACTIONS = {
    "accept": ((OPEN,), "provider", ACCEPTED),
    "reject": ((OPEN,), "provider", REJECTED),
    "escalate": ((REJECTED,), "reseller", ESCALATED),
    "withdraw": ((OPEN, ESCALATED), "reseller", WITHDRAWN),
    "decide_accept": ((ESCALATED,), "operator", ACCEPTED),
    "decide_reject": ((ESCALATED,), "operator", REJECTED),
}


class DisputeRefused(InputError):
    """A dispute action SPEC.md does not allow (wrong state, window, interval)."""

    http_status = 409
    code = "dispute_refused"


@dataclass(frozen=True, slots=True)
class Interval:
    """One GPU's seconds [start, end) with one attribution: what a void or a dispute names."""

    gpu_uuid: str
    start: int
    end: int
    provider: str
    reseller: str
    tenant: str
    sku: str

    @property
    def attribution(self) -> tuple[str, str, str, str]:
        return (self.provider, self.reseller, self.tenant, self.sku)


def parse_interval(gpu_uuid: str, start: str, end: str, provider: str, reseller: str, tenant: str,
                   sku: str) -> Interval:
    """An interval as a void or a dispute gives it: RFC 3339 instants with an offset in
    whole seconds, `from` before `to`, at most 45 days; InputError otherwise."""
    instants = []
    for name, text in (("from", start), ("to", end)):
        instant = parse_instant(text, allow_fraction=False)
        if instant is None:
            raise InputError(f"{name} {text!r} is not an RFC 3339 instant with an offset in whole seconds")
        if not EARLIEST <= instant <= LATEST:
            raise InputError(f"{name} {text!r} is outside the years the ledger keeps (1970-2199)")
        instants.append(instant)
    first, last = instants
    if first >= last:
        raise InputError(f"from ({start}) is not before to ({end})")
    if last - first > MAX_INTERVAL_SECONDS:
        raise InputError(f"the interval is {last - first:,} seconds, longer than 45 days")
    return Interval(gpu_uuid, first, last, provider, reseller, tenant, sku)


def check_reason(reason: str) -> str:
    if reason not in REASONS:
        raise InputError(f"reason {reason!r} is not one of {', '.join(REASONS)}")
    return reason


def check_note(note: str) -> str:
    if len(note) > MAX_NOTE_CHARS:
        raise InputError(f"a note is at most {MAX_NOTE_CHARS:,} characters ({len(note):,} given)")
    if "\x00" in note:
        raise InputError("a note may not contain NUL")
    return note


def check_window(interval: Interval, calendar: Calendar, window_days: int, now: int) -> None:
    """Every second of the interval lies in a service period that ended at most
    `window_days` days before `now` (a period not yet ended always qualifies)."""
    first_period = calendar.period_of(interval.start)
    period_end = calendar.bounds(next_period(first_period))[0]  # the first instant of the next month
    if period_end + window_days * 86_400 < now:
        raise DisputeRefused(
            f"{first_period} ended more than {window_days} days ago: its usage can no longer be disputed"
        )


def check_opener(interval: Interval, opener: str | None) -> None:
    """Only the interval's reseller, and not as its own provider, opens a dispute."""
    if opener is None:
        raise Forbidden("a dispute is opened by the reseller that was billed (--as MEMBER)")
    if opener != interval.reseller:
        raise Forbidden("only the reseller billed for these seconds may dispute them")
    if opener == interval.provider:
        raise DisputeRefused("a member does not dispute usage of its own GPUs: its provider voids it")


def party_of(member: str | None, provider: str, reseller: str) -> str | None:
    """The caller's part in a dispute: provider, reseller, operator (None member), or None."""
    if member is None:
        return "operator"
    if member == provider:
        return "provider"
    if member == reseller:
        return "reseller"
    return None


def next_state(action: str, state: str, party: str | None, rejected_at: int | None, escalations: int,
               now: int) -> str:
    """The state an action moves a dispute to, or the refusal (a member who is no party
    to it sees no dispute at all: NotFound)."""
    if party is None:
        raise NotFound("no such dispute")
    allowed_from, actor, to_state = ACTIONS[action]
    if party != actor:
        raise Forbidden(f"only the dispute's {actor} may {action.replace('_', ' ')} it")
    if state not in allowed_from:
        raise DisputeRefused(f"a dispute that is {state} cannot be {_done(action)}")
    if action == "escalate":
        if escalations:
            raise DisputeRefused("a dispute is escalated at most once")
        if rejected_at is None or now > rejected_at + ESCALATION_WINDOW_SECONDS:
            raise DisputeRefused("a rejection may be escalated within 14 days only")
    return to_state


def _done(action: str) -> str:
    return {"accept": "accepted", "reject": "rejected", "escalate": "escalated", "withdraw": "withdrawn",
            "decide_accept": "decided", "decide_reject": "decided"}[action]
