"""Report figures as inline SVG (matplotlib, object API, no pyplot state).

Why SVG and these settings: vector graphics stay sharp in the PDF; ``svg.hashsalt`` fixes
the ids matplotlib would otherwise randomise and the ``Date`` metadata is dropped, so the
same data give byte-identical figures (the report's determinism test compares whole
documents); ``svg.fonttype = "none"`` keeps text as text (smaller, searchable). Using
``Figure`` directly instead of ``pyplot`` avoids pyplot's global figure registry; the
rc settings are global, though, so figure building is serialised by a lock (two threads of
the web server must not see each other's ``rc_context``).
"""

from __future__ import annotations

import functools
import io
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import ParamSpec

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

from ildtrial.datasets.bds import Parameter
from ildtrial.reports.tables import Group

__all__ = ["forest_plot", "mean_change_plot", "trajectories_plot"]

_COLOURS = ("#1b6ca8", "#d1495b", "#2e8b57", "#8a5a9e")
_POOLED_COLOUR = "#444444"
_RC = {
    "svg.hashsalt": "ildtrial-report",
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 8.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


_LOCK = threading.Lock()
_P = ParamSpec("_P")


def _serialised(fn: Callable[_P, str]) -> Callable[_P, str]:
    @functools.wraps(fn)
    def wrapped(*args: _P.args, **kwargs: _P.kwargs) -> str:
        with _LOCK:
            return fn(*args, **kwargs)

    return wrapped


def _svg(fig: Figure) -> str:
    FigureCanvasSVG(fig)
    buf = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches=None)
    text = buf.getvalue()
    text = re.sub(r"<\?xml[^>]*\?>\s*", "", text)
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text, flags=re.S)
    return text.replace("<svg ", '<svg class="figure" role="img" ', 1)


def _figure(width: float, height: float, **margins: float) -> Figure:
    """A figure with fixed margins (constrained layout doubled the drawing time)."""
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height), dpi=100)
    adjust = {"left": 0.1, "right": 0.98, "bottom": 0.16, "top": 0.93, "hspace": 0.55, "wspace": 0.32}
    adjust.update(margins)
    fig.subplots_adjust(**adjust)
    return fig


def _colour(i: int, pooled: bool) -> str:
    return _POOLED_COLOUR if pooled else _COLOURS[i % len(_COLOURS)]


@_serialised
def mean_change_plot(
    stats_by_param: Mapping[str, pd.DataFrame],
    parameters: Sequence[Parameter],
    groups: Sequence[Group],
    week_of: Mapping[str, float],
) -> str:
    """Mean change from baseline ± SE by group and analysis visit, one panel per parameter.

    ``stats_by_param[paramcd]`` is the ``descriptive_by_arm_visit`` frame of CHG; the
    baseline (week 0, change 0) is drawn for orientation.
    """
    pooled = len(groups) == 1
    with matplotlib.rc_context(_RC):
        fig = _figure(7.2, 5.2)
        axes = fig.subplots(2, 2).ravel()
        for ax, p in zip(axes, parameters, strict=False):
            stats = stats_by_param.get(p.paramcd)
            ax.axhline(0.0, color="#999999", linewidth=0.8)
            for i, g in enumerate(groups):
                if stats is None or stats.empty or g.key not in stats.index.get_level_values(0):
                    continue
                part = stats.xs(g.key, level=0)
                weeks = [0.0] + [week_of.get(str(v), math.nan) for v in part.index]
                means = [0.0] + [float(m) for m in part["mean"]]
                ses = [0.0] + [
                    float(s) / math.sqrt(n) if n > 1 and np.isfinite(s) else 0.0
                    for s, n in zip(part["sd"], part["n"], strict=True)
                ]
                offset = (i - (len(groups) - 1) / 2) * 1.2
                ax.errorbar(
                    [w + offset for w in weeks], means, yerr=ses, marker="o", markersize=3.5,
                    capsize=2.5, linewidth=1.3, color=_colour(i, pooled), label=g.label,
                )
            ax.set_title(p.param, fontsize=9)
            ax.set_xlabel("Week")
            ax.set_ylabel(f"Change from baseline ({p.unit})")
            ax.set_xticks([0, *sorted({w for w in week_of.values() if np.isfinite(w)})])
        for ax in axes[len(parameters):]:
            ax.set_visible(False)
        if not pooled:
            handles, labels = axes[0].get_legend_handles_labels()
            if handles:
                fig.legend(handles, labels, loc="lower center", ncols=len(groups), frameon=False)
        return _svg(fig)


@_serialised
def trajectories_plot(
    anl: pd.DataFrame,
    parameters: Sequence[Parameter],
    groups: Sequence[Group],
    group_column: str | None,
) -> str:
    """Individual trajectories (analysed records, value against study week), one panel per parameter."""
    pooled = len(groups) == 1 or group_column is None
    with matplotlib.rc_context(_RC):
        fig = _figure(7.2, 5.2)
        axes = fig.subplots(2, 2).ravel()
        for ax, p in zip(axes, parameters, strict=False):
            part = anl.loc[anl["PARAMCD"] == p.paramcd]
            for i, g in enumerate(groups):
                sub = part if pooled else part.loc[part[group_column].astype(str) == g.key]
                # one line object per group, participants separated by NaN: far faster to draw
                xs: list[float] = []
                ys: list[float] = []
                for _, rows in sub.groupby("USUBJID", sort=True):
                    rows = rows.sort_values("ADY")
                    xs += [*(rows["ADY"].to_numpy(dtype=float) / 7.0), math.nan]
                    ys += [*rows["AVAL"].to_numpy(dtype=float), math.nan]
                if xs:
                    ax.plot(xs, ys, marker="o", markersize=2.5, linewidth=0.9, alpha=0.75,
                            color=_colour(i, pooled), label=g.label)
                if pooled:
                    break
            ax.set_title(p.param, fontsize=9)
            ax.set_xlabel("Week (study day / 7)")
            ax.set_ylabel(p.unit)
        for ax in axes[len(parameters):]:
            ax.set_visible(False)
        if not pooled:
            handles, labels = axes[0].get_legend_handles_labels()
            if handles:
                fig.legend(handles, labels, loc="lower center", ncols=len(groups), frameon=False)
        return _svg(fig)


@_serialised
def forest_plot(
    panels: Sequence[tuple[str, Sequence[tuple[str, float, float, float]]]], comparison: str
) -> str:
    """Forest plot of visit-wise differences, one panel per parameter (units differ).

    ``panels`` holds (title with unit, rows of (visit, estimate, lower, upper)); a dashed
    line marks no difference. Rows without a finite estimate are listed but not drawn.
    """
    with matplotlib.rc_context(_RC):
        fig = _figure(7.2, 4.6, left=0.11, bottom=0.11, wspace=0.35)
        axes = fig.subplots(2, 2).ravel()
        for ax, (title, rows) in zip(axes, panels, strict=False):
            n = max(1, len(rows))
            ys = np.arange(n)[::-1]
            for y, (_label, est, lo, hi) in zip(ys, rows, strict=False):
                if not all(np.isfinite(v) for v in (est, lo, hi)):
                    continue
                ax.plot([lo, hi], [y, y], color="#1b6ca8", linewidth=1.4)
                ax.plot([est], [y], marker="s", color="#1b6ca8", markersize=4.5)
            if not rows:
                ax.text(0.5, 0.5, "not estimable", transform=ax.transAxes, ha="center", va="center",
                        color="#666666")
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.axvline(0.0, color="#999999", linewidth=0.8, linestyle="--")
                ax.set_yticks(ys, [r[0] for r in rows])
                ax.set_ylim(-0.7, n - 0.3)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel(f"Difference {comparison}")
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        return _svg(fig)
