"""The settlement statement as a typed value, and its one JSON form.

`ledger.domain.rating.statement` builds a `Statement`; every reader reads its attributes.
`Statement.to_document` is the only place that turns it into SPEC.md's JSON ("Settlement
statement (JSON)", keys in SPEC's order) and `Statement.from_document` the only place that
reads one back. Instants are Unix seconds, prices the decimal text the statement prints,
amounts integer yen.

A closed period prints the bytes stored when it closed, and statements gained fields
since (SPEC.md, "Changes to this contract"): `grant_draws` and the tenant invoices'
`retail_yen` and `credit_yen` on 2026-11-30, `returns` and each draw's `restored_yen` on
2026-12-07. A field a stored statement lacks is None here (not empty, not 0), so a
statement read back from any of those forms writes exactly the document it was read from.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ledger.domain.instants import format_utc, parse_instant


@lru_cache(maxsize=4096)
def _instant(text: str) -> int:
    """A statement's instant (`2025-12-31T15:00:00Z`) as Unix seconds. Cached: a statement
    prints the same few version starts on every line."""
    found = parse_instant(text, allow_fraction=False)
    if found is None or format_utc(found) != text:
        raise ValueError(f"{text!r} is not an instant as a statement prints it")
    return found


def printed_instant(instant: int | None) -> str | None:
    """An instant as a statement prints it (None: null)."""
    return None if instant is None else format_utc(instant)


def _optional_instant(text: str | None) -> int | None:
    return None if text is None else _instant(text)


@dataclass(frozen=True, slots=True)
class StatementLine:
    """The billed seconds of one attribution, service period and pair of versions."""

    reseller: str
    tenant: str
    provider: str
    sku: str
    service_period: str
    retail_price_from: int  # the retail price version's effective_from
    agreement_from: int | None  # the agreement version's; None when provider == reseller
    gpu_seconds: int
    retail_yen_per_gpu_hour: str  # decimal text, as printed
    retail_yen: int
    wholesale_yen: int

    def to_document(self) -> dict:
        # Written out, not through helpers: a statement may have 100,000 lines.
        agreement_from = self.agreement_from
        return {
            "reseller": self.reseller, "tenant": self.tenant, "provider": self.provider, "sku": self.sku,
            "service_period": self.service_period,
            "retail_price_from": format_utc(self.retail_price_from),
            "agreement_from": None if agreement_from is None else format_utc(agreement_from),
            "gpu_seconds": self.gpu_seconds, "retail_yen_per_gpu_hour": self.retail_yen_per_gpu_hour,
            "retail_yen": self.retail_yen, "wholesale_yen": self.wholesale_yen,
        }

    @classmethod
    def from_document(cls, d: dict) -> StatementLine:
        agreement_from = d["agreement_from"]
        return cls(
            d["reseller"], d["tenant"], d["provider"], d["sku"], d["service_period"],
            _instant(d["retail_price_from"]), None if agreement_from is None else _instant(agreement_from),
            d["gpu_seconds"], d["retail_yen_per_gpu_hour"], d["retail_yen"], d["wholesale_yen"],
        )


@dataclass(frozen=True, slots=True)
class TenantInvoice:
    """A reseller's invoice to its tenant. `retail_yen` and `credit_yen` are None in a
    statement closed before credits existed (2026-11-30): its subtotal was its retail."""

    reseller: str
    tenant: str
    retail_yen: int | None
    credit_yen: int | None
    subtotal_yen: int
    tax_yen: int
    total_yen: int

    @property
    def retail(self) -> int:
        """The retail before credits, whichever form the statement has."""
        return self.subtotal_yen if self.retail_yen is None else self.retail_yen

    @property
    def credit(self) -> int:
        """What grants paid of it (0 in a statement closed before credits existed)."""
        return self.credit_yen or 0

    def to_document(self) -> dict:
        document: dict = {"reseller": self.reseller, "tenant": self.tenant}
        if self.retail_yen is not None:
            document["retail_yen"] = self.retail_yen
        if self.credit_yen is not None:
            document["credit_yen"] = self.credit_yen
        document.update(subtotal_yen=self.subtotal_yen, tax_yen=self.tax_yen, total_yen=self.total_yen)
        return document

    @classmethod
    def from_document(cls, d: dict) -> TenantInvoice:
        return cls(
            d["reseller"], d["tenant"], d.get("retail_yen"), d.get("credit_yen"),
            d["subtotal_yen"], d["tax_yen"], d["total_yen"],
        )


@dataclass(frozen=True, slots=True)
class MemberInvoice:
    """A provider's invoice to a reseller for the wholesale of its GPUs."""

    provider: str
    reseller: str
    subtotal_yen: int
    tax_yen: int
    total_yen: int

    def to_document(self) -> dict:
        return {
            "provider": self.provider, "reseller": self.reseller,
            "subtotal_yen": self.subtotal_yen, "tax_yen": self.tax_yen, "total_yen": self.total_yen,
        }

    @classmethod
    def from_document(cls, d: dict) -> MemberInvoice:
        return cls(d["provider"], d["reseller"], d["subtotal_yen"], d["tax_yen"], d["total_yen"])


@dataclass(frozen=True, slots=True)
class Return:
    """Seconds of a closed period's line given back in this booking period (amounts given
    back, as positive numbers; SPEC.md, "Corrections")."""

    reseller: str
    tenant: str
    provider: str
    sku: str
    service_period: str
    booking_period: str  # the closed period whose line it returns
    retail_price_from: int
    agreement_from: int | None
    gpu_seconds: int
    retail_yen_per_gpu_hour: str
    retail_yen: int
    wholesale_yen: int
    tenant_refund_yen: int
    credit_restored_yen: int

    def to_document(self) -> dict:
        return {
            "reseller": self.reseller, "tenant": self.tenant, "provider": self.provider, "sku": self.sku,
            "service_period": self.service_period, "booking_period": self.booking_period,
            "retail_price_from": format_utc(self.retail_price_from),
            "agreement_from": printed_instant(self.agreement_from),
            "gpu_seconds": self.gpu_seconds, "retail_yen_per_gpu_hour": self.retail_yen_per_gpu_hour,
            "retail_yen": self.retail_yen, "wholesale_yen": self.wholesale_yen,
            "tenant_refund_yen": self.tenant_refund_yen, "credit_restored_yen": self.credit_restored_yen,
        }

    @classmethod
    def from_document(cls, d: dict) -> Return:
        return cls(
            d["reseller"], d["tenant"], d["provider"], d["sku"], d["service_period"], d["booking_period"],
            _instant(d["retail_price_from"]), _optional_instant(d["agreement_from"]),
            d["gpu_seconds"], d["retail_yen_per_gpu_hour"], d["retail_yen"], d["wholesale_yen"],
            d["tenant_refund_yen"], d["credit_restored_yen"],
        )


@dataclass(frozen=True, slots=True)
class GrantDraw:
    """What one grant drew (and had restored) in this booking period. `restored_yen` is
    None in a statement closed before returns existed (2026-12-07)."""

    grant: str
    funder: str
    reseller: str
    tenant: str
    amount_yen: int
    restored_yen: int | None

    @property
    def restored(self) -> int:
        return self.restored_yen or 0

    @property
    def reimbursed(self) -> bool:
        """Whether the funder is another member than the reseller, who is owed the draw."""
        return self.funder != self.reseller

    def to_document(self) -> dict:
        document = {
            "grant": self.grant, "funder": self.funder, "reseller": self.reseller, "tenant": self.tenant,
            "amount_yen": self.amount_yen,
        }
        if self.restored_yen is not None:
            document["restored_yen"] = self.restored_yen
        return document

    @classmethod
    def from_document(cls, d: dict) -> GrantDraw:
        return cls(d["grant"], d["funder"], d["reseller"], d["tenant"], d["amount_yen"], d.get("restored_yen"))


@dataclass(frozen=True, slots=True)
class Transfer:
    """One payment of the netting: `payer` pays `payee` (SPEC's `from` and `to`)."""

    payer: str
    payee: str
    amount_yen: int

    def to_document(self) -> dict:
        return {"from": self.payer, "to": self.payee, "amount_yen": self.amount_yen}

    @classmethod
    def from_document(cls, d: dict) -> Transfer:
        return cls(d["from"], d["to"], d["amount_yen"])


@dataclass(frozen=True, slots=True)
class Statement:
    """A booking period's settlement statement (SPEC.md). `returns` and `grant_draws` are
    None in a statement closed before they existed; today's statements always have both
    (empty when nothing was returned or drawn). `net_yen` is read only: member -> yen,
    every member known when it was computed, in member order."""

    period: str
    currency: str
    closed: bool
    lines: tuple[StatementLine, ...]
    tenant_invoices: tuple[TenantInvoice, ...]
    member_invoices: tuple[MemberInvoice, ...]
    returns: tuple[Return, ...] | None
    grant_draws: tuple[GrantDraw, ...] | None
    net_yen: dict[str, int]
    transfers: tuple[Transfer, ...]

    @property
    def draws(self) -> tuple[GrantDraw, ...]:
        """The grant draws, none in a statement closed before credits existed."""
        return self.grant_draws or ()

    def to_document(self) -> dict:
        """SPEC.md's JSON, keys in its order (orjson keeps them): the one serialisation."""
        document: dict = {
            "period": self.period, "currency": self.currency, "closed": self.closed,
            "lines": [line.to_document() for line in self.lines],
            "tenant_invoices": [invoice.to_document() for invoice in self.tenant_invoices],
            "member_invoices": [invoice.to_document() for invoice in self.member_invoices],
        }
        if self.returns is not None:
            document["returns"] = [entry.to_document() for entry in self.returns]
        if self.grant_draws is not None:
            document["grant_draws"] = [draw.to_document() for draw in self.grant_draws]
        document["net_yen"] = dict(self.net_yen)
        document["transfers"] = [transfer.to_document() for transfer in self.transfers]
        return document

    @staticmethod
    def draws_of(d: dict) -> tuple[GrantDraw, ...]:
        """The grant draws of a statement's JSON (none before credits existed), without
        reading the rest of it."""
        return tuple(map(GrantDraw.from_document, d.get("grant_draws") or ()))

    @classmethod
    def from_document(cls, d: dict) -> Statement:
        """A statement read back from its JSON, in any form one was ever stored in
        (KeyError, TypeError or ValueError for a document that is not a statement)."""
        returns, draws = d.get("returns"), d.get("grant_draws")
        return cls(
            d["period"], d["currency"], d["closed"],
            tuple(map(StatementLine.from_document, d["lines"])),
            tuple(map(TenantInvoice.from_document, d["tenant_invoices"])),
            tuple(map(MemberInvoice.from_document, d["member_invoices"])),
            None if returns is None else tuple(map(Return.from_document, returns)),
            None if draws is None else tuple(map(GrantDraw.from_document, draws)),
            dict(d["net_yen"]),
            tuple(map(Transfer.from_document, d["transfers"])),
        )
