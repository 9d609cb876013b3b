"""corrections.json's disputes (bundle format /3): those decided in the bundle's period
(an answer or a final decision in its calendar month) and those behind its voids.

SPEC.md, "Disputes". Each is well-formed; its moves follow the states (open -> accepted or
rejected by the provider; rejected -> escalated by the reseller, once; escalated ->
accepted or rejected by the operator; open or escalated -> withdrawn by the reseller);
only an acceptance voids, and an acceptance whose void is in the bundle names a void of
the dispute's GPU, interval, attribution and reason, with the dispute's id, of the
seconds it says it voided. Every void of the bundle that names a dispute is that
dispute's acceptance's.
"""

from __future__ import annotations

from typing import Any

from auditor.catalog import Catalog
from auditor.corrections import REASONS, Corrections, Void, fail, instant, shape, text
from auditor.strictjson import is_int

_DISPUTE = frozenset({"id", "gpu_uuid", "from", "to", "provider", "reseller", "tenant", "sku", "reason", "note",
                      "gpu_seconds", "opened_by", "opened_at", "moves"})
_MOVE = frozenset({"action", "state", "actor", "note", "at", "voided_gpu_seconds", "void"})
# action -> (the states it moves from, who makes it, the state it leads to)
ACTIONS = {
    "accept": (("open",), "provider", "accepted"),
    "reject": (("open",), "provider", "rejected"),
    "escalate": (("rejected",), "reseller", "escalated"),
    "withdraw": (("open", "escalated"), "reseller", "withdrawn"),
    "decide_accept": (("escalated",), "operator", "accepted"),
    "decide_reject": (("escalated",), "operator", "rejected"),
}


def check_disputes(corrections: Corrections, period: str, catalog: Catalog) -> None:
    voids = {void.id: void for void in corrections.voids}
    accepted_by: dict[str, str] = {}  # void id -> the dispute whose acceptance made it
    seen: set[str] = set()
    for number, raw in enumerate(corrections.disputes, start=1):
        dispute_id = _dispute(raw, number, catalog)
        if dispute_id in seen:
            raise fail(f"{dispute_id} is listed twice")
        seen.add(dispute_id)
        for void_id in _moves(raw, dispute_id, voids):
            accepted_by[void_id] = dispute_id
    for void in corrections.voids:
        if void.dispute is not None and accepted_by.get(void.id) != void.dispute:
            raise fail(f"{void.id}: names {void.dispute}, but no acceptance of that dispute in the bundle made it")


def _dispute(raw: Any, number: int, catalog: Catalog) -> str:
    shape(raw, _DISPUTE, f"dispute {number}")
    where = text(raw, "id", f"dispute {number}")
    members = set(catalog.members)
    provider, reseller = text(raw, "provider", where, members), text(raw, "reseller", where, members)
    if provider == reseller or raw["opened_by"] != reseller:
        raise fail(f"{where}: opened by {raw['opened_by']!r}: a dispute is opened by its reseller, not its provider")
    text(raw, "tenant", where)
    text(raw, "sku", where, catalog.skus)
    text(raw, "gpu_uuid", where)
    text(raw, "reason", where, REASONS)
    if not instant(raw, "from", where) < instant(raw, "to", where):
        raise fail(f"{where}: from is not before to")
    instant(raw, "opened_at", where)
    if not isinstance(raw["note"], str) or not is_int(raw["gpu_seconds"]) or raw["gpu_seconds"] < 1:
        raise fail(f"{where}: note is not a string or gpu_seconds not an integer >= 1")
    if not isinstance(raw["moves"], list):
        raise fail(f"{where}: moves is not a list")
    return where


def _moves(raw: dict, dispute_id: str, voids: dict[str, Void]) -> list[str]:
    """Each move in turn from `open`; the ids of the bundle's voids its acceptance made."""
    state, escalated, made = "open", False, []
    for index, move in enumerate(raw["moves"], start=1):
        where = f"{dispute_id} move {index}"
        shape(move, _MOVE, where)
        rule = ACTIONS.get(move["action"])
        if rule is None or state not in rule[0] or move["state"] != rule[2] or (escalated and rule[2] == "escalated"):
            raise fail(f"{where}: {move['action']!r} to {move['state']!r} cannot follow the state {state!r}")
        party = {"provider": raw["provider"], "reseller": raw["reseller"], "operator": "operator"}[rule[1]]
        if move["actor"] != party:
            raise fail(f"{where}: made by {move['actor']!r}; only the {rule[1]} ({party}) may {move['action']}")
        instant(move, "at", where)
        voided = move["voided_gpu_seconds"]
        if not is_int(voided) or voided < 0 or (rule[2] != "accepted" and (voided or move["void"] is not None)):
            raise fail(f"{where}: only an acceptance voids seconds (voided_gpu_seconds {voided!r}, void {move['void']!r})")
        if (move["void"] is None) != (voided == 0):
            raise fail(f"{where}: voided_gpu_seconds {voided} and void {move['void']!r} disagree")
        if move["void"] in voids:
            _check_void(voids[move["void"]], raw, dispute_id, voided, where)
            made.append(move["void"])
        state, escalated = rule[2], escalated or rule[2] == "escalated"
    return made


def _check_void(void: Void, raw: dict, dispute_id: str, voided: int, where: str) -> None:
    named = (raw["gpu_uuid"], instant(raw, "from", where), instant(raw, "to", where),
             (raw["provider"], raw["reseller"], raw["tenant"], raw["sku"]), raw["reason"], dispute_id)
    if (void.gpu_uuid, void.start, void.end, void.attribution, void.reason, void.dispute) != named:
        raise fail(f"{where}: its void {void.id} is not of the dispute's GPU, interval, attribution and reason, "
                   "with its id")
    if void.gpu_seconds != voided:
        raise fail(f"{where}: voided_gpu_seconds is {voided}, but its void {void.id} voided {void.gpu_seconds}")
