"""The alliance operator's pages (an admin token; an auditor's reads them and closes
nothing): every member, the close with what it would change before it is confirmed,
disputes awaiting a decision, overdue transfers, dead letters by reason, and how far the
workers have applied each partition."""

from __future__ import annotations

import time

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ledger.domain.access import Caller
from ledger.domain.errors import Forbidden
from ledger.domain.instants import format_utc
from ledger.domain.periods import next_period
from ledger.http.auth import require_admin
from ledger.http.portal import common, render, workers
from ledger.http.portal.common import SignedIn
from ledger.http.portal.months import checked
from ledger.service import books, disputes, payments

router = APIRouter(include_in_schema=False)

DEAD_LETTER_DAYS = 30


def operator_only(caller: Caller) -> None:
    if caller.member is not None:
        raise Forbidden("this page is for the alliance operator", code="operator_only")


async def dead_letter_reasons(store, now: int) -> list[tuple[str, int]]:
    async with store.snapshot() as reader:
        counts = await reader.dead_letter_counts((now - DEAD_LETTER_DAYS * 86400) * 1000, (now + 1) * 1000)
    return sorted(((reason, count) for reason, count in counts.items() if count), key=lambda rc: (-rc[1], rc[0]))


async def pipeline(store, worker_urls: tuple[str, ...], version: tuple[int, int]) -> dict:
    """Where the ledger is per partition (its positions, when they last moved), and what
    the workers say of themselves (how many answer, each partition's lag)."""
    positions = await store.pipeline_positions()
    seen = await workers.read(worker_urls)
    last = max((moved for *_, moved in positions if moved is not None), default=None)
    return {"positions": [(topic, partition, offset, format_utc(moved) if moved else None,
                           seen.lag.get((topic, partition)))
                          for topic, partition, offset, moved in positions],
            "last_applied": format_utc(last) if last else None,
            "batches_metered": version[1],
            "workers": seen}


@router.get("/portal/operator")
async def overview(request: Request, who: SignedIn) -> Response:
    operator_only(who.caller)
    ledger = common.ledger_of(request)
    catalog, version = await ledger.catalog_and_version()
    now = int(time.time())
    awaiting = [d for d in (await disputes.listing(ledger.store, who.caller))["disputes"] if d["state"] == "escalated"]
    overdue = [t for t in (await payments.listing(ledger.store, who.caller))["transfers"] if t["status"] == "overdue"]
    async with ledger.store.snapshot() as reader:
        closed_through = await reader.closed_through()
    nets = {}
    if closed_through is not None:  # each member's net of the last closed month
        ledger.limiter.take(who.caller, "statements")
        nets = orjson.loads((await ledger.statement(closed_through)).document)["net_yen"]
    return render.page(
        request, "operator.html", who, members=sorted(catalog.members.values(), key=lambda m: m.id), nets=nets,
        closed_through=closed_through, awaiting=awaiting, overdue=overdue,
        reasons=await dead_letter_reasons(ledger.store, now),
        pipeline=await pipeline(ledger.store, ledger.settings.worker_metrics_urls, version),
        days=DEAD_LETTER_DAYS,
    )


@router.get("/portal/operator/close")
async def close_preview(request: Request, who: SignedIn, period: str = "") -> Response:
    """What closing through `period` would store: the periods it closes and the statement
    of `period` as it stands now (which the close freezes), before it is confirmed."""
    operator_only(who.caller)
    ledger = common.ledger_of(request)
    async with ledger.store.snapshot() as reader:
        closed_through = await reader.closed_through()
    first = next_period(closed_through) if closed_through else None
    period = checked(period) if period else (first or "")
    view = None
    if period and (closed_through is None or period > closed_through):
        ledger.limiter.take(who.caller, "statements")
        view = orjson.loads((await ledger.statement(period)).document)
    return render.page(request, "close.html", who, period=period, closed_through=closed_through, first=first,
                       view=view)


@router.post("/portal/operator/close")
async def close(request: Request, who: SignedIn) -> Response:
    fields = await common.form(request, who.csrf)
    require_admin(who.caller)
    period = checked(fields.get("period", ""))
    await books.statement(common.ledger_of(request).store, period, close=True)
    return common.redirect(f"/portal/months/{period}")
