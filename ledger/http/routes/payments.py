"""Payments of closed periods' transfers (`ledger.service.payments`), as SPEC.md's commands.

A member's token records the payments it owes (it is the payer) and confirms or rejects
those paid to it (it is the payee); it sees only the transfers it pays or receives, and a
payment outside them is a 404 like one that does not exist. Auditors and admins list
everything; auditors write nothing, and admins record and decide nothing (only a
transfer's members do).
"""

from __future__ import annotations

from typing import Annotated

import pydantic
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ledger.domain.errors import InputError
from ledger.domain.payments import MAX_NOTE_CHARS, MAX_REFERENCE_CHARS
from ledger.http.auth import Caller, LedgerState, require_writer
from ledger.http.body import read_limited
from ledger.http.errors import responses
from ledger.service import payments

MAX_BODY_BYTES = 64 * 1024

router = APIRouter()

PaymentId = Annotated[str, Path(max_length=32, description="as `POST /v1/payments` answered it: pay-1, pay-2, ...")]


class PaymentRequest(BaseModel):
    """A payment of the transfer the caller's member owes `to` for `period`."""

    model_config = ConfigDict(extra="forbid")
    period: str = Field(description="the closed period (YYYY-MM) whose transfer this pays")
    to: str = Field(description="the payee: the transfer's `to`")
    amount_yen: int = Field(strict=True, description="yen paid, an integer > 0; with the transfer's other "
                            "recorded and confirmed payments at most its amount_yen")
    paid_on: str = Field(description="the day it was paid, YYYY-MM-DD, not after today (the catalog's timezone)")
    reference: str = Field(description=f"free text such as the bank's reference, 1-{MAX_REFERENCE_CHARS} characters")


class RejectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(description=f"why, 1-{MAX_NOTE_CHARS} characters")


class PaymentBody(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    id: str
    period: str
    from_: str = Field(alias="from", description="the payer")
    to: str = Field(description="the payee")
    amount_yen: int
    paid_on: str
    reference: str
    state: str = Field(description="recorded, confirmed or rejected")
    recorded_at: str | None = Field(description="when it was recorded, UTC")
    decided_at: str | None = Field(description="when the payee confirmed or rejected it, UTC; null until then")
    note: str = Field(description="the payee's note with its decision (a rejection's reason)")


class TransferState(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    period: str
    from_: str = Field(alias="from")
    to: str
    amount_yen: int
    due: str = Field(description="payment_terms_days after the period's last day")
    paid_yen: int = Field(description="its confirmed payments")
    pending_yen: int = Field(description="its payments neither confirmed nor rejected")
    status: str = Field(description="paid, overdue or due")
    days_overdue: int
    payments: list[PaymentBody] | None = Field(None, description="its payments (only with with_payments=true)")


class PaymentList(BaseModel):
    as_of: str
    transfers: list[TransferState]


def _body(model: type[BaseModel]) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


async def _read(request: Request, model: type[BaseModel]):
    try:
        return model.model_validate_json(await read_limited(request, MAX_BODY_BYTES))
    except pydantic.ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem.get("loc", ())) or "the body"
        raise InputError(f"the body is not a {model.__name__}: {where}: {problem['msg']}") from None


@router.post("/v1/payments", status_code=201, response_model=PaymentBody, openapi_extra=_body(PaymentRequest),
             responses=responses(400, 403, 404, 409, 413))
async def record_payment(who: Caller, ledger: LedgerState, request: Request) -> dict:
    """Record a payment, as the payer (a member's token): refused for an open period, a
    transfer that does not exist, or an amount that would exceed the transfer (409)."""
    require_writer(who)
    body = await _read(request, PaymentRequest)
    return await payments.record(ledger.store, who, body.period, body.to, body.amount_yen, body.paid_on, body.reference)


@router.post("/v1/payments/{payment_id}/confirm", response_model=PaymentBody, responses=responses(403, 404, 409))
async def confirm_payment(who: Caller, ledger: LedgerState, payment_id: PaymentId) -> dict:
    """Confirm a recorded payment, as its payee; its journal entry is posted with it."""
    require_writer(who)
    return await payments.confirm(ledger.store, who, payment_id)


@router.post("/v1/payments/{payment_id}/reject", response_model=PaymentBody, openapi_extra=_body(RejectRequest),
             responses=responses(400, 403, 404, 409, 413))
async def reject_payment(who: Caller, ledger: LedgerState, payment_id: PaymentId, request: Request) -> dict:
    """Reject a recorded payment, as its payee, with a note saying why."""
    require_writer(who)
    body = await _read(request, RejectRequest)
    return await payments.reject(ledger.store, who, payment_id, body.note)


@router.get("/v1/payments", response_model=PaymentList, response_model_exclude_unset=True, responses=responses(400))
async def list_payments(
    who: Caller,
    ledger: LedgerState,
    as_of: Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD; default: today in the catalog's timezone")] = None,
    with_payments: Annotated[bool, Query(description="list each transfer's payments too")] = False,
) -> dict:
    """Every transfer of the closed periods the caller pays or receives (all, for auditors
    and admins), with what is paid, pending and overdue on `as_of`: periods ascending, each
    period's transfers in its statement's order."""
    return await payments.listing(ledger.store, who, as_of, with_payments)


@router.get("/v1/payments/{payment_id}", response_model=PaymentBody, responses=responses(404))
async def show_payment(who: Caller, ledger: LedgerState, payment_id: PaymentId) -> dict:
    return await payments.show(ledger.store, who, payment_id)
