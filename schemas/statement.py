"""The settlement statement (SPEC.md, "Settlement statement (JSON)") as pydantic models.

What `gpuledger settle PERIOD` prints. Yen amounts are JSON integers, prices decimal
strings, instants UTC strings. Rules beyond the shape (the sort orders of `lines`,
`tenant_invoices` and `member_invoices`, nets summing to zero, the netting's transfers)
are SPEC.md's, not checked here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.catalog import MemberId
from schemas.common import Period, Price, SkuId, Tenant, UtcInstant, Yen


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, serialize_by_alias=True)


class StatementLine(_Strict):
    """GPU-seconds of one (reseller, tenant, provider, sku, service period, versions) key."""

    reseller: MemberId
    tenant: Tenant
    provider: MemberId
    sku: SkuId
    service_period: Period
    retail_price_from: UtcInstant = Field(description="effective_from of the retail price version.")
    agreement_from: UtcInstant | None = Field(
        description="effective_from of the agreement version; null when provider == reseller."
    )
    gpu_seconds: int = Field(ge=1)
    retail_yen_per_gpu_hour: Price
    retail_yen: Yen
    wholesale_yen: Yen


class TenantInvoice(_Strict):
    """Reseller -> tenant, over the retail amounts of that pair's lines, less credits."""

    reseller: MemberId
    tenant: Tenant
    retail_yen: int = Field(description="The sum of retail_yen of the pair's lines, less its returns'.")
    credit_yen: int = Field(
        description="What grants cover of those lines, less what its returns restore to grants (0 when neither)."
    )
    subtotal_yen: int = Field(description="retail_yen - credit_yen; tax is on this; below zero: a net refund.")
    tax_yen: int = Field(description="subtotal_yen x the tax rate / 100, rounded toward zero.")
    total_yen: int


class MemberInvoice(_Strict):
    """Provider -> reseller (provider != reseller), over the wholesale amounts."""

    provider: MemberId
    reseller: MemberId
    subtotal_yen: int = Field(description="The lines' wholesale_yen less the returns'; below zero: a net refund.")
    tax_yen: int = Field(description="subtotal_yen x the tax rate / 100, rounded toward zero.")
    total_yen: int


class GrantDraw(_Strict):
    """What one grant covered in this booking period, over all its tenant's lines."""

    grant: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    funder: MemberId
    reseller: MemberId
    tenant: Tenant
    amount_yen: Annotated[int, Field(ge=0, description="This period's draws, not the grant's amount.")]
    restored_yen: Annotated[int, Field(ge=0, description="What this period's returns gave back to it.")] = Field(
        0, description="Absent from statements closed before 2026-12-07."
    )


class Return(_Strict):
    """GPU-seconds of a closed booking period's line that a void took back, given back here
    (amounts as positive numbers)."""

    reseller: MemberId
    tenant: Tenant
    provider: MemberId
    sku: SkuId
    service_period: Period
    booking_period: Period = Field(description="The closed period whose statement holds the original line.")
    retail_price_from: UtcInstant
    agreement_from: UtcInstant | None
    gpu_seconds: int = Field(ge=1)
    retail_yen_per_gpu_hour: Price
    retail_yen: Yen
    wholesale_yen: Yen
    tenant_refund_yen: Yen = Field(description="What goes back to the tenant.")
    credit_restored_yen: Yen = Field(description="What goes back to the grants that drew on the line.")


class Transfer(_Strict):
    """One payment of the netting: `from` pays `to`."""

    from_: MemberId = Field(alias="from", description="The debtor that pays.")
    to: MemberId = Field(description="The creditor that is paid.")
    amount_yen: Annotated[int, Field(ge=1)]


class Statement(_Strict):
    """A booking period's settlement statement."""

    period: Period
    currency: Literal["JPY"]
    closed: bool = Field(description="Whether the period is closed at the time of printing.")
    lines: list[StatementLine]
    tenant_invoices: list[TenantInvoice]
    member_invoices: list[MemberInvoice]
    returns: list[Return] = Field(
        default_factory=list,
        description="Voided seconds of closed periods' lines, given back here; absent from statements "
                    "closed before 2026-12-07.",
    )
    grant_draws: list[GrantDraw] = Field(
        description="One per grant that drew or was restored in this period, by grant id."
    )
    net_yen: dict[MemberId, int] = Field(
        description="Every member known when computed, zeros included; the nets sum to zero.",
        # pydantic states the key pattern as patternProperties only; the model refuses
        # other keys, so the schema says so too.
        json_schema_extra={"additionalProperties": False},
    )
    transfers: list[Transfer] = Field(description="In the order the netting produces them.")
