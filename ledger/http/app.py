"""The usage API's application: routes, errors, metrics, and what they share.

Every request carries `Authorization: Bearer <token>` (`gpuledger token create`). What
lies outside a token's scope is answered exactly like what does not exist (404), so a
member cannot even learn that another member's tenant or statement line exists.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from ledger.domain.ports import Publisher, Store
from ledger.http import errors
from ledger.http.auth import Ledger
from ledger.http.metrics import instrument
from ledger.http.offload import ProcessPool, StoreFactory
from ledger.http.portal import install as install_portal
from ledger.http.routes import (
    admin,
    dead_letters,
    disputes,
    documents,
    events,
    grants,
    payments,
    reports,
    statements,
    system,
    usage,
    voids,
)
from ledger.service import tokens
from ledger.settings import Settings

# How the app gets its store and publisher, in its own event loop (the composition root
# decides which); each returns an object with `close()`.
StoreOpener = Callable[[], Awaitable[Store]]
PublisherOpener = Callable[[], Awaitable[Publisher]]


def _pools(settings: Settings, worker_store: StoreFactory | None) -> dict:
    """The statement, query and document pools: worker processes with their own store,
    when the composition root says how they open one (else the routes run them inline)."""
    if worker_store is None:
        return {}
    limits = settings.api_limits
    return {
        "statement_pool": ProcessPool("statement", limits.statement_processes, worker_store, pause_gc=True),
        "query_pool": ProcessPool("query", limits.query_processes, worker_store),
        "document_pool": ProcessPool("document", limits.document_processes, worker_store),
    }


def _lifespan(settings: Settings, open_store: StoreOpener, open_publisher: PublisherOpener | None,
              ready_file: Path | None, worker_store: StoreFactory | None):
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = await open_store()
        publisher = await open_publisher() if open_publisher else None
        ledger = None
        try:
            ledger = Ledger(settings, store, publisher, **_pools(settings, worker_store))
            ledger.statement_pool.warm()  # the first statement and query should not wait
            ledger.query_pool.warm()  # for a process to start
            ledger.pseudonym_key = await tokens.pseudonym_key(store)
            app.state.ledger = ledger
            if ready_file is not None:
                ready_file.parent.mkdir(parents=True, exist_ok=True)
                ready_file.write_text(str(os.getpid()))
            yield
        finally:
            for pool in ledger.pools if ledger is not None else ():
                await pool.close()
            if publisher is not None:
                await publisher.close()
            await store.close()

    return lifespan


def create_app(
    settings: Settings,
    open_store: StoreOpener,
    open_publisher: PublisherOpener | None = None,
    ready_file: Path | None = None,
    worker_store: StoreFactory | None = None,
) -> FastAPI:
    """The API; `worker_store` (picklable) opens a store in a worker process, so
    statements, usage queries and documents are computed away from the event loop
    (`ledger.http.offload`)."""
    app = FastAPI(
        title="gpuledger usage API",
        version="1",
        description="GPU-second usage and its running cost, scoped per alliance member.",
        lifespan=_lifespan(settings, open_store, open_publisher, ready_file, worker_store),
        responses=errors.responses(401, 404),
    )
    for module in (system, usage, statements, grants, reports, documents, events, admin, dead_letters, voids,
                   disputes, payments):
        app.include_router(module.router)
    errors.install(app)
    install_portal(app)  # /portal: the members' web pages over the same services
    instrument(app)  # gpuledger_http_* and gpuledger_api_events_accepted_total
    return app
