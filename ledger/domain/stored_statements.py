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

from dataclasses import replace

from ledger.domain.statement import GrantDraw, Statement, TenantInvoice


def comparable(recomputed: Statement, stored: dict, members_at_close: list[str]) -> Statement:
    """The recomputed statement of a closed period in the shape of the stored one (its
    JSON, as read back): render both and they are equal bytes when nothing was edited."""
    known = sorted(members_at_close)
    nets = recomputed.net_yen
    others = {m: v for m, v in nets.items() if m not in known and v != 0}
    returns, draws, invoices = recomputed.returns, recomputed.grant_draws, recomputed.tenant_invoices
    if "returns" not in stored and returns == ():  # 2026-12-07: voids
        returns = None
    if "grant_draws" not in stored and draws == ():  # 2026-11-30: credits
        draws = None
    invoice_keys = _entry_keys(stored.get("tenant_invoices"))
    if invoice_keys is not None:
        invoices = tuple(_invoice_as_stored(invoice, invoice_keys) for invoice in invoices)
    draw_keys = _entry_keys(stored.get("grant_draws"))
    if draw_keys is not None and draws is not None:
        draws = tuple(_draw_as_stored(draw, draw_keys) for draw in draws)
    return replace(
        recomputed, tenant_invoices=invoices, returns=returns, grant_draws=draws,
        net_yen={m: nets.get(m, 0) for m in known} | others,
    )


def first_difference(recomputed: Statement, stored: dict) -> str:
    """The first top-level field (in the recomputation's order) where two statements differ."""
    document = recomputed.to_document()
    for name in [*document, *(k for k in stored if k not in document)]:
        if document.get(name, _ABSENT) != stored.get(name, _ABSENT):
            return name
    return "its bytes"


_ABSENT = object()


def _entry_keys(entries: object) -> set[str] | None:
    """The fields the stored entries of a list have (None: no entry to tell)."""
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        return None
    return set().union(*entries)


def _invoice_as_stored(invoice: TenantInvoice, stored_keys: set[str]) -> TenantInvoice:
    """Without `credit_yen` and `retail_yen` (2026-11-30) when the stored invoices lack
    them and they say nothing more: no credit, a retail equal to the subtotal."""
    if "credit_yen" not in stored_keys and invoice.credit_yen == 0:
        invoice = replace(invoice, credit_yen=None)
    if "retail_yen" not in stored_keys and invoice.retail_yen == invoice.subtotal_yen:
        invoice = replace(invoice, retail_yen=None)
    return invoice


def _draw_as_stored(draw: GrantDraw, stored_keys: set[str]) -> GrantDraw:
    """Without `restored_yen` (2026-12-07) when the stored draws lack it and it is 0."""
    if "restored_yen" not in stored_keys and draw.restored_yen == 0:
        return replace(draw, restored_yen=None)
    return draw
