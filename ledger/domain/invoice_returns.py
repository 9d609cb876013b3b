"""Returns on an invoice: the return lines and the tax they took back (適格返還請求書).

SPEC.md "Corrections": seconds voided from a closed booking period's line are returned in
the first open booking period, and that period's tenant and member invoices are net of
them ("Invoices"): the invoice is then both a qualified invoice and a qualified return
invoice. Japan's rules let one document be both when it states the sale, the return (its
date and the transaction it returns) and the tax on the net amount per rate; the
statement's tax is exactly that, rounded once per invoice on the net subtotal.

What this module adds is the part a return invoice must state on its own: the returned
amounts and the consumption tax on them. The statement rounds tax once, on the net, so
the returns' tax is stated as what the returns took off this invoice's tax:

    sales tax   = the tax of the sales alone (lines less credits), rounded toward zero
    returns tax = sales tax - the invoice's tax (the statement's)

so sales tax - returns tax = the invoice's tax to the yen, and each of the two taxes
that exist on paper (the sales' and the invoice's) is rounded once. It can differ by at
most 1 yen from rounding the returns' amount on its own, never from the statement.
Pure; `ledger.domain.invoices` calls it and checks every sum against the statement.
"""

from __future__ import annotations

from ledger.domain.statement import Return, Statement


def tax_of(amount_yen: int, rate_percent: int) -> int:
    """Consumption tax on an amount, rounded toward zero (SPEC.md, "Invoices")."""
    magnitude = abs(amount_yen) * rate_percent // 100
    return magnitude if amount_yen >= 0 else -magnitude


def tax_split(sales_yen: int, returns_yen: int, tax_yen: int, rate_percent: int) -> dict:
    """The invoice's tax as sales less returns (see the module's docstring). `returns_yen`
    is the consideration given back (positive), `tax_yen` the statement's tax of the net."""
    sales_tax = tax_of(sales_yen, rate_percent)
    return {
        "sales_yen": sales_yen, "sales_tax_yen": sales_tax,
        "returns_yen": returns_yen, "returns_tax_yen": sales_tax - tax_yen,
        "net_yen": sales_yen - returns_yen, "net_tax_yen": tax_yen,
    }


def returns_of_tenant(statement: Statement, reseller: str, tenant: str) -> list[Return]:
    return [r for r in statement.returns or () if (r.reseller, r.tenant) == (reseller, tenant)]


def returns_of_pair(statement: Statement, provider: str, reseller: str) -> list[Return]:
    """The returns a member invoice carries: of `provider`'s GPUs resold by `reseller`."""
    return [r for r in statement.returns or () if (r.provider, r.reseller) == (provider, reseller) and provider != reseller]
