"""A small server-rendered SVG line chart: no JavaScript, prints, and has a text alternative."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

PALETTE = ("#0b5cad", "#b3261e", "#1d6b2f")
DASHES = ("", "6 3", "2 3")  # colour is never the only signal


@dataclass(frozen=True)
class Series:
    label: str
    unit: str
    points: Sequence[tuple[date, float]]


def line_chart(series: Sequence[Series], *, title: str, width: int = 640, height: int = 260) -> str:
    """Each series on its own vertical scale (they have different units), sharing the date axis."""
    drawn = [s for s in series if s.points]
    if not drawn:
        return ""
    left, right, top, bottom = 48, 16, 24, 36
    days = [d for s in drawn for d, _ in s.points]
    start, end = min(days), max(days)
    span = max((end - start).days, 1)

    def x(d: date) -> float:
        return left + (width - left - right) * (d - start).days / span

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-labelledby="chart-title" class="chart"><title id="chart-title">{escape(title)}</title>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#888"/>']
    for i, s in enumerate(drawn):
        values = [v for _, v in s.points]
        low, high = min(values), max(values)
        pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
        low, high = low - pad, high + pad

        def y(v: float, low: float = low, high: float = high) -> float:
            return top + (height - top - bottom) * (1 - (v - low) / (high - low))

        colour, dash = PALETTE[i % len(PALETTE)], DASHES[i % len(DASHES)]
        path = " ".join(f"{'M' if j == 0 else 'L'}{x(d):.1f},{y(v):.1f}" for j, (d, v) in enumerate(s.points))
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}/>')
        for d, v in s.points:
            parts.append(f'<circle cx="{x(d):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                         f'<title>{escape(s.label)} {v:g} {escape(s.unit)} ({d.isoformat()})</title></circle>')
        parts.append(f'<text x="{left + 4 + i * 200}" y="14" fill="{colour}" font-size="12">'
                     f'{"—" if not dash else "- -"} {escape(s.label)} ({escape(s.unit)})</text>')
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="11">{start.isoformat()}</text>')
    parts.append(f'<text x="{width - right}" y="{height - 8}" font-size="11" text-anchor="end">{end.isoformat()}</text>')
    parts.append("</svg>")
    return "".join(parts)
