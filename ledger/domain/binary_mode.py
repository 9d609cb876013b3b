"""CloudEvents binary content mode: one event whose attributes travel as headers and whose
`data` is the record's value (SPEC.md, "How events arrive", Binary content mode).

A Kafka record with a `ce_specversion` header is such an event, whatever its
`content-type`. It is judged exactly as the structured event with the same attributes and
`data`: the value, by itself, goes through check 1 (`malformed`); an attribute header that
is not UTF-8 is `schema`; everything else is the structured event's (checks 2 and later,
`data` not an object included).

Its received bytes, which a dead letter keeps and a replay judges again, are the event in
structured mode (`structured`): the attributes as JSON strings and the value spliced in
verbatim as `data` (never re-encoded, so a repeated name keeps its last value). So a
replay judges the structured event SPEC.md equates it with. A value that fails check 1
is spliced too, so its dead letter shows the attributes, unless the splice would read as
an object (bytes that are not JSON alone can be made to close one): then the value alone
is kept, which is `malformed` again at any replay.

Header names as the Kafka binding has them: `ce_<attribute>`, and `content-type` for
`datacontenttype`. Kafka header values are not percent-encoded (the HTTP binding's are:
`ledger.http.binary_mode` decodes those). The record's key (the binding's `partitionkey`)
is not an attribute here: billing never depends on keys.
"""

from __future__ import annotations

import orjson

from ledger.domain import events
from schemas.wire import CONTENT_TYPE_HEADER, KAFKA_ATTRIBUTE_PREFIX

DATACONTENTTYPE = "datacontenttype"
DATA_HEADER = KAFKA_ATTRIBUTE_PREFIX + "data"
_PREFIX_CHARS = len(KAFKA_ATTRIBUTE_PREFIX)
# JSON's escapes for the bytes a string may not hold raw (a non-UTF-8 header is written
# with its other bytes as they are, so the kept event shows exactly what was sent).
_ESCAPES = {ord("\\"): b"\\\\", ord('"'): b'\\"', **{c: b"\\u%04x" % c for c in range(0x20)}}


def attribute_headers(headers: dict[str, bytes]) -> list[tuple[str, bytes]]:
    """(attribute name, header value) of every attribute a record's headers carry. A header
    `ce_data` is none: `data` is the value, and comes last in the structured event."""
    found = []
    for name, value in headers.items():
        if name.startswith(KAFKA_ATTRIBUTE_PREFIX) and name != DATA_HEADER:
            found.append((name[_PREFIX_CHARS:], value))
        elif name == CONTENT_TYPE_HEADER and KAFKA_ATTRIBUTE_PREFIX + DATACONTENTTYPE not in headers:
            found.append((DATACONTENTTYPE, value))
    return found


def _json_string(value: bytes) -> bytes:
    """`value` as a JSON string: escaped, its bytes otherwise as they are (UTF-8 or not)."""
    if not any(byte in _ESCAPES for byte in value):
        return b'"' + value + b'"'
    return b'"' + b"".join(_ESCAPES.get(byte, bytes((byte,))) for byte in value) + b'"'


def structured(attributes: list[tuple[str, bytes]], value: bytes) -> bytes:
    """The structured-mode event of these attributes with `value` (JSON) as its `data`."""
    members = [orjson.dumps(name) + b":" + _json_string(text) for name, text in attributes]
    members.append(b'"data":' + value)
    return b"{" + b",".join(members) + b"}"


def received(headers: dict[str, bytes], value: bytes) -> tuple[bytes, dict | events.Rejection]:
    """A binary-mode event's received bytes (see the module's docstring) and its verdict
    so far: the structured event's JSON object for checks 2 and later, or a Rejection."""
    attributes = attribute_headers(headers)
    raw = structured(attributes, value)
    data = events.decode_value(value)
    if isinstance(data, events.Rejection):  # check 1, on the value alone
        rejection = events.Rejection(events.MALFORMED, f"binary mode, the value (data): {data.detail}")
        # A replay must find these bytes malformed too (over 1 MiB: never replayed).
        return (raw if isinstance(events.decode(raw), events.Rejection) else value), rejection
    event: dict = {}
    for name, text in attributes:
        try:
            event[name] = text.decode("utf-8")
        except UnicodeDecodeError:
            shown = orjson.dumps(KAFKA_ATTRIBUTE_PREFIX + name).decode()
            return raw, events.Rejection(events.SCHEMA, f"binary mode: header {shown[:80]} is not UTF-8")
    event["data"] = data
    return raw, event
