"""ADSL: one row per randomized participant (pure pandas).

ADSL holds the randomized participants only (the full analysis set); screening attempts
that never reached randomization are counted in the CONSORT diagram from the raw screening
log, not here. When the raw data carry no allocation (the blinded copy a pooled report is
built from, :meth:`RawData.without_allocation`) the arm columns are simply empty, so a
blinded report cannot print an arm it never received.

Arm columns: ``ARMCD``/``ARM`` follow SDTM (code / name); the analysis variables
``TRT01P``/``TRT01A`` hold the arm *code* (``MSC``, ``PBO``), which is what the
statistics functions compare. ``TRT01PN``/``TRT01AN`` number the arms in protocol order
(experimental first).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from ildtrial.datasets._common import text, to_dates, to_numbers, usubjid, yn
from ildtrial.datasets.bds import PARAMETERS, build_adlf
from ildtrial.datasets.raw import RawData, StudyConfig, form_frame

__all__ = ["ADSL_COLUMNS", "BASELINE_COLUMNS", "DERIVATIONS", "build_adsl"]

#: ADSL baseline column of each BDS parameter.
BASELINE_COLUMNS: dict[str, str] = {
    "FVC": "FVCBL",
    "FVCPP": "FVCPPBL",
    "DLCOPP": "DLCOPPBL",
    "SIXMWD": "SIXMWDBL",
}

ADSL_COLUMNS: tuple[str, ...] = (
    "STUDYID",
    "USUBJID",
    "SUBJID",
    "SITEID",
    "RANDNO",
    "ARMCD",
    "ARM",
    "ACTARMCD",
    "ACTARM",
    "TRT01P",
    "TRT01PN",
    "TRT01A",
    "TRT01AN",
    "FASFL",
    "SAFFL",
    "RANDDT",
    "TRTSDT",
    "TRTEDT",
    "NINF",
    "EOSDT",
    "EOSSTT",
    "DCSREAS",
    "DTHFL",
    "DTHDT",
    "DTHDY",
    "DCUTDT",
    "TRTDURD",
    "AGE",
    "AGEU",
    "SEX",
    "ETHNIC",
    "HEIGHT",
    "WEIGHT",
    "BMI",
    "DIAGGRP",
    "FVCBL",
    "FVCPPBL",
    "DLCOPPBL",
    "SIXMWDBL",
)

_DISCONTINUATION = {
    "DEATH": "DEATH",
    "WITHDRAWN": "WITHDRAWAL BY SUBJECT",
    "LOST": "LOST TO FOLLOW-UP",
    "INVESTIGATOR": "PHYSICIAN DECISION",
}

DERIVATIONS: dict[str, str] = {
    "STUDYID": "Registration number of the trial (NCT02594839).",
    "USUBJID": "STUDYID and the screening number joined by a hyphen.",
    "SUBJID": "Screening number (site code and sequence, e.g. MOW01-S001).",
    "SITEID": "Site code.",
    "RANDNO": "Randomization number of the allocation slot.",
    "ARMCD": "Arm code of the allocation slot given at randomization (planned arm).",
    "ARM": "Arm name (protocol, English) of ARMCD.",
    "ACTARMCD": "ARMCD when at least one infusion was given, else NOTTRT (no record of a "
    "participant receiving the other arm's product exists in the EDC).",
    "ACTARM": "Arm name of ACTARMCD; 'Not Treated' for NOTTRT.",
    "TRT01P": "Planned treatment = ARMCD (arm code; the analysis compares codes).",
    "TRT01PN": "1, 2, ... in protocol arm order, experimental arm first.",
    "TRT01A": "Actual treatment = ARMCD if SAFFL = 'Y', else empty.",
    "TRT01AN": "Number of TRT01A as TRT01PN.",
    "FASFL": "'Y' for every randomized participant (full analysis set, analysed by arm assigned).",
    "SAFFL": "'Y' if at least one infusion form (INF, not marked not done) has an infusion date "
    "(safety population, analysed by treatment received).",
    "RANDDT": "Date of randomization (site local date of the allocation).",
    "TRTSDT": "Earliest INF infusion_date (first infusion; protocol day 0).",
    "TRTEDT": "Latest INF infusion_date.",
    "NINF": "Number of INF forms with an infusion date.",
    "EOSDT": "End-of-study date: EOS end_date.",
    "EOSSTT": "COMPLETED if EOS status is COMPLETED; DISCONTINUED for any other EOS status, or "
    "without an EOS form when the participant's status is withdrawn or died; otherwise ONGOING.",
    "DCSREAS": "Reason for discontinuation from EOS status: DEATH, WITHDRAWAL BY SUBJECT "
    "(WITHDRAWN), LOST TO FOLLOW-UP (LOST), PHYSICIAN DECISION (INVESTIGATOR); empty if "
    "completed or ongoing.",
    "DTHDT": "Date of death: EOS death_date; else EOS end_date when EOS status is DEATH; else the "
    "latest end (resolution, else onset) date of an adverse event with outcome fatal or grade 5.",
    "DTHFL": "'Y' if DTHDT is known, EOS status is DEATH or the participant's status is died; else 'N'.",
    "DTHDY": "DTHDT - TRTSDT in days (protocol day convention, day 0 = first infusion; relative "
    "to RANDDT when never infused).",
    "DCUTDT": "Data cut-off date of the snapshot (date of extraction).",
    "TRTDURD": "Days at risk of the 12-month safety observation: min(EOSDT, DTHDT, DCUTDT, "
    "TRTSDT + 364) - TRTSDT + 1 (day 1 = first infusion; 364 = protocol day of the week-52 "
    "end-of-study visit). Empty when never infused.",
    "AGE": "Age in completed years at RANDDT from DM birth_date.",
    "AGEU": "YEARS.",
    "SEX": "DM sex (M, F).",
    "ETHNIC": "DM ethnicity (as coded on the form; it selects the GLI reference equations).",
    "HEIGHT": "DM height_cm (cm) at screening.",
    "WEIGHT": "DM weight_kg (kg) at screening.",
    "BMI": "WEIGHT / (HEIGHT / 100)^2 (kg/m^2).",
    "DIAGGRP": "Randomization stratum (diagnosis group IIP / CTD_ILD); DX diagnosis_group when "
    "the stratum is not recorded.",
    "FVCBL": "Baseline FVC (mL): ADLF BASE of PARAMCD FVC (last value on or before day 0).",
    "FVCPPBL": "Baseline FVC % predicted: ADLF BASE of FVCPP.",
    "DLCOPPBL": "Baseline DLCO % predicted: ADLF BASE of DLCOPP.",
    "SIXMWDBL": "Baseline 6-minute walk distance (m): ADLF BASE of SIXMWD.",
}


def _first_by_subject(frame: pd.DataFrame, date_column: str | None = None) -> pd.DataFrame:
    """One row per subject: the last instance (by date, then visit, then instance)."""
    if frame.empty:
        return frame.set_index("subject") if "subject" in frame.columns else frame
    keys = ["subject"] + ([date_column] if date_column else []) + ["visit", "instance"]
    ordered = frame.sort_values(keys, kind="mergesort", na_position="first")
    return ordered.groupby("subject", sort=True).tail(1).set_index("subject")


def _get(frame: pd.DataFrame, subject: str, column: str) -> object:
    if subject not in frame.index or column not in frame.columns:
        return None
    value = frame.at[subject, column]
    return None if (isinstance(value, float) and np.isnan(value)) else value


def _age(birth: pd.Timestamp, on: pd.Timestamp) -> float:
    if pd.isna(birth) or pd.isna(on):
        return np.nan
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return float(years)


def build_adsl(raw: RawData, config: StudyConfig, data_cut: date) -> pd.DataFrame:
    """ADSL of the randomized participants, sorted by USUBJID (see DERIVATIONS)."""
    parts = raw.participants
    randomized = parts.loc[parts["randomized_date"].notna()].copy()
    if randomized.empty:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in ADSL_COLUMNS})
    subjects = sorted(randomized["subject"].astype(str))
    randomized = randomized.set_index("subject").loc[subjects]
    arm_of = dict(zip(raw.allocations["subject"], raw.allocations["arm"], strict=True))
    arm_number = {code: i for i, code in enumerate(config.arm_codes, start=1)}

    inf = form_frame(raw.forms, "INF")
    inf_dates = (
        pd.DataFrame({"subject": inf["subject"], "d": to_dates(inf["infusion_date"])})
        if "infusion_date" in inf.columns
        else pd.DataFrame({"subject": pd.Series([], dtype=object), "d": pd.Series([], dtype="datetime64[ns]")})
    )
    inf_dates = inf_dates.loc[inf_dates["d"].notna()]
    first_inf = inf_dates.groupby("subject")["d"].min()
    last_inf = inf_dates.groupby("subject")["d"].max()
    n_inf = inf_dates.groupby("subject")["d"].size()

    eos = form_frame(raw.forms, "EOS")
    if "end_date" in eos.columns:
        eos = eos.assign(_end=to_dates(eos["end_date"]))
        eos = _first_by_subject(eos, "_end")
    else:
        eos = _first_by_subject(eos)
    dm = _first_by_subject(form_frame(raw.forms, "DM"))
    dx = _first_by_subject(form_frame(raw.forms, "DX"))

    aes = raw.aes
    fatal_end: dict[str, pd.Timestamp] = {}
    if not aes.empty:
        grade = to_numbers(aes["grade"])
        fatal = aes.loc[(aes["outcome"].astype(str).str.lower() == "fatal") | (grade == 5)]
        ends = to_dates(fatal["resolution_date"]).fillna(to_dates(fatal["onset_date"]))
        for s, d in zip(fatal["subject"], ends, strict=True):
            if pd.notna(d) and (s not in fatal_end or d > fatal_end[s]):
                fatal_end[str(s)] = d

    cut = pd.Timestamp(data_cut)
    rows = []
    for s in subjects:
        p = randomized.loc[s]
        arm = text(arm_of.get(s))
        trtsdt = first_inf.get(s, pd.NaT)
        treated = pd.notna(trtsdt)
        randdt = to_dates(pd.Series([p["randomized_date"]])).iloc[0]
        eos_status = (text(_get(eos, s, "status")) or "").upper()
        eosdt = to_dates(pd.Series([_get(eos, s, "end_date")])).iloc[0]
        status = str(p["status"] or "")
        # death
        dthdt = to_dates(pd.Series([_get(eos, s, "death_date")])).iloc[0]
        if pd.isna(dthdt) and eos_status == "DEATH":
            dthdt = eosdt
        if pd.isna(dthdt):
            dthdt = fatal_end.get(s, pd.NaT)
        died = pd.notna(dthdt) or eos_status == "DEATH" or status == "died"
        # disposition
        if eos_status == "COMPLETED":
            eosstt, reason = "COMPLETED", None
        elif eos_status:
            eosstt, reason = "DISCONTINUED", _DISCONTINUATION.get(eos_status, eos_status)
        elif status == "died":
            eosstt, reason = "DISCONTINUED", "DEATH"
        elif status == "withdrawn":
            eosstt, reason = "DISCONTINUED", "WITHDRAWAL BY SUBJECT"
        elif status == "completed":
            eosstt, reason = "COMPLETED", None
        else:
            eosstt, reason = "ONGOING", None
        day0 = trtsdt if treated else randdt
        dthdy = float((dthdt - day0).days) if pd.notna(dthdt) and pd.notna(day0) else np.nan
        if treated:
            ends = [d for d in (eosdt, dthdt, cut) if pd.notna(d)]
            ends.append(trtsdt + pd.Timedelta(days=config.observation_days))
            trtdurd = float((min(ends) - trtsdt).days + 1)
        else:
            trtdurd = np.nan
        birth = to_dates(pd.Series([_get(dm, s, "birth_date")])).iloc[0]
        height = to_numbers(pd.Series([_get(dm, s, "height_cm")], dtype=object)).iloc[0]
        weight = to_numbers(pd.Series([_get(dm, s, "weight_kg")], dtype=object)).iloc[0]
        bmi = weight / (height / 100.0) ** 2 if height and height > 0 else np.nan
        diag = text(p["stratum"]) or text(_get(dx, s, "diagnosis_group"))
        rows.append(
            {
                "STUDYID": config.registration,
                "USUBJID": usubjid(config.registration, s),
                "SUBJID": s,
                "SITEID": p["site"],
                "RANDNO": text(p["randomization_number"]),
                "ARMCD": arm,
                "ARM": config.arm_name(arm) if arm in config.arm_codes else arm,
                "ACTARMCD": (arm if treated else "NOTTRT") if arm else None,
                "ACTARM": (
                    (config.arm_name(arm) if arm in config.arm_codes else arm)
                    if treated
                    else "Not Treated"
                )
                if arm
                else None,
                "TRT01P": arm,
                "TRT01PN": float(arm_number[arm]) if arm in arm_number else np.nan,
                "TRT01A": arm if (arm and treated) else None,
                "TRT01AN": float(arm_number[arm]) if (arm in arm_number and treated) else np.nan,
                "FASFL": "Y",
                "SAFFL": "Y" if treated else "N",
                "RANDDT": randdt,
                "TRTSDT": trtsdt,
                "TRTEDT": last_inf.get(s, pd.NaT),
                "NINF": float(n_inf.get(s, 0)),
                "EOSDT": eosdt,
                "EOSSTT": eosstt,
                "DCSREAS": reason,
                "DTHFL": "Y" if died else "N",
                "DTHDT": dthdt,
                "DTHDY": dthdy,
                "DCUTDT": cut,
                "TRTDURD": trtdurd,
                "AGE": _age(birth, randdt),
                "AGEU": "YEARS",
                "SEX": text(_get(dm, s, "sex")),
                "ETHNIC": text(_get(dm, s, "ethnicity")),
                "HEIGHT": height,
                "WEIGHT": weight,
                "BMI": bmi,
                "DIAGGRP": diag,
            }
        )
    adsl = pd.DataFrame(rows)
    for column in ("RANDDT", "TRTSDT", "TRTEDT", "EOSDT", "DTHDT", "DCUTDT"):
        adsl[column] = pd.to_datetime(adsl[column])
    # baselines: the same rule as the BDS (build it once on the core ADSL)
    adlf = build_adlf(raw, adsl, config)
    base = adlf.loc[adlf["ABLFL"].eq("Y").fillna(False).astype(bool)]
    for p in PARAMETERS:
        values = base.loc[base["PARAMCD"] == p.paramcd].set_index("USUBJID")["AVAL"]
        adsl[BASELINE_COLUMNS[p.paramcd]] = adsl["USUBJID"].map(values).astype(float)
    adsl["SAFFL"] = yn(adsl["SAFFL"].eq("Y"))
    return adsl.loc[:, list(ADSL_COLUMNS)].reset_index(drop=True)
