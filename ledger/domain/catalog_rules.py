"""The load rules of what a catalog file adds besides prices: registrations, grants, and
the members' registration numbers (SPEC.md, "Catalog (TOML)", "GPU registry", "Credits").

Each function takes what is stored and what a file states, and returns what is stored
after the load, or raises CatalogError naming the first thing the file may not do.
"""

from __future__ import annotations

from dataclasses import replace

from ledger.domain.errors import CatalogError
from ledger.domain.instants import format_utc
from ledger.domain.periods import Calendar
from ledger.domain.registry import Grant, Registration, valid_invoice_registration


def check_new_members(current: dict, merged: dict) -> None:
    """A member the file adds must carry a valid registration number, if any."""
    for member_id in sorted(set(merged) - set(current)):
        registration = merged[member_id].invoice_registration
        if registration is not None and not valid_invoice_registration(registration):
            raise CatalogError(
                f"member {member_id!r}: invoice_registration {registration!r} is not T and a 13-digit "
                "corporate number with a valid check digit"
            )


def merged_gpus(current: dict[str, Registration], incoming: list[Registration], members: dict, skus: dict) -> dict:
    """A uuid is registered once; a later load may repeat it, or add a retirement it lacks."""
    merged = dict(current)
    for gpu in incoming:
        _check_gpu(gpu, members, skus)
        stored = merged.get(gpu.uuid)
        if stored is None:
            merged[gpu.uuid] = gpu
        elif gpu.retired_from is None and replace(stored, retired_from=None) == gpu:
            continue  # a stored retirement that the file omits stays as stored
        elif stored.retired_from is None and replace(gpu, retired_from=None) == stored:
            merged[gpu.uuid] = gpu  # the retirement is new
        elif stored != gpu:
            raise CatalogError(
                f"GPU {gpu.uuid!r} is already registered with other details; only a retired_from "
                "it lacks may be added"
            )
    return merged


def _check_gpu(gpu: Registration, members: dict, skus: dict) -> None:
    if gpu.provider not in members:
        raise CatalogError(f"GPU {gpu.uuid!r}: provider {gpu.provider!r} is not a member")
    if gpu.sku not in skus:
        raise CatalogError(f"GPU {gpu.uuid!r}: SKU {gpu.sku!r} is not in the catalog")
    if gpu.retired_from is not None and gpu.retired_from <= gpu.registered_from:
        raise CatalogError(
            f"GPU {gpu.uuid!r}: retired_from {format_utc(gpu.retired_from)} is not after registered_from "
            f"{format_utc(gpu.registered_from)}"
        )


def merged_grants(
    current: dict[str, Grant], incoming: list[Grant], members: dict, skus: dict,
    calendar: Calendar, closed_before: int | None,
) -> dict:
    """A grant never changes; a new one may not start in a closed period."""
    merged = dict(current)
    for grant in incoming:
        stored = merged.get(grant.id)
        if stored is not None:
            if stored != grant:
                raise CatalogError(f"grant {grant.id!r} is already loaded with other values; a grant never changes")
            continue
        _check_grant(grant, members, skus)
        if closed_before is not None and calendar.bounds(grant.first_period)[0] < closed_before:
            raise CatalogError(f"grant {grant.id!r}: its first period {grant.first_period} is closed")
        merged[grant.id] = grant
    return merged


def _check_grant(grant: Grant, members: dict, skus: dict) -> None:
    for role, member in (("funder", grant.funder), ("reseller", grant.reseller)):
        if member not in members:
            raise CatalogError(f"grant {grant.id!r}: {role} {member!r} is not a member")
    for sku in sorted(grant.skus or ()):
        if sku not in skus:
            raise CatalogError(f"grant {grant.id!r}: SKU {sku!r} is not in the catalog")
    for provider in sorted(grant.providers or ()):
        if provider not in members:
            raise CatalogError(f"grant {grant.id!r}: provider {provider!r} is not a member")
    if grant.first_period > grant.last_period:
        raise CatalogError(
            f"grant {grant.id!r}: first_period {grant.first_period} is after last_period {grant.last_period}"
        )
