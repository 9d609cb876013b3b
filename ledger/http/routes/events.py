"""POST /v1/events: usage over HTTP, to Kafka: a member's token to its own topic
(`gpu.usage.<member>`), an admin's to the usage topic as `gpuledger ingest`."""

from __future__ import annotations

import uuid

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel

from ledger.domain.errors import (
    Forbidden,
    InputError,
    ServiceUnavailable,
    TooLarge,
    UnsupportedMediaType,
)
from ledger.http import binary_mode
from ledger.http.auth import Caller, LedgerState, require_writer
from ledger.http.body import read_limited
from ledger.http.errors import responses
from ledger.service import ingest
from schemas.wire import BATCH_CONTENT_TYPE, SINGLE_CONTENT_TYPE

MAX_BATCH_EVENTS = 10_000
MAX_BODY_BYTES = 10 * 1024 * 1024
EVENT_TYPE = SINGLE_CONTENT_TYPE.decode()
BATCH_TYPE = BATCH_CONTENT_TYPE.decode()

router = APIRouter()


class Accepted(BaseModel):
    accepted: int
    ingest_id: str


def _events(content_type: str, body: bytes) -> list:
    """The request's events in structured mode: one, or a batch's."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"the body is not JSON: {exc}", code="bad_json") from None
    return document if content_type == BATCH_TYPE else [document]


def _checked(events: list, member: str | None) -> list[dict]:
    """The request's events, each an object with a data object; a member's own GPUs only."""
    if not isinstance(events, list):
        raise InputError("a batch is a JSON array of events", code="bad_batch")
    if len(events) > MAX_BATCH_EVENTS:
        raise TooLarge(f"at most {MAX_BATCH_EVENTS} events per request", code="too_many_events")
    for index, event in enumerate(events):
        if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
            raise InputError(f"event {index} is not an object with a data object", code="bad_event")
        if member is not None and event["data"].get("provider") != member:
            raise Forbidden(f"event {index}: a member may only send usage of its own GPUs", code="not_your_gpus")
    return events


@router.post(
    "/v1/events",
    status_code=202,
    response_model=Accepted,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                EVENT_TYPE: {"schema": {"type": "object"}},
                BATCH_TYPE: {"schema": {"type": "array", "items": {"type": "object"}}},
            },
        }
    },
    responses=responses(400, 403, 413, 415, 503),
)
async def post_events(who: Caller, ledger: LedgerState, request: Request) -> dict:
    require_writer(who)
    if binary_mode.is_binary(request.headers):  # whatever its Content-Type: the data's
        body = await read_limited(request, MAX_BODY_BYTES)
        events = _checked([binary_mode.event_of(request.headers.raw, body)], who.member)
    else:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in (EVENT_TYPE, BATCH_TYPE, "application/json"):
            raise UnsupportedMediaType(f"send {EVENT_TYPE} or {BATCH_TYPE}, or one event in binary mode")
        events = _checked(_events(content_type, await read_limited(request, MAX_BODY_BYTES)), who.member)
    if ledger.publisher is None:
        raise ServiceUnavailable("this API was started without Kafka", code="no_kafka")
    ingest_id = uuid.uuid4().hex
    # A member's events go to its own topic: the workers hold them to it too (check 4).
    await ingest.accept_request(ledger.store, ledger.publisher, [orjson.dumps(e) for e in events], ingest_id,
                                who.member)
    return {"accepted": len(events), "ingest_id": ingest_id}
