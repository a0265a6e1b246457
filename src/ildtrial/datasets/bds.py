"""ADLF: the BDS analysis dataset of lung function and 6-minute walk (pure pandas).

One row per measurement of a randomized participant and parameter:

=========  ==============================================  ======  ===================================
PARAMCD    PARAM                                           unit    source
=========  ==============================================  ======  ===================================
FVC        Forced vital capacity (mL)                      mL      SPIRO ``fvc_l`` × 1000
FVCPP      FVC (% predicted)                               %       SPIRO derived ``fvc_percent_predicted``
DLCOPP     DLCO (% predicted)                              %       DLCO derived ``dlco_percent_predicted``
SIXMWD     6-minute walk distance (m)                      m       SIXMWT ``distance_m``
=========  ==============================================  ======  ===================================

Why these rules (each written out in :data:`DERIVATIONS`, which the report prints and a
later Define-XML will reuse):

* **Study day.** ``ADY = ADT − TRTSDT`` counted as the protocol counts: day 0 is the first
  infusion (visit C1A), the week-13 visit is day 91. The protocol's analysis windows are
  written in these days, so the BDS uses them unchanged (SDTM's "no day 0" rule is used
  in ADAE, whose days at risk start at day 1).
* **Baseline** is the last non-missing value on or before day 0 (a measurement on the day
  of the first infusion is taken before it, per the schedule). In practice this is the
  screening value, since C1A collects no lung function.
* **Analysis visits** come from the protocol's windows by study day, not from the visit
  at which a form was entered: an unscheduled test on day 95 is a week-13 value. Within a
  window the value nearest the target day is analysed (``ANL01FL = "Y"``); on a tie the
  later one, as the protocol's comment on ``analysis_windows`` says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ildtrial.datasets._common import DAYS_PER_YEAR, to_dates, to_numbers, usubjid, y_or_null
from ildtrial.datasets.raw import RawData, StudyConfig, WindowSpec, form_frame

__all__ = [
    "ADLF_COLUMNS",
    "DERIVATIONS",
    "PARAMETERS",
    "Parameter",
    "assign_windows",
    "build_adlf",
    "derive_baseline",
    "lung_function_measurements",
]


@dataclass(frozen=True)
class Parameter:
    """One BDS parameter: where its value is read from and how it is reported."""

    paramcd: str
    param: str
    unit: str
    form: str
    column: str  # data field, or ``derived:<field>``
    factor: float = 1.0
    higher_is_better: bool = True
    decimals: int = 1


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("FVC", "Forced vital capacity (mL)", "mL", "SPIRO", "fvc_l", 1000.0, True, 0),
    Parameter("FVCPP", "FVC (% predicted)", "%", "SPIRO", "derived:fvc_percent_predicted"),
    Parameter("DLCOPP", "DLCO (% predicted)", "%", "DLCO", "derived:dlco_percent_predicted"),
    Parameter("SIXMWD", "6-minute walk distance (m)", "m", "SIXMWT", "distance_m", 1.0, True, 0),
)
PARAMETER_BY_CODE: Mapping[str, Parameter] = {p.paramcd: p for p in PARAMETERS}

ADLF_COLUMNS: tuple[str, ...] = (
    "STUDYID",
    "USUBJID",
    "SUBJID",
    "SITEID",
    "TRTP",
    "TRTA",
    "FASFL",
    "SAFFL",
    "PARAMCD",
    "PARAM",
    "AVALU",
    "ADT",
    "ADY",
    "TIME",
    "AVISIT",
    "AVISITN",
    "AWTARGET",
    "AWLO",
    "AWHI",
    "AVAL",
    "BASE",
    "CHG",
    "PCHG",
    "ABLFL",
    "ANL01FL",
    "DTHDY",
    "SRCFORM",
    "SRCVIS",
    "SRCINST",
)

DERIVATIONS: dict[str, str] = {
    "USUBJID": "Registration number and screening number joined by a hyphen (NCT02594839-<site>-S<nnn>).",
    "TRTP": "Planned treatment (arm code) of the participant: ADSL.TRT01P.",
    "TRTA": "Actual treatment (arm code) received: ADSL.TRT01A (empty if never infused).",
    "PARAMCD": "FVC = SPIRO fvc_l x 1000 (mL); FVCPP = SPIRO derived fvc_percent_predicted; "
    "DLCOPP = DLCO derived dlco_percent_predicted (not haemoglobin-corrected); "
    "SIXMWD = SIXMWT distance_m (m).",
    "ADT": "Test date of the form (SPIRO/DLCO/SIXMWT test_date); the visit date when the test date is missing.",
    "ADY": "ADT - TRTSDT in days, protocol convention: day 0 = first infusion (C1A), negative before it; "
    "for participants never infused, relative to the randomization date.",
    "TIME": "ADY / 365.25 (years since the first infusion), the time scale of the random-slope model.",
    "AVAL": "Value of the parameter (see PARAMCD); records without a value are not created.",
    "ABLFL": "'Y' on the baseline record: the last record with a non-missing AVAL and ADY <= 0 "
    "(latest ADT; on the same day the last form instance).",
    "BASE": "AVAL of the baseline record (ABLFL = 'Y') of the participant and parameter, on every record.",
    "CHG": "AVAL - BASE, on post-baseline records (ADY > 0) only.",
    "PCHG": "100 x CHG / BASE, on post-baseline records with BASE not 0.",
    "AVISIT": "'Baseline' on the baseline record; for post-baseline records the label of the protocol "
    "analysis window with AWLO <= ADY <= AWHI (Week 13: days 46-136, Week 26: 137-227, "
    "Week 39: 228-318, Week 52: 319-409); empty outside every window.",
    "AVISITN": "0 for Baseline, otherwise the week number of the window (13, 26, 39, 52).",
    "AWTARGET": "Target study day of the analysis window (91, 182, 273, 364).",
    "AWLO": "First study day of the analysis window.",
    "AWHI": "Last study day of the analysis window.",
    "ANL01FL": "'Y' on the records analysed: the baseline record and, per participant, parameter and "
    "window, the record nearest the target day (smallest |ADY - AWTARGET|); on a tie the later "
    "record (larger ADY, then the last form instance).",
    "DTHDY": "Study day of death (ADSL.DTHDT - TRTSDT, protocol convention as ADY); empty if alive. "
    "Used to rank deaths worst in the Wilcoxon sensitivity analysis.",
    "SRCFORM": "Form the value was read from (SPIRO, DLCO, SIXMWT).",
    "SRCVIS": "EDC visit at which the form was entered (may differ from AVISIT: windows are by day).",
    "SRCINST": "Form instance number within the visit.",
}


# --------------------------------------------------------------------------- measurements


def lung_function_measurements(raw: RawData) -> pd.DataFrame:
    """Every recorded value of the BDS parameters: ``subject, PARAMCD, ADT, AVAL, SRC*``.

    Forms marked not done and values that are missing are left out; so are the prior
    lung-function records (PRIORLF) of the screening history, which document the decline
    that made a candidate eligible and are not trial measurements.
    """
    parts: list[pd.DataFrame] = []
    for p in PARAMETERS:
        frame = form_frame(raw.forms, p.form)
        if frame.empty or p.column not in frame.columns:
            continue
        test_date = frame["test_date"] if "test_date" in frame.columns else frame["visit_date"]
        adt = to_dates(test_date.where(test_date.notna(), frame["visit_date"]))
        # rounding removes float noise of the unit change (2.2 L x 1000 = 2200.0000000000005)
        value = (to_numbers(frame[p.column]) * p.factor).round(9)
        part = pd.DataFrame(
            {
                "subject": frame["subject"].astype(str),
                "PARAMCD": p.paramcd,
                "ADT": adt,
                "AVAL": value,
                "SRCFORM": p.form,
                "SRCVIS": frame["visit"].astype(object),
                "SRCINST": pd.to_numeric(frame["instance"]).astype("int64"),
            }
        )
        parts.append(part.loc[part["AVAL"].notna() & part["ADT"].notna()])
    columns = ["subject", "PARAMCD", "ADT", "AVAL", "SRCFORM", "SRCVIS", "SRCINST"]
    if not parts:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    out = pd.concat(parts, ignore_index=True)
    return _ordered(out, "subject")


def _param_rank(paramcd: pd.Series) -> pd.Series:
    order = {p.paramcd: i for i, p in enumerate(PARAMETERS)}
    return paramcd.map(lambda c: order.get(c, len(order)))


def _ordered(frame: pd.DataFrame, subject: str) -> pd.DataFrame:
    """Deterministic order: participant, parameter (table order), date, source visit, instance."""
    keyed = frame.assign(_p=_param_rank(frame["PARAMCD"]))
    keyed = keyed.sort_values(
        [subject, "_p", "ADT", "SRCVIS", "SRCINST"], kind="mergesort", na_position="last"
    )
    return keyed.drop(columns="_p").reset_index(drop=True)


# --------------------------------------------------------------------------- baseline and windows


def derive_baseline(frame: pd.DataFrame, subject: str = "USUBJID") -> pd.Series:
    """Boolean mask of the baseline records: per participant and parameter, the last record
    with a value and ``ADY <= 0``, in the frame's (date, source visit, instance) order."""
    cand = frame.loc[frame["AVAL"].notna() & frame["ADY"].notna() & (frame["ADY"] <= 0)]
    cand = cand.sort_values(["ADY", "SRCVIS", "SRCINST"], kind="mergesort")
    last = cand.groupby([subject, "PARAMCD"], sort=False).tail(1).index
    return pd.Series(frame.index.isin(last), index=frame.index)


def assign_windows(ady: pd.Series, windows: Sequence[WindowSpec]) -> pd.DataFrame:
    """Window of each post-baseline study day: ``AVISIT, AVISITN, AWTARGET, AWLO, AWHI``.

    A day belongs to the window with ``low_day <= ADY <= high_day``; should windows ever
    overlap, the one with the nearest target wins (then the earlier). Days <= 0 and days
    outside every window get no window.
    """
    rows = []
    for day in ady:
        chosen: WindowSpec | None = None
        if day is not None and not (isinstance(day, float) and np.isnan(day)) and day > 0:
            inside = [w for w in windows if w.low_day <= day <= w.high_day]
            if inside:
                chosen = min(inside, key=lambda w: (abs(day - w.target_day), w.target_day))
        if chosen is None:
            rows.append((None, np.nan, np.nan, np.nan, np.nan))
        else:
            rows.append(
                (chosen.label, float(chosen.week), float(chosen.target_day), float(chosen.low_day), float(chosen.high_day))
            )
    return pd.DataFrame(
        rows, columns=["AVISIT", "AVISITN", "AWTARGET", "AWLO", "AWHI"], index=ady.index
    ).astype({"AVISIT": object})


def _select_in_window(frame: pd.DataFrame, subject: str) -> pd.Series:
    """Mask of the analysed record per participant, parameter and window (nearest; tie → later)."""
    inw = frame.loc[frame["AVISIT"].notna() & frame["AVAL"].notna() & ~frame["_base"]]
    if inw.empty:
        return pd.Series(False, index=frame.index)
    inw = inw.assign(_dist=(inw["ADY"] - inw["AWTARGET"]).abs())
    # nearest first; among equals the later day, then the later source visit / instance
    inw = inw.sort_values(
        ["_dist", "ADY", "SRCVIS", "SRCINST"],
        ascending=[True, False, False, False],
        kind="mergesort",
    )
    chosen = inw.groupby([subject, "PARAMCD", "AVISIT"], sort=False).head(1).index
    return pd.Series(frame.index.isin(chosen), index=frame.index)


# --------------------------------------------------------------------------- ADLF


def build_adlf(raw: RawData, adsl: pd.DataFrame, config: StudyConfig) -> pd.DataFrame:
    """ADLF for the randomized participants of ``adsl`` (see module docstring and DERIVATIONS).

    ``adsl`` must have ``USUBJID``, ``SUBJID``, ``SITEID``, ``TRT01P``, ``TRT01A``,
    ``FASFL``, ``SAFFL``, ``TRTSDT``, ``RANDDT`` and ``DTHDY`` (the ADSL of
    :func:`ildtrial.datasets.adsl.build_adsl`, or a core version of it).
    """
    meas = lung_function_measurements(raw)
    if meas.empty or adsl.empty:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in ADLF_COLUMNS})
    meas = meas.assign(USUBJID=[usubjid(config.registration, s) for s in meas["subject"]])
    keep = [
        "USUBJID",
        "SUBJID",
        "SITEID",
        "TRT01P",
        "TRT01A",
        "FASFL",
        "SAFFL",
        "TRTSDT",
        "RANDDT",
        "DTHDY",
    ]
    subjects = adsl.loc[:, keep]
    frame = meas.merge(subjects, on="USUBJID", how="inner", validate="many_to_one")
    if frame.empty:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in ADLF_COLUMNS})
    day0 = frame["TRTSDT"].where(frame["TRTSDT"].notna(), frame["RANDDT"])
    frame["ADY"] = (frame["ADT"] - day0).dt.days.astype(float)
    frame = frame.loc[frame["ADY"].notna()].copy()
    frame = _ordered(frame, "USUBJID")
    frame["_base"] = derive_baseline(frame)
    base = frame.loc[frame["_base"]].set_index(["USUBJID", "PARAMCD"])["AVAL"]
    frame["BASE"] = [
        base.get((s, p), np.nan) for s, p in zip(frame["USUBJID"], frame["PARAMCD"], strict=True)
    ]
    windows = assign_windows(frame["ADY"], config.windows)
    frame = pd.concat([frame, windows], axis=1)
    frame.loc[frame["_base"], ["AVISIT", "AVISITN"]] = ["Baseline", 0.0]
    chosen = _select_in_window(frame, "USUBJID")
    post = frame["ADY"] > 0
    frame["CHG"] = (frame["AVAL"] - frame["BASE"]).where(post)
    frame["PCHG"] = (100.0 * frame["CHG"] / frame["BASE"]).where(post & (frame["BASE"] != 0))
    frame["ABLFL"] = y_or_null(frame["_base"])
    frame["ANL01FL"] = y_or_null(frame["_base"] | chosen)
    frame["TIME"] = frame["ADY"] / DAYS_PER_YEAR
    frame["STUDYID"] = config.registration
    frame["TRTP"] = frame["TRT01P"]
    frame["TRTA"] = frame["TRT01A"]
    frame["PARAM"] = frame["PARAMCD"].map(lambda c: PARAMETER_BY_CODE[c].param)
    frame["AVALU"] = frame["PARAMCD"].map(lambda c: PARAMETER_BY_CODE[c].unit)
    out = frame.loc[:, list(ADLF_COLUMNS)].reset_index(drop=True)
    return out


def analysis_records(adlf: pd.DataFrame) -> pd.DataFrame:
    """The records the efficacy analyses use: ``ANL01FL = "Y"`` (baseline + one per window)."""
    return adlf.loc[adlf["ANL01FL"].eq("Y").fillna(False).astype(bool)].reset_index(drop=True)
