"""The records of corrections that cross the ports (`ledger.domain.ports`,
`ledger.domain.dispute_ports`): voids (SPEC.md, "Corrections") and disputes ("Disputes").

Frozen values with named fields; the stores keep them, the services decide them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.domain.metering import ClaimKey


@dataclass(frozen=True, slots=True)
class NewVoid:
    """A void as it is made (SPEC.md, "Corrections"): one GPU's [start, end) of one
    attribution, why, who made it, and the books as it found them."""

    gpu_uuid: str
    start: int
    end: int
    attribution: tuple[str, str, str, str]  # (provider, reseller, tenant, sku)
    reason: str
    dispute_id: str | None
    actor: str  # "operator" or the provider's member id
    gpu_seconds: int
    closed_through: str | None


@dataclass(frozen=True, slots=True)
class VoidedBits:
    """The bits one void took from one claim, and the booking period whose statement
    returns them (None: the claim's booking period was open; they left its lines)."""

    key: ClaimKey
    bits: int
    returned_in: str | None


@dataclass(frozen=True, slots=True)
class VoidRow:
    """A stored void, as listed."""

    id: str
    void: NewVoid
    made_at: int  # Unix seconds
    returned_in: str | None  # where its returned seconds went, if any


@dataclass(frozen=True, slots=True)
class NewDispute:
    """A dispute as it is opened: what a void names, why, and the seconds billed with that
    attribution in the interval then."""

    gpu_uuid: str
    start: int
    end: int
    attribution: tuple[str, str, str, str]  # (provider, reseller, tenant, sku)
    reason: str
    note: str
    gpu_seconds: int
    opened_by: str  # the reseller's member id
    opened_at: int  # Unix seconds, the store's clock


@dataclass(frozen=True, slots=True)
class DisputeMove:
    """One move of a dispute (`ledger.domain.disputes.ACTIONS`): who made it, when, the
    state it led to, and for an acceptance what its void took (0 and None: nothing)."""

    action: str
    state: str
    actor: str  # "operator" or a member id
    note: str
    at: int  # Unix seconds, the store's clock
    voided_gpu_seconds: int = 0
    void_id: str | None = None


@dataclass(frozen=True, slots=True)
class DisputeRow:
    """A stored dispute and its moves, oldest first."""

    id: str
    dispute: NewDispute
    moves: tuple[DisputeMove, ...]
