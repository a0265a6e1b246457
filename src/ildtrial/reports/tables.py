"""Table 1 (baseline characteristics) and the report's formatted efficacy tables (pure).

Statistics come from ``ildtrial.stats``; this module only lays them out as text tables
with the number formats of :mod:`ildtrial.reports.format`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ildtrial.reports.format import MISSING, ci, num, p_value

__all__ = ["Group", "baseline_table", "descriptive_table", "mmrm_table", "slope_table", "wilcoxon_table"]


@dataclass(frozen=True)
class Group:
    """A column of the report: a key in the data (arm code or ``All``) and its header text."""

    key: str
    label: str


_CONTINUOUS: tuple[tuple[str, str, int], ...] = (
    ("AGE", "Age (years)", 1),
    ("HEIGHT", "Height (cm)", 1),
    ("WEIGHT", "Weight (kg)", 1),
    ("BMI", "Body-mass index (kg/m²)", 1),
    ("FVCBL", "FVC (mL)", 0),
    ("FVCPPBL", "FVC (% predicted)", 1),
    ("DLCOPPBL", "DLCO (% predicted)", 1),
    ("SIXMWDBL", "6-minute walk distance (m)", 0),
)
_SEX = (("F", "Female"), ("M", "Male"))


def _subsets(
    adsl: pd.DataFrame, groups: Sequence[Group], column: str | None, total: bool
) -> list[tuple[str, pd.DataFrame]]:
    out = []
    for g in groups:
        part = adsl if column is None else adsl.loc[adsl[column].astype(str) == g.key]
        out.append((f"{g.label} (N={len(part)})", part))
    if total and column is not None:
        out.append((f"Total (N={len(adsl)})", adsl))
    return out


def _mean_sd(values: pd.Series, decimals: int) -> str:
    x = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    if x.size == 0:
        return MISSING
    sd = num(x.std(ddof=1), decimals) if x.size > 1 else MISSING
    return f"{num(x.mean(), decimals)} ({sd})"


def _median_range(values: pd.Series, decimals: int) -> str:
    x = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    if x.size == 0:
        return MISSING
    return f"{num(np.median(x), decimals)} [{num(x.min(), decimals)}, {num(x.max(), decimals)}]"


def _count(n: int, total: int) -> str:
    return f"{n} ({100.0 * n / total:.1f}%)" if total else f"{n}"


def baseline_table(
    adsl: pd.DataFrame,
    groups: Sequence[Group],
    column: str | None,
    *,
    total: bool = True,
) -> pd.DataFrame:
    """Table 1: demographics and baseline lung function of the full analysis set.

    Continuous variables: mean (SD) and median [min, max], with the number missing when
    any; categorical: n (%) of the group. ``column`` is the arm column (None = one group).
    """
    subsets = _subsets(adsl, groups, column, total)
    rows: dict[str, list[str]] = {}
    for var, label, decimals in _CONTINUOUS:
        rows[f"{label}, mean (SD)"] = [_mean_sd(part[var], decimals) for _, part in subsets]
        rows[f"{label}, median [min, max]"] = [
            _median_range(part[var], decimals) for _, part in subsets
        ]
        missing = [int(pd.to_numeric(part[var], errors="coerce").isna().sum()) for _, part in subsets]
        if any(missing):
            rows[f"{label}, missing"] = [str(m) for m in missing]
        if var == "AGE":
            for code, sex in _SEX:
                rows[f"Sex: {sex}, n (%)"] = [
                    _count(int((part["SEX"] == code).sum()), len(part)) for _, part in subsets
                ]
            levels = sorted({str(v) for v in adsl["DIAGGRP"].dropna()})
            for level in levels:
                rows[f"Diagnosis group: {level}, n (%)"] = [
                    _count(int((part["DIAGGRP"].astype(str) == level).sum()), len(part))
                    for _, part in subsets
                ]
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=[h for h, _ in subsets])
    frame.index.name = "Characteristic"
    return frame


def descriptive_table(stats: pd.DataFrame, groups: Sequence[Group], decimals: int) -> pd.DataFrame:
    """Descriptive statistics (``descriptive_by_arm_visit`` output) as text, one row per group × visit."""
    label_of = {g.key: g.label for g in groups}
    rows = []
    for (group, visit), r in stats.iterrows():
        rows.append(
            {
                "Group": label_of.get(str(group), str(group)),
                "Visit": str(visit),
                "n": str(int(r["n"])),
                "Mean (SD)": f"{num(r['mean'], decimals)} ({num(r['sd'], decimals)})",
                "Median": num(r["median"], decimals),
                "Q1, Q3": f"{num(r['q1'], decimals)}, {num(r['q3'], decimals)}",
                "Min, max": f"{num(r['min'], decimals)}, {num(r['max'], decimals)}",
            }
        )
    frame = pd.DataFrame(
        rows, columns=["Group", "Visit", "n", "Mean (SD)", "Median", "Q1, Q3", "Min, max"]
    )
    return frame.set_index(["Group", "Visit"]) if not frame.empty else frame.set_index("Group")


def mmrm_table(result, groups: Sequence[Group], decimals: int) -> pd.DataFrame:  # noqa: ANN001
    """LS means per arm and the difference per visit (``ChangeMMRMResult``)."""
    label_of = {g.key: g.label for g in groups}
    rows = []
    for visit in result.visits:
        for arm, e in result.lsmeans.get(visit, {}).items():
            rows.append(
                [visit, f"LS mean {label_of.get(arm, arm)}", num(e.estimate, decimals), num(e.se, decimals),
                 ci(e.ci_lower, e.ci_upper, decimals), num(e.df, 1), MISSING]
            )
        for label, e in result.differences.get(visit, {}).items():
            rows.append(
                [visit, f"Difference {label}", num(e.estimate, decimals), num(e.se, decimals),
                 ci(e.ci_lower, e.ci_upper, decimals), num(e.df, 1), p_value(e.p_value)]
            )
    pct = f"{100 * result.level:g}% CI"
    frame = pd.DataFrame(rows, columns=["Visit", "Estimate of", "Estimate", "SE", pct, "df", "p"])
    return frame.set_index(["Visit", "Estimate of"]) if not frame.empty else frame.set_index("Visit")


def wilcoxon_table(result, groups: Sequence[Group]) -> pd.DataFrame:  # noqa: ANN001
    """Per-visit rank-sum tests with deaths ranked worst (``WilcoxonDeathsResult``)."""
    label_of = {g.key: g.label for g in groups}
    rows = []
    for v in result.visits:
        row = {"Visit": v.visit}
        for arm in result.arms:
            name = label_of.get(arm, arm)
            row[f"{name}: n (deaths imputed)"] = f"{v.n[arm]} ({v.n_deaths_imputed[arm]})"
            row[f"{name}: mean rank"] = num(v.mean_rank[arm], 2)
        row["U"] = num(v.u_statistic, 1)
        row["p"] = p_value(v.p_value)
        row["Method"] = v.method or v.note
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.set_index("Visit") if not frame.empty else frame


def slope_table(result, groups: Sequence[Group]) -> pd.DataFrame:  # noqa: ANN001
    """Annual rate per group and the difference (``SlopeResult``)."""
    label_of = {g.key: g.label for g in groups}
    pct = f"{100 * result.level:g}% CI"
    rows = []
    for arm, e in result.rates.items():
        rows.append([f"Rate {label_of.get(arm, arm)}", num(e.estimate, 1), num(e.se, 1),
                     ci(e.ci_lower, e.ci_upper, 1), MISSING])
    for label, e in result.differences.items():
        rows.append([f"Difference {label}", num(e.estimate, 1), num(e.se, 1),
                     ci(e.ci_lower, e.ci_upper, 1), p_value(e.p_value)])
    frame = pd.DataFrame(rows, columns=[f"Estimate ({result.rate_unit})", "Value", "SE", pct, "p"])
    return frame.set_index(f"Estimate ({result.rate_unit})")
