"""Dead letters: list them, and replay them (`ledger.service.deadletters`).

A member lists the dead letters naming it as provider or reseller and replays those of
its own GPUs; an auditor lists all and replays nothing (403); an admin does both for all.
Ids outside a caller's scope are reported as not found, like ids that do not exist.
"""

from __future__ import annotations

from typing import Annotated

import pydantic
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ledger.domain.errors import InputError
from ledger.domain.records import RAW_PREFIX_BYTES
from ledger.http.auth import Caller, LedgerState, require_writer
from ledger.http.body import read_limited
from ledger.http.errors import responses
from ledger.service import deadletters
from ledger.service.replays import MAX_REPLAY
from ledger.service.usage import instant

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
    raw: str | None = Field(description=(
        f"the event's first {deadletters.RAW_PREVIEW_BYTES} bytes as UTF-8 (invalid bytes replaced); "
        "for a member that is not the event's reseller, with the tenant as its pseudonym, or null "
        "when it cannot be shown without the tenant"))
    raw_bytes: int = Field(description=(
        "the event's full size in bytes (for a compressed batch a worker did not decompress, "
        "the compressed batch's)"))
    raw_whole: bool = Field(description=(
        f"whether the ledger keeps the event's bytes whole (within 1 MiB); else only their first "
        f"{RAW_PREFIX_BYTES}, and the dead letter cannot be replayed"))
    raw_sha256: str = Field(description="SHA-256 of the event's full bytes, hex")
    raw_redacted: bool = Field(description="whether raw was changed or withheld to keep a tenant id")
    replayed: bool
    replay_outcome: str | None = Field(description="accepted, duplicate or a reason, once replayed")


class DeadLetterPage(BaseModel):
    items: list[DeadLetter]
    next_cursor: str | None


class ReplayRequest(BaseModel):
    """Either `ids`, or a filter (at least one of reason, since, until)."""

    model_config = ConfigDict(extra="forbid")
    ids: list[int] | None = Field(None, description=f"at most {MAX_REPLAY}")
    reason: str | None = None
    since: str | None = Field(None, description="RFC 3339 instant: received at or after")
    until: str | None = Field(None, description="RFC 3339 instant: received before")


class ReplayAccepted(BaseModel):
    """What the replay decided, at once: its ingest id and its counts."""

    ingest_id: str
    replayed: int
    skipped_already_replayed: int
    skipped_not_replayable: int = Field(description=(
        "dead letters the filter matched that keep only a prefix of their event (named by id, "
        "such a dead letter refuses the request: 409 not_replayable)"))
    received: int
    accepted: int
    duplicate: int
    rejected: dict[str, int]


def _ms(text: str | None, name: str) -> int | None:
    return None if text is None else instant(text, name) * 1000


@router.get("/v1/dead-letters", response_model=DeadLetterPage, responses=responses(400))
async def list_dead_letters(
    who: Caller,
    ledger: LedgerState,
    reason: str | None = None,
    since: Annotated[str | None, Query(description="RFC 3339 instant: received at or after")] = None,
    until: Annotated[str | None, Query(description="RFC 3339 instant: received before")] = None,
    limit: Annotated[int, Query(ge=1, le=deadletters.MAX_LIST)] = 100,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
) -> dict:
    return await deadletters.page(
        ledger.store, who.member, limit=limit, reason=reason, since_ms=_ms(since, "since"),
        until_ms=_ms(until, "until"), after_id=int(cursor) if cursor else None,
        pseudonym_key=ledger.pseudonym_key,
    )


@router.post(
    "/v1/dead-letters/replay",
    status_code=202,
    response_model=ReplayAccepted,
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": ReplayRequest.model_json_schema()}}}},
    responses=responses(400, 403, 404, 409, 413, 503),
)
async def replay_dead_letters(who: Caller, ledger: LedgerState, request: Request) -> dict:
    require_writer(who)
    try:
        body = ReplayRequest.model_validate_json(await read_limited(request, MAX_REPLAY_BODY_BYTES))
    except pydantic.ValidationError as exc:
        raise InputError(f"the body is not a replay request: {exc.errors()[0]['msg']}") from None
    return await deadletters.replay(
        ledger.store, who, ids=body.ids, reason=body.reason,
        since_ms=_ms(body.since, "since"), until_ms=_ms(body.until, "until"),
    )
