"""Constrained string types shared by the wire contracts (no logic)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

# A settlement period: a calendar month in the catalog's timezone (SPEC.md, "Periods").
Period = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$"),
    Field(description="A settlement period, YYYY-MM (for example 2026-10)."),
]

# How statements and bundles print an instant: UTC, whole seconds, `Z`.
UtcInstant = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
        r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$"
    ),
    Field(description="A UTC instant in whole seconds, for example 2025-12-31T15:00:00Z."),
]

# A price as statements print it: the shortest exact decimal, at most 4 fractional digits.
Price = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]+(\.[0-9]{1,4})?$"),
    Field(description="Yen per GPU-hour as a decimal string, at most 4 fractional digits."),
]

Yen = Annotated[int, Field(ge=0, description="An amount in whole yen.")]

SkuId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]

# SPEC.md, check 2 (`schema`): the reseller's customer, 1-64 characters in 0x20-0x7E.
Tenant = Annotated[
    str,
    StringConstraints(pattern=r"^[\x20-\x7E]{1,64}$"),
    Field(description="The reseller's customer: 1-64 characters in 0x20-0x7E (space included)."),
]

Sha256Hex = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{64}$"),
    Field(description="A SHA-256 digest: 64 lowercase hexadecimal digits."),
]
