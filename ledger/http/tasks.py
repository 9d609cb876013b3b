"""What the API's worker processes run (`ledger.http.offload`): documents, usage queries.

Top-level coroutine functions taking the store first, so a worker process can be handed
them by name; each returns bytes or plain values, the least there is to send back.
(Statements are `ledger.service.statements.compute`.)
"""

from __future__ import annotations

import weakref

import orjson

from ledger.domain.access import Caller
from ledger.domain.catalog import Catalog
from ledger.domain.ports import Store
from ledger.domain.usage import UsageQuery
from ledger.service import documents, usage

# Each store's catalog and its revision, read again only when the revision moves (a
# catalog with a large GPU registry takes a while to read).
_catalogs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def _current_catalog(store: Store) -> Catalog:
    revision = await store.catalog_revision()
    kept = _catalogs.get(store)
    if kept is None or kept[1] != revision:
        kept = _catalogs[store] = await store.catalog()
    return kept[0]


async def usage_items(store: Store, caller: Caller, key: bytes, wanted: UsageQuery) -> list[dict]:
    """Every item of a usage query (`ledger.service.usage.items`)."""
    return await usage.items(store, await _current_catalog(store), caller, key, wanted)


async def document_list(store: Store, period: str, caller: Caller) -> bytes:
    """The caller's documents of a period, as JSON (the manifest's shape)."""
    found = await documents.gather(store, period, caller, wanted=set())
    return orjson.dumps(found.manifest())


async def document_file(store: Store, period: str, caller: Caller, path: str) -> tuple[bytes, str]:
    """One file of the caller's documents, and its format (html or pdf)."""
    kind = documents.PeriodDocuments.kind_of(path)
    found = await documents.gather(store, period, caller, wanted={kind})
    planned, suffix = found.find(path)
    content = found.content(planned)
    # Imported here for startup time: WeasyPrint and matplotlib take most of a second,
    # which only a process that makes a document should pay.
    from ledger.documents import render

    page = render.html(content)
    return (page.encode() if suffix == "html" else render.pdf(page)), suffix
