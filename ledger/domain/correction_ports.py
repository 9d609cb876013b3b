"""What the auditor bundle and `gpuledger verify --db` read of voids and disputes, as the
ports of `ledger.domain.ports` are: a Protocol whose docstrings are its contract, held to
both stores by `tests/postgres/test_store_contract.py`. `ports.ExportReader` includes it.
"""

from __future__ import annotations

from typing import Protocol

from ledger.domain.correction_records import DisputeRow, VoidedBits
from ledger.domain.metering import ClaimKey


class CorrectionsReader(Protocol):
    """Voids with what each took, disputes, and the claims voids took from (one snapshot)."""

    async def void_parts(self, returned_in: str | None = None) -> list[tuple[str, VoidedBits]]:
        """(void id, what it took from one claim), voids oldest first, each void's parts
        in claim key order: every part of the voids that return seconds in booking period
        `returned_in` (None: of every void)."""

    async def dispute_rows(self) -> list[DisputeRow]:
        """Every dispute with its moves, in the order they were opened."""

    async def claim_bits(self, keys: list[ClaimKey]) -> dict[ClaimKey, int]:
        """The bits each of these claims was billed with (a key with no claim is left out)."""
