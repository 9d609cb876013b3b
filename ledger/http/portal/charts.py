"""The portal's charts: bars as inline SVG, drawn on the server (no script draws them,
so a page shows its chart without JavaScript, and the policy allows no inline script).

Pure: figures in, markup out; every bar has a <title> (its value on hover and for a
screen reader), and the chart a label saying what it shows.
"""

from __future__ import annotations

from html import escape

WIDTH, HEIGHT = 1200, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 14, 40


def bars(points: list[tuple[str, int]], label: str, unit_seconds: int = 3600) -> str:
    """A bar per (label, GPU-seconds), in GPU-hours; an empty chart says so."""
    if not points:
        return (f'<svg viewBox="0 0 {WIDTH} 60" role="img" aria-label="{escape(label)}">'
                f'<text x="{LEFT}" y="34">–</text></svg>')
    top = max(seconds for _, seconds in points) or 1
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = inner_w / len(points)
    width = max(1.0, step * 0.8)
    every = max(1, len(points) // 16)  # at most about 16 labels under the bars
    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">',
             f'<line class="axis" x1="{LEFT}" y1="{TOP + inner_h}" x2="{WIDTH - RIGHT}" y2="{TOP + inner_h}"/>',
             f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end">{top / unit_seconds:,.1f}</text>',
             f'<text x="{LEFT - 6}" y="{TOP + inner_h}" text-anchor="end">0</text>']
    for index, (name, seconds) in enumerate(points):
        height = inner_h * seconds / top
        x = LEFT + index * step + (step - width) / 2
        y = TOP + inner_h - height
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}">'
                     f'<title>{escape(name)}: {seconds / unit_seconds:,.2f} GPU-h ({seconds:,} s)</title></rect>')
        if index % every == 0:
            parts.append(f'<text x="{x + width / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
                         f'{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
