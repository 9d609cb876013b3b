"""The references of a closed statement's journal entries: each invoice's entry names
the indexes of exactly the lines (and returns) it sums (docs/auditor-bundle.md)."""

from __future__ import annotations

import copy

from ledger.domain.journal import entries_for_statement
from ledger.domain.statement import Statement
from tests.domain.test_statement import RETURN, SPEC_STATEMENT

ATTRIBUTIONS = (  # (reseller, tenant, provider): the lines' order of a statement
    ("kddi", "acme", "highreso"), ("kddi", "acme", "sakura"), ("kddi", "beta", "sakura"),
    ("sakura", "acme", "kddi"), ("sakura", "zeta", "kddi"),
)


def document() -> dict:
    found = copy.deepcopy(SPEC_STATEMENT)
    [line] = found["lines"]
    found["lines"] = [dict(line, reseller=r, tenant=t, provider=p) for r, t, p in ATTRIBUTIONS]
    found["returns"] = [dict(RETURN, reseller=r, tenant=t, provider=p) for r, t, p in
                        (("kddi", "beta", "sakura"), ("sakura", "zeta", "kddi"), ("kddi", "beta", "sakura"))]
    [invoice] = found["tenant_invoices"]
    found["tenant_invoices"] = [dict(invoice, reseller=r, tenant=t) for r, t in
                                (("kddi", "acme"), ("kddi", "beta"), ("sakura", "acme"), ("sakura", "zeta"))]
    [member] = found["member_invoices"]
    found["member_invoices"] = [dict(member, provider=p, reseller=r) for p, r in
                                (("highreso", "kddi"), ("kddi", "sakura"), ("sakura", "kddi"))]
    return found


def test_each_invoice_entry_names_exactly_the_lines_and_returns_it_sums():
    entries = entries_for_statement(Statement.from_document(document()))
    tenant = {tuple(e.reference["tenant_invoice"].values()): e.reference
              for e in entries if e.kind == "tenant_invoice"}
    assert tenant == {
        ("kddi", "acme"): {"tenant_invoice": {"reseller": "kddi", "tenant": "acme"}, "lines": [0, 1]},
        ("kddi", "beta"): {"tenant_invoice": {"reseller": "kddi", "tenant": "beta"}, "lines": [2], "returns": [0, 2]},
        ("sakura", "acme"): {"tenant_invoice": {"reseller": "sakura", "tenant": "acme"}, "lines": [3]},
        ("sakura", "zeta"): {"tenant_invoice": {"reseller": "sakura", "tenant": "zeta"}, "lines": [4], "returns": [1]},
    }
    member = [(e.reference["member_invoice"], e.reference["lines"], e.reference.get("returns"))
              for e in entries if e.kind == "member_invoice_reseller"]
    assert member == [
        ({"provider": "highreso", "reseller": "kddi"}, [0], None),
        ({"provider": "kddi", "reseller": "sakura"}, [3, 4], [1]),
        ({"provider": "sakura", "reseller": "kddi"}, [1, 2], [0, 2]),
    ]
    # The keys in the order the entry's hash covers (sorted there, but stored as built).
    assert list(tenant[("kddi", "beta")]) == ["tenant_invoice", "lines", "returns"]
