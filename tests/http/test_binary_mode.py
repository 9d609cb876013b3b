"""A request in CloudEvents binary mode, read as the official SDK writes it.

Given the headers and body of the SDK's `http.to_binary` (`cloudevents` 2.2), when the
API reads them, then the event is the SDK's structured event with the same attributes
and `data` (percent-encoded headers decoded, `Content-Type` as `datacontenttype`); a
header that is not UTF-8 once percent-decoded, or a body that is not JSON, is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from cloudevents.core.bindings import http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from ledger.domain.errors import InputError
from ledger.http import binary_mode

DATA = {"provider": "sakura", "reseller": "kddi", "tenant": "acme", "gpu_uuid": "GPU-1", "sku": "H200", "seconds": 60}


def raw_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """As the server reads them: names lower-case, values the bytes sent."""
    return [(name.lower().encode(), value.encode("latin-1")) for name, value in headers.items()]


def sdk_event(**attributes) -> CloudEvent:
    base = {"specversion": "1.0", "id": "e-1", "source": "//sakura/n", "type": "gpu.usage.v1",
            "time": datetime(2026, 10, 3, 12, tzinfo=UTC), "subject": "ノード 42 / 100% \"x\""}
    return CloudEvent(base | attributes, DATA)


def test_the_sdks_binary_request_is_its_structured_event():
    for attributes in ({}, {"datacontenttype": "application/json"}):
        event = sdk_event(**attributes)
        as_binary = http.to_binary(event, JSONFormat())
        assert binary_mode.is_binary({k.lower(): v for k, v in as_binary.headers.items()})
        read = binary_mode.event_of(raw_headers(as_binary.headers), as_binary.body)
        assert read == orjson.loads(http.to_structured(event, JSONFormat()).body)


def test_a_header_not_utf8_once_percent_decoded_or_a_body_not_json_is_refused():
    as_binary = http.to_binary(sdk_event(), JSONFormat())
    with pytest.raises(InputError, match="header ce-source is not UTF-8") as refused:
        binary_mode.event_of(raw_headers(as_binary.headers | {"ce-source": "%FF"}), as_binary.body)
    assert refused.value.code == "bad_header"
    with pytest.raises(InputError) as refused:
        binary_mode.event_of(raw_headers(as_binary.headers), b"{not json")
    assert refused.value.code == "bad_json"
    # A ce-data header is no attribute: the body is the data.
    read = binary_mode.event_of(raw_headers(as_binary.headers | {"ce-data": "%7B%7D"}), as_binary.body)
    assert read["data"] == DATA
