"""The catalog file (TOML) as a pydantic model: its shape only.

Rules that need more than the shape (versions that collide, references to unknown
members) are checked by `ledger.catalog`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from schemas.common import Period, Tenant

MemberId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,31}$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# At most four fractional digits; positivity is checked by ledger.domain.catalog.
YenPerHour = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{1,12}(\.[0-9]{1,4})?$"),
    Field(description="Yen per GPU-hour: a decimal string, at most 4 fractional digits, > 0."),
]
# An RFC 3339 instant with an offset (TOML may also give an offset date-time value).
Instant = Annotated[
    str | datetime,
    Field(description="RFC 3339 instant with an offset, in whole seconds: from it the version applies."),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Member(_Strict):
    """A GPU-cloud company of the alliance; its id never changes."""

    id: MemberId
    name: NonEmpty
    invoice_registration: Annotated[
        str,
        StringConstraints(pattern=r"^T[0-9]{13}$"),
        Field(description="T and a 13-digit corporate number whose first digit is the check digit "
                          "of the other twelve (SPEC.md; checked by ledger.domain.catalog)."),
    ] | None = None


class Sku(_Strict):
    """A GPU product."""

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]
    description: str = ""


class RetailPrice(_Strict):
    """What a reseller charges its tenants, versioned by (reseller, sku, effective_from)."""

    reseller: MemberId
    sku: NonEmpty
    yen_per_gpu_hour: YenPerHour
    effective_from: Instant


class Agreement(_Strict):
    """What a reseller owes a provider, versioned by (reseller, provider, sku, effective_from).

    Exactly one of `wholesale_yen_per_gpu_hour` and `provider_share_bps` (checked by
    `ledger.catalog`).
    """

    reseller: MemberId
    provider: MemberId
    sku: NonEmpty
    effective_from: Instant
    wholesale_yen_per_gpu_hour: YenPerHour | None = None
    provider_share_bps: Annotated[int, Field(ge=0, le=10000)] | None = None


Region = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,31}$")]
GpuUuid = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7E]{1,128}$")]


class Gpu(_Strict):
    """A provider's physical GPU (SPEC.md, "GPU registry"); a uuid is registered once."""

    uuid: GpuUuid
    provider: MemberId
    sku: NonEmpty
    region: Region
    registered_from: Instant
    retired_from: Instant | None = Field(None, description="Exclusive; later than registered_from.")


class Grant(_Strict):
    """Credit a member funds for a reseller's tenant (SPEC.md, "Credits (grants)")."""

    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    funder: MemberId
    reseller: MemberId
    tenant: Tenant
    amount_yen: Annotated[int, Field(gt=0, le=10**15)]
    skus: Annotated[list[NonEmpty], Field(min_length=1)] | None = Field(
        None, description="The SKUs it covers; omitted: every SKU."
    )
    providers: Annotated[list[MemberId], Field(min_length=1)] | None = Field(
        None, description="Whose GPUs it pays for; omitted: any provider's. A funder that lists only "
                          "itself pays only for usage on its own GPUs.",
    )
    first_period: Period
    last_period: Period


class CatalogFile(_Strict):
    """A catalog file (SPEC.md, "Catalog (TOML)"); omitted settings take their defaults."""

    currency: str | None = None
    timezone: str | None = None
    tax_rate_percent: Annotated[int, Field(ge=0, le=100)] | None = None
    acceptance_horizon_days: Annotated[int, Field(ge=0, le=36500)] | None = None
    require_registered_gpus: bool | None = None
    dispute_window_days: Annotated[int, Field(ge=0, le=36500)] | None = Field(
        None, description="How long after a service period its usage may be disputed (default 60); "
                          "may be set by a later file when no file has set it."
    )
    payment_terms_days: Annotated[int, Field(ge=0, le=3650)] | None = Field(
        None, description="Transfers are due this many days after their period (default 30); "
                          "may be set by a later file when no file has set it."
    )
    members: list[Member] = []
    skus: list[Sku] = []
    retail_prices: list[RetailPrice] = []
    agreements: list[Agreement] = []
    gpus: list[Gpu] = []
    grants: list[Grant] = []
