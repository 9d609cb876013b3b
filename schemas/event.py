"""The usage event (CloudEvents 1.0, structured JSON) as a pydantic model.

A contract model: it documents SPEC.md's check 2 (`schema`) and is the source of
`json/usage-event.schema.json`. The product does not use it; `ledger.events` checks
events with hand-written code, for speed. `tests/schemas/test_schemas.py` holds the two to
the same verdict.

JSON types are strict (nothing is coerced: `"60"`, `60.0` and `true` are not integers).
Other attributes, and other keys in `data`, are allowed and ignored.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from schemas.common import Tenant

# SPEC.md, "Usage event": the form of `time`. The fraction, of any length, is floored.
TIME_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_OFFSET = re.compile(r"[+-]([0-9]{2}):([0-9]{2})$")
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _a_real_date_time(text: str) -> str:
    """What the pattern cannot say: the date exists, the time and the offset are in range.

    Runs after the pattern has matched, so the fields are at fixed positions. The
    calendar is the proleptic Gregorian one, so every four-digit year is valid.
    """
    year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
    hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= month <= 12:
        raise ValueError("time: month out of range")
    if not 1 <= day <= (29 if month == 2 and leap else _DAYS_IN_MONTH[month - 1]):
        raise ValueError("time: no such day")
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError("time: hour, minute or second out of range (second 60 is not accepted)")
    offset = _OFFSET.search(text)
    if offset is not None and (int(offset.group(1)) > 23 or int(offset.group(2)) > 59):
        raise ValueError("time: offset out of range")
    return text


EventTime = Annotated[
    str,
    StringConstraints(strict=True, pattern=TIME_PATTERN),
    AfterValidator(_a_real_date_time),
    Field(
        description=(
            "RFC 3339 date-time of the start of the usage: the pattern, and a date and time "
            "that exist (second 60 is not accepted; offsets at most 23:59). A fraction, of "
            "any length, is dropped (floored to the whole second)."
        )
    ),
]
NonEmptyString = Annotated[str, StringConstraints(strict=True, min_length=1)]
GpuUuid = Annotated[
    str,
    StringConstraints(strict=True, pattern=r"^[\x21-\x7E]{1,128}$"),
    Field(description="The physical GPU: 1-128 characters in 0x21-0x7E, compared exactly."),
]


class UsageData(BaseModel):
    """The event's `data`: GPU `gpu_uuid` of `provider` ran for `tenant` of `reseller`."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    provider: NonEmptyString = Field(description="The member whose GPU ran the work.")
    reseller: NonEmptyString = Field(description="The member that bills the tenant.")
    tenant: Tenant
    gpu_uuid: GpuUuid
    sku: NonEmptyString = Field(description="The GPU product, an SKU id of the catalog.")
    seconds: StrictInt = Field(
        ge=1, le=3600, description="Length of the usage, [time, time + seconds): a JSON integer."
    )


class UsageEvent(BaseModel):
    """One usage event, CloudEvents 1.0 in structured mode (SPEC.md, "Usage event")."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    specversion: Literal["1.0"]
    type: Literal["gpu.usage.v1"]
    id: NonEmptyString = Field(description="With `source`, identifies the event (for tracing only).")
    source: NonEmptyString
    time: EventTime
    data: UsageData
