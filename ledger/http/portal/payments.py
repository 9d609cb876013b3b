"""Payments in the portal: what the member owes and is owed, due and overdue, its
payments recorded, confirmed or rejected, through `ledger.service.payments` as
`/v1/payments` does (only the payer records, only the payee decides)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ledger.domain.errors import InputError
from ledger.http.auth import require_writer
from ledger.http.portal import common, render
from ledger.http.portal.common import SignedIn
from ledger.service import payments

router = APIRouter(include_in_schema=False)


def yen_of(text: str) -> int:
    cleaned = text.replace(",", "").replace("¥", "").strip()
    if not cleaned.isdigit():
        raise InputError("the amount is a whole number of yen, such as 32545", code="bad_amount")
    return int(cleaned)


@router.get("/portal/payments")
async def listing(request: Request, who: SignedIn, as_of: str | None = None) -> Response:
    found = await payments.listing(common.ledger_of(request).store, who.caller, as_of or None, with_payments=True)
    member = who.caller.member
    owe = [t for t in found["transfers"] if member is None or t["from"] == member]
    owed = [t for t in found["transfers"] if member is not None and t["to"] == member]
    return render.page(request, "payments.html", who, as_of=found["as_of"], owe=owe, owed=owed, member=member,
                       asked_as_of=as_of or "")


@router.post("/portal/payments")
async def record(request: Request, who: SignedIn) -> Response:
    fields = await common.form(request, who.csrf)
    require_writer(who.caller)
    await payments.record(common.ledger_of(request).store, who.caller, fields.get("period", ""),
                          fields.get("to", ""), yen_of(fields.get("amount_yen", "")), fields.get("paid_on", "").strip(),
                          fields.get("reference", "").strip())
    return common.redirect("/portal/payments")


@router.post("/portal/payments/{payment_id}/confirm")
async def confirm(request: Request, who: SignedIn, payment_id: str) -> Response:
    await common.form(request, who.csrf)
    require_writer(who.caller)
    await payments.confirm(common.ledger_of(request).store, who.caller, payment_id)
    return common.redirect("/portal/payments")


@router.post("/portal/payments/{payment_id}/reject")
async def reject(request: Request, who: SignedIn, payment_id: str) -> Response:
    fields = await common.form(request, who.csrf)
    require_writer(who.caller)
    await payments.reject(common.ledger_of(request).store, who.caller, payment_id, fields.get("note", ""))
    return common.redirect("/portal/payments")
