"""The auditor bundle's `manifest.json` (docs/auditor-bundle.md) as a pydantic model.

`manifest.sig` holds the Ed25519 signature of the manifest's exact bytes; what
`gpuledger verify` checks beyond this shape is described in docs/auditor-bundle.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from schemas.common import Period, Sha256Hex, UtcInstant


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class FileEntry(_Strict):
    """One file of the bundle: its digest and size."""

    sha256: Sha256Hex
    bytes: Annotated[int, Field(ge=0, description="Size of the file in bytes.")]


class ChainHead(_Strict):
    """The period's last journal entry (the last line of journal.ndjson)."""

    seq: Annotated[int, Field(ge=0)]
    hash: Sha256Hex


class Manifest(_Strict):
    """What the bundle holds; signed by manifest.sig."""

    format: Literal[
        "gpuledger-audit-bundle/1", "gpuledger-audit-bundle/2", "gpuledger-audit-bundle/3",
        "gpuledger-audit-bundle/4",
    ] = Field(
        description="/2 adds grants.json (the grants behind the statement's credits), /3 "
        "corrections.json (the voids and original lines behind its returns); /4 writes "
        "evidence.ndjson as runs of billed seconds per GPU and UTC day."
    )
    period: Period
    created_at: UtcInstant
    files: dict[Annotated[str, StringConstraints(min_length=1)], FileEntry] = Field(
        description="Every file of the bundle but manifest.json and manifest.sig, by name."
    )
    chain_head: ChainHead
    key_id: Sha256Hex = Field(description="SHA-256 of the raw 32-byte Ed25519 public key.")
    signature_algorithm: Literal["Ed25519"]
