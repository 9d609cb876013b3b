"""grants.json (bundle format /2): the grants behind a statement's credits, and their draws.

SPEC.md, "Credits (grants)". grants.json lists every grant that covers a line of the
statement, each with its balance at the start of the period. From it and the verified
lines alone the draws are recomputed here: the lines in statement order, each drawing
from the grants that cover it (same reseller and tenant, its SKU listed or every SKU, its
provider listed or every provider, first_period <= its service period <= last_period) in ascending order of (last_period,
id), each grant taking min(what is left of the line's retail_yen, what is left of its
balance). What the draws imply (the tenant invoices' credits, the reimbursements in the
nets) is compared by auditor.statement and auditor.settlement; the statement's
grant_draws, here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from auditor.catalog import Catalog
from auditor.errors import VerificationError, object_with_keys
from auditor.instants import is_period
from auditor.strictjson import JSONProblem, is_int, parse_document

FILE = "grants.json"
STATEMENT = "statement.json"  # the file of the grant_draws checked here
_KEYS = frozenset({"id", "funder", "reseller", "tenant", "amount_yen", "skus", "first_period",
                   "last_period", "balance_yen"})
# Bundles made since SPEC.md's change of 2026-12-07 also say whose GPUs each grant pays for.
_PROVIDERS = "providers"
_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_TENANT = re.compile(r"[\x20-\x7e]{1,64}")

# An entry of the statement's grant_draws: (grant, funder, reseller, tenant, amount_yen).
Draw = tuple[str, str, str, str, int]


class Covered(Protocol):
    """What a draw needs of a statement line."""

    @property
    def reseller(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def sku(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def service_period(self) -> str: ...
    @property
    def retail_yen(self) -> int: ...


@dataclass(frozen=True)
class Grant:
    number: int  # 1-based, in grants.json
    id: str
    funder: str
    reseller: str
    tenant: str
    amount_yen: int
    skus: frozenset[str] | None  # None: every SKU
    first_period: str
    last_period: str
    balance_yen: int  # at the start of the bundle's period
    providers: frozenset[str] | None = None  # None: usage on any provider's GPUs

    @property
    def label(self) -> str:
        return f"grant {self.number} ({self.id})"

    def covers(self, line: Covered) -> bool:
        return (
            (line.reseller, line.tenant) == (self.reseller, self.tenant)
            and (self.skus is None or line.sku in self.skus)
            and (self.providers is None or line.provider in self.providers)
            and self.first_period <= line.service_period <= self.last_period
        )


@dataclass
class Draws:
    """What the grants draw on a statement's lines."""

    by_invoice: dict[tuple[str, str], int] = field(default_factory=dict)  # (reseller, tenant) -> yen
    by_grant: dict[str, int] = field(default_factory=dict)  # grant id -> yen, only > 0

    def reimbursements(
        self, grants: dict[str, Grant], restored: dict[str, int] | None = None
    ) -> list[tuple[str, str, str, int]]:
        """(grant, funder, reseller, yen) a funder other than the reseller owes it, by grant
        id: the grant's draws less what returns restored to it (`restored`; negative: the
        reseller owes the funder)."""
        restored = restored or {}
        return [
            (grant_id, grants[grant_id].funder, grants[grant_id].reseller,
             self.by_grant.get(grant_id, 0) - restored.get(grant_id, 0))
            for grant_id in sorted(set(self.by_grant) | set(restored))
            if grants[grant_id].funder != grants[grant_id].reseller
        ]


def _fail(what: str) -> VerificationError:
    return VerificationError(f"{FILE}: {what}")


def _statement_fail(what: str) -> VerificationError:
    return VerificationError(f"{STATEMENT}: {what}")


# -- grants.json -----------------------------------------------------------------------


def parse_grants(data: bytes, period: str, catalog: Catalog) -> dict[str, Grant]:
    """The grants of grants.json, by id, in the file's order (ascending id, each once)."""
    try:
        document = parse_document(data)
    except JSONProblem as exc:
        raise _fail(str(exc)) from None
    if not isinstance(document, dict) or document.keys() != {"period", "grants"}:
        raise _fail('is not {"period": P, "grants": [...]}')
    if document["period"] != period:
        raise _fail(f"period is {document['period']!r}, the manifest says {period}")
    if not isinstance(document["grants"], list):
        raise _fail("grants is not a list")
    grants: dict[str, Grant] = {}
    previous: Grant | None = None
    for number, raw in enumerate(document["grants"], start=1):
        grant = _grant(raw, number, catalog)
        if previous is not None and grant.id <= previous.id:
            raise _fail(
                f"{grant.label}: "
                + (f"repeats {previous.label}: each grant is listed once" if grant.id == previous.id else
                   f"out of order after {previous.label}: grants sort by id (code point order)")
            )
        grants[grant.id] = grant
        previous = grant
    return grants


def _grant(raw: Any, number: int, catalog: Catalog) -> Grant:
    where = f"grant {number}"
    object_with_keys(FILE, raw, _KEYS, where, optional={_PROVIDERS})
    grant_id = raw["id"]
    if not isinstance(grant_id, str) or _ID.fullmatch(grant_id) is None:
        raise _fail(f"{where}: id {grant_id!r} is not a grant id (a-z 0-9 . _ -, 1-64, first a-z 0-9)")
    where = f"grant {number} ({grant_id})"
    funder, reseller = (_member(raw, name, where, catalog) for name in ("funder", "reseller"))
    tenant = raw["tenant"]
    if not isinstance(tenant, str) or _TENANT.fullmatch(tenant) is None:
        raise _fail(f"{where}: tenant is not 1-64 characters 0x20-0x7E")
    amount = raw["amount_yen"]
    if not is_int(amount) or amount < 1:
        raise _fail(f"{where}: amount_yen is not an integer >= 1")
    first, last = raw["first_period"], raw["last_period"]
    for name, value in (("first_period", first), ("last_period", last)):
        if not is_period(value):
            raise _fail(f"{where}: {name} {value!r} is not a period YYYY-MM")
    if first > last:
        raise _fail(f"{where}: first_period {first} is after last_period {last}")
    balance = raw["balance_yen"]
    if not is_int(balance) or not 0 <= balance <= amount:
        raise _fail(f"{where}: balance_yen is not an integer 0..amount_yen ({amount})")
    providers = _ids(raw.get(_PROVIDERS), _PROVIDERS, where, catalog.members)
    return Grant(number, grant_id, funder, reseller, tenant, amount, _ids(raw["skus"], "skus", where, catalog.skus),
                 first, last, balance, providers)


def _member(raw: dict, name: str, where: str, catalog: Catalog) -> str:
    value = raw[name]
    if not isinstance(value, str) or value not in catalog.members:
        raise _fail(f"{where}: {name} {value!r} is not a member of the catalog")
    return value


def _ids(value: Any, name: str, where: str, known) -> frozenset[str] | None:
    """A grant's `skus` or `providers`: null (every one), or a sorted list of the catalog's."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise _fail(f"{where}: {name} is neither null nor a non-empty list")
    for item in value:
        if not isinstance(item, str) or item not in known:
            raise _fail(f"{where}: {name} lists {item!r}, which the catalog does not have")
    if value != sorted(set(value)):
        raise _fail(f"{where}: {name} are not sorted (code point order) and each listed once")
    return frozenset(value)


# -- the draws -------------------------------------------------------------------------


def draws_of(lines: Iterable[Covered], grants: dict[str, Grant]) -> Draws:
    """SPEC.md's draws on `lines` (in statement order), from each grant's opening balance."""
    draws = Draws()
    balances = {grant_id: grant.balance_yen for grant_id, grant in grants.items()}
    by_tenant: dict[tuple[str, str], list[Grant]] = {}
    for grant in sorted(grants.values(), key=lambda g: (g.last_period, g.id)):  # ending first, first
        by_tenant.setdefault((grant.reseller, grant.tenant), []).append(grant)
    for line in lines:
        pair = (line.reseller, line.tenant)
        left = line.retail_yen
        for grant in by_tenant.get(pair, ()):
            if not left:
                break
            amount = min(left, balances[grant.id]) if grant.covers(line) else 0
            if amount:
                balances[grant.id] -= amount
                left -= amount
                draws.by_grant[grant.id] = draws.by_grant.get(grant.id, 0) + amount
                draws.by_invoice[pair] = draws.by_invoice.get(pair, 0) + amount
    return draws


def check_coverage(grants: dict[str, Grant], lines: list[Covered]) -> None:
    """Every grant of grants.json covers a line of the statement: the bundle carries those only."""
    for grant in grants.values():
        if not any(grant.covers(line) for line in lines):
            skus = "every SKU" if grant.skus is None else ", ".join(sorted(grant.skus))
            providers = "" if grant.providers is None else ", GPUs of " + ", ".join(sorted(grant.providers))
            raise _fail(
                f"{grant.label} covers no line of the statement ({grant.reseller} {grant.tenant}, "
                f"{skus}{providers}, service periods {grant.first_period}..{grant.last_period})"
            )


def check_draw_parties(stated: list[Draw], grants: dict[str, Grant]) -> None:
    """Each of the statement's grant_draws names a grant of grants.json, with its parties."""
    for index, (grant_id, *parties, _) in enumerate(stated, start=1):
        where = f"grant draw {index} ({grant_id})"
        grant = grants.get(grant_id)
        if grant is None:
            raise _statement_fail(f"{where}: {FILE} carries no grant {grant_id}")
        for name, mine, theirs in zip(("funder", "reseller", "tenant"), parties,
                                      (grant.funder, grant.reseller, grant.tenant), strict=True):
            if mine != theirs:
                raise _statement_fail(f"{where}: {name} is {mine!r}, {FILE}'s {grant.label} says {theirs!r}")


def check_draw_amounts(stated: list[Draw], draws: Draws) -> None:
    """The statement's grant_draws, against the recomputed draws (both sorted by grant id)."""
    expected = sorted(draws.by_grant.items())
    i = j = 0
    while i < len(stated) or j < len(expected):
        mine = stated[i] if i < len(stated) else None
        theirs = expected[j] if j < len(expected) else None
        if theirs is None or (mine is not None and mine[0] < theirs[0]):
            raise _statement_fail(
                f"grant draw {i + 1} ({mine[0]}): amount_yen is {mine[4]}, but recomputed from "
                f"{FILE} the grant draws nothing on the statement's lines"
            )
        if mine is None or theirs[0] < mine[0]:
            raise _statement_fail(
                f"grant_draws lacks the draw of grant {theirs[0]}: {theirs[1]} yen recomputed from "
                f"{FILE} and the lines"
            )
        if mine[4] != theirs[1]:
            raise _statement_fail(
                f"grant draw {i + 1} ({mine[0]}): amount_yen is {mine[4]}, recomputed {theirs[1]} "
                f"from {FILE} and the lines"
            )
        i += 1
        j += 1


def check_draws_and_restorations(
    stated: list[Draw], stated_restored: dict[str, int], draws: Draws, restored: dict[str, int]
) -> None:
    """The grant_draws of a statement with returns: one per grant that draws or is restored
    anything, with both amounts, against the draws and the returns' restorations recomputed."""
    expected = {
        grant_id: (draws.by_grant.get(grant_id, 0), restored.get(grant_id, 0))
        for grant_id in sorted(set(draws.by_grant) | set(restored))
        if draws.by_grant.get(grant_id, 0) or restored.get(grant_id, 0)
    }
    for index, draw in enumerate(stated, start=1):
        mine = (draw[4], stated_restored.get(draw[0], 0))
        theirs = expected.pop(draw[0], (0, 0))
        if mine[0] != theirs[0]:
            raise _statement_fail(
                f"grant draw {index} ({draw[0]}): amount_yen is {mine[0]}, recomputed {theirs[0]} from {FILE} "
                "and the lines"
            )
        if mine[1] != theirs[1]:
            raise _statement_fail(
                f"grant draw {index} ({draw[0]}): restored_yen is {mine[1]}, recomputed {theirs[1]} from the "
                "returns (corrections.json)"
            )
    for grant_id, (amount, back) in expected.items():
        raise _statement_fail(
            f"grant_draws lacks grant {grant_id}: amount_yen {amount} and restored_yen {back} recomputed from "
            f"{FILE}, the lines and the returns"
        )


def check_no_draws(draws: Draws, grants: dict[str, Grant]) -> None:
    """A statement closed before credits existed carries none: no grant may draw on it."""
    if draws.by_grant:
        grant_id, amount = min(draws.by_grant.items())
        raise _statement_fail(
            f"carries no credits (no grant_draws), but {FILE}'s {grants[grant_id].label} draws "
            f"{amount} yen on its lines"
        )
