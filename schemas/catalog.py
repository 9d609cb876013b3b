"""The catalog file (TOML) as a pydantic model: its shape only.

Rules that need more than the shape (versions that collide, references to unknown
members) are checked by `ledger.catalog`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MemberId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,31}$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# At most four fractional digits; positivity is checked by ledger.catalog.
YenPerHour = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,12}(\.[0-9]{1,4})?$")]
# An RFC 3339 instant with an offset (TOML may also give an offset date-time value).
Instant = str | datetime


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Member(_Strict):
    id: MemberId
    name: NonEmpty
    invoice_registration: Annotated[str, StringConstraints(pattern=r"^T[0-9]{13}$")] | None = None


class Sku(_Strict):
    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]
    description: str = ""


class RetailPrice(_Strict):
    reseller: MemberId
    sku: NonEmpty
    yen_per_gpu_hour: YenPerHour
    effective_from: Instant


class Agreement(_Strict):
    reseller: MemberId
    provider: MemberId
    sku: NonEmpty
    effective_from: Instant
    wholesale_yen_per_gpu_hour: YenPerHour | None = None
    provider_share_bps: Annotated[int, Field(ge=0, le=10000)] | None = None


class CatalogFile(_Strict):
    currency: str | None = None
    timezone: str | None = None
    tax_rate_percent: Annotated[int, Field(ge=0, le=100)] | None = None
    acceptance_horizon_days: Annotated[int, Field(ge=0, le=36500)] | None = None
    members: list[Member] = []
    skus: list[Sku] = []
    retail_prices: list[RetailPrice] = []
    agreements: list[Agreement] = []
