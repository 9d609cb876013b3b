"""SPEC.md, "What happens to each event": checks 1 (`malformed`) to 10 (`no_agreement`).

Each test reads: given an event (and a receipt time and a catalog), when it is decoded
and checked, then it passes, or is rejected with exactly the reason SPEC.md names.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain import events
from ledger.domain.events import (
    CONFLICT,
    FUTURE,
    MALFORMED,
    NO_AGREEMENT,
    NO_PRICE,
    REASONS,
    SCHEMA,
    TOO_LATE,
    UNKNOWN_MEMBER,
    UNKNOWN_SKU,
    WRONG_PROVIDER,
    Rejection,
    Usage,
)
from ledger.domain.instants import parse_instant
from tests.factories import (
    DEFAULT_VERSIONS,
    agreement,
    catalog_text,
    encode,
    instant,
    load,
    ms,
    new_ledger,
    on_time_ms,
    price,
    send,
    usage_event,
)

RECEIPT_MS = ms("2026-10-20T00:00:00Z")
CATALOG = load()
VALID = "valid"
MISSING = object()
MIB = 1 << 20


def outcome(raw: bytes | dict, receipt_ms: int = RECEIPT_MS, catalog=CATALOG, sender: str | None = None) -> str:
    """`valid`, or the reason of the first failing check among 1..10."""
    if isinstance(raw, dict):
        raw = encode(raw)
    decoded = events.decode(raw)
    if isinstance(decoded, Rejection):
        return decoded.reason
    checked = events.check(decoded, receipt_ms, catalog, sender)
    if isinstance(checked, Rejection):
        return checked.reason
    assert isinstance(checked, Usage)
    return VALID


VALID_RAW = encode(usage_event())


def with_member(json_text: bytes, raw: bytes = VALID_RAW) -> bytes:
    """The event with one more top-level member `"extra"`, given as raw JSON text."""
    assert raw.endswith(b"}")
    return raw[:-1] + b', "extra": ' + json_text + b"}"


def with_seconds(json_text: bytes) -> bytes:
    """The default event with `data.seconds` written as the raw JSON text given."""
    assert VALID_RAW.endswith(b'"seconds": 1}}')
    return VALID_RAW[: -len(b"1}}")] + json_text + b"}}"


def mutated(path: str, value: object) -> dict:
    """The default event with `path` ("time", "data.tenant") set to value, or removed."""
    event = usage_event()
    *parents, name = path.split(".")
    target = event
    for parent in parents:
        target = target[parent]
    if value is MISSING:
        del target[name]
    else:
        target[name] = value
    return event


def test_given_the_example_event_of_spec_then_it_passes_every_check():
    event = usage_event(gpu_uuid="GPU-5f1c", time="2026-10-03T12:00:00Z", seconds=1)
    checked = events.check(events.decode(encode(event)), RECEIPT_MS, CATALOG)
    assert checked == Usage(
        gpu_uuid="GPU-5f1c",
        provider="sakura",
        reseller="kddi",
        tenant="acme",
        sku="H200",
        start=instant("2026-10-03T12:00:00Z"),
        seconds=1,
    )


# -- 1. malformed ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(VALID_RAW.replace(b'"acme"', b'"ac\xffme"'), id="invalid UTF-8 byte"),
        pytest.param(VALID_RAW.replace(b'"acme"', b'"ac\xc0\xafme"'), id="overlong UTF-8"),
        pytest.param(with_member(b'"\xed\xa0\x80"'), id="UTF-8-encoded surrogate"),
        pytest.param(VALID_RAW[:-5] + b"\xe2\x82", id="truncated UTF-8 sequence"),
        pytest.param(with_member(b"NaN"), id="NaN"),
        pytest.param(with_member(b"Infinity"), id="Infinity"),
        pytest.param(with_member(b"-Infinity"), id="-Infinity"),
        pytest.param(with_member(b'"\\ud800"'), id="lone high surrogate escape"),
        pytest.param(with_member(b'"\\udc00"'), id="lone low surrogate escape"),
        pytest.param(with_member(b'"\\ud800\\u0041"'), id="high surrogate then a letter"),
        pytest.param(VALID_RAW.replace(b'"acme"', b'"\\udfff"'), id="lone surrogate in tenant"),
        pytest.param(with_member(b"1e400"), id="1e400"),
        pytest.param(with_member(b"-1e400"), id="-1e400"),
        pytest.param(with_seconds(b"1e400"), id="seconds 1e400"),
        pytest.param(with_member(b"1" + b"0" * 400), id="integer of 401 digits"),
        pytest.param(with_member(b"1.7976931348623159e308"), id="just beyond the largest double"),
    ],
)
def test_given_bytes_a_strict_rfc8259_parser_refuses_then_malformed(raw):
    assert outcome(raw) == MALFORMED


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"{", id="unterminated"),
        pytest.param(VALID_RAW + b"x", id="trailing garbage"),
        pytest.param(VALID_RAW + VALID_RAW, id="two documents"),
        pytest.param(VALID_RAW.replace(b"}}", b",}}"), id="trailing comma"),
        pytest.param(VALID_RAW.replace(b'"acme"', b"'acme'"), id="single quotes"),
        pytest.param(with_member(b"01"), id="leading zero"),
        pytest.param(with_member(b"+1"), id="plus sign"),
        pytest.param(with_member(b".5"), id="no integer part"),
        pytest.param(with_member(b'"a\tb"'), id="raw control character in a string"),
        pytest.param(with_member(b"1 /* comment */"), id="comment"),
        pytest.param(b"\xef\xbb\xbf" + VALID_RAW, id="byte-order mark inside an event"),
    ],
)
def test_given_text_that_is_not_json_then_malformed(raw):
    assert outcome(raw) == MALFORMED


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[]", id="empty array"),
        pytest.param(b"[" + VALID_RAW + b"]", id="array holding a valid event"),
        pytest.param(b'"gpu.usage.v1"', id="string"),
        pytest.param(b"42", id="number"),
        pytest.param(b"null", id="null"),
        pytest.param(b"true", id="true"),
    ],
)
def test_given_a_top_level_that_is_not_an_object_then_malformed(raw):
    assert outcome(raw) == MALFORMED


def padded_to(size: int) -> bytes:
    """The default event, exactly `size` bytes long, grown by an ignored string member."""
    head, tail = VALID_RAW[:-1] + b', "pad": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_given_an_event_of_exactly_1_mib_then_it_is_not_malformed():
    raw = padded_to(MIB)
    assert len(raw) == MIB
    assert outcome(raw) == VALID


def test_given_an_event_one_byte_larger_than_1_mib_then_malformed():
    raw = padded_to(MIB + 1)
    assert len(raw) == MIB + 1
    assert outcome(raw) == MALFORMED


def test_given_more_than_1_mib_of_non_json_then_malformed_without_parsing():
    assert outcome(b"{" * (MIB + 1)) == MALFORMED


def depth(value: object) -> int:
    """Nesting depth as SPEC.md counts it: the event object is level 1."""
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def nested_event(total_depth: int, kind: str, inside_data: bool = False) -> bytes:
    """A valid event whose deepest container is at `total_depth` (the event itself is 1)."""
    base_depth = 2 if inside_data else 1
    levels = total_depth - base_depth
    opening, closing = (b"[", b"]") if kind == "array" else (b'{"a": ', b"}")
    innermost = b"[]" if kind == "array" else b"{}"
    value = opening * (levels - 1) + innermost + closing * (levels - 1)
    if not inside_data:
        return with_member(value)
    assert VALID_RAW.endswith(b"}}")
    return VALID_RAW[:-2] + b', "extra": ' + value + b"}}"


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("inside_data", [False, True])
def test_given_nesting_of_exactly_64_levels_then_the_event_is_valid(kind, inside_data):
    raw = nested_event(64, kind, inside_data)
    assert depth(json.loads(raw)) == 64
    assert outcome(raw) == VALID


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("inside_data", [False, True])
def test_given_nesting_of_65_levels_then_malformed(kind, inside_data):
    raw = nested_event(65, kind, inside_data)
    assert depth(json.loads(raw)) == 65
    assert outcome(raw) == MALFORMED


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="100000 balanced arrays"),
        pytest.param(b"[" * 100_000, id="100000 unbalanced arrays"),
        pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, id="100000 objects"),
        pytest.param(nested_event(100_000, "array"), id="inside a valid event"),
        pytest.param(nested_event(100_000, "object", inside_data=True), id="inside data"),
    ],
)
def test_given_very_deep_nesting_then_malformed_and_no_crash(raw):
    assert outcome(raw) == MALFORMED


def test_given_a_repeated_name_then_the_last_value_wins():
    first_bad = b'{"specversion": "0.9", ' + VALID_RAW[1:]
    assert outcome(first_bad) == VALID
    last_bad = VALID_RAW[:-1] + b', "specversion": "0.9"}'
    assert outcome(last_bad) == SCHEMA
    seconds_string_then_int = VALID_RAW.replace(b'"seconds": 1}', b'"seconds": "1", "seconds": 1}')
    assert outcome(seconds_string_then_int) == VALID


# -- 2. schema --------------------------------------------------------------------------

SCHEMA_CASES = [
    ("specversion", MISSING),
    ("specversion", "1"),
    ("specversion", 1.0),
    ("specversion", "1.0 "),
    ("specversion", "2.0"),
    ("specversion", None),
    ("type", MISSING),
    ("type", "gpu.usage.v2"),
    ("type", "GPU.USAGE.V1"),
    ("type", ""),
    ("id", MISSING),
    ("id", ""),
    ("id", 1),
    ("id", None),
    ("id", ["x"]),
    ("source", MISSING),
    ("source", ""),
    ("source", 7),
    ("source", {}),
    ("time", MISSING),
    ("time", 1791460800),
    ("time", None),
    ("time", ""),
    ("time", "2026-10-03 12:00:00Z"),
    ("time", "2026-10-03T12:00:00"),
    ("time", "2026-10-03T12:00Z"),
    ("time", "2026-10-03"),
    ("time", "2026-10-03T12:00:60Z"),
    ("time", "2026-12-31T23:59:60Z"),
    ("time", "2026-02-30T00:00:00Z"),
    ("time", "2026-02-29T00:00:00Z"),
    ("time", "2100-02-29T00:00:00Z"),
    ("time", "2026-04-31T00:00:00Z"),
    ("time", "2026-13-01T00:00:00Z"),
    ("time", "2026-00-10T00:00:00Z"),
    ("time", "2026-10-00T00:00:00Z"),
    ("time", "2026-10-03T24:00:00Z"),
    ("time", "2026-10-03T12:60:00Z"),
    ("time", "2026-10-03T12:00:00+24:00"),
    ("time", "2026-10-03T12:00:00+09:60"),
    ("time", "2026-10-03T12:00:00+0900"),
    ("time", "2026-10-03T12:00:00+09"),
    ("time", "2026-10-03T12:00:00 +09:00"),
    ("time", "2026-10-03T12:00:00.Z"),
    ("time", "2026-10-03T12:00:00,5Z"),
    ("time", "2026-10-03T12:00:00UTC"),
    ("time", "2026-10-03T12:00:00Z\n"),
    ("time", " 2026-10-03T12:00:00Z"),
    ("time", "\uff12\uff10\uff12\uff16-10-03T12:00:00Z"),  # full-width digits
    ("time", "\u0662\u0660\u0662\u0666-10-03T12:00:00Z"),  # Arabic-Indic digits
    ("time", "26-10-03T12:00:00Z"),
    ("time", "+2026-10-03T12:00:00Z"),
    ("data", MISSING),
    ("data", []),
    ("data", "x"),
    ("data", None),
    ("data", 1),
    ("data.provider", MISSING),
    ("data.provider", ""),
    ("data.provider", 1),
    ("data.provider", None),
    ("data.provider", ["sakura"]),
    ("data.reseller", MISSING),
    ("data.reseller", ""),
    ("data.reseller", 1),
    ("data.reseller", None),
    ("data.reseller", {"id": "kddi"}),
    ("data.sku", MISSING),
    ("data.sku", ""),
    ("data.sku", 200),
    ("data.sku", None),
    ("data.tenant", MISSING),
    ("data.tenant", ""),
    ("data.tenant", "a" * 65),
    ("data.tenant", "a\tb"),
    ("data.tenant", "caf\u00e9"),
    ("data.tenant", "\u30c6\u30ca\u30f3\u30c8"),
    ("data.tenant", "a\x7fb"),
    ("data.tenant", "a\nb"),
    ("data.tenant", "a\x00"),
    ("data.tenant", 5),
    ("data.tenant", None),
    ("data.tenant", ["acme"]),
    ("data.gpu_uuid", MISSING),
    ("data.gpu_uuid", ""),
    ("data.gpu_uuid", "GPU 1"),
    ("data.gpu_uuid", "g" * 129),
    ("data.gpu_uuid", "GPU-\u00e9"),
    ("data.gpu_uuid", "GPU\t1"),
    ("data.gpu_uuid", " GPU"),
    ("data.gpu_uuid", "GPU-1\x7f"),
    ("data.gpu_uuid", 5),
    ("data.gpu_uuid", None),
    ("data.seconds", MISSING),
    ("data.seconds", "60"),
    ("data.seconds", 60.0),
    ("data.seconds", 1.5),
    ("data.seconds", True),
    ("data.seconds", False),
    ("data.seconds", None),
    ("data.seconds", 0),
    ("data.seconds", -1),
    ("data.seconds", 3601),
    ("data.seconds", 10**20),
    ("data.seconds", [60]),
    ("data.seconds", {"value": 60}),
]


@pytest.mark.parametrize(
    ("path", "value"), SCHEMA_CASES, ids=[f"{p}={v!r}"[:60] for p, v in SCHEMA_CASES]
)
def test_given_a_field_outside_the_schema_then_schema(path, value):
    event = mutated(path, value)
    assert outcome(event) == SCHEMA


@pytest.mark.parametrize(
    "token",
    [
        b'"60"',
        b"60.0",
        b"6e1",
        b"6E1",
        b"1.5",
        b"true",
        b"1.0",
        b"1e0",
        b"0",
        b"-0",
        b"3601",
        b"-1",
    ],
)
def test_given_seconds_not_a_json_integer_in_range_then_schema_and_nothing_is_coerced(token):
    assert outcome(with_seconds(token)) == SCHEMA


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("data.tenant", "a" * 64),
        ("data.tenant", "a"),
        ("data.tenant", " "),
        ("data.tenant", "Acme Corp. (Tokyo) #1 ~"),
        ("data.tenant", "".join(chr(c) for c in range(0x20, 0x60))),
        ("data.gpu_uuid", "g" * 128),
        ("data.gpu_uuid", "!"),
        ("data.gpu_uuid", "~GPU-5f1c/0:{x}"),
        ("data.seconds", 1),
        ("data.seconds", 3600),
        ("time", "2026-10-03t12:00:00z"),
        ("time", "2026-10-03T12:00:00.123456789012Z"),
        ("time", "2026-10-03T21:00:00+09:00"),
        ("time", "2026-10-03T12:00:00-00:00"),
        ("time", "2026-10-04T11:59:00+23:59"),
        ("time", "2026-10-02T12:01:00-23:59"),
        ("time", "2028-02-29T00:00:00Z"),
    ],
)
def test_given_a_field_at_the_edge_of_the_schema_then_it_passes(path, value):
    event = mutated(path, value)
    assert outcome(event, on_time_ms(event)) == VALID


def test_given_other_attributes_and_other_data_keys_then_they_are_ignored():
    event = usage_event()
    event.update({"datacontenttype": "application/json", "subject": None, "x-trace": [1, {"a": 2}]})
    event["data"].update({"region": "ishikari", "power_w": 700.5, "labels": {"k": "v"}})
    assert outcome(event) == VALID


@pytest.mark.parametrize(
    "text",
    [
        "2026-10-03T12:00:00.999999999Z",
        "2026-10-03T12:00:00.5Z",
        "2026-10-03T12:00:00.0Z",
        "2026-10-03T21:00:00.999+09:00",
    ],
)
def test_given_a_time_with_a_fraction_then_it_is_floored_to_the_whole_second(text):
    checked = events.check(events.decode(encode(usage_event(time=text))), RECEIPT_MS, CATALOG)
    assert checked.start == instant("2026-10-03T12:00:00Z")


@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2199, 12, 30)),
    offset_minutes=st.integers(-(23 * 60 + 59), 23 * 60 + 59),
    fraction=st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,12}", fullmatch=True)),
    lower=st.booleans(),
)
def test_property_parse_instant_agrees_with_the_calendar(moment, offset_minutes, fraction, lower):
    """Given any valid local date-time and offset, then parse_instant is its floored Unix second."""
    moment = moment.replace(microsecond=0)
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    text = f"{moment:%Y-%m-%dT%H:%M:%S}{fraction}{sign}{hours:02d}:{minutes:02d}"
    if lower:
        text = text.replace("T", "t")
    expected = moment.replace(tzinfo=UTC) - timedelta(minutes=offset_minutes)
    assert parse_instant(text) == int(expected.timestamp())


# -- 3. unknown_member and 4. unknown_sku ----------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("provider", "nobody"),
        ("provider", "KDDI"),
        ("provider", "sakura "),
        ("reseller", "nobody"),
        ("reseller", "Kddi"),
    ],
)
def test_given_a_provider_or_reseller_not_in_the_catalog_then_unknown_member(field, value):
    assert outcome(usage_event(**{field: value})) == UNKNOWN_MEMBER


# -- 4. wrong_provider: only a GPU's own provider reports its usage ----------------------


def test_given_an_event_from_its_providers_own_topic_then_it_passes():
    assert outcome(usage_event(provider="sakura", reseller="kddi"), sender="sakura") == VALID


def test_given_an_event_from_the_operators_topic_then_any_provider_passes():
    assert outcome(usage_event(provider="sakura", reseller="kddi"), sender=None) == VALID


@pytest.mark.parametrize("sender", ["kddi", "highreso", "nobody"])
def test_given_an_event_naming_another_provider_than_its_sender_then_wrong_provider(sender):
    """kddi, the reseller, reporting usage on sakura's GPU: refused, whatever it bills."""
    assert outcome(usage_event(provider="sakura", reseller="kddi"), sender=sender) == WRONG_PROVIDER


def test_wrong_provider_comes_after_unknown_member_and_before_unknown_sku():
    assert outcome(usage_event(provider="nobody"), sender="kddi") == UNKNOWN_MEMBER
    assert outcome(usage_event(provider="sakura", sku="Z999"), sender="kddi") == WRONG_PROVIDER
    assert outcome(usage_event(provider="sakura", time="2027-01-01T00:00:00Z"), sender="kddi") == WRONG_PROVIDER


def test_the_wrong_provider_detail_names_only_the_sender():
    decoded = events.decode(encode(usage_event(provider="sakura", reseller="highreso", tenant="acme")))
    rejection = events.check(decoded, RECEIPT_MS, CATALOG, "kddi")
    assert rejection.reason == WRONG_PROVIDER
    assert "kddi" in rejection.detail and "acme" not in rejection.detail and "highreso" not in rejection.detail


@pytest.mark.parametrize("sku", ["Z999", "h200", "H200 ", "A100"])
def test_given_a_sku_not_in_the_catalog_then_unknown_sku(sku):
    assert outcome(usage_event(sku=sku)) == UNKNOWN_SKU


# -- 5. future and 6. too_late: the formulas of SPEC.md, at their boundaries ------------


@pytest.mark.parametrize("fraction", ["", ".999999"])
@pytest.mark.parametrize("seconds", [1, 60, 3600])
def test_given_receipt_ms_at_the_future_boundary_then_on_time_and_one_ms_earlier_future(
    fraction, seconds
):
    """future iff (floor(time) + seconds) * 1000 > receipt_ms + 300000."""
    event = usage_event(time=f"2026-10-19T00:00:00{fraction}Z", seconds=seconds)
    start = instant("2026-10-19T00:00:00Z")
    earliest_on_time = (start + seconds) * 1000 - 300_000
    assert outcome(event, earliest_on_time) == VALID
    assert outcome(event, earliest_on_time + 1) == VALID
    assert outcome(event, earliest_on_time - 1) == FUTURE


def test_given_an_event_ending_one_second_later_then_the_future_boundary_moves_one_second():
    receipt = (instant("2026-10-19T00:00:00Z") + 60) * 1000 - 300_000
    assert outcome(usage_event(time="2026-10-19T00:00:00Z", seconds=60), receipt) == VALID
    assert outcome(usage_event(time="2026-10-19T00:00:00Z", seconds=61), receipt) == FUTURE
    assert outcome(usage_event(time="2026-10-19T00:00:01Z", seconds=60), receipt) == FUTURE


@pytest.mark.parametrize("fraction", ["", ".999999"])
@pytest.mark.parametrize(
    ("horizon_days", "settings_text"),
    [
        (35, ""),
        (35, "acceptance_horizon_days = 35"),
        (3, "acceptance_horizon_days = 3"),
        (100, "acceptance_horizon_days = 100"),
    ],
)
def test_given_receipt_ms_at_the_too_late_boundary_then_on_time_and_one_ms_later_too_late(
    fraction, horizon_days, settings_text
):
    """too_late iff floor(time) * 1000 < receipt_ms - acceptance_horizon_days * 86400000."""
    catalog = load(catalog_text(*DEFAULT_VERSIONS, settings=settings_text))
    event = usage_event(time=f"2026-09-01T00:00:00{fraction}Z", seconds=3600)
    latest_on_time = instant("2026-09-01T00:00:00Z") * 1000 + horizon_days * 86_400_000
    assert outcome(event, latest_on_time, catalog) == VALID
    assert outcome(event, latest_on_time - 1, catalog) == VALID
    assert outcome(event, latest_on_time + 1, catalog) == TOO_LATE


def test_given_an_exact_resend_after_the_horizon_then_too_late_not_duplicate():
    ledger = new_ledger()
    event = usage_event(time="2026-10-03T12:00:00Z", seconds=60)
    assert send(ledger, event) == "accepted"
    assert send(ledger, event) == "duplicate"
    late = instant("2026-10-03T12:00:00Z") * 1000 + 35 * 86_400_000 + 1
    assert send(ledger, event, late) == TOO_LATE


# -- 7. no_price and 8. no_agreement ---------------------------------------------------
# kddi's first H200 price (and the kddi<-sakura agreement) takes effect at
# 2026-01-01T00:00:00+09:00 = 2025-12-31T15:00:00Z.


@pytest.mark.parametrize(
    ("time", "seconds", "expected"),
    [
        ("2025-12-31T14:59:59Z", 1, NO_PRICE),
        ("2025-12-31T14:59:59Z", 2, NO_PRICE),  # one second before, one after
        ("2025-12-31T14:00:00Z", 3600, NO_PRICE),
        ("2025-12-31T15:00:00Z", 1, VALID),
        ("2025-12-31T15:00:00.999Z", 3600, VALID),
    ],
)
def test_given_seconds_before_the_first_price_version_then_no_price(time, seconds, expected):
    catalog = load(
        catalog_text(
            price("kddi", "H200", "780"),
            agreement(
                "kddi", "sakura", "H200", wholesale="520", effective_from="2025-01-01T00:00:00Z"
            ),
        )
    )
    event = usage_event(time=time, seconds=seconds)
    assert outcome(event, (instant(time) + seconds) * 1000, catalog) == expected


def test_given_no_price_at_all_for_the_reseller_and_sku_then_no_price():
    # sakura sells H200, kddi sells H100: (kddi, GB200) and (highreso, H100) have none.
    assert outcome(usage_event(sku="GB200", provider="kddi")) == NO_PRICE
    assert outcome(usage_event(reseller="highreso", provider="highreso", sku="H100")) == NO_PRICE


@pytest.mark.parametrize(
    ("time", "seconds", "expected"),
    [
        ("2026-09-30T14:59:59Z", 1, NO_AGREEMENT),
        ("2026-09-30T14:59:59Z", 2, NO_AGREEMENT),
        ("2026-09-30T14:59:59.999Z", 3600, NO_AGREEMENT),
        ("2026-09-30T15:00:00Z", 1, VALID),
        ("2026-09-30T15:00:00Z", 3600, VALID),
    ],
)
def test_given_seconds_before_the_first_agreement_version_then_no_agreement(
    time, seconds, expected
):
    catalog = load(
        catalog_text(
            price("kddi", "H200", "780"),
            agreement(
                "kddi",
                "sakura",
                "H200",
                wholesale="520",
                effective_from="2026-10-01T00:00:00+09:00",
            ),
        )
    )
    event = usage_event(time=time, seconds=seconds)
    assert outcome(event, (instant(time) + seconds) * 1000, catalog) == expected


def test_given_provider_different_from_reseller_without_any_agreement_then_no_agreement():
    assert outcome(usage_event(sku="H100")) == NO_AGREEMENT
    assert outcome(usage_event(provider="sakura", reseller="highreso")) == NO_AGREEMENT


def test_given_provider_equal_to_reseller_then_no_agreement_is_needed():
    catalog = load(catalog_text(price("kddi", "H200", "780")))
    assert not catalog.agreements
    assert outcome(usage_event(provider="kddi", reseller="kddi"), catalog=catalog) == VALID
    assert outcome(usage_event(provider="kddi", reseller="kddi", sku="H100")) == VALID


def test_given_a_version_that_is_not_the_first_then_earlier_versions_still_price_the_second():
    """Versions apply until the next one: a gap cannot open after the first version."""
    catalog = load(
        catalog_text(
            price("kddi", "H200", "780", "2026-01-01T00:00:00Z"),
            price("kddi", "H200", "900", "2026-11-01T00:00:00Z"),
            agreement(
                "kddi", "sakura", "H200", wholesale="520", effective_from="2026-01-01T00:00:00Z"
            ),
        )
    )
    event = usage_event(time="2026-10-31T23:30:00Z", seconds=3600)
    assert outcome(event, on_time_ms(event), catalog) == VALID


# -- The order of the checks -------------------------------------------------------------


def test_given_malformed_and_outside_the_schema_then_malformed():
    event = usage_event()
    del event["specversion"]
    assert outcome(with_member(b"NaN", encode(event))) == MALFORMED
    assert outcome(b"[" + encode(event) + b"]") == MALFORMED


def test_given_outside_the_schema_and_an_unknown_member_then_schema():
    assert outcome(usage_event(provider="nobody", tenant="t" * 65)) == SCHEMA
    assert outcome(usage_event(provider="nobody", seconds="60")) == SCHEMA


def test_given_an_unknown_member_and_an_unknown_sku_then_unknown_member():
    assert outcome(usage_event(reseller="nobody", sku="Z999")) == UNKNOWN_MEMBER
    assert outcome(usage_event(provider="nobody", sku="Z999")) == UNKNOWN_MEMBER


def test_given_an_unknown_sku_and_a_future_time_then_unknown_sku():
    assert outcome(usage_event(sku="Z999", time="2027-01-01T00:00:00Z")) == UNKNOWN_SKU


def test_given_both_future_and_too_late_then_future():
    catalog = load(catalog_text(*DEFAULT_VERSIONS, settings="acceptance_horizon_days = 0"))
    event = usage_event(time="2026-10-19T23:59:59Z", seconds=3600)
    receipt = ms("2026-10-20T00:00:00Z")
    start_ms = instant("2026-10-19T23:59:59Z") * 1000
    assert start_ms < receipt  # too_late (horizon 0) ...
    assert (start_ms + 3600_000) > receipt + 300_000  # ... and future
    assert outcome(event, receipt, catalog) == FUTURE


def test_given_too_late_and_no_price_then_too_late():
    event = usage_event(time="2025-12-31T14:00:00Z", seconds=60)
    assert outcome(event, ms("2026-10-20T00:00:00Z")) == TOO_LATE


def test_given_no_price_and_no_agreement_then_no_price():
    assert outcome(usage_event(sku="GB200")) == NO_PRICE


def test_given_no_agreement_and_a_conflicting_second_then_no_agreement():
    ledger = new_ledger()
    assert send(ledger, usage_event(tenant="other", sku="H200")) == "accepted"
    assert send(ledger, usage_event(tenant="acme", sku="H100")) == NO_AGREEMENT
    assert send(ledger, usage_event(tenant="acme", sku="H200")) == CONFLICT


# Breakers: each makes the event fail a known set of checks; combined, the first failing
# check (in SPEC.md's order) must be the one reported.
SKU_BREAKS = {
    "H200": set(),
    "H100": {NO_AGREEMENT},
    "B200": {NO_PRICE},
    "GB200": {NO_PRICE, NO_AGREEMENT},
    "Z999": {UNKNOWN_SKU, NO_PRICE, NO_AGREEMENT},
}
TIMES = {
    "on time": ("2026-10-19T23:00:00Z", set()),
    "future": ("2026-10-20T01:00:00Z", {FUTURE}),
    "too late": ("2026-09-10T00:00:00Z", {TOO_LATE}),
}


@settings(max_examples=150, deadline=None)
@given(
    malformed=st.booleans(),
    schema=st.booleans(),
    unknown_provider=st.booleans(),
    unknown_reseller=st.booleans(),
    sku=st.sampled_from(sorted(SKU_BREAKS)),
    timing=st.sampled_from(sorted(TIMES)),
    conflicting=st.booleans(),
    sender=st.sampled_from([None, "sakura", "kddi"]),
)
def test_property_an_event_failing_several_checks_reports_the_earliest(
    malformed, schema, unknown_provider, unknown_reseller, sku, timing, conflicting, sender
):
    """Given an event broken in any combination of ways, when it is received, then the
    reason reported is the first failing check in SPEC.md's order (accepted if none)."""
    time, broken = TIMES[timing]
    broken = set(broken) | SKU_BREAKS[sku]
    ledger = new_ledger()
    if conflicting:
        # Another tenant already holds the event's seconds.
        other = usage_event(time=time, seconds=60, tenant="other")
        assert send(ledger, other) == "accepted"
        broken.add(CONFLICT)
    event = usage_event(
        time=time,
        seconds=60,
        sku=sku,
        provider="nobody" if unknown_provider else "sakura",
        reseller="nobody" if unknown_reseller else "kddi",
    )
    if unknown_provider or unknown_reseller:
        broken.add(UNKNOWN_MEMBER)
    if sender is not None and (unknown_provider or sender != "sakura"):
        broken.add(WRONG_PROVIDER)
    if schema:
        event["specversion"] = "0.9"
        broken.add(SCHEMA)
    raw = encode(event)
    if malformed:
        raw = with_member(b"NaN", raw)
        broken.add(MALFORMED)
    expected = min(broken, key=REASONS.index) if broken else "accepted"
    assert ledger.receive(raw, RECEIPT_MS, sender) == expected


_NEAR_ASCII = st.text(
    alphabet=st.one_of(st.characters(min_codepoint=0, max_codepoint=0x200), st.characters()), max_size=140
)


@given(_NEAR_ASCII)
@settings(max_examples=2000)
def test_the_tenant_and_gpu_uuid_checks_are_the_documented_patterns(text):
    assert events.is_tenant(text) == (events._TENANT.fullmatch(text) is not None)
    assert events.is_gpu_uuid(text) == (events._GPU_UUID.fullmatch(text) is not None)


@pytest.mark.parametrize("text", ["", " ", "a" * 64, "a" * 65, "a" * 128, "a" * 129, "\x7f", "\x1f", "~", "é", "a b"])
def test_the_tenant_and_gpu_uuid_checks_at_their_edges(text):
    assert events.is_tenant(text) == (events._TENANT.fullmatch(text) is not None)
    assert events.is_gpu_uuid(text) == (events._GPU_UUID.fullmatch(text) is not None)
