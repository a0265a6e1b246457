"""CONSORT flow diagram: counts from the screening log and dispositions, drawn as inline SVG.

Counting unit is the *person*: a re-screened candidate has several screening attempts
(linked by ``rescreen_of``) but is one person assessed for eligibility, classified by the
outcome of their last attempt (CONSORT 2010, item 13a).

The SVG is written by hand rather than plotted: it is a handful of boxes and arrows, and
hand-written markup is byte-for-byte deterministic and renders identically in browsers
and WeasyPrint.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from ildtrial.datasets._common import text
from ildtrial.datasets.raw import RawData
from ildtrial.reports.tables import Group
from ildtrial.stats.design import natural_key

__all__ = ["ConsortCounts", "GroupFlow", "consort_counts", "consort_svg"]


@dataclass(frozen=True)
class GroupFlow:
    """Allocation, follow-up and analysis of one arm (or of everyone, pooled)."""

    label: str
    allocated: int
    infused: int
    not_infused: int
    all_infusions: int
    completed: int
    ongoing: int
    discontinued: dict[str, int]
    deaths: int
    analysed_fas: int
    analysed_safety: int
    analysed_efficacy: int


@dataclass(frozen=True)
class ConsortCounts:
    assessed: int
    attempts: int
    excluded: int
    not_eligible: int
    failed_criteria: dict[str, int]
    pending: int
    other_excluded: int
    randomized: int
    groups: tuple[GroupFlow, ...] = field(default=())
    infusions_planned: int = 8


def _root(subject: str, parent: dict[str, str | None]) -> str:
    """First screening attempt of the person (follows ``rescreen_of`` links back)."""
    seen = set()
    while text(parent.get(subject)) and subject not in seen:
        seen.add(subject)
        subject = str(text(parent[subject]))
    return subject


def consort_counts(
    raw: RawData,
    adsl: pd.DataFrame,
    adlf: pd.DataFrame,
    groups: Sequence[Group],
    column: str | None,
    *,
    infusions_planned: int = 8,
) -> ConsortCounts:
    """Counts of the diagram. ``column`` is the ADSL arm column (None: one pooled group)."""
    parts = raw.participants
    parent = dict(zip(parts["subject"].astype(str), parts["rescreen_of"], strict=True))
    persons: dict[str, list[pd.Series]] = {}
    for _, row in parts.sort_values(["screening_date", "subject"], kind="mergesort").iterrows():
        persons.setdefault(_root(str(row["subject"]), parent), []).append(row)
    failed_of = dict(zip(raw.screening["subject"], raw.screening["failed_criteria"], strict=True))
    randomized = not_eligible = pending = other = 0
    criteria: Counter[str] = Counter()
    for attempts in persons.values():
        if any(text(a["randomized_date"]) for a in attempts):
            randomized += 1
            continue
        last = attempts[-1]
        status = str(last["status"])
        if status == "screen_failed":
            not_eligible += 1
            for c in str(failed_of.get(last["subject"]) or "").split(";"):
                if c:
                    criteria[c] += 1
        elif status in ("screening", "eligible"):
            pending += 1
        else:
            other += 1
    efficacy = set(
        adlf.loc[
            adlf["ANL01FL"].eq("Y").fillna(False).astype(bool) & (adlf["ADY"] > 0), "USUBJID"
        ]
    )
    flows = []
    for g in groups:
        part = adsl if column is None else adsl.loc[adsl[column].astype(str) == g.key]
        infused = int((part["SAFFL"] == "Y").sum())
        reasons = Counter(str(r) for r in part.loc[part["EOSSTT"] == "DISCONTINUED", "DCSREAS"])
        flows.append(
            GroupFlow(
                label=g.label,
                allocated=len(part),
                infused=infused,
                not_infused=len(part) - infused,
                all_infusions=int((pd.to_numeric(part["NINF"]) >= infusions_planned).sum()),
                completed=int((part["EOSSTT"] == "COMPLETED").sum()),
                ongoing=int((part["EOSSTT"] == "ONGOING").sum()),
                discontinued=dict(sorted(reasons.items())),
                deaths=int((part["DTHFL"] == "Y").sum()),
                analysed_fas=int((part["FASFL"] == "Y").sum()),
                analysed_safety=infused,
                analysed_efficacy=int(part["USUBJID"].isin(efficacy).sum()),
            )
        )
    return ConsortCounts(
        assessed=len(persons),
        attempts=len(parts),
        excluded=len(persons) - randomized,
        not_eligible=not_eligible,
        failed_criteria=dict(sorted(criteria.items(), key=lambda kv: natural_key(kv[0]))),
        pending=pending,
        other_excluded=other,
        randomized=randomized,
        groups=tuple(flows),
        infusions_planned=infusions_planned,
    )


# --------------------------------------------------------------------------- drawing

_LINE = 15
_PAD = 8


def _box(x: float, y: float, w: float, lines: Sequence[str], bold_first: bool = True) -> tuple[str, float]:
    h = _PAD * 2 + _LINE * len(lines)
    out = [f'<rect x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" height="{h:.0f}" rx="4" '
           'fill="#ffffff" stroke="#333333" stroke-width="1"/>']
    for i, line in enumerate(lines):
        weight = ' font-weight="bold"' if (i == 0 and bold_first) else ""
        ty = y + _PAD + _LINE * (i + 1) - 4
        indent = 8 + 6 * (len(line) - len(line.lstrip(" ")))  # SVG collapses leading blanks
        out.append(f'<text x="{x + indent:.0f}" y="{ty:.0f}"{weight}>{html.escape(line.strip())}</text>')
    return "".join(out), h


def _arrow(x1: float, y1: float, x2: float, y2: float) -> str:
    return (f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="#333333" '
            'stroke-width="1.2" marker-end="url(#consort-arrow)"/>')


def _phase(y: float, h: float, label: str) -> str:
    return (f'<rect x="2" y="{y:.0f}" width="22" height="{h:.0f}" fill="#dde6f0"/>'
            f'<text x="17" y="{y + h / 2:.0f}" font-size="10" text-anchor="middle" '
            f'transform="rotate(-90 17 {y + h / 2:.0f})">{html.escape(label)}</text>')


def consort_svg(counts: ConsortCounts, width: int = 760) -> str:
    """The flow diagram as an inline ``<svg>`` element (enrolment, allocation, follow-up, analysis)."""
    parts: list[str] = []
    y = 10.0
    main_w = 300.0
    cx = 30 + (width - 30) / 2
    # enrolment
    box, h = _box(cx - main_w / 2, y, main_w, [f"Assessed for eligibility (n={counts.assessed})",
                                               f"screening attempts: {counts.attempts}"])
    parts.append(box)
    assess_bottom = y + h
    excl_lines = [f"Excluded (n={counts.excluded})",
                  f"• Not meeting eligibility criteria (n={counts.not_eligible})"]
    excl_lines += [f"  – criterion {c} not met (n={n})" for c, n in counts.failed_criteria.items()]
    excl_lines += [f"• Screening not completed (n={counts.pending})",
                   f"• Other reasons (n={counts.other_excluded})"]
    ex_w = min(300.0, width - (cx + 40) - 5)
    ex_y = assess_bottom + 18
    box, ex_h = _box(cx + 40, ex_y, ex_w, excl_lines)
    parts.append(box)
    rand_y = ex_y + ex_h + 18
    parts.append(_arrow(cx, assess_bottom, cx, rand_y))
    parts.append(_arrow(cx, ex_y + ex_h / 2, cx + 40, ex_y + ex_h / 2))
    box, rh = _box(cx - 100, rand_y, 200, [f"Randomized (n={counts.randomized})"])
    parts.append(box)
    enrol_h = rand_y + rh - 10
    parts.insert(0, _phase(10, enrol_h, "Enrolment"))
    # group columns
    n = max(1, len(counts.groups))
    col_w = (width - 40) / n
    box_w = min(330.0, col_w - 16)
    top = rand_y + rh + 30
    heights = {"alloc": 0.0, "follow": 0.0, "analysis": 0.0}
    texts: dict[str, list[list[str]]] = {"alloc": [], "follow": [], "analysis": []}
    for g in counts.groups:
        texts["alloc"].append([
            f"Allocated: {g.label} (n={g.allocated})",
            f"• Received at least one infusion (n={g.infused})",
            f"• All {counts.infusions_planned} infusions given (n={g.all_infusions})",
            f"• Did not receive an infusion (n={g.not_infused})",
        ])
        follow = [f"Follow-up: {g.label}", f"• Completed 52 weeks (n={g.completed})",
                  f"• Ongoing (n={g.ongoing})",
                  f"• Discontinued (n={sum(g.discontinued.values())})"]
        follow += [f"  – {reason.lower()} (n={k})" for reason, k in g.discontinued.items()]
        follow.append(f"• Deaths (n={g.deaths})")
        texts["follow"].append(follow)
        texts["analysis"].append([
            f"Analysed: {g.label}",
            f"• Full analysis set (n={g.analysed_fas})",
            f"• Safety population (n={g.analysed_safety})",
            f"• With post-baseline lung function (n={g.analysed_efficacy})",
        ])
    for key in heights:
        heights[key] = max((_PAD * 2 + _LINE * len(t) for t in texts[key]), default=0.0)
    y = top
    phase_names = {"alloc": "Allocation", "follow": "Follow-up", "analysis": "Analysis"}
    for key in ("alloc", "follow", "analysis"):
        for i, lines in enumerate(texts[key]):
            x = 30 + col_w * i + (col_w - box_w) / 2
            box, _ = _box(x, y, box_w, lines)
            parts.append(box)
            if key != "analysis":
                parts.append(_arrow(x + box_w / 2, y + heights[key], x + box_w / 2, y + heights[key] + 24))
            if key == "alloc":
                parts.append(_arrow(cx, rand_y + rh, x + box_w / 2, y))
        parts.append(_phase(y, heights[key], phase_names[key]))
        y += heights[key] + 24
    total_h = y
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="consort" width="{width}" '
            f'height="{total_h:.0f}" viewBox="0 0 {width} {total_h:.0f}" role="img" '
            'aria-label="CONSORT flow diagram" font-family="DejaVu Sans, Arial, sans-serif" font-size="11">'
            '<defs><marker id="consort-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#333333"/></marker></defs>')
    return head + "".join(parts) + "</svg>"
