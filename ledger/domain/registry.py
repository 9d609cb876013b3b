"""The GPU registry and grants: what the catalog says about physical GPUs and credits.

SPEC.md, "GPU registry" and "Credits (grants)". Values only: the load rules that decide
what a file may add are `ledger.domain.catalog`'s, the checks that use a registration
are `ledger.domain.events`' (check 7), and the draws on grants are `ledger.domain.credits`'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REGION = re.compile(r"[a-z][a-z0-9-]{1,31}")
GRANT_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class Registration:
    """A provider's GPU: in service at second s when registered_from <= s < retired_from."""

    uuid: str
    provider: str
    sku: str
    region: str
    registered_from: int
    retired_from: int | None = None

    def in_service(self, start: int, end: int) -> bool:
        """Whether every second of [start, end) is in service."""
        return self.registered_from <= start and (self.retired_from is None or end <= self.retired_from)

    def seconds_in_service(self, start: int, end: int) -> int:
        """How many seconds of [start, end) are in service."""
        first = max(start, self.registered_from)
        last = end if self.retired_from is None else min(end, self.retired_from)
        return max(0, last - first)


@dataclass(frozen=True, slots=True)
class Grant:
    """Credit that `funder` gives `tenant` of `reseller`, for service periods first..last."""

    id: str
    funder: str
    reseller: str
    tenant: str
    amount_yen: int
    skus: frozenset[str] | None  # None: every SKU
    first_period: str
    last_period: str
    providers: frozenset[str] | None = None  # None: usage on any provider's GPUs

    def covers(self, reseller: str, tenant: str, sku: str, service_period: str, provider: str) -> bool:
        return (
            (reseller, tenant) == (self.reseller, self.tenant)
            and (self.skus is None or sku in self.skus)
            and (self.providers is None or provider in self.providers)
            and self.first_period <= service_period <= self.last_period
        )


def registration_check_digit(twelve: str) -> int:
    """The check digit of a corporate number's other twelve digits: 9 - (S mod 9), S the
    digits weighted 1, 2, 1, 2, ... from the rightmost."""
    total = sum(int(digit) * (1 if index % 2 == 0 else 2) for index, digit in enumerate(reversed(twelve)))
    return 9 - total % 9


def valid_invoice_registration(text: str) -> bool:
    """`T` and 13 digits whose first is the check digit of the other twelve."""
    if len(text) != 14 or text[0] != "T" or not text[1:].isascii() or not text[1:].isdigit():
        return False
    return int(text[1]) == registration_check_digit(text[2:])
