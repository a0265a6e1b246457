"""The analyses of the statistical report, run on the analysis datasets (pure).

One function, :func:`run_analyses`, calls the ``ildtrial.stats`` functions the SAP names
(statistics.md) and keeps every result, or the reason it could not be computed, in an
:class:`Analyses` object. The HTML, the figures and the methods text are all rendered from
that object, so the methods can only describe what was actually run.

By arm: groups are the protocol arms (experimental first, placebo as reference); the
full analysis set is analysed by arm assigned (``TRTP``), the safety population by
treatment received (``TRT01A``). Pooled (blinded): one group ``All``; between-arm
analyses (MMRM, Wilcoxon, SAE comparison) are not run at all, and the datasets given
must be the blinded ones, which carry no arm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ildtrial.datasets import SAFETY_COLUMNS, AnalysisDatasets, StudyConfig, analysis_records
from ildtrial.datasets.bds import PARAMETERS
from ildtrial.reports.tables import Group
from ildtrial.stats.efficacy import (
    BDSColumns,
    ChangeMMRMResult,
    SlopeResult,
    WilcoxonDeathsResult,
    change_mmrm,
    descriptive_by_arm_visit,
    random_slope_decline,
    wilcoxon_deaths_worst,
)
from ildtrial.stats.safety_tables import (
    POOLED,
    AESummaryTables,
    SAEAnalysis,
    ae_summary_tables,
    primary_sae_analysis,
)

__all__ = ["POOLED", "Analyses", "ParameterAnalyses", "report_groups", "run_analyses"]

#: Arm column of the pooled efficacy frames (a constant "All").
POOLED_COLUMN = "GROUP"


@dataclass
class ParameterAnalyses:
    """Everything computed for one BDS parameter."""

    paramcd: str
    aval: pd.DataFrame | None = None
    chg: pd.DataFrame | None = None
    mmrm: ChangeMMRMResult | None = None
    wilcoxon: WilcoxonDeathsResult | None = None
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class Analyses:
    """All results of the report, with the reason for each one that could not be computed."""

    by_arm: bool
    groups: tuple[Group, ...]
    reference: str | None
    level: float
    sae: SAEAnalysis | None = None
    ae_tables: AESummaryTables | None = None
    parameters: dict[str, ParameterAnalyses] = field(default_factory=dict)
    slope: SlopeResult | None = None
    errors: dict[str, str] = field(default_factory=dict)
    anl: pd.DataFrame = field(default_factory=pd.DataFrame)
    efficacy_column: str = "TRTP"

    @property
    def comparison(self) -> str:
        """``"MSC - PBO"``: the label of the between-arm differences (by arm only)."""
        if not self.by_arm or self.reference is None:
            return ""
        others = [g.key for g in self.groups if g.key != self.reference]
        return f"{others[0]} - {self.reference}" if others else ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary of the key results (written next to the report by the CLI)."""
        return {
            "by_arm": self.by_arm,
            "groups": [g.key for g in self.groups],
            "level": self.level,
            "primary_sae": None if self.sae is None else self.sae.to_dict(),
            "mmrm": {
                k: v.mmrm.to_dict() for k, v in self.parameters.items() if v.mmrm is not None
            },
            "wilcoxon": {
                k: v.wilcoxon.to_dict() for k, v in self.parameters.items() if v.wilcoxon is not None
            },
            "fvc_slope": None if self.slope is None else self.slope.to_dict(),
            "errors": dict(sorted(self.errors.items())),
        }


def report_groups(config: StudyConfig, by_arm: bool) -> tuple[Group, ...]:
    """The report's columns: the arms, experimental first and the reference last; or ``All``."""
    if not by_arm:
        return (Group(POOLED, "All participants"),)
    others = [a for a in config.arm_codes if a != config.reference_arm]
    return tuple(Group(a, a) for a in (*others, config.reference_arm))


def _attempt(errors: dict[str, str], key: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one analysis; inconsistent data make it 'not computed' (with the reason), not a crash."""
    try:
        # floating-point warnings of degenerate fits are reported through the result's status
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return fn(*args, **kwargs)
    except (ValueError, KeyError, np.linalg.LinAlgError) as exc:
        errors[key] = f"{type(exc).__name__}: {exc}"
        return None


def run_analyses(
    datasets: AnalysisDatasets,
    config: StudyConfig,
    *,
    by_arm: bool,
    level: float = 0.95,
    step: Callable[[str], None] | None = None,
) -> Analyses:
    """Safety and efficacy analyses of statistics.md on ``datasets`` (see module docstring)."""
    if not by_arm and not datasets.blinded:
        raise ValueError("a pooled report must be built from blinded datasets (no allocation)")
    tick = step or (lambda _label: None)
    groups = report_groups(config, by_arm)
    reference = config.reference_arm if by_arm else None
    out = Analyses(by_arm, groups, reference, level)
    keys = tuple(g.key for g in groups)

    # safety ------------------------------------------------------------------
    tick("safety analyses")
    adsl, adae = datasets.adsl, datasets.adae
    out.sae = _attempt(
        out.errors, "primary SAE analysis", primary_sae_analysis, adsl, adae, keys,
        pooled=not by_arm, level=level, columns=SAFETY_COLUMNS,
    )
    out.ae_tables = _attempt(
        out.errors, "adverse event tables", ae_summary_tables, adsl, adae, keys,
        pooled=not by_arm, columns=SAFETY_COLUMNS,
    )

    # efficacy ----------------------------------------------------------------
    anl = analysis_records(datasets.adlf)
    if by_arm:
        anl = anl.loc[anl["FASFL"] == "Y"]
        column = "TRTP"
    else:
        anl = anl.assign(**{POOLED_COLUMN: POOLED})
        column = POOLED_COLUMN
    out.anl = anl.reset_index(drop=True)
    out.efficacy_column = column
    cols = BDSColumns(arm=column)
    labels = [w.label for w in config.windows]
    visit_days = {w.label: float(w.target_day) for w in config.windows}
    deaths = adsl.loc[adsl["DTHDY"].notna(), ["USUBJID", "DTHDY"]].copy()
    if by_arm:
        deaths[column] = adsl.loc[deaths.index, "TRT01P"]
    for p in PARAMETERS:
        tick(f"efficacy: {p.paramcd}")
        pa = ParameterAnalyses(p.paramcd)
        pa.aval = _attempt(
            pa.errors, "descriptive AVAL", descriptive_by_arm_visit, out.anl, "AVAL",
            paramcd=p.paramcd, arms=keys, columns=cols,
        )
        pa.chg = _attempt(
            pa.errors, "descriptive CHG", descriptive_by_arm_visit, out.anl, "CHG",
            paramcd=p.paramcd, arms=keys, columns=cols,
        )
        if by_arm and reference is not None:
            pa.mmrm = _attempt(
                pa.errors, "MMRM", change_mmrm, out.anl, p.paramcd, arms=keys,
                reference=reference, visits=labels, level=level, columns=cols,
            )
            pa.wilcoxon = _attempt(
                pa.errors, "Wilcoxon", wilcoxon_deaths_worst, out.anl, deaths,
                paramcd=p.paramcd, arms=keys, value="CHG", visits=labels,
                visit_days=visit_days, higher_is_better=p.higher_is_better, columns=cols,
            )
        out.parameters[p.paramcd] = pa
    tick("random-slope model")
    out.slope = _attempt(
        out.errors, "random-slope FVC decline", random_slope_decline, out.anl,
        paramcd="FVC", arms=keys, reference=reference or POOLED, time="TIME",
        value="AVAL", rate_unit="mL/year", level=level, columns=cols,
    )
    return out
