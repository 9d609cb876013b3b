"""Human-readable renderings of a statement: text tables and CSV, same content as the JSON."""

from __future__ import annotations

import csv
import io

from ledger.domain.statement import Statement

LINE_COLUMNS = (
    "reseller", "tenant", "provider", "sku", "service_period", "retail_price_from",
    "agreement_from", "gpu_seconds", "retail_yen_per_gpu_hour", "retail_yen", "wholesale_yen",
)
TENANT_COLUMNS = (
    "reseller", "tenant", "retail_yen", "credit_yen", "subtotal_yen", "tax_yen", "total_yen",
)
MEMBER_COLUMNS = ("provider", "reseller", "subtotal_yen", "tax_yen", "total_yen")
RETURN_COLUMNS = (
    "reseller", "tenant", "provider", "sku", "service_period", "booking_period", "retail_price_from",
    "agreement_from", "gpu_seconds", "retail_yen_per_gpu_hour", "retail_yen", "wholesale_yen",
    "tenant_refund_yen", "credit_restored_yen",
)
GRANT_DRAW_COLUMNS = ("grant", "funder", "reseller", "tenant", "amount_yen", "restored_yen")
TRANSFER_COLUMNS = ("from", "to", "amount_yen")


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _table(title: str, columns: tuple[str, ...], rows: list[dict]) -> str:
    # row.get: a statement closed before a field existed prints without it ("-").
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [
        bool(rows) and all(isinstance(row.get(c), int) for row in rows) for c in columns
    ]

    def fmt(values):
        return "  ".join(
            v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [f"{title} ({len(rows)})", fmt(columns), fmt(["-" * w for w in widths])]
    out += [fmt(r) for r in cells] or ["(none)"]
    return "\n".join(out)


def as_table(typed: Statement) -> str:
    statement = typed.to_document()  # the tables show the JSON's fields, as it prints them
    state = "closed" if statement["closed"] else "open"
    nets = [{"member": m, "net_yen": v} for m, v in statement["net_yen"].items()]
    parts = [
        f"Settlement statement {statement['period']} ({statement['currency']}, {state})",
        _table("Lines", LINE_COLUMNS, statement["lines"]),
        _table("Tenant invoices", TENANT_COLUMNS, statement["tenant_invoices"]),
        _table("Member invoices", MEMBER_COLUMNS, statement["member_invoices"]),
        _table("Returns", RETURN_COLUMNS, statement.get("returns", [])),
        _table("Grant draws", GRANT_DRAW_COLUMNS, statement.get("grant_draws", [])),
        _table("Nets", ("member", "net_yen"), nets),
        _table("Transfers", TRANSFER_COLUMNS, statement["transfers"]),
    ]
    return "\n\n".join(parts) + "\n"


FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> object:
    """A cell a spreadsheet shows as text: a string that would start a formula (a tenant
    id may be `=HYPERLINK(...)`) gets a leading apostrophe; numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_LEADS):
        return "'" + value
    return value


def as_csv(typed: Statement) -> str:
    """One CSV with a `section` column, so one file carries the whole statement."""
    statement = typed.to_document()  # its columns are the JSON's fields
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ("section", "period", "closed", *dict.fromkeys(
        LINE_COLUMNS + TENANT_COLUMNS + MEMBER_COLUMNS + RETURN_COLUMNS + GRANT_DRAW_COLUMNS
        + ("member", "net_yen")
        + TRANSFER_COLUMNS
    ))
    writer.writerow(header)
    sections = [
        ("line", statement["lines"]),
        ("tenant_invoice", statement["tenant_invoices"]),
        ("member_invoice", statement["member_invoices"]),
        ("return", statement.get("returns", [])),
        ("grant_draw", statement.get("grant_draws", [])),
        ("net", [{"member": m, "net_yen": v} for m, v in statement["net_yen"].items()]),
        ("transfer", statement["transfers"]),
    ]
    for section, rows in sections:
        for row in rows:
            values = {"section": section, "period": statement["period"], "closed": str(statement["closed"]).lower(), **row}
            writer.writerow([csv_cell(values.get(c)) for c in header])
    return buffer.getvalue()
