"""Safety tables of the trial report: the primary SAE analysis and the AE summaries.

Pure pandas/numpy/scipy; no Django. Inputs are ADaM-like frames:

* **ADSL** — one row per participant: ``USUBJID``, ``ARM`` (pass the actual-treatment
  column, e.g. ``TRT01A``, through :class:`SafetyColumns`, since the safety population is
  analysed by treatment received), ``SAFFL`` (``"Y"`` = safety population), ``TRTDURD``
  (days at risk: from the first infusion, day 1, to the end of the 12-month observation,
  death or withdrawal) and ``DTHFL`` (``"Y"`` = died).
* **ADAE** — one row per adverse event: ``USUBJID``, optionally ``ARM``, ``AEDECOD`` (falls
  back to ``AETERM`` where missing), ``AESOC``, ``AETOXGR`` (CTCAE grade 1–5), ``AESER``
  (``"Y"``/``"N"``), ``AEREL`` (relatedness text), ``TRTEMFL`` (``"Y"`` = treatment
  emergent), ``INFREL`` (``"Y"`` = infusion-related: onset within 24 h of an infusion) and
  ``AESTDY`` (study day of onset, day 1 = first infusion).

Rules (statistics.md, "Primary endpoint"):

* denominators are the participants of the safety population (``SAFFL = "Y"``) per arm;
  only treatment-emergent events (``TRTEMFL = "Y"``) of those participants are counted;
* "n (%)" counts participants with at least one event (each participant once per row),
  "events" counts AE records;
* the arm of an event is the arm of its participant in ADSL; an ADAE ``ARM`` that
  disagrees is an error, as is an event of a participant absent from ADSL;
* rows of the term tables are ordered by descending total number of participants, then
  term (deterministic); grades, seriousness and relatedness keep their natural order;
* ``pooled=True`` drops the arm split: one group ``"All"``, no between-arm comparison and
  the arm columns are never read (for blinded viewers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ildtrial.stats.binary import (
    DifferenceCI,
    ExposureAdjustedIncidence,
    FisherExactResult,
    ProportionCI,
    clopper_pearson,
    exposure_adjusted_incidence,
    fisher_exact_two_sided,
    newcombe_difference,
)

__all__ = [
    "AESummaryTables",
    "ArmSAESummary",
    "POOLED",
    "SAEAnalysis",
    "SAEComparison",
    "SafetyColumns",
    "ae_summary_tables",
    "primary_sae_analysis",
]

POOLED = "All"
TOTAL = "Total"

# Relatedness categories in increasing strength; synonyms map to one label.
_RELATEDNESS: dict[str, tuple[int, str]] = {
    "NOT RELATED": (0, "NOT RELATED"),
    "UNRELATED": (0, "NOT RELATED"),
    "NONE": (0, "NOT RELATED"),
    "UNLIKELY": (1, "UNLIKELY RELATED"),
    "UNLIKELY RELATED": (1, "UNLIKELY RELATED"),
    "POSSIBLE": (2, "POSSIBLY RELATED"),
    "POSSIBLY RELATED": (2, "POSSIBLY RELATED"),
    "PROBABLE": (3, "PROBABLY RELATED"),
    "PROBABLY RELATED": (3, "PROBABLY RELATED"),
    "DEFINITE": (4, "DEFINITELY RELATED"),
    "DEFINITELY RELATED": (4, "DEFINITELY RELATED"),
    "RELATED": (5, "RELATED"),
}
_RELATED_LABELS = frozenset(
    {"POSSIBLY RELATED", "PROBABLY RELATED", "DEFINITELY RELATED", "RELATED"}
)
_MISSING = "MISSING"


@dataclass(frozen=True)
class SafetyColumns:
    """Column names of the ADSL/ADAE inputs (defaults: ADaM names, see module docstring)."""

    subject: str = "USUBJID"
    arm: str = "ARM"
    saffl: str = "SAFFL"
    days_at_risk: str = "TRTDURD"
    death: str = "DTHFL"
    term: str = "AEDECOD"
    term_fallback: str = "AETERM"
    soc: str = "AESOC"
    grade: str = "AETOXGR"
    serious: str = "AESER"
    related: str = "AEREL"
    treatment_emergent: str = "TRTEMFL"
    infusion_related: str = "INFREL"
    onset_day: str = "AESTDY"


DEFAULT_COLUMNS = SafetyColumns()


# --------------------------------------------------------------------------- input handling


def _require(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it has {list(frame.columns)}")


def _flag(series: pd.Series) -> pd.Series:
    """``"Y"`` (any case, surrounding blanks ignored) → True; anything else → False."""
    return series.astype("string").str.strip().str.upper().eq("Y").fillna(False).astype(bool)


@dataclass(frozen=True)
class _Prepared:
    groups: tuple[str, ...]
    population: pd.DataFrame  # subject, group, days, died
    events: pd.DataFrame  # treatment-emergent AEs with a "group" column
    n_by_group: dict[str, int]


def _prepare(
    adsl: pd.DataFrame,
    adae: pd.DataFrame,
    arms: Sequence[str],
    pooled: bool,
    cols: SafetyColumns,
    adae_needed: Sequence[str],
    adsl_needed: Sequence[str] = (),
) -> _Prepared:
    """Safety population from ADSL; its treatment-emergent AEs from ADAE, with the arm."""
    s = cols.subject
    adsl_cols = [s, cols.saffl, *adsl_needed] + ([] if pooled else [cols.arm])
    _require(adsl, adsl_cols, "ADSL")
    _require(adae, [s, cols.treatment_emergent, *adae_needed], "ADAE")
    if adsl[s].isna().any():
        raise ValueError(f"ADSL has rows with a missing {s}")
    dup = adsl[s].astype(str).duplicated()
    if dup.any():
        raise ValueError(f"ADSL has more than one row for {s} {adsl[s][dup].iloc[0]!r}")
    pop = adsl.loc[_flag(adsl[cols.saffl])].copy()
    pop["_subject"] = pop[s].astype(str)
    if pooled:
        groups: tuple[str, ...] = (POOLED,)
        pop["_group"] = POOLED
    else:
        groups = tuple(str(a) for a in arms)
        if len(groups) < 1 or len(set(groups)) != len(groups):
            raise ValueError(f"arms must be distinct, got {list(arms)}")
        pop["_group"] = pop[cols.arm].astype("string").str.strip()
        other = sorted(set(pop["_group"].dropna()) - set(groups))
        if other or pop["_group"].isna().any():
            raise ValueError(
                f"safety-population participants in arm(s) {other or ['<missing>']} "
                f"outside the arms analysed {list(groups)}"
            )
    n_by_group = {g: int((pop["_group"] == g).sum()) for g in groups}

    all_subjects = set(adsl[s].astype(str))
    ae = adae.copy()
    ae["_subject"] = ae[s].astype(str)
    unknown = sorted(set(ae["_subject"]) - all_subjects)
    if unknown:
        raise ValueError(f"ADAE has events of participants not in ADSL: {unknown[:5]}")
    ae = ae.loc[_flag(ae[cols.treatment_emergent])]
    group_of = dict(zip(pop["_subject"], pop["_group"], strict=True))
    ae = ae.loc[ae["_subject"].isin(group_of)].copy()
    ae["_group"] = ae["_subject"].map(group_of)
    if not pooled and cols.arm in ae.columns:
        stated = ae[cols.arm].astype("string").str.strip()
        clash = stated.notna() & (stated != ae["_group"])
        if clash.any():
            row = ae.loc[clash].iloc[0]
            raise ValueError(
                f"ADAE {cols.arm} {row[cols.arm]!r} for {row['_subject']!r} differs from "
                f"ADSL ({row['_group']!r}); rebuild ADAE from ADSL"
            )
    return _Prepared(groups, pop, ae.reset_index(drop=True), n_by_group)


def _terms(ae: pd.DataFrame, cols: SafetyColumns) -> pd.Series:
    """Preferred term (AEDECOD), falling back to the verbatim term, then ``"UNCODED"``."""
    term = (
        ae[cols.term].astype("string").str.strip()
        if cols.term in ae.columns
        else pd.Series(pd.NA, index=ae.index, dtype="string")
    )
    if cols.term_fallback in ae.columns:
        term = term.mask(
            term.isna() | term.eq(""), ae[cols.term_fallback].astype("string").str.strip()
        )
    if cols.term not in ae.columns and cols.term_fallback not in ae.columns:
        raise ValueError(f"ADAE lacks both {cols.term!r} and {cols.term_fallback!r}")
    return term.mask(term.isna() | term.eq(""), "UNCODED").astype(str)


def _grades(ae: pd.DataFrame, cols: SafetyColumns) -> pd.Series:
    grade = pd.to_numeric(ae[cols.grade], errors="coerce")
    bad = ae[cols.grade].notna() & ~grade.isin([1, 2, 3, 4, 5])
    if bad.any():
        raise ValueError(
            f"{cols.grade} must be a CTCAE grade 1–5; found {ae.loc[bad, cols.grade].iloc[0]!r}"
        )
    return grade


# --------------------------------------------------------------------------- counting


def _columns(groups: Sequence[str], with_events: bool) -> list[str]:
    stats = ["n", "%", "events"] if with_events else ["n", "%"]
    return [f"{g} {k}" for g in groups for k in stats]


def _table_groups(prep: _Prepared) -> tuple[list[str], dict[str, int]]:
    if len(prep.groups) > 1:
        denominators = dict(prep.n_by_group)
        denominators[TOTAL] = sum(prep.n_by_group.values())
        return [*prep.groups, TOTAL], denominators
    return list(prep.groups), dict(prep.n_by_group)


def _pct(n: int, denominator: int) -> float:
    return 100.0 * n / denominator if denominator > 0 else math.nan


def _row(prep: _Prepared, subset: pd.DataFrame, with_events: bool = True) -> dict[str, float]:
    """Participants n, % and events of one row, per group (and total)."""
    groups, denominators = _table_groups(prep)
    out: dict[str, float] = {}
    for g in groups:
        part = subset if g == TOTAL else subset.loc[subset["_group"] == g]
        n = int(part["_subject"].nunique())
        out[f"{g} n"] = n
        out[f"{g} %"] = _pct(n, denominators[g])
        if with_events:
            out[f"{g} events"] = int(len(part))
    return out


def _count_table(
    prep: _Prepared,
    events: pd.DataFrame,
    key: pd.Series,
    index_name: str,
    order: Sequence[str] | None = None,
    extra: Mapping[str, pd.Series] | None = None,
) -> pd.DataFrame:
    """One row per value of ``key``: n (%) of participants and events, per group.

    Without ``order`` the rows are sorted by descending total participants, then label.
    ``extra`` adds descriptive columns (e.g. the SOC of each term).
    """
    groups, _ = _table_groups(prep)
    last = groups[-1]
    columns = _columns(groups, True)
    rows: dict[str, dict[str, Any]] = {}
    for label in pd.unique(key):
        subset = events.loc[key == label]
        row: dict[str, Any] = {}
        for name, series in (extra or {}).items():
            values = sorted(set(series.loc[subset.index].dropna().astype(str)))
            row[name] = "; ".join(values)
        row.update(_row(prep, subset))
        rows[str(label)] = row
    extra_cols = list(extra or {})
    table = pd.DataFrame.from_dict(rows, orient="index", columns=[*extra_cols, *columns])
    if order is not None:
        labels = [lab for lab in order if lab in rows] + sorted(set(rows) - set(order))
        table = table.loc[labels]
    elif not table.empty:
        keys = sorted(rows, key=lambda lab: (-rows[lab][f"{last} n"], lab))
        table = table.loc[keys]
    table.index.name = index_name
    return _int_columns(table)


def _int_columns(table: pd.DataFrame) -> pd.DataFrame:
    for col in table.columns:
        if col.endswith(" n") or col.endswith(" events"):
            table[col] = table[col].astype("int64")
    return table


# --------------------------------------------------------------------------- primary analysis


@dataclass(frozen=True)
class ArmSAESummary:
    """SAEs in one arm (or the pooled group) of the safety population."""

    group: str
    n_participants: int
    n_events: int
    n_with_event: int
    proportion: ProportionCI | None
    incidence: ExposureAdjustedIncidence | None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "n_participants": self.n_participants,
            "n_events": self.n_events,
            "n_with_event": self.n_with_event,
            "proportion": None if self.proportion is None else self.proportion.to_dict(),
            "incidence": None if self.incidence is None else self.incidence.to_dict(),
            "note": self.note,
        }


@dataclass(frozen=True)
class SAEComparison:
    """First arm versus second: difference in proportions and Fisher's exact test."""

    first: str
    second: str
    difference: DifferenceCI
    fisher: FisherExactResult

    @property
    def label(self) -> str:
        return f"{self.first} - {self.second}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "difference": self.difference.to_dict(),
            "fisher": self.fisher.to_dict(),
        }


@dataclass(frozen=True)
class SAEAnalysis:
    """The primary safety endpoint: serious adverse events by arm (statistics.md)."""

    groups: tuple[ArmSAESummary, ...]
    comparison: SAEComparison | None
    level: float
    pooled: bool
    note: str = ""

    def group(self, name: str) -> ArmSAESummary:
        for g in self.groups:
            if g.group == name:
                return g
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": "serious adverse events (treatment emergent)",
            "level": self.level,
            "pooled": self.pooled,
            "groups": {g.group: g.to_dict() for g in self.groups},
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
            "note": self.note,
        }

    def table(self) -> pd.DataFrame:
        """Printable table: statistics as rows, groups (and the comparison) as columns."""
        pct = f"{100 * self.level:g}%"
        rows = [
            "Participants (N)",
            "Number of SAEs",
            "Participants with >= 1 SAE, n (%)",
            f"{pct} CI (Clopper-Pearson)",
            "Participant-years at risk (to first SAE)",
            f"SAE incidence per participant-year ({pct} exact Poisson CI)",
        ]
        data: dict[str, list[str]] = {}
        for g in self.groups:
            prop, inc = g.proportion, g.incidence
            data[g.group] = [
                str(g.n_participants),
                str(g.n_events),
                "-" if prop is None else f"{g.n_with_event} ({100 * prop.estimate:.1f}%)",
                "-" if prop is None else f"{100 * prop.lower:.1f}% to {100 * prop.upper:.1f}%",
                "-" if inc is None else f"{inc.participant_years:.2f}",
                "-" if inc is None else f"{inc.rate:.3f} ({inc.lower:.3f} to {inc.upper:.3f})",
            ]
        if self.comparison is not None:
            d, f = self.comparison.difference, self.comparison.fisher
            rows.append("Fisher's exact test, two-sided p")
            for g in self.groups:
                data[g.group].append("")
            data[self.comparison.label] = [
                "",
                "",
                f"{100 * d.estimate:.1f}% ({pct} CI {100 * d.lower:.1f}% to {100 * d.upper:.1f}%, Newcombe)",
                "",
                "",
                "",
                f"{f.p_value:.4f}",
            ]
        return pd.DataFrame(data, index=pd.Index(rows, name="statistic"))


def primary_sae_analysis(
    adsl: pd.DataFrame,
    adae: pd.DataFrame,
    arms: Sequence[str] = ("MSC", "PBO"),
    *,
    pooled: bool = False,
    level: float = 0.95,
    columns: SafetyColumns = DEFAULT_COLUMNS,
) -> SAEAnalysis:
    """Serious adverse events by arm: the primary endpoint of statistics.md.

    Per arm (safety population, treatment-emergent SAEs = ``AESER = "Y"``):

    * number of SAEs (records);
    * participants with ≥ 1 SAE: n, % and exact Clopper–Pearson CI (:func:`clopper_pearson`);
    * exposure-adjusted incidence: participants with ≥ 1 SAE / participant-years at risk,
      where a participant is at risk from day 1 to the onset day of the first SAE
      (``AESTDY``) or, without an SAE, for ``TRTDURD`` days; years = days / 365.25; exact
      Poisson CI (:func:`exposure_adjusted_incidence`). Every SAE must have its onset day
      within 1 … ``TRTDURD`` of its participant.

    Between the two arms (``arms[0] − arms[1]``): difference in proportions with
    Newcombe's hybrid score CI (:func:`newcombe_difference`) and Fisher's exact test,
    two-sided (:func:`fisher_exact_two_sided`, table ``[[x1, n1 − x1], [x2, n2 − x2]]``).

    An arm with no participant in the safety population gets no CI and no comparison (a
    ``note`` says so). Raises ``ValueError`` for inconsistent inputs (see module docstring)
    and for an SAE without a valid onset day within the participant's days at risk.
    """
    cols = columns
    if not pooled and len(arms) != 2:
        raise ValueError(f"the primary analysis compares two arms, got {list(arms)}")
    prep = _prepare(
        adsl,
        adae,
        arms,
        pooled,
        cols,
        adae_needed=[cols.serious, cols.onset_day],
        adsl_needed=[cols.days_at_risk],
    )
    pop = prep.population
    days = pd.to_numeric(pop[cols.days_at_risk], errors="coerce")
    if days.isna().any() or (days < 0).any():
        bad = pop.loc[days.isna() | (days < 0), "_subject"].iloc[0]
        raise ValueError(f"ADSL {cols.days_at_risk} is missing or negative for {bad!r}")
    days_of = dict(zip(pop["_subject"], days.astype(float), strict=True))

    sae = prep.events.loc[_flag(prep.events[cols.serious])].copy()
    onset = pd.to_numeric(sae[cols.onset_day], errors="coerce")
    if onset.isna().any():
        raise ValueError(
            f"SAE of {sae.loc[onset.isna(), '_subject'].iloc[0]!r} has no {cols.onset_day}; "
            "impute partial onset dates in ADAE before the analysis"
        )
    sae["_onset"] = onset.astype(float)
    limit = sae["_subject"].map(days_of)
    outside = (sae["_onset"] < 1) | (sae["_onset"] > limit)
    if outside.any():
        row = sae.loc[outside].iloc[0]
        raise ValueError(
            f"SAE of {row['_subject']!r} on study day {row['_onset']:g} is outside the days at "
            f"risk 1–{days_of[row['_subject']]:g} ({cols.days_at_risk})"
        )
    first = sae.groupby("_subject")["_onset"].min()

    summaries: list[ArmSAESummary] = []
    for g in prep.groups:
        members = pop.loc[pop["_group"] == g, "_subject"].tolist()
        n = len(members)
        g_sae = sae.loc[sae["_group"] == g]
        x = int(g_sae["_subject"].nunique())
        if n == 0:
            summaries.append(
                ArmSAESummary(g, 0, 0, 0, None, None, "no participants in the safety population")
            )
            continue
        times = [float(first[m]) if m in first.index else None for m in members]
        follow = [days_of[m] for m in members]
        try:
            incidence: ExposureAdjustedIncidence | None = exposure_adjusted_incidence(
                times, follow, level=level
            )
            note = ""
        except ValueError as exc:  # zero days at risk in the whole arm
            incidence, note = None, f"incidence not estimable: {exc}"
        summaries.append(
            ArmSAESummary(g, n, int(len(g_sae)), x, clopper_pearson(x, n, level), incidence, note)
        )

    comparison = None
    note = ""
    if not pooled:
        a, b = summaries
        if a.n_participants > 0 and b.n_participants > 0:
            comparison = SAEComparison(
                a.group,
                b.group,
                newcombe_difference(
                    a.n_with_event, a.n_participants, b.n_with_event, b.n_participants, level
                ),
                fisher_exact_two_sided(
                    a.n_with_event,
                    a.n_participants - a.n_with_event,
                    b.n_with_event,
                    b.n_participants - b.n_with_event,
                    level,
                ),
            )
        else:
            note = "comparison not estimable: an arm has no participants in the safety population"
    return SAEAnalysis(tuple(summaries), comparison, level, pooled, note)


# --------------------------------------------------------------------------- AE summaries


@dataclass(frozen=True, eq=False)
class AESummaryTables:
    """The AE tables of the report (numeric DataFrames; see :meth:`formatted`).

    Columns are ``"<group> n"``, ``"<group> %"`` (of the group's safety population) and,
    where meaningful, ``"<group> events"``, for each arm and ``Total`` (or ``All`` when
    pooled).

    * ``overview``: any AE, any SAE, any grade ≥ 3, any related, any infusion-related, any
      fatal (grade 5) AE;
    * ``by_term``: participants and events per preferred term (with its SOC);
    * ``by_max_grade``: participants by their maximum CTCAE grade (one row each; "No AE"
      and "Grade missing" when no graded AE);
    * ``by_seriousness``: serious / non-serious (a participant can be in both rows);
    * ``serious_by_term``: SAEs per preferred term;
    * ``by_relatedness``: per relatedness category (a participant with events of several
      categories is counted in each), plus "Any related" (possibly, probably, definitely
      related or "RELATED", each participant once);
    * ``infusion_related``: infusion-related reactions per preferred term, with an "Any"
      first row;
    * ``deaths``: all-cause deaths (ADSL death flag), participants with a fatal (grade 5)
      AE, and the fatal AEs by term.
    """

    groups: tuple[str, ...]
    n_by_group: dict[str, int]
    pooled: bool
    overview: pd.DataFrame
    by_term: pd.DataFrame
    by_max_grade: pd.DataFrame
    by_seriousness: pd.DataFrame
    serious_by_term: pd.DataFrame
    by_relatedness: pd.DataFrame
    infusion_related: pd.DataFrame
    deaths: pd.DataFrame
    tables: tuple[str, ...] = field(
        default=(
            "overview",
            "by_term",
            "by_max_grade",
            "by_seriousness",
            "serious_by_term",
            "by_relatedness",
            "infusion_related",
            "deaths",
        ),
        repr=False,
    )

    def table(self, name: str) -> pd.DataFrame:
        if name not in self.tables:
            raise KeyError(f"unknown table {name!r}; tables are {list(self.tables)}")
        return getattr(self, name)

    def formatted(self, name: str, decimals: int = 1) -> pd.DataFrame:
        """Display version: ``"n (x.x%)"`` and events per group."""
        src = self.table(name)
        groups = [c[: -len(" n")] for c in src.columns if c.endswith(" n")]
        out = pd.DataFrame(index=src.index)
        for c in src.columns:
            if not (c.endswith(" n") or c.endswith(" %") or c.endswith(" events")):
                out[c] = src[c]
        for g in groups:
            n, pct = src[f"{g} n"], src[f"{g} %"]
            out[f"{g} n (%)"] = [
                f"{int(a)} ({b:.{decimals}f}%)" if math.isfinite(b) else f"{int(a)}"
                for a, b in zip(n, pct, strict=True)
            ]
            if f"{g} events" in src.columns:
                out[f"{g} events"] = src[f"{g} events"].astype(str)
        return out

    def to_dict(self) -> dict[str, Any]:
        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            out = []
            for label, row in frame.iterrows():
                rec: dict[str, Any] = {frame.index.name or "row": label}
                for k, v in row.items():
                    if isinstance(v, (float, np.floating)):
                        rec[str(k)] = float(v) if math.isfinite(v) else None
                    elif isinstance(v, (np.integer,)):
                        rec[str(k)] = int(v)
                    else:
                        rec[str(k)] = v
                out.append(rec)
            return out

        return {
            "groups": list(self.groups),
            "n_by_group": dict(self.n_by_group),
            "pooled": self.pooled,
            **{name: records(self.table(name)) for name in self.tables},
        }


def ae_summary_tables(
    adsl: pd.DataFrame,
    adae: pd.DataFrame,
    arms: Sequence[str] = ("MSC", "PBO"),
    *,
    pooled: bool = False,
    columns: SafetyColumns = DEFAULT_COLUMNS,
) -> AESummaryTables:
    """All treatment-emergent AEs by term, grade, seriousness, relatedness; IRRs; deaths.

    See :class:`AESummaryTables` for the tables and the module docstring for the counting
    rules. Percentages use the safety population of each group as denominator.
    """
    cols = columns
    prep = _prepare(
        adsl,
        adae,
        arms,
        pooled,
        cols,
        adae_needed=[cols.grade, cols.serious, cols.related, cols.infusion_related],
        adsl_needed=[cols.death],
    )
    ae = prep.events
    term = _terms(ae, cols)
    grade = _grades(ae, cols)
    serious = _flag(ae[cols.serious])
    infusion = _flag(ae[cols.infusion_related])
    rel_raw = ae[cols.related].astype("string").str.strip().str.upper()
    rel_raw = rel_raw.mask(rel_raw.isna() | rel_raw.eq(""), _MISSING).astype(str)
    rel_label = rel_raw.map(lambda v: _RELATEDNESS.get(v, (99, v))[1])
    related = rel_label.isin(_RELATED_LABELS)
    soc = {"SOC": ae[cols.soc]} if cols.soc in ae.columns else None

    # overview -----------------------------------------------------------------
    overview_rows = {
        "Any adverse event": ae,
        "Any serious adverse event": ae.loc[serious],
        "Any CTCAE grade >= 3 adverse event": ae.loc[grade >= 3],
        "Any related adverse event": ae.loc[related],
        "Any infusion-related reaction": ae.loc[infusion],
        "Any fatal (grade 5) adverse event": ae.loc[grade == 5],
    }
    groups, _ = _table_groups(prep)
    overview = pd.DataFrame.from_dict(
        {label: _row(prep, sub) for label, sub in overview_rows.items()},
        orient="index",
        columns=_columns(groups, True),
    )
    overview.index.name = "category"
    overview = _int_columns(overview)

    # by term ------------------------------------------------------------------
    by_term = _count_table(prep, ae, term, "term", extra=soc)
    serious_by_term = _count_table(
        prep,
        ae.loc[serious],
        term.loc[serious],
        "term",
        extra=None if soc is None else {"SOC": ae.loc[serious, cols.soc]},
    )

    # maximum grade per participant ---------------------------------------------
    pop = prep.population
    graded = pd.DataFrame({"_subject": ae["_subject"], "grade": grade})
    max_grade = graded.groupby("_subject")["grade"].max()
    labels_of: dict[str, str] = {}
    for subject in pop["_subject"]:
        if subject not in max_grade.index:
            labels_of[subject] = "No adverse event"
        elif math.isnan(max_grade[subject]):
            labels_of[subject] = "Grade missing"
        else:
            labels_of[subject] = f"Grade {int(max_grade[subject])}"
    grade_order = ["No adverse event", *(f"Grade {k}" for k in range(1, 6)), "Grade missing"]
    per_subject = pd.DataFrame(
        {
            "_subject": pop["_subject"],
            "_group": pop["_group"],
            "label": pop["_subject"].map(labels_of),
        }
    )
    by_max_grade = pd.DataFrame.from_dict(
        {
            lab: _row(prep, per_subject.loc[per_subject["label"] == lab], with_events=False)
            for lab in grade_order
        },
        orient="index",
        columns=_columns(groups, False),
    )
    if (per_subject["label"] == "Grade missing").sum() == 0:
        by_max_grade = by_max_grade.drop(index="Grade missing")
    by_max_grade.index.name = "maximum CTCAE grade"
    by_max_grade = _int_columns(by_max_grade)

    # seriousness --------------------------------------------------------------
    by_seriousness = pd.DataFrame.from_dict(
        {"Serious": _row(prep, ae.loc[serious]), "Non-serious": _row(prep, ae.loc[~serious])},
        orient="index",
        columns=_columns(groups, True),
    )
    by_seriousness.index.name = "seriousness"
    by_seriousness = _int_columns(by_seriousness)

    # relatedness --------------------------------------------------------------
    rank = {label: r for r, label in _RELATEDNESS.values()}
    counts = _count_table(prep, ae, rel_label, "relatedness")
    known = sorted((lab for lab in counts.index if lab in rank), key=rank.__getitem__)
    unknown = [lab for lab in counts.index if lab not in known and lab != _MISSING]
    order = [*known, *unknown, *([_MISSING] if _MISSING in counts.index else [])]
    by_relatedness = counts.loc[order]
    any_related = pd.DataFrame.from_dict(
        {"Any related (possibly, probably, definitely)": _row(prep, ae.loc[related])},
        orient="index",
        columns=_columns(groups, True),
    )
    by_relatedness = _int_columns(pd.concat([by_relatedness, any_related]))
    by_relatedness.index.name = "relatedness"

    # infusion-related reactions ---------------------------------------------------
    irr_any = pd.DataFrame.from_dict(
        {"Any infusion-related reaction": _row(prep, ae.loc[infusion])},
        orient="index",
        columns=_columns(groups, True),
    )
    irr_terms = _count_table(prep, ae.loc[infusion], term.loc[infusion], "term")
    infusion_related = _int_columns(pd.concat([irr_any, irr_terms]))
    infusion_related.index.name = "infusion-related reaction"

    # deaths -------------------------------------------------------------------
    died = pop.loc[_flag(pop[cols.death])]
    death_row = _row(prep, died)
    for g in groups:  # deaths are participants, not AE records
        death_row[f"{g} events"] = death_row[f"{g} n"]
    fatal = grade == 5
    deaths = pd.DataFrame.from_dict(
        {
            "Deaths (all causes)": death_row,
            "Participants with a fatal (grade 5) adverse event": _row(prep, ae.loc[fatal]),
        },
        orient="index",
        columns=_columns(groups, True),
    )
    fatal_terms = _count_table(prep, ae.loc[fatal], term.loc[fatal], "term")
    fatal_terms.index = [f"Fatal AE: {t}" for t in fatal_terms.index]
    deaths = _int_columns(pd.concat([deaths, fatal_terms]))
    deaths.index.name = "deaths"

    return AESummaryTables(
        groups=prep.groups,
        n_by_group=dict(prep.n_by_group),
        pooled=pooled,
        overview=overview,
        by_term=by_term,
        by_max_grade=by_max_grade,
        by_seriousness=by_seriousness,
        serious_by_term=serious_by_term,
        by_relatedness=by_relatedness,
        infusion_related=infusion_related,
        deaths=deaths,
    )
