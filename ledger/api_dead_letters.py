"""The usage API's dead letters: list them, and replay them (`ledger.deadletters`).

A member lists the dead letters naming it as provider or reseller and replays those of
its own GPUs; an auditor lists all and replays nothing (403); an admin does both for all.
Ids outside a caller's scope are reported as not found, like ids that do not exist.
"""

from __future__ import annotations

from typing import Annotated

import pydantic
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ledger import deadletters
from ledger.api import ApiError, Caller, ErrorResponse, _instant, _read_limited
from ledger.domain.errors import InputError, ServiceUnavailable

MAX_REPLAY_BODY_BYTES = 1 << 20

router = APIRouter()


class DeadLetter(BaseModel):
    id: int
    reason: str
    detail: str
    received_at: str | None = Field(description="receipt time, RFC 3339 UTC with milliseconds")
    received_ms: int
    provider: str | None
    reseller: str | None
    ingest_id: str
    raw: str = Field(description=f"the event's first {deadletters.RAW_PREVIEW_BYTES} bytes as UTF-8 (invalid bytes replaced)")
    raw_bytes: int = Field(description="the event's full size in bytes")
    replayed: bool
    replay_outcome: str | None = Field(description="accepted, duplicate or a reason, once replayed")


class DeadLetterPage(BaseModel):
    items: list[DeadLetter]
    next_cursor: str | None


class ReplayRequest(BaseModel):
    """Either `ids`, or a filter (at least one of reason, since, until)."""

    model_config = ConfigDict(extra="forbid")
    ids: list[int] | None = Field(None, description=f"at most {deadletters.MAX_REPLAY}")
    reason: str | None = None
    since: str | None = Field(None, description="RFC 3339 instant: received at or after")
    until: str | None = Field(None, description="RFC 3339 instant: received before")


class ReplayAccepted(BaseModel):
    ingest_id: str
    replayed: int
    skipped_already_replayed: int


def _ms(text: str | None, name: str) -> int | None:
    return None if text is None else _instant(text, name) * 1000


@router.get("/v1/dead-letters", response_model=DeadLetterPage,
            responses={400: {"model": ErrorResponse}})
async def list_dead_letters(
    who: Caller,
    request: Request,
    reason: str | None = None,
    since: Annotated[str | None, Query(description="RFC 3339 instant: received at or after")] = None,
    until: Annotated[str | None, Query(description="RFC 3339 instant: received before")] = None,
    limit: Annotated[int, Query(ge=1, le=deadletters.MAX_LIST)] = 100,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
) -> dict:
    filters = {"reason": reason, "since_ms": _ms(since, "since"), "until_ms": _ms(until, "until"),
               "after_id": int(cursor) if cursor else None}
    async with request.app.state.ledger.pool.acquire() as conn:
        try:
            return await deadletters.page(conn, who.member, limit=limit, **filters)
        except InputError as exc:
            raise ApiError(400, "bad_request", str(exc)) from None


@router.post(
    "/v1/dead-letters/replay",
    status_code=202,
    response_model=ReplayAccepted,
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": ReplayRequest.model_json_schema()}}}},
    responses={400: {"model": ErrorResponse}, 403: {"model": ErrorResponse},
               413: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def replay_dead_letters(who: Caller, request: Request) -> dict:
    if who.role == "auditor":
        raise ApiError(403, "read_only", "auditor tokens cannot write")
    try:
        body = ReplayRequest.model_validate_json(await _read_limited(request, MAX_REPLAY_BODY_BYTES))
    except pydantic.ValidationError as exc:
        raise ApiError(400, "bad_request", f"the body is not a replay request: {exc.errors()[0]['msg']}") from None
    state = request.app.state.ledger
    if state.producer is None:
        raise ApiError(503, "no_kafka", "this API was started without Kafka")
    topic = request.app.state.usage_topic  # set by ledger.api.create_app
    async with state.pool.acquire() as conn:
        try:
            return await deadletters.replay(
                conn, state.producer, topic, who, ids=body.ids, reason=body.reason,
                since_ms=_ms(body.since, "since"), until_ms=_ms(body.until, "until"),
            )
        except deadletters.DeadLettersNotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        except deadletters.ReplayForbidden as exc:
            raise ApiError(403, "not_your_gpus", str(exc)) from None
        except deadletters.TooManyDeadLetters as exc:
            raise ApiError(413, "too_many_dead_letters", str(exc)) from None
        except InputError as exc:
            raise ApiError(400, "bad_request", str(exc)) from None
        except ServiceUnavailable as exc:
            raise ApiError(503, "no_kafka", str(exc)) from None
