"""Live usage in the portal: today or this month (or a past month), by line (what a
statement line names, with a button to dispute it) or grouped by tenant, SKU, provider,
reseller or region, filtered, with a chart of GPU-hours per day (per hour
for today) that refreshes itself. The same queries as `GET /v1/usage`
(`ledger.http.auth.Ledger.usage`): the same scope, pseudonyms, cache and rate."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ledger.domain.errors import InputError
from ledger.domain.instants import format_utc, parse_instant
from ledger.domain.usage import UsageFilter
from ledger.http.portal import charts, common, render
from ledger.http.portal.common import SignedIn
from ledger.http.portal.session import Session
from ledger.service import usage

router = APIRouter(include_in_schema=False)

GROUPS = ("line", "tenant", "sku", "provider", "reseller", "region")
# "line": what a statement line names, so a reseller can open a dispute from a usage row.
LINE = ("tenant", "provider", "reseller", "sku")
FILTERS = ("tenant", "sku", "provider", "reseller", "region")
REFRESH_SECONDS = 60  # the chart asks again; an unchanged ledger answers from the cache


def today_start(timezone: str, now: float) -> int:
    """The start of today in the catalog's timezone, Unix seconds."""
    moment = datetime.fromtimestamp(now, ZoneInfo(timezone))
    return int(moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())


def asked(request: Request) -> dict[str, str]:
    """What the page was asked: the range (today, month or a period), the grouping, the filters."""
    params = request.query_params
    shown = {"range": params.get("range", "month"), "period": params.get("period", ""),
             "group_by": params.get("group_by", "line")}
    if shown["range"] not in ("today", "month", "period") or shown["group_by"] not in GROUPS:
        raise InputError("range is today, month or period; group_by one of " + ", ".join(GROUPS))
    if shown["range"] == "period" and not usage.known_period(shown["period"]):
        raise InputError("a period is YYYY-MM", code="bad_period")
    shown.update({name: params.get(name, "").strip() for name in FILTERS})
    return shown


async def queries(request: Request, shown: dict[str, str]) -> tuple[usage.UsageRequest, usage.UsageRequest, str]:
    """(the table's query, the chart's query, the catalog's time zone) of what was asked."""
    catalog, _ = await common.ledger_of(request).catalog_and_version()
    where = UsageFilter(provider=shown["provider"] or None, reseller=shown["reseller"] or None,
                        sku=shown["sku"] or None, region=shown["region"] or None,
                        service_period=shown["period"] if shown["range"] == "period" else None)
    start = format_utc(today_start(catalog.timezone, time.time())) if shown["range"] == "today" else None
    common_args = {"start": start, "where": where, "tenant": shown["tenant"] or None}
    grouped = LINE if shown["group_by"] == "line" else (shown["group_by"],)
    table = usage.UsageRequest(group_by=grouped, granularity="month", limit=1000, **common_args)
    chart = usage.UsageRequest(granularity="hour" if shown["range"] == "today" else "day", limit=10_000,
                               **common_args)
    return table, chart, catalog.timezone


def chart_svg(page: dict, hourly: bool, timezone: str) -> str:
    """The chart's SVG (charts.bars escapes every text it writes): each bucket named by
    its start in the catalog's timezone, HH:MM or MM-DD."""
    zone = ZoneInfo(timezone)
    shape = "%H:%M" if hourly else "%m-%d"
    points = [(datetime.fromtimestamp(parse_instant(item["bucket_start"]), zone).strftime(shape), item["gpu_seconds"])
              for item in page["items"]]
    return charts.bars(points, "GPU-hours")


@router.get("/portal/usage")
async def usage_page(request: Request, who: SignedIn) -> Response:
    shown = asked(request)
    table_query, chart_query, timezone = await queries(request, shown)
    table = await common.ledger_of(request).usage(who.caller, table_query)
    items = sorted(table["items"], key=lambda item: -item["gpu_seconds"])
    totals = {name: sum(item.get(name) or 0 for item in items)
              for name in ("gpu_seconds", "retail_yen_estimate", "wholesale_yen_estimate")}
    columns = LINE if shown["group_by"] == "line" else (shown["group_by"],)
    member = who.caller.member
    disputable = {i for i, item in enumerate(items) if shown["group_by"] == "line" and member is not None
                  and item.get("reseller") == member and item.get("provider") != member}
    return render.page(request, "usage.html", who, shown=shown, items=items, totals=totals, groups=GROUPS,
                       columns=columns, disputable=disputable,
                       start=table["start"], end=table["end"], more=table["next_cursor"] is not None,
                       chart=await drawn(request, who, shown, chart_query, timezone), refresh=REFRESH_SECONDS)


@router.get("/portal/usage/chart")
async def usage_chart(request: Request, who: SignedIn) -> Response:
    """The chart alone, for the page's script to refresh it."""
    shown = asked(request)
    _, chart_query, timezone = await queries(request, shown)
    chart = await drawn(request, who, shown, chart_query, timezone)
    return render.fragment("chart.html", render.language(request), chart=chart)


async def drawn(request: Request, who: Session, shown: dict, chart_query: usage.UsageRequest, timezone: str) -> str:
    """The usage chart of the page's range, drawn in the catalog's time zone."""
    chart = await common.ledger_of(request).usage(who.caller, chart_query)
    return chart_svg(chart, shown["range"] == "today", timezone)
