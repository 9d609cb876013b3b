"""statement.json: parsed, then every number recomputed from the evidence and the catalog.

SPEC.md, "Rating" and "Settlement statement": the lines are recomputed here; the grants'
draws on them are auditor.grants's; what they imply (invoices, nets, transfers) is
auditor.settlement's. Amounts use exact integer arithmetic on the prices' fractions, with
one floor at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from auditor.catalog import Catalog
from auditor.corrections import Corrections
from auditor.errors import VerificationError, object_with_keys
from auditor.evidence import UsageKey
from auditor.grants import (
    Draws,
    Grant,
    check_coverage,
    check_draw_amounts,
    check_draw_parties,
    check_draws_and_restorations,
    check_no_draws,
    draws_of,
)
from auditor.instants import parse_decimal, parse_instant
from auditor.lines import Line, compare_lines, recompute_lines
from auditor.returns import Return, check_returns, parse_returns
from auditor.settlement import (
    Invoice,
    check_nets,
    check_transfers,
    compare_invoices,
    invoices_of,
    subtotals_of,
    tenant_invoices_of,
    without_credits,
)
from auditor.strictjson import JSONProblem, is_int, parse_document

FILE = "statement.json"
_TOP = {"period", "currency", "closed", "lines", "tenant_invoices", "member_invoices", "net_yen",
        "transfers"}
# Statements closed since SPEC.md's change of 2026-11-30 carry credits: grant_draws, and
# retail_yen and credit_yen on every tenant invoice. Older ones print as they were stored.
_CREDITS = "grant_draws"
_GRANT_DRAW = {"grant", "funder", "reseller", "tenant", "amount_yen"}
# Statements computed since SPEC.md's change of 2026-12-07 carry `returns` (voided seconds
# of closed periods' lines) and `restored_yen` on every grant draw.
_RETURNS = "returns"
_LINE = {"reseller", "tenant", "provider", "sku", "service_period", "retail_price_from",
         "agreement_from", "gpu_seconds", "retail_yen_per_gpu_hour", "retail_yen", "wholesale_yen"}
_TRANSFER = {"from", "to", "amount_yen"}


@dataclass
class Statement:
    period: str
    lines: list[Line]
    tenant_invoices: list[Invoice]  # issuer = reseller, recipient = tenant
    member_invoices: list[Invoice]  # issuer = provider, recipient = reseller
    net_yen: dict[str, int]  # in the file's key order
    transfers: list[tuple[str, str, int]]
    # (grant, funder, reseller, tenant, amount_yen); None for a statement without credits
    grant_draws: list[tuple[str, str, str, str, int]] | None = None
    returns: list[Return] | None = None  # None for a statement closed before returns existed
    restored: dict[str, int] = field(default_factory=dict)  # grant_draws' restored_yen, by grant


def _fail(what: str) -> VerificationError:
    return VerificationError(f"{FILE}: {what}")


def _shape(obj: Any, required: set[str], where: str) -> dict:
    return object_with_keys(FILE, obj, required, where)


def _text(obj: dict, name: str, where: str) -> str:
    value = obj[name]
    if not isinstance(value, str) or not value:
        raise _fail(f"{where}: {name} is not a non-empty string")
    return value


def _yen(obj: dict, name: str, where: str, minimum: int | None = 0) -> int:
    """An integer, at least `minimum` (None: any)."""
    value = obj[name]
    if not is_int(value) or (minimum is not None and value < minimum):
        raise _fail(f"{where}: {name} is not an integer" + ("" if minimum is None else f" >= {minimum}"))
    return value


def _instant(obj: dict, name: str, where: str) -> int:
    value = parse_instant(obj[name])
    if value is None:
        raise _fail(f"{where}: {name} {obj[name]!r} is not a UTC instant YYYY-MM-DDTHH:MM:SSZ")
    return value


def parse_statement(data: bytes, period: str, catalog: Catalog) -> Statement:
    try:
        document = parse_document(data)
    except JSONProblem as exc:
        raise _fail(str(exc)) from None
    with_credits = isinstance(document, dict) and _CREDITS in document
    with_returns = isinstance(document, dict) and _RETURNS in document
    if with_returns and not with_credits:
        raise _fail("the statement has returns but no grant_draws: no version of SPEC.md prints that")
    _check_top(document, period, catalog, with_credits, with_returns)
    lines = _lines(document["lines"])
    # Returns make invoices negative when they give back more than the period bills.
    minimum = None if with_returns else 0
    tenant_invoices = _invoices(
        document, "tenant_invoices", "reseller", "tenant", "tenant invoice", with_credits, minimum
    )
    member_invoices = _invoices(document, "member_invoices", "provider", "reseller", "member invoice",
                                minimum=minimum)
    restored: dict[str, int] = {}
    grant_draws = _grant_draws(document[_CREDITS], restored if with_returns else None) if with_credits else None
    returns = parse_returns(document[_RETURNS]) if with_returns else None
    net_yen = _net_yen(document["net_yen"], catalog)
    transfers = _transfers(document["transfers"])
    return Statement(period, lines, tenant_invoices, member_invoices, net_yen, transfers, grant_draws, returns,
                     restored)


def _check_top(document: Any, period: str, catalog: Catalog, with_credits: bool, with_returns: bool) -> None:
    """The statement's keys, its period, currency and closing, and the type of each section."""
    optional = ({_CREDITS} if with_credits else set()) | ({_RETURNS} if with_returns else set())
    _shape(document, _TOP | optional, "the statement")
    if document["period"] != period:
        raise _fail(f"period is {document['period']!r}, the manifest says {period}")
    if document["currency"] != catalog.currency:
        raise _fail(f"currency is {document['currency']!r}, the catalog's is {catalog.currency}")
    if document["closed"] is not True:
        raise _fail(f"closed is {document['closed']!r}: a bundle holds a closed period's statement")
    for name in ("lines", "tenant_invoices", "member_invoices", "transfers", *sorted(optional)):
        if not isinstance(document[name], list):
            raise _fail(f"{name} is not a list")
    if not isinstance(document["net_yen"], dict):
        raise _fail("net_yen is not an object")


def _lines(raws: list) -> list[Line]:
    lines: list[Line] = []
    for index, raw in enumerate(raws):
        where = f"line {index + 1}"
        line = _line(raw, where)
        if lines and line.key <= lines[-1].key:
            raise _fail(
                f"{where} {line.label}: "
                + ("repeats the key fields of the line before it" if line.key == lines[-1].key else
                   "out of order: lines sort by reseller, tenant, provider, sku, service_period, "
                   "retail_price_from, agreement_from")
            )
        lines.append(line)
    return lines


def _line(raw: Any, where: str) -> Line:
    _shape(raw, _LINE, where)
    agreement_from = None if raw["agreement_from"] is None else _instant(raw, "agreement_from", where)
    price_text = raw["retail_yen_per_gpu_hour"]
    price = parse_decimal(price_text)
    if price is None:
        raise _fail(f"{where}: retail_yen_per_gpu_hour {price_text!r} is not a decimal string")
    return Line(
        reseller=_text(raw, "reseller", where),
        tenant=_text(raw, "tenant", where),
        provider=_text(raw, "provider", where),
        sku=_text(raw, "sku", where),
        service_period=_text(raw, "service_period", where),
        retail_price_from=_instant(raw, "retail_price_from", where),
        agreement_from=agreement_from,
        gpu_seconds=_yen(raw, "gpu_seconds", where, minimum=1),
        price_text=price_text,
        price=price,
        retail_yen=_yen(raw, "retail_yen", where),
        wholesale_yen=_yen(raw, "wholesale_yen", where),
    )


def _net_yen(raw: dict, catalog: Catalog) -> dict[str, int]:
    net_yen: dict[str, int] = {}
    last = ""
    for member, amount in raw.items():
        if not is_int(amount):
            raise _fail(f"net_yen[{member!r}] is not an integer")
        if member not in catalog.members:
            raise _fail(f"net_yen lists {member!r}, which is not a member of the catalog")
        if net_yen and member <= last:
            raise _fail(f"net_yen: {member} is out of order: members are listed by id, ascending")
        net_yen[member] = amount
        last = member
    return net_yen


def _transfers(raws: list) -> list[tuple[str, str, int]]:
    transfers = []
    for index, raw in enumerate(raws):
        where = f"transfer {index + 1}"
        _shape(raw, _TRANSFER, where)
        transfers.append(
            (_text(raw, "from", where), _text(raw, "to", where), _yen(raw, "amount_yen", where, 1))
        )
    return transfers


def _grant_draws(raws: list, restored: dict[str, int] | None = None) -> list[tuple[str, str, str, str, int]]:
    """The grant draws; with `restored` (a statement with returns), each one's restored_yen
    is put there, and an entry is there when its draws or its restorations are over 0."""
    draws: list[tuple[str, str, str, str, int]] = []
    for index, raw in enumerate(raws):
        where = f"grant draw {index + 1}"
        _shape(raw, _GRANT_DRAW | ({"restored_yen"} if restored is not None else set()), where)
        draw = (
            _text(raw, "grant", where), _text(raw, "funder", where), _text(raw, "reseller", where),
            _text(raw, "tenant", where), _yen(raw, "amount_yen", where, minimum=0 if restored is not None else 1),
        )
        if restored is not None:
            restored[draw[0]] = _yen(raw, "restored_yen", where)
            if not draw[4] and not restored[draw[0]]:
                raise _fail(f"{where} ({draw[0]}): neither draws nor restores anything")
        if draws and draw[0] <= draws[-1][0]:
            raise _fail(f"{where} ({draw[0]}): grant_draws sort by grant id, each grant once")
        draws.append(draw)
    return draws


def _invoices(
    document: dict, name: str, first: str, second: str, label: str, with_credits: bool = False,
    minimum: int | None = 0,
) -> list[Invoice]:
    """An invoice list, sorted by its two key fields (`first` issues it to `second`)."""
    found: list[Invoice] = []
    credits = {"retail_yen", "credit_yen"} if with_credits else set()
    for index, raw in enumerate(document[name]):
        where = f"{label} {index + 1}"
        _shape(raw, {first, second, "subtotal_yen", "tax_yen", "total_yen"} | credits, where)
        invoice = Invoice(
            issuer=_text(raw, first, where),
            recipient=_text(raw, second, where),
            subtotal_yen=_yen(raw, "subtotal_yen", where, minimum),
            tax_yen=_yen(raw, "tax_yen", where, minimum),
            total_yen=_yen(raw, "total_yen", where, minimum),
            retail_yen=_yen(raw, "retail_yen", where, minimum) if with_credits else None,
            credit_yen=_yen(raw, "credit_yen", where, minimum) if with_credits else None,
        )
        if found and invoice.pair <= found[-1].pair:
            raise _fail(
                f"{where} ({invoice.issuer} {invoice.recipient}): "
                + ("repeats the invoice before it" if invoice.pair == found[-1].pair else
                   f"out of order: {name} sort by {first}, {second}")
            )
        found.append(invoice)
    return found


# -- recomputation ---------------------------------------------------------------------


def check_statement(
    statement: Statement, usage: dict[UsageKey, int], catalog: Catalog,
    grants: dict[str, Grant] | None = None, corrections: Corrections | None = None,
) -> None:
    """Every line, return, credit, invoice, tax, grant draw, net and transfer of
    `statement`, recomputed; raise at the first difference. `grants` are grants.json's
    (format /2 on), None for a bundle that carries no grants (format /1); `corrections`
    corrections.json's (format /3 on)."""
    compare_lines(statement.lines, recompute_lines(usage, catalog))
    tenant_retail, member_subtotals = subtotals_of(statement.lines)
    rate = catalog.tax_rate_percent
    draws = Draws() if grants is None else _draws(statement, grants)
    credits = dict(draws.by_invoice)
    restored = _returned(statement, corrections, catalog, grants, (tenant_retail, credits, member_subtotals))
    if statement.grant_draws is None:
        tenant_invoices = invoices_of(tenant_retail, rate)
    elif grants is None:
        tenant_invoices = without_credits(statement.grant_draws, invoices_of(tenant_retail, rate))
    else:
        tenant_invoices = tenant_invoices_of(tenant_retail, credits, rate)
    compare_invoices(statement.tenant_invoices, tenant_invoices, "tenant invoice", "tenant_invoices",
                     " (the draws of grants.json's grants on its lines)" if grants is not None else "")
    if grants is not None and statement.grant_draws is not None:
        if statement.returns is None:
            check_draw_amounts(statement.grant_draws, draws)
        else:
            check_draws_and_restorations(statement.grant_draws, statement.restored, draws, restored)
    member_invoices = invoices_of(member_subtotals, rate)
    compare_invoices(statement.member_invoices, member_invoices, "member invoice", "member_invoices")
    parties = (member for line in [*statement.lines, *(statement.returns or ())]
               for member in (line.provider, line.reseller))
    reimbursements = draws.reimbursements(grants, restored) if grants is not None else []
    check_nets(statement.net_yen, parties, member_invoices, reimbursements)
    check_transfers(statement.transfers, statement.net_yen)


def _returned(statement: Statement, corrections: Corrections | None, catalog: Catalog,
              grants: dict[str, Grant] | None, sums: tuple[dict, dict, dict]) -> dict[str, int]:
    """The returns recomputed and taken off the invoices' sums (tenant retail, credits,
    member subtotals); what they restore to each grant."""
    if not statement.returns:
        return {}
    if corrections is None or grants is None:
        raise _fail(f"the statement has {len(statement.returns)} returns, but the bundle carries no "
                    "corrections.json (format /3) to recompute them from")
    restored = check_returns(statement.returns, corrections, catalog, grants)
    tenant_retail, credits, member_subtotals = sums
    for item in statement.returns:
        pair = (item.reseller, item.tenant)
        tenant_retail[pair] = tenant_retail.get(pair, 0) - item.retail_yen
        credits[pair] = credits.get(pair, 0) - item.credit_restored_yen
        if item.provider != item.reseller:
            pair = (item.provider, item.reseller)
            member_subtotals[pair] = member_subtotals.get(pair, 0) - item.wholesale_yen
    return restored


def _draws(statement: Statement, grants: dict[str, Grant]) -> Draws:
    """The grants' draws on the (verified) lines, once grants.json and the statement's
    grant_draws are found to name the same grants and parties."""
    check_coverage(grants, [*statement.lines, *(statement.returns or ())])
    if statement.grant_draws is not None:
        check_draw_parties(statement.grant_draws, grants)
    draws = draws_of(statement.lines, grants)
    if statement.grant_draws is None:
        check_no_draws(draws, grants)
    return draws
