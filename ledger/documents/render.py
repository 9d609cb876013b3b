"""A document's content as HTML (Jinja2, autoescaped) and as PDF (WeasyPrint).

The HTML is one self-contained file: its style sheet inline, its charts as SVG `data:`
images, no script and nothing fetched. The PDF is made from the same HTML, A4, with IPAex
Gothic embedded; its creation date is the HTML's `dcterms.created` (a closed period's
close), so a closed period's documents come out the same, byte for byte, every time.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from weasyprint import CSS, HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher

from ledger.documents import charts
from ledger.documents.fonts import CSS_FAMILIES, FAMILY, japanese_font
from ledger.domain.settlement_report import OWN, TENANTS

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE = {
    "tenant_invoice": "invoice.html",
    "member_invoice": "invoice.html",
    "settlement_report": "settlement_report.html",
    "capacity_report": "capacity_report.html",
}
# Documents hold nothing to fetch but the font and their own data: URIs.
FETCHER = URLFetcher(allowed_protocols={"file", "data"})
# Pango and fontconfig under WeasyPrint are not known to be thread-safe: one PDF at a time.
_PDF_LOCK = threading.Lock()
_FONTS: list[tuple[FontConfiguration, CSS]] = []  # this process's, made once (`_shared_fonts`)
_STYLES: dict[str, CSS] = {}  # the pages' style sheets, parsed (`_without_style`)
_STYLE_OPEN, _STYLE_CLOSE = "<style>", "</style>"


def yen(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def money(value: int) -> str:
    """`-¥1,234`: the sign before the currency."""
    return f"-¥{-value:,}" if value < 0 else f"¥{value:,}"


def signed(value: int) -> str:
    """`+¥1,234`, `-¥1,234`, `¥0`: an amount that adds to or takes from a total."""
    return f"+¥{value:,}" if value > 0 else money(value)


def hours(value: str | float | int | None) -> str:
    if value is None:
        return "—"
    number = Decimal(str(value))
    places = -number.as_tuple().exponent if number.as_tuple().exponent < 0 else 0
    return f"{number:,.{places}f}"


def date_ja(value: str | None) -> str:
    """`2026-11-30` -> `2026年11月30日`."""
    if not value:
        return ""
    year, month, day = value.split("-")
    return f"{int(year)}年{int(month)}月{int(day)}日"


def period_ja(value: str) -> str:
    year, month = value.split("-")
    return f"{int(year)}年{int(month)}月"


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    environment.filters.update(yen=yen, money=money, signed=signed, hours=hours, date_ja=date_ja, period_ja=period_ja)
    environment.globals["font_families"] = CSS_FAMILIES
    return environment


ENVIRONMENT = _environment()


def _label(names: dict[str, str], key: str) -> str:
    if key == OWN:
        return "自社GPU / own GPUs"
    if key == TENANTS:
        return "テナント / tenants"
    return names.get(key, key)


def _report_charts(content: dict) -> dict:
    names = content["names"]
    by_sku, by_counterpart = content["daily"]["by_sku"], content["daily"]["by_counterpart"]
    flows = content["revenue_and_cost"]
    history = content["history"]
    return {
        "by_sku": charts.daily_stacked(by_sku["days"], [{"name": s["label"], "hours": s["hours"]} for s in by_sku["series"]], "GPU時間 / GPU-hours"),
        "by_counterpart": charts.daily_stacked(
            by_counterpart["days"], [{"name": _label(names, s["label"]), "hours": s["hours"]} for s in by_counterpart["series"]],
            "GPU時間 / GPU-hours",
        ),
        "revenue_and_cost": charts.paired_bars(
            [_label(names, row["counterpart"]) for row in flows],
            [("収益 / revenue", [row["revenue_yen"] for row in flows]), ("費用 / cost", [row["cost_yen"] for row in flows])],
            "円（税抜） / yen, excluding tax",
        ) if flows else None,
        "history": charts.months(
            [m["period"] for m in history],
            [("テナント売上 / tenant revenue", [m["tenant_revenue_yen"] for m in history]),
             ("卸売上 / wholesale revenue", [m["wholesale_revenue_yen"] for m in history]),
             ("仕入 / wholesale cost", [m["wholesale_cost_yen"] for m in history])],
            ("精算差額 / net", [m["net_yen"] for m in history]),
        ),
    }


def _capacity_charts(content: dict) -> dict:
    rows = content["rows"]
    labels = [f"{r['provider']} · {r['sku']} · {r['region'] or '(未登録 unregistered)'}" for r in rows]
    return {
        "registered_and_billed": charts.paired_bars(
            labels,
            [("登録 / registered", [round(r["registered_gpu_seconds"] / 3600) for r in rows]),
             ("請求 / billed", [round(r["billed_gpu_seconds"] / 3600) for r in rows]),
             ("再販 / resold", [round(r["resold_gpu_seconds"] / 3600) for r in rows])],
            "GPU時間 / GPU-hours", height=max(1.8, 0.55 * len(rows) + 0.8),
        ) if rows else None,
        "utilisation": charts.utilisation(
            content["utilisation"]["days"],
            [{"name": s["label"], "percent": s["percent"]} for s in content["utilisation"]["series"]],
        ),
    }


def html(content: dict) -> str:
    """A document's HTML page."""
    kind = content["kind"]
    drawn = {"settlement_report": _report_charts, "capacity_report": _capacity_charts}.get(kind)
    template = ENVIRONMENT.get_template(TEMPLATE[kind])
    return template.render(doc=content, charts=drawn(content) if drawn else {})


def pdf(page: str) -> bytes:
    """The PDF of a document's HTML page, with IPAex Gothic embedded.

    Every page carries the same style sheet (base.html's `<style>`): it is parsed once
    per process and handed to WeasyPrint beside the page without it, the same cascade
    and the same bytes as parsing it in every page (an eighth of an invoice's time)."""
    with _PDF_LOCK:
        fonts, face = _shared_fonts()
        page, sheets = _without_style(page, fonts)
        return HTML(string=page, url_fetcher=FETCHER, media_type="print").write_pdf(
            stylesheets=[face, *sheets], font_config=fonts
        )


def _without_style(page: str, fonts: FontConfiguration) -> tuple[str, list[CSS]]:
    """The page without its first `<style>` element, and that style sheet parsed (kept
    for the next page with the same one); the page as it is if it has none."""
    start = page.find(_STYLE_OPEN)
    end = page.find(_STYLE_CLOSE, start)
    if start < 0 or end < 0:
        return page, []
    text = page[start + len(_STYLE_OPEN):end]
    sheet = _STYLES.get(text)
    if sheet is None:
        if len(_STYLES) >= 4:  # one style sheet in practice; never a growing cache
            _STYLES.clear()
        sheet = _STYLES[text] = CSS(string=text, url_fetcher=FETCHER, font_config=fonts, media_type="print")
    return page[:start] + page[end + len(_STYLE_CLOSE):], [sheet]


def _shared_fonts() -> tuple[FontConfiguration, CSS]:
    """This process's font configuration, with the @font-face of IPAex Gothic parsed into
    it: made for the first PDF and kept for every later one (loading the face again for
    each PDF was about a sixth of an invoice's time). The same font gives the same PDF bytes."""
    if not _FONTS:
        fonts = FontConfiguration()
        face = CSS(
            string=f'@font-face {{ font-family: "{FAMILY}"; src: url("{japanese_font().as_uri()}"); }}',
            url_fetcher=FETCHER, font_config=fonts,
        )
        _FONTS.append((fonts, face))
    return _FONTS[0]


def warm() -> None:
    """Make now what every document of this process shares: the fonts, the templates."""
    with _PDF_LOCK:
        _shared_fonts()
    for name in set(TEMPLATE.values()):
        ENVIRONMENT.get_template(name)
