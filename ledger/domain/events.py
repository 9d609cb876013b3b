"""Usage events: decoding and the checks of SPEC.md, in its order, as pure functions.

`decode` turns one received event's bytes into a JSON object or a `malformed` verdict;
`check` runs checks 2 to 10 (`schema` .. `no_agreement`) against the catalog, the event's
receipt time and the member it came from. Check 11 (`conflict`) and duplicates need the
billed seconds and belong to `ledger.metering`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import orjson

from ledger.domain.catalog import Catalog
from ledger.domain.instants import format_utc, parse_instant

MAX_EVENT_BYTES = 1 << 20  # 1 MiB
MAX_DEPTH = 64
MAX_SECONDS = 3600
FUTURE_TOLERANCE_MS = 300_000
SPEC_VERSION = "1.0"
EVENT_TYPE = "gpu.usage.v1"

# The reasons, in the order in which the checks run.
MALFORMED = "malformed"
SCHEMA = "schema"
UNKNOWN_MEMBER = "unknown_member"
WRONG_PROVIDER = "wrong_provider"
UNKNOWN_SKU = "unknown_sku"
FUTURE = "future"
TOO_LATE = "too_late"
UNREGISTERED_GPU = "unregistered_gpu"
NO_PRICE = "no_price"
NO_AGREEMENT = "no_agreement"
CONFLICT = "conflict"
REASONS = (
    MALFORMED, SCHEMA, UNKNOWN_MEMBER, WRONG_PROVIDER, UNKNOWN_SKU, FUTURE, TOO_LATE, UNREGISTERED_GPU,
    NO_PRICE, NO_AGREEMENT, CONFLICT,
)

_TENANT = re.compile(r"[\x20-\x7e]{1,64}")
_GPU_UUID = re.compile(r"[\x21-\x7e]{1,128}")


class Usage(NamedTuple):
    """A valid event: GPU `gpu_uuid` ran for the attribution during [start, start + seconds).

    A NamedTuple rather than a frozen dataclass: one is built per event on the hot path.
    """

    gpu_uuid: str
    provider: str
    reseller: str
    tenant: str
    sku: str
    start: int  # Unix seconds
    seconds: int

    @property
    def attribution(self) -> tuple[str, str, str, str]:
        return (self.provider, self.reseller, self.tenant, self.sku)


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str


def _depth(value: object) -> int:
    """Nesting depth of containers: `{}` is 1, `{"a": []}` is 2."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if level > deepest:
            deepest = level
            if deepest > MAX_DEPTH:
                return deepest
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _loads(raw: bytes) -> object:
    """Bytes of at most 1 MiB -> their JSON value, or a `malformed` Rejection."""
    if len(raw) > MAX_EVENT_BYTES:
        return Rejection(MALFORMED, f"{len(raw)} bytes, more than {MAX_EVENT_BYTES}")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection(MALFORMED, f"not JSON: {exc}"[:300])


def decode(raw: bytes) -> dict | Rejection:
    """One event's bytes -> its JSON object, or a `malformed` Rejection."""
    value = _loads(raw)
    return value if isinstance(value, Rejection) else check_decoded(raw, value)


def decode_value(raw: bytes) -> object:
    """Check 1 on bytes that need not hold an object (a binary-mode event's `data`): its
    JSON value, or a `malformed` Rejection (over 1 MiB, not JSON, nested too deep)."""
    value = _loads(raw)
    if isinstance(value, Rejection):
        return value
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        return Rejection(MALFORMED, f"nested deeper than {MAX_DEPTH} levels")
    return value


def check_decoded(raw: bytes, value: object) -> dict | Rejection:
    """The `malformed` checks of an event already parsed from `raw`."""
    if len(raw) > MAX_EVENT_BYTES:
        return Rejection(MALFORMED, f"{len(raw)} bytes, more than {MAX_EVENT_BYTES}")
    if not isinstance(value, dict):
        return Rejection(MALFORMED, "top level is not a JSON object")
    # Counting brackets is a cheap bound: only a value with more than MAX_DEPTH of them
    # can be nested that deep, so ordinary events skip the walk.
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        return Rejection(MALFORMED, f"nested deeper than {MAX_DEPTH} levels")
    return value


def is_tenant(value: object) -> bool:
    """`_TENANT` (1-64 printable ASCII characters) without the regex: for ASCII,
    `isprintable` is exactly \\x20-\\x7e (tests/domain/test_events.py compares them)."""
    return type(value) is str and 0 < len(value) <= 64 and value.isascii() and value.isprintable()


def is_gpu_uuid(value: object) -> bool:
    """`_GPU_UUID` (1-128 visible ASCII characters: printable, no space) without the regex."""
    return (
        type(value) is str and 0 < len(value) <= 128 and value.isascii() and value.isprintable()
        and " " not in value
    )


def check(event: dict, receipt_ms: int, catalog: Catalog, sender: str | None = None) -> Usage | Rejection:
    """Checks 2 (`schema`) to 10 (`no_agreement`) of SPEC.md, first failure wins. `sender`:
    the member the event came from (its own topic, its API token), None for the operator."""
    usage = _schema(event)
    if isinstance(usage, Rejection):
        return usage
    return _against_catalog(usage, receipt_ms, catalog, sender)


def _shown(value: str) -> str:
    """A value of the event as a detail quotes it: escaped, and never long."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def usage_event(event_id: str, source: str, start: int, data: dict) -> dict:
    """A usage event as producers write it (SPEC.md, "Usage event"): the CloudEvents
    envelope around its `data`, starting at second `start`."""
    return {"specversion": SPEC_VERSION, "id": event_id, "source": source, "type": EVENT_TYPE,
            "time": format_utc(start), "data": data}


def _schema(event: dict) -> Usage | Rejection:
    """Check 2: the shape of a usage event (types strict, nothing coerced)."""
    # Inline rather than helpers: this runs for every event a worker receives.
    get = event.get
    if get("specversion") != SPEC_VERSION:
        return Rejection(SCHEMA, 'specversion is not "1.0"')
    if get("type") != EVENT_TYPE:
        return Rejection(SCHEMA, 'type is not "gpu.usage.v1"')
    value = get("id")
    if type(value) is not str or not value:
        return Rejection(SCHEMA, "id is not a non-empty string")
    value = get("source")
    if type(value) is not str or not value:
        return Rejection(SCHEMA, "source is not a non-empty string")
    time_text = get("time")
    start = parse_instant(time_text) if type(time_text) is str else None
    if start is None:
        return Rejection(SCHEMA, "time is not an RFC 3339 date-time")
    data = get("data")
    if type(data) is not dict:
        return Rejection(SCHEMA, "data is not an object")
    provider, reseller, sku = data.get("provider"), data.get("reseller"), data.get("sku")
    if type(provider) is not str or not provider:
        return Rejection(SCHEMA, "data.provider is not a non-empty string")
    if type(reseller) is not str or not reseller:
        return Rejection(SCHEMA, "data.reseller is not a non-empty string")
    if type(sku) is not str or not sku:
        return Rejection(SCHEMA, "data.sku is not a non-empty string")
    tenant = data.get("tenant")
    if not is_tenant(tenant):
        return Rejection(SCHEMA, "data.tenant is not 1-64 printable ASCII characters")
    gpu_uuid = data.get("gpu_uuid")
    if not is_gpu_uuid(gpu_uuid):
        return Rejection(SCHEMA, "data.gpu_uuid is not 1-128 visible ASCII characters")
    seconds = data.get("seconds")
    if type(seconds) is not int or not 1 <= seconds <= MAX_SECONDS:
        return Rejection(SCHEMA, f"data.seconds is not an integer 1..{MAX_SECONDS}")
    return Usage(gpu_uuid, provider, reseller, tenant, sku, start, seconds)


def _against_catalog(usage: Usage, receipt_ms: int, catalog: Catalog, sender: str | None) -> Usage | Rejection:
    """Checks 3 to 10, on an event of the right shape."""
    gpu_uuid, provider, reseller, _, sku, start, seconds = usage
    # 3. unknown_member
    for name, member in (("provider", provider), ("reseller", reseller)):
        if member not in catalog.members:
            return Rejection(UNKNOWN_MEMBER, f"{name} {_shown(member)} is not a member")
    # 4. wrong_provider: only a GPU's own provider reports its usage.
    if sender is not None and provider != sender:
        return Rejection(WRONG_PROVIDER, f"sent by {sender}, whose events may only name provider {sender}")
    # 5. unknown_sku
    if sku not in catalog.skus:
        return Rejection(UNKNOWN_SKU, f"sku {_shown(sku)} is not in the catalog")
    # 6. future
    if (start + seconds) * 1000 > receipt_ms + FUTURE_TOLERANCE_MS:
        return Rejection(FUTURE, "ends more than 5 minutes after it was received")
    # 7. too_late
    if start * 1000 < receipt_ms - catalog.acceptance_horizon_days * 86_400_000:
        return Rejection(
            TOO_LATE, f"starts more than {catalog.acceptance_horizon_days} days before it was received"
        )
    # 8. unregistered_gpu: the provider's own GPU, of this SKU, in service throughout.
    if catalog.require_registered_gpus:
        registration = catalog.gpus.get(gpu_uuid)
        if (
            registration is None
            or (registration.provider, registration.sku) != (provider, sku)
            or not registration.in_service(start, start + seconds)
        ):
            # Says nothing of whose GPU it is, or when it is in service: that is its owner's.
            return Rejection(
                UNREGISTERED_GPU, "no registration of this GPU by this provider, for this SKU, in service for every second"
            )
    # 9. no_price: versions apply until the next one, so coverage starts at the first.
    priced_from = catalog.priced_from(reseller, sku)
    if priced_from is None or start < priced_from:
        return Rejection(NO_PRICE, f"no retail price of ({reseller}, {sku}) in effect")
    # 10. no_agreement
    if provider != reseller:
        agreed_from = catalog.agreed_from(reseller, provider, sku)
        if agreed_from is None or start < agreed_from:
            return Rejection(NO_AGREEMENT, f"no agreement of ({reseller}, {provider}, {sku}) in effect")
    return usage
