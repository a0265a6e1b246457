"""Number formatting and HTML fragments of the report (pure Python, deterministic).

Every number in the report goes through these functions, so the same data always print
the same text (the determinism test compares whole HTML documents) and a missing value is
always shown the same way.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

MISSING = "–"


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return not math.isfinite(float(value))
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def num(value: Any, decimals: int = 1) -> str:
    """A number with fixed decimals; missing → ``–``; −0.0 printed as 0.0."""
    if is_missing(value):
        return MISSING
    x = round(float(value), decimals)
    if x == 0:
        x = 0.0
    return f"{x:.{decimals}f}"


def p_value(value: Any) -> str:
    """p-values: 4 decimals, ``<0.0001`` below that."""
    if is_missing(value):
        return MISSING
    p = float(value)
    return "<0.0001" if p < 0.0001 else f"{p:.4f}"


def ci(lower: Any, upper: Any, decimals: int = 1) -> str:
    if is_missing(lower) or is_missing(upper):
        return MISSING
    return f"{num(lower, decimals)} to {num(upper, decimals)}"


def esc(value: Any) -> str:
    """HTML-escaped text of any cell value."""
    if is_missing(value):
        return MISSING
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return str(int(f)) if f.is_integer() else num(f, 3)
    if isinstance(value, (np.integer,)):
        return str(int(value))
    return html.escape(str(value))


def table(
    frame: pd.DataFrame,
    *,
    caption: str = "",
    index: bool = True,
    index_label: str | None = None,
    css: str = "",
    note: str = "",
) -> str:
    """A DataFrame as an HTML table (values escaped; numbers printed by :func:`esc`)."""
    out = [f'<table class="{html.escape(css)}">' if css else "<table>"]
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    head = []
    if index:
        label = index_label if index_label is not None else (frame.index.name or "")
        head.append(f'<th scope="col">{html.escape(str(label))}</th>')
    head += [f'<th scope="col">{html.escape(str(c))}</th>' for c in frame.columns]
    out.append("<thead><tr>" + "".join(head) + "</tr></thead><tbody>")
    for label, row in frame.iterrows():
        cells = []
        if index:
            text = " / ".join(str(x) for x in label) if isinstance(label, tuple) else str(label)
            cells.append(f'<th scope="row">{html.escape(text)}</th>')
        cells += [f"<td>{esc(v)}</td>" for v in row.tolist()]
        out.append("<tr>" + "".join(cells) + "</tr>")
    if frame.empty:
        span = len(frame.columns) + (1 if index else 0)
        out.append(f'<tr><td colspan="{span}" class="empty">No data.</td></tr>')
    out.append("</tbody></table>")
    if note:
        out.append(f'<p class="note">{html.escape(note)}</p>')
    return "".join(out)


def rows_table(
    header: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str = "", note: str = ""
) -> str:
    """A table from already formatted rows (first cell is the row header)."""
    frame = pd.DataFrame([list(r) for r in rows], columns=list(header))
    if frame.empty:
        frame = pd.DataFrame(columns=list(header))
    frame = frame.set_index(header[0])
    return table(frame, caption=caption, note=note)


def paragraph(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def notice(text: str) -> str:
    return f'<p class="notice">{html.escape(text)}</p>'
