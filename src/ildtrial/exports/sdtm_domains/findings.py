"""RE, FT and VS: lung function, the 6-minute walk and vital signs, one record per result.

Where each test comes from (form field → test code, original unit → standard unit):

RE (spirometry, SPIRO; transfer factor, DLCO):

=========  =============================================  ========  ===========
RETESTCD   source                                         orig.     standard
=========  =============================================  ========  ===========
FVC        SPIRO fvc_l                                    L         L
FEV1       SPIRO fev1_l                                   L         L
FVCPP      SPIRO derived fvc_percent_predicted            %         %
FEV1PP     SPIRO derived fev1_percent_predicted           %         %
FEV1FVC    SPIRO derived fev1_fvc_ratio × 100             %         %
DLCO       DLCO dlco                                      as entered  mL/min/mmHg
DLCOPP     DLCO derived dlco_percent_predicted            %         %
DLCOHC     DLCO derived dlco_hb_corrected                 as entered  mL/min/mmHg
DLCOHCPP   DLCO derived dlco_hb_corrected_percent_pred.   %         %
=========  =============================================  ========  ===========

Derived values (% predicted by the protocol's reference equations, the ratio, the
haemoglobin correction) are those the EDC stored with the form; they carry REDRVFL "Y"
and are rounded to one decimal (two for DLCOHC), the precision the form shows. The
standard DLCO unit is mL/min/mmHg, the unit of the reference equations as implemented
(1 mmol/min/kPa = 2.987 mL/min/mmHg).

FT: SIXMWT distance_m → SIXMW106 (m), FTCAT "SIX MINUTE WALK".

VS: the VS form (temperature, heart rate, blood pressure, respiratory rate, SpO2), height
and weight from DM, and the pre-/post-infusion vital signs of each INF form as time
points (VSTPT PRE-INFUSION / POST-INFUSION, reference the infusion start).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ildtrial.core.lungfunction import ML_MIN_MMHG_PER_MMOL_MIN_KPA
from ildtrial.exports.sdtm_domains._common import (
    Context,
    add_seq,
    dtc,
    finish,
    forms_of,
    last_before_exposure,
    number,
    text,
)
from ildtrial.exports.terminology import codelists

__all__ = ["RE_TESTS", "VS_TESTS", "build_ft", "build_re", "build_vs"]


@dataclass(frozen=True)
class Test:
    """One result of a form: test code, source column, units, how to read and round it."""

    testcd: str
    form: str
    column: str
    unit: str | None  # None: the unit is read from ``unit_column``
    std_unit: str
    decimals: int | None = None
    derived: bool = False
    scale: float = 1.0
    unit_column: str | None = None
    category: str | None = None


RE_TESTS: tuple[Test, ...] = (
    Test("FVC", "SPIRO", "fvc_l", "L", "L", category="SPIROMETRY"),
    Test("FEV1", "SPIRO", "fev1_l", "L", "L", category="SPIROMETRY"),
    Test("FVCPP", "SPIRO", "derived:fvc_percent_predicted", "%", "%", 1, True, category="SPIROMETRY"),
    Test("FEV1PP", "SPIRO", "derived:fev1_percent_predicted", "%", "%", 1, True, category="SPIROMETRY"),
    Test("FEV1FVC", "SPIRO", "derived:fev1_fvc_ratio", "%", "%", 1, True, 100.0, category="SPIROMETRY"),
    Test("DLCO", "DLCO", "dlco", None, "mL/min/mmHg", unit_column="dlco_unit", category="DIFFUSING CAPACITY"),
    Test("DLCOPP", "DLCO", "derived:dlco_percent_predicted", "%", "%", 1, True, category="DIFFUSING CAPACITY"),
    Test("DLCOHC", "DLCO", "derived:dlco_hb_corrected", None, "mL/min/mmHg", 2, True, unit_column="dlco_unit",
         category="DIFFUSING CAPACITY"),
    Test("DLCOHCPP", "DLCO", "derived:dlco_hb_corrected_percent_predicted", "%", "%", 1, True,
         category="DIFFUSING CAPACITY"),
)
FT_TESTS: tuple[Test, ...] = (Test("SIXMW106", "SIXMWT", "distance_m", "m", "m", category="SIX MINUTE WALK"),)
#: VS test code → (field of the VS form, unit).
VS_TESTS: dict[str, tuple[str, str]] = {
    "TEMP": ("temperature_c", "C"),
    "HR": ("heart_rate", "beats/min"),
    "SYSBP": ("systolic_bp", "mmHg"),
    "DIABP": ("diastolic_bp", "mmHg"),
    "RESP": ("respiratory_rate", "breaths/min"),
    "OXYSAT": ("spo2", "%"),
}
_TO_STANDARD: dict[tuple[str, str], float] = {("mmol/min/kPa", "mL/min/mmHg"): ML_MIN_MMHG_PER_MMOL_MIN_KPA}
_DATE_FIELDS = {"SPIRO": "test_date", "DLCO": "test_date", "SIXMWT": "test_date", "VS": "assessment_date"}


def _format(value: float, decimals: int | None) -> str:
    if decimals is None:
        return f"{value:g}" if abs(value) < 1e15 else str(value)
    return f"{value:.{decimals}f}"


def _original(raw: Any, value: float, test: Test) -> str:
    """REORRES: the value as entered (decimal point normalised) or, when derived, as rounded."""
    if test.derived or test.scale != 1.0:
        return _format(value, test.decimals)
    s = text(raw) or ""
    return s.replace(",", ".")


def _result_rows(ctx: Context, domain: str, tests: tuple[Test, ...], names: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for form in dict.fromkeys(t.form for t in tests):
        instances = forms_of(ctx, form)
        for _, f in instances.iterrows():
            s = str(f["subject"])
            when = dtc(f.get(_DATE_FIELDS.get(form, ""))) or dtc(f["visit_date"])
            number_, visit_name = ctx.visit(s, f["visit"])
            for t in tests:
                if t.form != form:
                    continue
                raw = f.get(t.column)
                value = number(raw)
                if value != value:  # not recorded / not derivable
                    continue
                value *= t.scale
                unit = t.unit or text(f.get(t.unit_column or ""))
                factor = 1.0 if unit == t.std_unit else _TO_STANDARD.get((unit or "", t.std_unit))
                if factor is None:
                    standard = None
                else:
                    std = value * factor
                    decimals = t.decimals if t.decimals is not None else (None if factor == 1.0 else 2)
                    standard = _format(std, decimals)
                rows.append(
                    {
                        "_subject": s,
                        "STUDYID": ctx.studyid,
                        "DOMAIN": domain,
                        "USUBJID": ctx.subject_id(s),
                        f"{domain}TESTCD": t.testcd,
                        f"{domain}TEST": names.get(t.testcd, t.testcd),
                        f"{domain}CAT": t.category,
                        f"{domain}ORRES": _original(raw, value, t),
                        f"{domain}ORRESU": unit,
                        f"{domain}STRESC": standard,
                        f"{domain}STRESN": float(standard) if standard is not None else float("nan"),
                        f"{domain}STRESU": t.std_unit if standard is not None else None,
                        f"{domain}DRVFL": "Y" if t.derived else None,
                        "VISITNUM": number_,
                        "VISIT": visit_name,
                        "EPOCH": ctx.epoch(s, when, pre_dose_on_day1=True),
                        f"{domain}DTC": when,
                        f"{domain}DY": ctx.study_day(s, when),
                        "_order": [x.testcd for x in tests].index(t.testcd),
                    }
                )
    return rows


def _finish_findings(ctx: Context, rows: list[dict[str, Any]], domain: str, order: list[str],
                     post: Callable[[pd.DataFrame], pd.Series] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return finish(add_seq(pd.DataFrame(columns=["USUBJID"]), domain, []), domain)
    frame["_date"] = frame[f"{domain}DTC"].fillna("9999")
    frame = add_seq(frame, domain, order)
    frame[f"{domain}LOBXFL"] = last_before_exposure(frame, ctx, domain, f"{domain}TESTCD",
                                                    post_dose=post(frame) if post else None)
    return finish(frame, domain)


def _names(ctx: Context, codelist: str) -> dict[str, str]:
    cl = codelists(ctx.source.protocol)[codelist]
    return {t.value: t.decode or t.value for t in cl.terms}


def build_re(ctx: Context) -> pd.DataFrame:
    """RE: spirometry and transfer-factor results (see the module table)."""
    rows = _result_rows(ctx, "RE", RE_TESTS, _names(ctx, "RETESTCD"))
    return _finish_findings(ctx, rows, "RE", ["_date", "VISITNUM", "_order"])


def build_ft(ctx: Context) -> pd.DataFrame:
    """FT: 6-minute walk distance."""
    rows = _result_rows(ctx, "FT", FT_TESTS, _names(ctx, "FTTESTCD"))
    return _finish_findings(ctx, rows, "FT", ["_date", "VISITNUM", "_order"])


def build_vs(ctx: Context) -> pd.DataFrame:
    """VS: vital signs of the VS form, height and weight (DM), and around each infusion."""
    names = _names(ctx, "VSTESTCD")
    tests = tuple(Test(code, "VS", field, unit, unit) for code, (field, unit) in VS_TESTS.items())
    rows = _result_rows(ctx, "VS", tests, names)
    dm = (Test("HEIGHT", "DM", "height_cm", "cm", "cm"), Test("WEIGHT", "DM", "weight_kg", "kg", "kg"))
    rows += _result_rows(ctx, "VS", dm, names)
    order = list(VS_TESTS) + ["HEIGHT", "WEIGHT"]
    for _, f in forms_of(ctx, "INF").iterrows():
        s = str(f["subject"])
        day = dtc(f.get("infusion_date"))
        if day is None:
            continue
        number_, visit_name = ctx.visit(s, f["visit"])
        reference = dtc(day, f.get("start_time"))
        for tpt, tptnum, prefix in (("PRE-INFUSION", 1.0, "pre_"), ("POST-INFUSION", 2.0, "post_")):
            for code, (field, unit) in VS_TESTS.items():
                raw = f.get(prefix + field)
                value = number(raw)
                if value != value:
                    continue
                result = (text(raw) or "").replace(",", ".")
                rows.append(
                    {
                        "_subject": s, "STUDYID": ctx.studyid, "DOMAIN": "VS", "USUBJID": ctx.subject_id(s),
                        "VSTESTCD": code, "VSTEST": names.get(code, code), "VSORRES": result, "VSORRESU": unit,
                        "VSSTRESC": result, "VSSTRESN": value, "VSSTRESU": unit, "VSTPT": tpt,
                        "VSTPTNUM": tptnum, "VSTPTREF": "INFUSION START", "VSRFTDTC": reference,
                        "VISITNUM": number_, "VISIT": visit_name,
                        "EPOCH": ctx.epoch(s, day, pre_dose_on_day1=tpt == "PRE-INFUSION"),
                        "VSDTC": day, "VSDY": ctx.study_day(s, day), "_order": order.index(code),
                    }
                )
    for row in rows:
        row["_order"] = order.index(row["VSTESTCD"])
        row.setdefault("VSTPTNUM", 0.0)
    frame_rows = rows

    def post(frame: pd.DataFrame) -> pd.Series:
        return frame["VSTPT"].eq("POST-INFUSION") if "VSTPT" in frame.columns else pd.Series(False, frame.index)

    out = _finish_findings(ctx, frame_rows, "VS", ["_date", "VISITNUM", "VSTPTNUM", "_order"], post)
    if "VSTPTNUM" in out.columns:
        out["VSTPTNUM"] = out["VSTPTNUM"].where(out["VSTPTNUM"] > 0)
    return out
