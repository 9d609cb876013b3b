"""A usage event posted in CloudEvents binary content mode (the HTTP binding's `ce-` headers).

A request with a `ce-specversion` header carries one event, whatever its Content-Type:
its `ce-<attribute>` headers are the attributes, percent-decoded then read as UTF-8 (the
HTTP binding), its Content-Type is `datacontenttype`, and its body is `data`. The API
checks it as it checks the structured event with the same attributes and `data`
(`routes/events.py`): a body that is not JSON, or a header that is not UTF-8 once
percent-decoded, is refused (400) before anything is sent to Kafka, as a structured body
that is not UTF-8 JSON is.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

import orjson

from ledger.domain.binary_mode import DATACONTENTTYPE
from ledger.domain.errors import InputError
from schemas.wire import CONTENT_TYPE_HEADER, HTTP_ATTRIBUTE_PREFIX, HTTP_BINARY_MODE_HEADER

_PREFIX = HTTP_ATTRIBUTE_PREFIX.encode()
_PREFIX_CHARS = len(_PREFIX)
_CONTENT_TYPE = CONTENT_TYPE_HEADER.encode()


def is_binary(headers) -> bool:
    """Whether a request's headers (Starlette's, case-insensitive) make it binary mode."""
    return HTTP_BINARY_MODE_HEADER in headers


def _text(name: bytes, value: bytes) -> str:
    try:
        return unquote_to_bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        shown = name.decode("latin-1")[:80]
        raise InputError(f"header {shown} is not UTF-8 once percent-decoded", code="bad_header") from None


def event_of(raw_headers: list[tuple[bytes, bytes]], body: bytes) -> dict:
    """The structured event a binary-mode request carries (`raw_headers` as the server read
    them: names lower-case, values as sent)."""
    event: dict = {}
    content_type = None
    for name, value in raw_headers:
        if name.startswith(_PREFIX) and len(name) > _PREFIX_CHARS:
            attribute = name[_PREFIX_CHARS:].decode("latin-1")
            if attribute != "data":  # `data` is the body
                event[attribute] = _text(name, value)
        elif name == _CONTENT_TYPE:  # an ordinary header: not percent-encoded
            content_type = value.decode("latin-1")
    if content_type is not None and DATACONTENTTYPE not in event:
        event[DATACONTENTTYPE] = content_type
    try:
        event["data"] = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"the body (the event's data) is not JSON: {exc}", code="bad_json") from None
    return event
