"""The reports' charts, drawn by matplotlib as SVG (vector, so they print sharp in a PDF).

Text is drawn as paths in IPAex Gothic, so a chart looks the same in any browser and in
the PDF, and Japanese names need no font on the reader's side. The SVG carries no date
and its ids come from a fixed salt: the same figures give the same bytes. Each chart
returns a `data:` URI for an <img>, so charts of one page cannot clash over ids.
"""

from __future__ import annotations

import base64
import io
import threading

import matplotlib
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ledger.documents.fonts import FAMILY, japanese_font

WIDTH_INCHES = 7.0
PALETTE = ("#1f5f99", "#e08a1e", "#3a8d4f", "#b8403a", "#7a5aa6", "#8c6d3f", "#d16fa8", "#6b7b8c", "#b3b33b", "#2fa0b0")
# matplotlib's state (rcParams, the font list) is global: one chart at a time.
_LOCK = threading.Lock()
_READY: list[bool] = []


def _setup() -> None:
    if _READY:
        return
    font_manager.fontManager.addfont(str(japanese_font()))
    matplotlib.rcParams.update({
        "svg.hashsalt": "gpuledger", "svg.fonttype": "path", "font.family": FAMILY, "font.size": 8,
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.color": "#e3e3e3",
        "axes.axisbelow": True, "legend.frameon": False, "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    })
    _READY.append(True)


def _figure(height: float) -> Figure:
    _setup()
    return Figure(figsize=(WIDTH_INCHES, height), layout="constrained")


def _uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def _thousands(value, _position) -> str:
    return f"{value:,.0f}"


def daily_stacked(days: list[str], series: list[dict], ylabel: str) -> str:
    """Stacked bars per day of the period (x: the day of the month)."""
    with _LOCK:
        figure = _figure(2.5)
        axes = figure.add_subplot()
        positions = list(range(1, len(days) + 1))
        bottom = [0.0] * len(days)
        for item in series:
            axes.bar(positions, item["hours"], bottom=bottom, label=item["name"], width=0.8)
            bottom = [a + b for a, b in zip(bottom, item["hours"], strict=True)]
        axes.set_xlim(0.3, len(days) + 0.7)
        axes.set_xticks([p for p in positions if p == 1 or p % 5 == 0])
        axes.set_xlabel("日 / day")
        axes.set_ylabel(ylabel)
        axes.yaxis.set_major_formatter(FuncFormatter(_thousands))
        if series:
            axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
        return _uri(figure)


def paired_bars(labels: list[str], pairs: list[tuple[str, list[int]]], xlabel: str, height: float | None = None) -> str:
    """Horizontal bars, two (or more) per label: revenue and cost, registered and billed."""
    with _LOCK:
        figure = _figure(height or max(1.6, 0.42 * len(labels) + 0.8))
        axes = figure.add_subplot()
        count = len(pairs)
        thickness = 0.8 / max(count, 1)
        for index, (name, values) in enumerate(pairs):
            offsets = [row + (index - (count - 1) / 2) * thickness for row in range(len(labels))]
            axes.barh(offsets, values, height=thickness, label=name)
        axes.set_yticks(range(len(labels)), labels)
        axes.invert_yaxis()
        axes.set_xlabel(xlabel)
        axes.xaxis.set_major_formatter(FuncFormatter(_thousands))
        axes.legend(loc="lower right", fontsize=7)
        return _uri(figure)


def months(periods: list[str], bars: list[tuple[str, list[int]]], line: tuple[str, list[int]]) -> str:
    """Grouped bars per month, and one figure (the net) as a line across them."""
    with _LOCK:
        figure = _figure(2.4)
        axes = figure.add_subplot()
        count = len(bars)
        width = 0.8 / max(count, 1)
        for index, (name, values) in enumerate(bars):
            axes.bar([p + (index - (count - 1) / 2) * width for p in range(len(periods))], values, width=width, label=name)
        axes.plot(range(len(periods)), line[1], color="#222222", marker="o", label=line[0])
        axes.axhline(0, color="#888888", linewidth=0.8)
        axes.set_xticks(range(len(periods)), periods)
        axes.set_ylabel("円 / yen")
        axes.yaxis.set_major_formatter(FuncFormatter(_thousands))
        axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
        return _uri(figure)


def utilisation(days: list[str], series: list[dict]) -> str:
    """A line per provider: billed over registered GPU-seconds per day, in percent."""
    with _LOCK:
        figure = _figure(2.5)
        axes = figure.add_subplot()
        positions = list(range(1, len(days) + 1))
        for item in series:
            values = [float("nan") if v is None else v for v in item["percent"]]
            axes.plot(positions, values, marker=".", label=item["name"])
        axes.set_xlim(0.5, len(days) + 0.5)
        axes.set_ylim(bottom=0)
        axes.yaxis.set_major_locator(MaxNLocator(nbins=6))
        axes.set_xticks([p for p in positions if p == 1 or p % 5 == 0])
        axes.set_xlabel("日 / day")
        axes.set_ylabel("稼働率 / utilisation %")
        if series:
            axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
        return _uri(figure)
