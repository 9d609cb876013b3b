"""statement.json: parsed, then every number recomputed from the evidence and the catalog.

SPEC.md, "Rating" and "Settlement statement": the lines are recomputed here; the grants'
draws on them are auditor.grants's; what they imply (invoices, nets, transfers) is
auditor.settlement's. Amounts use exact integer arithmetic on the prices' fractions, with
one floor at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from auditor.catalog import Catalog
from auditor.errors import VerificationError
from auditor.evidence import UsageKey
from auditor.grants import (
    Draws,
    Grant,
    check_coverage,
    check_draw_amounts,
    check_draw_parties,
    check_no_draws,
    draws_of,
)
from auditor.instants import format_instant, parse_decimal, parse_instant
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


@dataclass(frozen=True)
class Line:
    reseller: str
    tenant: str
    provider: str
    sku: str
    service_period: str
    retail_price_from: int
    agreement_from: int | None
    gpu_seconds: int
    price_text: str
    price: Fraction
    retail_yen: int
    wholesale_yen: int

    @property
    def key(self) -> tuple:
        # Strings compare by code point, instants as instants; a null agreement_from
        # (provider == reseller) sorts first, though it never meets a non-null one on
        # otherwise equal key fields.
        agreement = (0, 0) if self.agreement_from is None else (1, self.agreement_from)
        return (self.reseller, self.tenant, self.provider, self.sku, self.service_period,
                self.retail_price_from, agreement)

    @property
    def label(self) -> str:
        return f"({self.reseller} {self.tenant} {self.provider} {self.sku} {self.service_period})"

    @property
    def versions(self) -> str:
        agreement = "none" if self.agreement_from is None else format_instant(self.agreement_from)
        return f"retail price from {format_instant(self.retail_price_from)}, agreement from {agreement}"


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


def _fail(what: str) -> VerificationError:
    return VerificationError(f"{FILE}: {what}")


def _shape(obj: Any, required: set[str], where: str) -> dict:
    if not isinstance(obj, dict):
        raise _fail(f"{where} is not an object")
    for name in sorted(required - obj.keys()):
        raise _fail(f"{where}: the key {name!r} is missing")
    for name in sorted(obj.keys() - required):
        raise _fail(f"{where}: unexpected key {name!r}")
    return obj


def _text(obj: dict, name: str, where: str) -> str:
    value = obj[name]
    if not isinstance(value, str) or not value:
        raise _fail(f"{where}: {name} is not a non-empty string")
    return value


def _yen(obj: dict, name: str, where: str, minimum: int = 0) -> int:
    value = obj[name]
    if not is_int(value) or value < minimum:
        raise _fail(f"{where}: {name} is not an integer >= {minimum}")
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
    tenant_invoices = _invoices(
        document, "tenant_invoices", "reseller", "tenant", "tenant invoice", with_credits
    )
    member_invoices = _invoices(document, "member_invoices", "provider", "reseller", "member invoice")
    grant_draws = _grant_draws(document[_CREDITS], with_returns) if with_credits else None
    if with_returns:
        _no_returns(document[_RETURNS])
    net_yen = _net_yen(document["net_yen"], catalog)
    transfers = _transfers(document["transfers"])
    return Statement(period, lines, tenant_invoices, member_invoices, net_yen, transfers, grant_draws)


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


def _no_returns(raws: list) -> None:
    """Returns need the voids and original lines behind them, which this verifier does not
    read yet: a statement with any is refused rather than passed unchecked."""
    if raws:
        raise _fail(f"the statement has {len(raws)} returns; this verifier cannot recompute returns")


def _grant_draws(raws: list, with_restorations: bool = False) -> list[tuple[str, str, str, str, int]]:
    draws: list[tuple[str, str, str, str, int]] = []
    for index, raw in enumerate(raws):
        where = f"grant draw {index + 1}"
        _shape(raw, _GRANT_DRAW | ({"restored_yen"} if with_restorations else set()), where)
        if with_restorations and _yen(raw, "restored_yen", where) != 0:
            raise _fail(f"{where}: restored_yen without a return in the statement")
        draw = (
            _text(raw, "grant", where), _text(raw, "funder", where), _text(raw, "reseller", where),
            _text(raw, "tenant", where), _yen(raw, "amount_yen", where, minimum=1),
        )
        if draws and draw[0] <= draws[-1][0]:
            raise _fail(f"{where} ({draw[0]}): grant_draws sort by grant id, each grant once")
        draws.append(draw)
    return draws


def _invoices(
    document: dict, name: str, first: str, second: str, label: str, with_credits: bool = False
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
            subtotal_yen=_yen(raw, "subtotal_yen", where),
            tax_yen=_yen(raw, "tax_yen", where),
            total_yen=_yen(raw, "total_yen", where),
            retail_yen=_yen(raw, "retail_yen", where) if with_credits else None,
            credit_yen=_yen(raw, "credit_yen", where) if with_credits else None,
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


def recompute_lines(usage: dict[UsageKey, int], catalog: Catalog) -> list[Line]:
    lines = []
    for key, seconds in usage.items():
        reseller, tenant, provider, sku, service_period, retail_from, agreement_from = key
        price = catalog.retail[(reseller, sku)].by_start[retail_from].yen_per_gpu_hour
        retail = seconds * price.numerator // (3600 * price.denominator)
        if agreement_from is None:
            wholesale = 0
        else:
            agreement = catalog.agreements[(reseller, provider, sku)].by_start[agreement_from]
            if agreement.wholesale_yen_per_gpu_hour is not None:
                rate = agreement.wholesale_yen_per_gpu_hour
                wholesale = seconds * rate.numerator // (3600 * rate.denominator)
            else:
                wholesale = (
                    seconds * price.numerator * agreement.provider_share_bps
                    // (36_000_000 * price.denominator)
                )
        lines.append(
            Line(reseller, tenant, provider, sku, service_period, retail_from, agreement_from,
                 seconds, _price_text(price), price, retail, wholesale)
        )
    lines.sort(key=lambda line: line.key)
    return lines


def _price_text(price: Fraction) -> str:
    # The exact decimal of a price of at most 4 fractional digits, for messages.
    whole, rest = divmod(price.numerator * 10_000 // price.denominator, 10_000)
    return str(whole) if not rest else f"{whole}.{rest:04d}".rstrip("0")


def _compare_lines(stated: list[Line], recomputed: list[Line]) -> None:
    i = j = 0
    while i < len(stated) or j < len(recomputed):
        if j == len(recomputed) or (i < len(stated) and stated[i].key < recomputed[j].key):
            line = stated[i]
            raise _fail(
                f"line {i + 1} {line.label}: no GPU-second of the evidence rates into it "
                f"({line.versions})"
            )
        if i == len(stated) or recomputed[j].key < stated[i].key:
            line = recomputed[j]
            raise _fail(
                f"lacks the line {line.label} of {line.gpu_seconds} GPU-seconds recomputed from "
                f"the evidence ({line.versions})"
            )
        mine, theirs = stated[i], recomputed[j]
        where = f"line {i + 1} {mine.label}"
        if mine.gpu_seconds != theirs.gpu_seconds:
            raise _fail(f"{where}: gpu_seconds is {mine.gpu_seconds}, recomputed {theirs.gpu_seconds}")
        if mine.price != theirs.price:
            raise _fail(
                f"{where}: retail_yen_per_gpu_hour is {mine.price_text}, the catalog's price from "
                f"{format_instant(theirs.retail_price_from)} is {_price_text(theirs.price)}"
            )
        if mine.retail_yen != theirs.retail_yen:
            raise _fail(f"{where}: retail_yen is {mine.retail_yen}, recomputed {theirs.retail_yen}")
        if mine.wholesale_yen != theirs.wholesale_yen:
            raise _fail(f"{where}: wholesale_yen is {mine.wholesale_yen}, recomputed {theirs.wholesale_yen}")
        i += 1
        j += 1


def check_statement(
    statement: Statement, usage: dict[UsageKey, int], catalog: Catalog,
    grants: dict[str, Grant] | None = None,
) -> None:
    """Every line, credit, invoice, tax, grant draw, net and transfer of `statement`,
    recomputed; raise at the first difference. `grants` are grants.json's (format /2),
    None for a bundle that carries no grants (format /1)."""
    _compare_lines(statement.lines, recompute_lines(usage, catalog))
    tenant_retail, member_subtotals = subtotals_of(statement.lines)
    rate = catalog.tax_rate_percent
    draws = Draws() if grants is None else _draws(statement, grants)
    if statement.grant_draws is None:
        tenant_invoices = invoices_of(tenant_retail, rate)
    elif grants is None:
        tenant_invoices = without_credits(statement.grant_draws, invoices_of(tenant_retail, rate))
    else:
        tenant_invoices = tenant_invoices_of(tenant_retail, draws.by_invoice, rate)
    compare_invoices(statement.tenant_invoices, tenant_invoices, "tenant invoice", "tenant_invoices",
                     " (the draws of grants.json's grants on its lines)" if grants is not None else "")
    if grants is not None and statement.grant_draws is not None:
        check_draw_amounts(statement.grant_draws, draws)
    member_invoices = invoices_of(member_subtotals, rate)
    compare_invoices(statement.member_invoices, member_invoices, "member invoice", "member_invoices")
    parties = (member for line in statement.lines for member in (line.provider, line.reseller))
    reimbursements = draws.reimbursements(grants) if grants is not None else []
    check_nets(statement.net_yen, parties, member_invoices, reimbursements)
    check_transfers(statement.transfers, statement.net_yen)


def _draws(statement: Statement, grants: dict[str, Grant]) -> Draws:
    """The grants' draws on the (verified) lines, once grants.json and the statement's
    grant_draws are found to name the same grants and parties."""
    check_coverage(grants, statement.lines)
    if statement.grant_draws is not None:
        check_draw_parties(statement.grant_draws, grants)
    draws = draws_of(statement.lines, grants)
    if statement.grant_draws is None:
        check_no_draws(draws, grants)
    return draws
