"""How a stored closed statement compares with what the ledger computes for it now.

A closed period prints the statement stored when it closed, byte for byte, and statements
gained fields since (SPEC.md, "Changes to this contract"): `grant_draws` and the tenant
invoices' `retail_yen` and `credit_yen` on 2026-11-30, `returns` and each draw's
`restored_yen` on 2026-12-07. A statement closed before a field existed is compared on
the fields it has. A field it lacks is left out of the recomputation only when the
recomputation holds what the field's absence meant then (nothing drawn before credits
existed, nothing returned before voids did); any other value stays in and makes the two
differ, so taking a field out of a stored statement cannot hide an amount.

`net_yen` lists the members known when the statement was computed: the recomputation
lists those (as recorded by the close), and keeps any other member whose net is not zero.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

# Where a later field sits ("" the statement itself, else the list whose entries have
# it) -> field -> whether a recomputed value (with its entry) says nothing beyond what a
# statement without the field said.
LATER_FIELDS: dict[str, dict[str, Callable[[object, dict], bool]]] = {
    "": {
        "grant_draws": lambda value, _: value == [],  # 2026-11-30: credits
        "returns": lambda value, _: value == [],  # 2026-12-07: voids
    },
    "tenant_invoices": {
        "credit_yen": lambda value, _: value == 0,  # 2026-11-30
        "retail_yen": lambda value, invoice: value == invoice.get("subtotal_yen"),  # 2026-11-30
    },
    "grant_draws": {
        "restored_yen": lambda value, _: value == 0,  # 2026-12-07
    },
}


def comparable(recomputed: dict, stored: dict, members_at_close: list[str]) -> dict:
    """The recomputed statement of a closed period in the shape of the stored one: render
    both and they are equal bytes when nothing was edited."""
    document = copy.deepcopy(recomputed)
    nets = document.get("net_yen")
    if isinstance(nets, dict):
        known = sorted(members_at_close)
        others = {m: v for m, v in nets.items() if m not in known and v != 0}
        document["net_yen"] = {m: nets.get(m, 0) for m in known} | others
    for where, fields in LATER_FIELDS.items():
        if where:
            entries = document.get(where)
            shape = _entry_keys(stored.get(where))
            if isinstance(entries, list) and shape is not None:
                for entry in entries:
                    _leave_out(entry, shape, fields)
        else:
            _leave_out(document, set(stored), fields)
    return document


def first_difference(recomputed: dict, stored: dict) -> str:
    """The first top-level field (in the recomputation's order) where two statements differ."""
    for name in [*recomputed, *(k for k in stored if k not in recomputed)]:
        if recomputed.get(name, _ABSENT) != stored.get(name, _ABSENT):
            return name
    return "its bytes"


_ABSENT = object()


def _entry_keys(entries: object) -> set[str] | None:
    """The fields the stored entries of a list have (None: no entry to tell)."""
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        return None
    return set().union(*entries)


def _leave_out(entry: object, stored_keys: set[str], fields: dict) -> None:
    if not isinstance(entry, dict):
        return
    for name, says_nothing in fields.items():
        if name in entry and name not in stored_keys and says_nothing(entry[name], entry):
            del entry[name]
