"""Loading a catalog file: all or nothing, under SPEC.md's load rules.

The file is parsed and checked on its own first (`ledger.domain.catalog.parse_catalog`),
so a bad file is refused before anything is opened; then merged into the stored catalog
while loads are serialized and a close waits, so "inside a closed period" stays true
until the load commits.
"""

from __future__ import annotations

import hashlib

from ledger.domain.catalog import Catalog, CatalogFileContent
from ledger.domain.catalog_file import parse_catalog
from ledger.domain.instants import format_utc
from ledger.domain.ports import Store


def summary_of(before: Catalog, after: Catalog) -> dict:
    """How many of each kind of thing a load adds."""

    def versions_added(old: dict, new: dict) -> int:
        return sum(1 for key, versions in new.items() for v in versions if v not in old.get(key, ()))

    return {
        "members_added": len(set(after.members) - set(before.members)),
        "skus_added": len(set(after.skus) - set(before.skus)),
        "retail_prices_added": versions_added(before.prices, after.prices),
        "agreements_added": versions_added(before.agreements, after.agreements),
        "gpus_added": len(set(after.gpus) - set(before.gpus)),
        "gpus_retired": sum(
            1 for uuid, gpu in after.gpus.items()
            if gpu.retired_from is not None and (uuid not in before.gpus or before.gpus[uuid].retired_from is None)
        ),
        "grants_added": len(set(after.grants) - set(before.grants)),
    }


def registrations(found: tuple[Catalog, int], provider: str | None = None) -> list[dict]:
    """The registry as JSON-ready rows, by uuid (a provider's only, when given)."""
    catalog, _ = found
    return [
        {"uuid": g.uuid, "provider": g.provider, "sku": g.sku, "region": g.region,
         "registered_from": format_utc(g.registered_from),
         "retired_from": None if g.retired_from is None else format_utc(g.retired_from)}
        for _, g in sorted(catalog.gpus.items())
        if provider is None or g.provider == provider
    ]


async def load(store: Store, data: bytes, source: str) -> dict:
    """Load a catalog file's bytes; return what it added and the revision after it."""
    return await load_parsed(store, parse_catalog(data, source), hashlib.sha256(data).hexdigest(), source)


async def load_parsed(store: Store, content: CatalogFileContent, sha256: str, source: str) -> dict:
    """Merge an already parsed file into the stored catalog (see `load`)."""
    async with store.catalog_load() as tx:
        closed_through = await tx.closed_through()
        current, revision = await tx.catalog()
        closed_before = None
        if closed_through is not None:
            closed_before = current.calendar.bounds(closed_through)[1]
        merged = current.merge(content, closed_before)
        summary = summary_of(current, merged)
        if current.loaded and not any(summary.values()):
            return {**summary, "revision": revision}
        return {**summary, "revision": await tx.add(current, merged, source, sha256)}
