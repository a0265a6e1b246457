"""Efficacy analyses of the trial report (secondary endpoints of statistics.md).

Pure numpy/scipy/pandas/statsmodels; no Django. Input is an ADaM BDS-like long frame (one
row per participant, parameter and analysis visit) with the columns of :class:`BDSColumns`
(``USUBJID``, ``ARM``, ``PARAMCD``, ``AVISIT``, optionally ``AVISITN``, ``AVAL``, ``BASE``,
``CHG``, ``ABLFL``, ``ADY``); the full analysis set is analysed by the arm assigned.

* :func:`descriptive_by_arm_visit` — n, mean, SD, median, Q1, Q3, min, max;
* :func:`change_mmrm` — MMRM of the change from baseline (``ildtrial.stats.mmrm``):
  ``CHG = arm × visit + BASE × visit``, unstructured covariance, REML, Satterthwaite df;
* :func:`random_slope_decline` — random intercept and slope regression (statsmodels
  ``MixedLM``) for the annual rate of decline, e.g. FVC in mL/year;
* :func:`wilcoxon_deaths_worst` — Wilcoxon rank-sum test per visit with deaths ranked
  worst (IPF convention).

Analyses that the data cannot support (too few participants or visits, no convergence)
return a result with ``estimable = False`` and a ``reason`` instead of raising; wrong
*inputs* (missing columns, several parameters mixed) raise ``ValueError``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from ildtrial.stats.design import DesignError, natural_key
from ildtrial.stats.mmrm import Estimate, MMRMError, MMRMResult, fit_mmrm

__all__ = [
    "BDSColumns",
    "ChangeMMRMResult",
    "SlopeEstimate",
    "SlopeResult",
    "VisitWilcoxon",
    "WilcoxonDeathsResult",
    "change_mmrm",
    "descriptive_by_arm_visit",
    "random_slope_decline",
    "wilcoxon_deaths_worst",
]

DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class BDSColumns:
    """Column names of the BDS input (ADaM defaults)."""

    subject: str = "USUBJID"
    arm: str = "ARM"
    paramcd: str = "PARAMCD"
    visit: str = "AVISIT"
    visitn: str = "AVISITN"
    aval: str = "AVAL"
    base: str = "BASE"
    chg: str = "CHG"
    ablfl: str = "ABLFL"
    day: str = "ADY"


DEFAULT_COLUMNS = BDSColumns()


def _json(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _require(frame: pd.DataFrame, columns: Sequence[str], name: str = "BDS") -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it has {list(frame.columns)}")


def _select_parameter(bds: pd.DataFrame, paramcd: str | None, cols: BDSColumns) -> pd.DataFrame:
    """Rows of one parameter; several parameters without ``paramcd`` is an input error."""
    if paramcd is not None:
        _require(bds, [cols.paramcd])
        return bds.loc[bds[cols.paramcd].astype(str) == str(paramcd)]
    if cols.paramcd in bds.columns:
        present = sorted(bds[cols.paramcd].dropna().astype(str).unique())
        if len(present) > 1:
            raise ValueError(f"the data hold several parameters {present}; choose one with paramcd")
    return bds


def _post_baseline(frame: pd.DataFrame, cols: BDSColumns) -> pd.DataFrame:
    if cols.ablfl in frame.columns:
        is_base = frame[cols.ablfl].astype("string").str.strip().str.upper().eq("Y").fillna(False)
        frame = frame.loc[~is_base.astype(bool)]
    return frame


def _visit_order(frame: pd.DataFrame, cols: BDSColumns) -> list[str]:
    """Visits ordered by ``AVISITN`` when present, else naturally (Week 2 before Week 10)."""
    labels = frame[cols.visit].dropna().astype(str)
    if cols.visitn in frame.columns:
        num = pd.to_numeric(frame.loc[labels.index, cols.visitn], errors="coerce")
        first = num.groupby(labels).min()
        return sorted(first.index, key=lambda v: (math.isnan(first[v]), first[v], natural_key(v)))
    return sorted(labels.unique(), key=natural_key)


def _arm_order(frame: pd.DataFrame, cols: BDSColumns, arms: Sequence[str] | None) -> list[str]:
    if arms is not None:
        return [str(a) for a in arms]
    return sorted(frame[cols.arm].dropna().astype(str).unique(), key=natural_key)


# --------------------------------------------------------------------------- descriptive


def descriptive_by_arm_visit(
    bds: pd.DataFrame,
    value: str = "CHG",
    *,
    paramcd: str | None = None,
    arms: Sequence[str] | None = None,
    quantile_method: str = "averaged_inverted_cdf",
    columns: BDSColumns = DEFAULT_COLUMNS,
) -> pd.DataFrame:
    """n, mean, SD, median, Q1, Q3, min and max of ``value`` per arm and analysis visit.

    Rows are indexed by (arm, visit) for every combination present in the data, except
    visits where no arm has a value (e.g. the baseline visit for ``CHG``); an arm without
    values at a kept visit gets n = 0 and NaN statistics. Arms in the order given (default:
    natural order), visits by ``AVISITN`` or naturally. SD uses ``n − 1``. Quartiles use numpy's
    ``quantile_method``; the default ``"averaged_inverted_cdf"`` (Hyndman & Fan type 2) is
    SAS PROC MEANS/UNIVARIATE's default definition (PCTLDEF=5); the median is the same for
    every definition.
    """
    cols = columns
    frame = _select_parameter(bds, paramcd, cols)
    _require(frame, [cols.arm, cols.visit, value])
    arm_levels = _arm_order(frame, cols, arms)
    frame = frame.loc[frame[cols.arm].astype(str).isin(arm_levels)]
    values = pd.to_numeric(frame[value], errors="coerce")
    with_values = frame.loc[values.notna(), cols.visit].astype(str).unique()
    visits = [v for v in _visit_order(frame, cols) if v in set(with_values)]
    rows: list[dict[str, Any]] = []
    index: list[tuple[str, str]] = []
    arm_str = frame[cols.arm].astype(str)
    visit_str = frame[cols.visit].astype(str)
    for arm in arm_levels:
        for visit in visits:
            mask = (arm_str == arm) & (visit_str == visit)
            if not mask.any():
                continue
            x = values.loc[mask].dropna().to_numpy(dtype=float)
            n = int(x.size)
            if n == 0:
                q1 = med = q3 = mean = sd = lo = hi = math.nan
            else:
                q1, med, q3 = (
                    float(v) for v in np.quantile(x, [0.25, 0.5, 0.75], method=quantile_method)
                )
                mean, lo, hi = float(x.mean()), float(x.min()), float(x.max())
                sd = float(x.std(ddof=1)) if n > 1 else math.nan
            index.append((arm, visit))
            rows.append(
                {
                    "n": n,
                    "mean": mean,
                    "sd": sd,
                    "median": med,
                    "q1": q1,
                    "q3": q3,
                    "min": lo,
                    "max": hi,
                }
            )
    out = pd.DataFrame(
        rows,
        index=pd.MultiIndex.from_tuples(index, names=[cols.arm, cols.visit]),
        columns=["n", "mean", "sd", "median", "q1", "q3", "min", "max"],
    )
    out["n"] = out["n"].astype("int64")
    return out


# --------------------------------------------------------------------------- MMRM


@dataclass(frozen=True)
class ChangeMMRMResult:
    """MMRM of the change from baseline: LS means per arm and visit and their differences.

    ``lsmeans[visit][arm]`` and ``differences[visit]["MSC - PBO"]`` are
    :class:`ildtrial.stats.mmrm.Estimate` (estimate, SE, Satterthwaite df, t, p, CI).
    When ``estimable`` is False they are empty and ``reason`` says why.
    """

    paramcd: str
    estimable: bool
    reason: str
    arms: tuple[str, ...]
    reference: str
    visits: tuple[str, ...]
    n_subjects: int
    n_observations: int
    level: float
    lsmeans: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    differences: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    fit: MMRMResult | None = field(default=None, compare=False, repr=False)

    @property
    def status(self) -> str:
        return "estimable" if self.estimable else f"not estimable: {self.reason}"

    def table(self) -> pd.DataFrame:
        """Long table: one row per visit and arm (LS mean) or contrast (difference)."""
        rows: list[dict[str, Any]] = []
        for visit in self.visits:
            for arm, e in self.lsmeans.get(visit, {}).items():
                rows.append({"visit": visit, "term": arm, "kind": "LS mean", **e.to_dict()})
            for label, e in self.differences.get(visit, {}).items():
                rows.append({"visit": visit, "term": label, "kind": "difference", **e.to_dict()})
        columns = [
            "visit",
            "term",
            "kind",
            "estimate",
            "se",
            "df",
            "t_value",
            "p_value",
            "ci_lower",
            "ci_upper",
        ]
        return pd.DataFrame(rows, columns=columns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "paramcd": self.paramcd,
            "model": "CHG ~ ARM * AVISIT + BASE * AVISIT, unstructured covariance, REML, "
            "Satterthwaite df",
            "estimable": self.estimable,
            "status": self.status,
            "arms": list(self.arms),
            "reference": self.reference,
            "visits": list(self.visits),
            "n_subjects": self.n_subjects,
            "n_observations": self.n_observations,
            "level": self.level,
            "lsmeans": {v: {a: e.to_dict() for a, e in d.items()} for v, d in self.lsmeans.items()},
            "differences": {
                v: {k: e.to_dict() for k, e in d.items()} for v, d in self.differences.items()
            },
        }


def change_mmrm(
    bds: pd.DataFrame,
    paramcd: str,
    *,
    arms: Sequence[str] = ("MSC", "PBO"),
    reference: str = "PBO",
    visits: Sequence[str] | None = None,
    level: float = 0.95,
    columns: BDSColumns = DEFAULT_COLUMNS,
) -> ChangeMMRMResult:
    """MMRM of the change from baseline of one parameter (statistics.md, secondary endpoints).

    Model (:func:`ildtrial.stats.mmrm.fit_mmrm`)::

        CHG_ij = μ + α_arm + γ_visit + (αγ)_arm,visit + β·BASE_i + (βγ)_visit·BASE_i + ε_ij

    with ``ε_i ~ N(0, Σ)``, Σ unstructured over the post-baseline visits, REML, reference arm
    ``reference`` and reference visit the first visit. LS means per arm and visit are at the
    mean of ``BASE`` over the analysed rows (the emmeans convention of ``fit_mmrm``);
    differences are each arm minus ``reference`` (they do not depend on the baseline value
    chosen) with Satterthwaite-df t intervals and p-values at ``level``.

    Rows used: parameter ``paramcd``, post-baseline (``ABLFL ≠ "Y"``), arm in ``arms``, visit
    in ``visits`` (default all post-baseline visits present), non-missing ``CHG`` and ``BASE``.
    Returns ``estimable = False`` (no exception) when: no rows remain, an arm has fewer than
    2 participants with data, or the model cannot be fitted (non-estimable covariance, rank
    deficiency, no convergence — the MMRM's own message is given).
    """
    cols = columns
    _require(bds, [cols.subject, cols.arm, cols.paramcd, cols.visit, cols.base, cols.chg])
    arm_levels = tuple(str(a) for a in arms)
    if reference not in arm_levels:
        raise ValueError(f"reference arm {reference!r} is not among arms {list(arm_levels)}")
    level = float(level)

    def not_estimable(
        reason: str, n_subj: int = 0, n_obs: int = 0, vis: Sequence[str] = ()
    ) -> ChangeMMRMResult:
        return ChangeMMRMResult(
            str(paramcd), False, reason, arm_levels, reference, tuple(vis), n_subj, n_obs, level
        )

    frame = bds.loc[bds[cols.paramcd].astype(str) == str(paramcd)]
    if frame.empty:
        return not_estimable(f"no rows for {cols.paramcd} = {paramcd!r}")
    frame = _post_baseline(frame, cols)
    frame = frame.loc[frame[cols.arm].astype(str).isin(arm_levels)]
    wanted = None if visits is None else [str(v) for v in visits]
    if wanted is not None:
        frame = frame.loc[frame[cols.visit].astype(str).isin(wanted)]
    chg = pd.to_numeric(frame[cols.chg], errors="coerce")
    base = pd.to_numeric(frame[cols.base], errors="coerce")
    frame = frame.loc[chg.notna() & base.notna()]
    if frame.empty:
        return not_estimable("no post-baseline rows with both a change and a baseline value")
    present = set(frame[cols.visit].astype(str))
    order = _visit_order(frame, cols) if wanted is None else [v for v in wanted if v in present]
    data = pd.DataFrame(
        {
            "USUBJID": frame[cols.subject].astype(str).to_numpy(),
            "ARM": pd.Categorical(frame[cols.arm].astype(str), categories=list(arm_levels)),
            "AVISIT": pd.Categorical(frame[cols.visit].astype(str), categories=order),
            "BASE": pd.to_numeric(frame[cols.base]).to_numpy(dtype=float),
            "CHG": pd.to_numeric(frame[cols.chg]).to_numpy(dtype=float),
        }
    )
    n_subj = int(data["USUBJID"].nunique())
    n_obs = int(len(data))
    per_arm = data.groupby("ARM", observed=False)["USUBJID"].nunique()
    few = {str(a): int(k) for a, k in per_arm.items() if k < 2}
    if few:
        return not_estimable(
            "too few participants with post-baseline data: "
            + ", ".join(f"arm {a} has {k}" for a, k in few.items())
            + " (at least 2 per arm are needed)",
            n_subj,
            n_obs,
            order,
        )
    try:
        fit = fit_mmrm(
            data,
            response="CHG",
            subject="USUBJID",
            visit="AVISIT",
            group="ARM",
            visit_interactions=["BASE"],
            reference={"ARM": reference, "AVISIT": order[0]},
        )
        lsmeans = fit.lsmeans(conf_level=level)
        differences = fit.group_differences(conf_level=level)
    except (DesignError, MMRMError, np.linalg.LinAlgError) as exc:
        return not_estimable(str(exc), n_subj, n_obs, order)
    return ChangeMMRMResult(
        str(paramcd),
        True,
        "",
        arm_levels,
        reference,
        tuple(order),
        fit.n_subjects,
        fit.n_observations,
        level,
        lsmeans,
        differences,
        fit,
    )


# --------------------------------------------------------------------------- random slopes


@dataclass(frozen=True)
class SlopeEstimate:
    """A slope (or slope difference) with a Wald (normal) CI and p-value."""

    label: str
    estimate: float
    se: float
    z_value: float
    p_value: float
    ci_lower: float
    ci_upper: float

    def to_dict(self) -> dict[str, float | None]:
        return {
            "estimate": _json(self.estimate),
            "se": _json(self.se),
            "z_value": _json(self.z_value),
            "p_value": _json(self.p_value),
            "ci_lower": _json(self.ci_lower),
            "ci_upper": _json(self.ci_upper),
        }


@dataclass(frozen=True)
class SlopeResult:
    """Random-coefficient regression: annual rate of change per arm and the differences."""

    estimable: bool
    reason: str
    arms: tuple[str, ...]
    reference: str
    rate_unit: str
    level: float
    n_subjects: int
    n_observations: int
    rates: dict[str, SlopeEstimate] = field(default_factory=dict)
    differences: dict[str, SlopeEstimate] = field(default_factory=dict)
    converged: bool = False
    warnings: tuple[str, ...] = ()
    random_effects_cov: tuple[tuple[float, float], tuple[float, float]] | None = None
    residual_variance: float = math.nan
    reml_log_likelihood: float = math.nan
    fit: Any = field(default=None, compare=False, repr=False)

    @property
    def status(self) -> str:
        """``not estimable: …``, ``not converged …``, ``converged with warnings`` or ``converged``."""
        if not self.estimable:
            return f"not estimable: {self.reason}"
        if not self.converged:
            return "not converged: the estimates are unreliable (see warnings)"
        return "converged with warnings" if self.warnings else "converged"

    def table(self) -> pd.DataFrame:
        rows = [{"term": k, "kind": "rate", **e.to_dict()} for k, e in self.rates.items()]
        rows += [
            {"term": k, "kind": "difference", **e.to_dict()} for k, e in self.differences.items()
        ]
        columns = ["term", "kind", "estimate", "se", "z_value", "p_value", "ci_lower", "ci_upper"]
        return pd.DataFrame(rows, columns=columns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": "AVAL ~ TIME * ARM, random intercept and slope in TIME by subject "
            "(unstructured 2x2), REML (statsmodels MixedLM); Wald CIs",
            "estimable": self.estimable,
            "status": self.status,
            "reason": self.reason,
            "arms": list(self.arms),
            "reference": self.reference,
            "rate_unit": self.rate_unit,
            "level": self.level,
            "n_subjects": self.n_subjects,
            "n_observations": self.n_observations,
            "rates": {k: e.to_dict() for k, e in self.rates.items()},
            "differences": {k: e.to_dict() for k, e in self.differences.items()},
            "converged": self.converged,
            "warnings": list(self.warnings),
            "random_effects_cov": None
            if self.random_effects_cov is None
            else [list(r) for r in self.random_effects_cov],
            "residual_variance": _json(self.residual_variance),
            "reml_log_likelihood": _json(self.reml_log_likelihood),
        }


def _wald(label: str, est: float, var: float, level: float) -> SlopeEstimate:
    se = math.sqrt(var) if var >= 0 else math.nan
    z = est / se if se > 0 else math.nan
    p = float(2.0 * stats.norm.sf(abs(z))) if math.isfinite(z) else math.nan
    q = float(stats.norm.ppf(0.5 + level / 2.0))
    return SlopeEstimate(label, est, se, z, p, est - q * se, est + q * se)


def random_slope_decline(
    bds_fvc: pd.DataFrame,
    *,
    paramcd: str | None = None,
    arms: Sequence[str] = ("MSC", "PBO"),
    reference: str = "PBO",
    time: str = "TIME",
    time_unit: Literal["years", "days"] = "years",
    value: str = "AVAL",
    scale: float = 1.0,
    rate_unit: str = "mL/year",
    level: float = 0.95,
    columns: BDSColumns = DEFAULT_COLUMNS,
) -> SlopeResult:
    """Annual rate of change per arm from a random intercept and slope model (REML).

    Model (the primary model of the nintedanib INPULSIS trials), statsmodels::

        mixedlm("AVAL ~ TIME * ARM", data, groups=USUBJID, re_formula="~TIME").fit(reml=True)

    i.e. ``y_ij = β0 + β1·t_ij + α_arm + δ_arm·t_ij + b0_i + b1_i·t_ij + ε_ij`` with
    ``(b0_i, b1_i) ~ N(0, G)`` (G unstructured 2 × 2) and ``ε_ij ~ N(0, σ²)``. ARM uses
    treatment coding with ``reference`` as the base level, so the rate of the reference arm
    is ``β1`` and of arm g is ``β1 + δ_g``; the difference g − reference is ``δ_g``.
    SEs come from the fixed-effects covariance ``cov(β̂)`` (``lᵀ cov l``); CIs and p-values are
    Wald (normal), as statsmodels reports for MixedLM.

    All rows (baseline included) with non-missing ``value`` and ``time`` are used. Time is in
    years (``time_unit="days"`` divides by 365.25); ``scale`` multiplies the values (e.g.
    1000 for FVC in litres to report mL/year). Warnings raised by statsmodels during the
    fit (convergence, boundary, optimiser retries) are captured in ``warnings``;
    ``converged`` is statsmodels' flag for the final optimiser. A fit that did not converge
    is still returned (``estimable = True``, ``converged = False``, see ``status``). Too few participants (< 2 per arm, or no participant with two time
    points) or a failed fit give ``estimable = False``.
    """
    import statsmodels.formula.api as smf

    cols = columns
    frame = _select_parameter(bds_fvc, paramcd, cols)
    _require(frame, [cols.subject, cols.arm, time, value])
    arm_levels = tuple(str(a) for a in arms)
    if reference not in arm_levels:
        raise ValueError(f"reference arm {reference!r} is not among arms {list(arm_levels)}")
    if time_unit not in ("years", "days"):
        raise ValueError(f"time_unit must be 'years' or 'days', not {time_unit!r}")
    categories = [reference, *[a for a in arm_levels if a != reference]]
    frame = frame.loc[frame[cols.arm].astype(str).isin(arm_levels)]
    t = pd.to_numeric(frame[time], errors="coerce")
    y = pd.to_numeric(frame[value], errors="coerce")
    keep = t.notna() & y.notna()
    data = pd.DataFrame(
        {
            "USUBJID": frame.loc[keep, cols.subject].astype(str).to_numpy(),
            "ARM": pd.Categorical(frame.loc[keep, cols.arm].astype(str), categories=categories),
            "TIME": t[keep].to_numpy(dtype=float) / (DAYS_PER_YEAR if time_unit == "days" else 1.0),
            "AVAL": y[keep].to_numpy(dtype=float) * float(scale),
        }
    )
    n_subj = int(data["USUBJID"].nunique())
    n_obs = int(len(data))

    def not_estimable(reason: str) -> SlopeResult:
        return SlopeResult(False, reason, arm_levels, reference, rate_unit, level, n_subj, n_obs)

    per_arm = data.groupby("ARM", observed=False)["USUBJID"].nunique()
    few = {str(a): int(k) for a, k in per_arm.items() if k < 2}
    if few:
        return not_estimable(
            ", ".join(f"arm {a} has {k} participant(s)" for a, k in few.items())
            + " with data (at least 2 per arm are needed)"
        )
    times_per_subject = data.groupby("USUBJID")["TIME"].nunique()
    if not (times_per_subject >= 2).any():
        return not_estimable("no participant has measurements at two different times")

    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught_list:
            warnings.simplefilter("always")
            model = smf.mixedlm(
                "AVAL ~ TIME * ARM", data, groups=data["USUBJID"], re_formula="~TIME"
            )
            res = model.fit(reml=True)
        caught = list(caught_list)
    except (np.linalg.LinAlgError, ValueError) as exc:
        return not_estimable(f"the mixed model could not be fitted: {exc}")
    messages: list[str] = []
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in messages:
            messages.append(text)

    names = list(res.fe_params.index)
    cov = res.cov_params().loc[names, names].to_numpy(dtype=float)
    beta = res.fe_params.to_numpy(dtype=float)

    def contrast(weights: Mapping[str, float]) -> tuple[float, float]:
        vec = np.array([weights.get(n, 0.0) for n in names])
        return float(vec @ beta), float(vec @ cov @ vec)

    rates: dict[str, SlopeEstimate] = {}
    differences: dict[str, SlopeEstimate] = {}
    rates[reference] = _wald(reference, *contrast({"TIME": 1.0}), level)
    for arm in categories[1:]:
        inter = f"TIME:ARM[T.{arm}]"
        rates[arm] = _wald(arm, *contrast({"TIME": 1.0, inter: 1.0}), level)
        label = f"{arm} - {reference}"
        differences[label] = _wald(label, *contrast({inter: 1.0}), level)
    rates = {a: rates[a] for a in arm_levels}
    g = np.asarray(res.cov_re, dtype=float)
    return SlopeResult(
        True,
        "",
        arm_levels,
        reference,
        rate_unit,
        level,
        n_subj,
        n_obs,
        rates,
        differences,
        bool(res.converged),
        tuple(messages),
        ((float(g[0, 0]), float(g[0, 1])), (float(g[1, 0]), float(g[1, 1]))),
        float(res.scale),
        float(res.llf),
        res,
    )


# --------------------------------------------------------------------------- Wilcoxon, deaths worst


@dataclass(frozen=True)
class VisitWilcoxon:
    """Wilcoxon rank-sum (Mann–Whitney) test at one visit, deaths ranked worst."""

    visit: str
    target_day: float
    n: dict[str, int]
    n_deaths_imputed: dict[str, int]
    rank_sum: dict[str, float]
    mean_rank: dict[str, float]
    u_statistic: float
    p_value: float
    method: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "visit": self.visit,
            "target_day": _json(self.target_day),
            "n": dict(self.n),
            "n_deaths_imputed": dict(self.n_deaths_imputed),
            "rank_sum": {k: _json(v) for k, v in self.rank_sum.items()},
            "mean_rank": {k: _json(v) for k, v in self.mean_rank.items()},
            "u_statistic": _json(self.u_statistic),
            "p_value": _json(self.p_value),
            "method": self.method,
            "note": self.note,
        }


@dataclass(frozen=True)
class WilcoxonDeathsResult:
    """Per-visit rank-sum tests and the per-participant values and ranks used."""

    arms: tuple[str, ...]
    value: str
    higher_is_better: bool
    rule: str
    visits: tuple[VisitWilcoxon, ...]
    ranks: pd.DataFrame = field(compare=False)

    def visit(self, label: str) -> VisitWilcoxon:
        for v in self.visits:
            if v.visit == label:
                return v
        raise KeyError(label)

    def table(self) -> pd.DataFrame:
        rows = []
        for v in self.visits:
            row: dict[str, Any] = {"visit": v.visit}
            for a in self.arms:
                row[f"{a} n"] = v.n[a]
                row[f"{a} deaths"] = v.n_deaths_imputed[a]
                row[f"{a} mean rank"] = v.mean_rank[a]
            row.update({"U": v.u_statistic, "p_value": v.p_value, "method": v.method})
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "arms": list(self.arms),
            "value": self.value,
            "higher_is_better": self.higher_is_better,
            "rule": self.rule,
            "visits": [v.to_dict() for v in self.visits],
        }


def _death_days(
    deaths: Mapping[str, float] | pd.DataFrame,
    cols: BDSColumns,
    death_day: str,
) -> tuple[dict[str, float], dict[str, str]]:
    """Death day per participant, and the arm where the deaths frame states it."""
    if isinstance(deaths, pd.DataFrame):
        _require(deaths, [cols.subject, death_day], "deaths")
        frame = deaths.loc[pd.to_numeric(deaths[death_day], errors="coerce").notna()]
        days = dict(
            zip(
                frame[cols.subject].astype(str),
                pd.to_numeric(frame[death_day]).astype(float),
                strict=True,
            )
        )
        arms = (
            dict(zip(frame[cols.subject].astype(str), frame[cols.arm].astype(str), strict=True))
            if cols.arm in frame.columns
            else {}
        )
        return days, arms
    return {
        str(k): float(v) for k, v in deaths.items() if v is not None and not math.isnan(float(v))
    }, {}


def wilcoxon_deaths_worst(
    bds: pd.DataFrame,
    deaths: Mapping[str, float] | pd.DataFrame,
    *,
    paramcd: str | None = None,
    arms: Sequence[str] = ("MSC", "PBO"),
    value: str = "CHG",
    visits: Sequence[str] | None = None,
    visit_days: Mapping[str, float] | None = None,
    higher_is_better: bool = True,
    death_day: str = "DTHDY",
    method: Literal["auto", "asymptotic", "exact"] = "auto",
    columns: BDSColumns = DEFAULT_COLUMNS,
) -> WilcoxonDeathsResult:
    """Wilcoxon rank-sum test of ``value`` per visit, deaths ranked worst (IPF convention).

    ``deaths`` maps participant → study day of death (or is a frame with ``USUBJID``,
    ``DTHDY`` and optionally ``ARM``). Each visit has a target study day: ``visit_days``, or
    by default the median ``ADY`` of the rows observed at that visit.

    Imputation rule at a visit with target day D (participants of ``arms`` in the BDS or in
    ``deaths``):

    1. a participant with an observed value keeps it (even if death followed within the
       window);
    2. a participant without an observed value who died on or before day D is imputed a
       value worse than every observed value at that visit: with ``m`` the minimum observed
       value (maximum if ``higher_is_better`` is False; 0 if none is observed) and the
       distinct death days of the imputed participants ranked from latest (k = 1) to
       earliest, the imputed value is ``m − k`` (``m + k``). So every death ranks below
       every survivor, an earlier death ranks worse than a later one, and deaths on the same
       day tie;
    3. a surviving participant without a value is left out of that visit (no imputation).

    Ranks are mid-ranks (ties averaged), rank 1 = worst. The test is
    :func:`scipy.stats.mannwhitneyu` (two-sided, continuity correction) of ``arms[0]``
    against ``arms[1]``; ``u_statistic`` is U of ``arms[0]``. ``method="auto"`` lets scipy
    choose: exact when there are no ties and one arm has ≤ 8 values, else the normal
    approximation with tie correction; the method used is reported.
    """
    cols = columns
    if len(arms) != 2:
        raise ValueError(f"the rank-sum test compares two arms, got {list(arms)}")
    arm_levels = tuple(str(a) for a in arms)
    frame = _select_parameter(bds, paramcd, cols)
    _require(frame, [cols.subject, cols.arm, cols.visit, value])
    in_arms = frame[cols.arm].astype(str).isin(arm_levels)
    other_arms = set(frame.loc[~in_arms, cols.subject].astype(str))
    frame = frame.loc[in_arms]
    arm_of = dict(zip(frame[cols.subject].astype(str), frame[cols.arm].astype(str), strict=False))
    post = _post_baseline(frame, cols)
    order = _visit_order(post, cols) if visits is None else [str(v) for v in visits]

    if visit_days is not None:
        missing = [v for v in order if v not in visit_days]
        if missing:
            raise ValueError(f"visit_days lacks the target day of visit(s) {missing}")
        target = {v: float(visit_days[v]) for v in order}
    else:
        if cols.day not in post.columns:
            raise ValueError(f"give visit_days or a {cols.day!r} column to date the visits")
        day = pd.to_numeric(post[cols.day], errors="coerce")
        median = day.groupby(post[cols.visit].astype(str)).median()
        target = {v: float(median.get(v, math.nan)) for v in order}
        undated = [v for v in order if math.isnan(target[v])]
        if undated:
            raise ValueError(f"no {cols.day} observed at visit(s) {undated}; give visit_days")

    died, death_arm = _death_days(deaths, cols, death_day)
    for subject in died:
        if subject in arm_of or subject in other_arms:
            continue  # in the BDS (another arm's participants are left out below)
        if subject not in death_arm:
            raise ValueError(
                f"participant {subject!r} died but has no row in the BDS and no arm in "
                "the deaths frame"
            )
        if death_arm[subject] in arm_levels:
            arm_of[subject] = death_arm[subject]
    died = {s: d for s, d in died.items() if s in arm_of}

    values = pd.to_numeric(post[value], errors="coerce")
    post = post.assign(
        _v=values, _s=post[cols.subject].astype(str), _visit=post[cols.visit].astype(str)
    )
    rank_rows: list[dict[str, Any]] = []
    results: list[VisitWilcoxon] = []
    for visit in order:
        at = post.loc[(post["_visit"] == visit) & post["_v"].notna()]
        dup = at["_s"].duplicated()
        if dup.any():
            raise ValueError(f"participant {at['_s'][dup].iloc[0]!r} has two values at {visit!r}")
        observed = dict(zip(at["_s"], at["_v"].astype(float), strict=True))
        d_target = target[visit]
        dead_here = {s: d for s, d in died.items() if s not in observed and d <= d_target}
        if observed:
            worst = min(observed.values()) if higher_is_better else max(observed.values())
        else:
            worst = 0.0
        sign = -1.0 if higher_is_better else 1.0
        distinct = sorted(set(dead_here.values()), reverse=True)  # latest death first
        k_of = {day: k for k, day in enumerate(distinct, start=1)}
        imputed = {s: worst + sign * k_of[d] for s, d in dead_here.items()}
        subjects = sorted(observed) + sorted(imputed)
        vals = np.array([observed.get(s, imputed.get(s)) for s in subjects], dtype=float)
        # rank 1 = worst: rank the values so that worse is smaller
        ranks = stats.rankdata(vals if higher_is_better else -vals) if vals.size else vals
        for s, v, r in zip(subjects, vals, ranks, strict=True):
            rank_rows.append(
                {
                    "visit": visit,
                    cols.subject: s,
                    cols.arm: arm_of[s],
                    "value": float(v),
                    "observed": s in observed,
                    "death_day": died.get(s, math.nan),
                    "imputed_death": s in imputed,
                    "rank": float(r),
                }
            )
        groups = {a: [i for i, s in enumerate(subjects) if arm_of[s] == a] for a in arm_levels}
        n = {a: len(ix) for a, ix in groups.items()}
        n_dead = {a: sum(1 for s in imputed if arm_of[s] == a) for a in arm_levels}
        rank_sum = {a: float(np.sum(ranks[ix])) if ix else math.nan for a, ix in groups.items()}
        mean_rank = {a: rank_sum[a] / n[a] if n[a] else math.nan for a in arm_levels}
        x = vals[groups[arm_levels[0]]]
        y = vals[groups[arm_levels[1]]]
        if x.size == 0 or y.size == 0:
            results.append(
                VisitWilcoxon(
                    visit,
                    d_target,
                    n,
                    n_dead,
                    rank_sum,
                    mean_rank,
                    math.nan,
                    math.nan,
                    "",
                    "not estimable: an arm has no values at this visit",
                )
            )
            continue
        ties = np.unique(vals).size < vals.size
        used = method
        if method == "auto":
            used = "asymptotic" if (x.size > 8 and y.size > 8) or ties else "exact"
        test = stats.mannwhitneyu(x, y, alternative="two-sided", method=used)
        results.append(
            VisitWilcoxon(
                visit,
                d_target,
                n,
                n_dead,
                rank_sum,
                mean_rank,
                float(test.statistic),
                float(test.pvalue),
                used,
            )
        )
    rule = (
        "participants without a value who died on or before the visit's target day get "
        f"{'min' if higher_is_better else 'max'}(observed) {'-' if higher_is_better else '+'} k, "
        "k = 1 for the latest death, increasing for earlier deaths (same day = tie); "
        "rank 1 = worst; surviving participants without a value are excluded"
    )
    ranks_frame = pd.DataFrame(
        rank_rows,
        columns=[
            "visit",
            cols.subject,
            cols.arm,
            "value",
            "observed",
            "death_day",
            "imputed_death",
            "rank",
        ],
    )
    return WilcoxonDeathsResult(
        arm_levels, value, higher_is_better, rule, tuple(results), ranks_frame
    )
