"""Methods text generated from the analyses that were actually run (pure).

Why generated: a hand-written methods section drifts from the code and never says that
a model did not converge on this data cut. Each sentence here is produced from an
:class:`~ildtrial.reports.analysis.Analyses` result, so "not estimable" and the reason
appear exactly when they happened.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from ildtrial.datasets import AnalysisDatasets, StudyConfig
from ildtrial.datasets.bds import PARAMETERS
from ildtrial.datasets.raw import RawData
from ildtrial.reports.analysis import Analyses

__all__ = ["derivation_methods", "methods_paragraphs"]

_DERIVED_FIELDS = {
    "fvc_percent_predicted": "FVC % predicted",
    "dlco_percent_predicted": "DLCO % predicted",
}


def derivation_methods(raw: RawData) -> dict[str, list[str]]:
    """Reference-equation methods recorded with the derived values actually used."""
    forms = raw.forms
    part = forms.loc[(forms["source"] == "derived") & forms["field"].isin(list(_DERIVED_FIELDS))]
    out: dict[str, list[str]] = {}
    for field, label in _DERIVED_FIELDS.items():
        methods = sorted({str(m) for m in part.loc[part["field"] == field, "method"].dropna()})
        if methods:
            out[label] = methods
    return out


def _join(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def methods_paragraphs(
    analyses: Analyses,
    datasets: AnalysisDatasets,
    config: StudyConfig,
    raw: RawData,
    software: dict[str, str],
) -> list[str]:
    """The methods section, one string per paragraph."""
    adsl = datasets.adsl
    n_fas = int((adsl["FASFL"] == "Y").sum()) if not adsl.empty else 0
    n_saf = int((adsl["SAFFL"] == "Y").sum()) if not adsl.empty else 0
    pct = f"{100 * analyses.level:g}%"
    paras: list[str] = []
    if analyses.by_arm:
        paras.append(
            f"Populations. The full analysis set comprises the {n_fas} randomized participants, "
            f"analysed by the arm assigned; the safety population the {n_saf} participants who "
            "received at least one infusion, analysed by the treatment received."
        )
    else:
        paras.append(
            f"Populations. The full analysis set comprises the {n_fas} randomized participants and "
            f"the safety population the {n_saf} who received at least one infusion. This is a "
            "pooled report for blinded readers: it was built from the data without the allocation, "
            "every summary covers all participants together and no between-group comparison is made."
        )
    windows = "; ".join(
        f"{w.label}: days {w.low_day}-{w.high_day} (target day {w.target_day})" for w in config.windows
    )
    paras.append(
        "Study days and visits. Study days of lung function count from the first infusion "
        f"(day 0, visit {config.day_zero_visit}), as the protocol schedule does. Baseline is the last "
        "non-missing value on or before day 0. Post-baseline values are assigned to analysis visits "
        f"by study day using the protocol's windows ({windows}); within a window the value nearest "
        "the target day is analysed, the later one on a tie. Change from baseline is the value minus "
        "baseline; percent change divides by baseline."
    )
    methods = derivation_methods(raw)
    if methods:
        paras.append(
            "Derived values. "
            + "; ".join(f"{label}: {_join(ms)}" for label, ms in methods.items())
            + ". The values are those computed by the EDC from the entered results and the "
            "participant's sex, age and height."
        )
    # safety
    sae_text = (
        f"Safety. Adverse events are treatment-emergent when their onset is on or after the first "
        f"infusion and within the {config.observation_days + 1}-day observation period. The primary "
        "endpoint is serious adverse events: the number of events and of participants with at least "
        f"one, with exact Clopper-Pearson {pct} confidence intervals, and the exposure-adjusted "
        "incidence (participants with an event per participant-year at risk, time at risk from the "
        "first infusion to the first event or, without one, to the earliest of study exit, death, "
        f"data cut-off and day {config.observation_days}) with an exact Poisson interval."
    )
    if analyses.by_arm:
        sae_text += (
            " Between arms: the difference in proportions with Newcombe's hybrid score interval "
            "and Fisher's exact test (two-sided)."
        )
    sae_text += (
        " Adverse events are tabulated by coded term, maximum CTCAE grade, seriousness and "
        "relatedness to the product (possible, probable and definite counted as related); "
        "infusion-related reactions are events the investigator recorded as infusion-related "
        f"(onset within {config.reaction_window_hours} h of an infusion)."
    )
    if "primary SAE analysis" in analyses.errors:
        sae_text += f" The primary analysis could not be computed: {analyses.errors['primary SAE analysis']}."
    paras.append(sae_text)
    # efficacy
    paras.append(
        "Descriptive statistics of the value and of the change from baseline per group and "
        "analysis visit: n, mean, SD, median, quartiles (SAS definition 5) and range."
    )
    if analyses.by_arm:
        fits = []
        for p in PARAMETERS:
            pa = analyses.parameters.get(p.paramcd)
            if pa is None:
                continue
            if pa.mmrm is None:
                fits.append(f"{p.paramcd} not computed ({pa.errors.get('MMRM', 'no result')})")
            elif pa.mmrm.estimable:
                fits.append(
                    f"{p.paramcd} converged ({pa.mmrm.n_subjects} participants, "
                    f"{pa.mmrm.n_observations} observations)"
                )
            else:
                fits.append(f"{p.paramcd} not estimable ({pa.mmrm.reason})")
        paras.append(
            "Mixed model for repeated measures (MMRM). The change from baseline was modelled as "
            "arm x visit + baseline x visit with an unstructured within-participant covariance, "
            "fitted by REML (ildtrial.stats.mmrm, validated against the published R mmrm / SAS "
            "PROC MIXED results); degrees of freedom by Satterthwaite's method. Least-squares means "
            f"per arm and visit are at the mean baseline; differences {analyses.comparison} with "
            f"{pct} confidence intervals and two-sided p-values. Fits: " + "; ".join(fits) + "."
        )
    slope = analyses.slope
    if slope is None:
        slope_status = f"not computed ({analyses.errors.get('random-slope FVC decline', 'no result')})"
    else:
        slope_status = slope.status
        if slope.estimable:
            slope_status += f" ({slope.n_subjects} participants, {slope.n_observations} observations)"
        if slope.warnings:
            slope_status += "; optimiser messages: " + " | ".join(slope.warnings)
    paras.append(
        "Annual rate of FVC decline. Random-coefficient regression of FVC (mL) on time in years "
        + ("with arm x time interaction" if analyses.by_arm else "")
        + ", random intercept and slope per participant (unstructured), REML (statsmodels "
        f"MixedLM); rates in mL/year with Wald {pct} intervals. Model status: {slope_status}."
    )
    if analyses.by_arm:
        used: set[str] = set()
        for pa in analyses.parameters.values():
            if pa.wilcoxon is not None:
                used |= {v.method for v in pa.wilcoxon.visits if v.method}
        paras.append(
            "Sensitivity analysis. Wilcoxon rank-sum test of the change from baseline at each visit, "
            "participants who died on or before the visit's target day without a value ranked worse "
            "than every survivor (an earlier death worse than a later one); survivors without a value "
            "are left out. P-values: "
            + (_join(sorted(used)) if used else "none computed")
            + " (exact when there are no ties and an arm has at most 8 values)."
        )
    not_run = {k: v for k, v in analyses.errors.items() if k != "primary SAE analysis"}
    for pa in analyses.parameters.values():
        for k, v in pa.errors.items():
            not_run[f"{pa.paramcd} {k}"] = v
    if not_run:
        paras.append(
            "Analyses that could not be computed on this data cut: "
            + "; ".join(f"{k}: {v}" for k, v in sorted(not_run.items()))
            + "."
        )
    paras.append(
        "Software: " + ", ".join(f"{k} {v}" for k, v in software.items()) + "."
    )
    return paras


def derivation_rows(derivations: dict[str, dict[str, str]], frames: dict[str, pd.DataFrame]) -> list[tuple[str, str, str]]:
    """(dataset, column, rule) for every documented column present in the datasets."""
    rows = []
    for dataset, rules in derivations.items():
        present = set(frames.get(dataset.lower(), pd.DataFrame()).columns)
        for column, rule in rules.items():
            if column in present:
                rows.append((dataset, column, rule))
    return rows
