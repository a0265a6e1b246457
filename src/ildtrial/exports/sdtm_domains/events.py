"""AE and MH: adverse events as reported in the EDC, and the history taken at screening.

AE keeps every event of every participant record, screening included (SDTM tabulates
what was collected; the analysis decides what is treatment-emergent, in ADAE). Severity
in this trial is the CTCAE grade, so it goes to AETOXGR and AESEV stays out.
"""

from __future__ import annotations

import pandas as pd

from ildtrial.datasets.adae import OUTCOME, RELATEDNESS, SAFETY_CRITERIA
from ildtrial.exports.sdtm_domains._common import (
    Context,
    add_seq,
    dtc,
    finish,
    fit,
    forms_of,
    number,
    text,
)

__all__ = ["ACTION", "OUTCOME", "build_ae", "build_mh"]

#: EDC action taken → CDISC ACN. An infusion stopped early counts as interrupted: the
#: next infusions still follow the protocol, so the treatment was not withdrawn.
ACTION: dict[str, str | None] = {
    "none": "DOSE NOT CHANGED",
    "dose_interrupted": "DRUG INTERRUPTED",
    "infusion_stopped": "DRUG INTERRUPTED",
    "drug_withdrawn": "DRUG WITHDRAWN",
    "not_applicable": "NOT APPLICABLE",
    "other": None,
}


def _yn(value: object) -> str:
    return "Y" if value is True or (text(value) or "").lower() in ("true", "y", "yes", "1") else "N"


def build_ae(ctx: Context) -> pd.DataFrame:
    """AE: one record per adverse event; AESEQ by onset, then EDC event number."""
    rows = []
    cut = ctx.source.data_cut.isoformat()
    for _, ae in ctx.source.raw.aes.iterrows():
        s = str(ae["subject"])
        start = dtc(ae["onset_date"], ae["onset_time"])
        end = dtc(ae["resolution_date"])
        action = (text(ae["action_taken"]) or "").lower()
        ongoing = _yn(ae["ongoing"]) == "Y" and end is None
        grade = number(ae["grade"])
        row = {
            "_subject": s,
            "STUDYID": ctx.studyid,
            "DOMAIN": "AE",
            "USUBJID": ctx.subject_id(s),
            "AESPID": text(ae["ae_number"]),
            "AETERM": fit(ae["verbatim_term"]),
            "AELLTCD": number(ae["meddra_code"]),
            "AEDECOD": fit(ae["coded_term"]),
            "AEBODSYS": fit(ae["soc"]),
            "AESOC": fit(ae["soc"]),
            "AESER": _yn(ae["serious"]),
            "AEACN": ACTION.get(action) if action else None,
            "AEACNOTH": "OTHER" if action == "other" else None,
            "AEREL": RELATEDNESS.get((text(ae["relatedness_product"]) or "").lower()),
            "AEOUT": OUTCOME.get((text(ae["outcome"]) or "").lower()),
            "AETOXGR": None if grade != grade else str(int(grade)),
            "EPOCH": ctx.epoch(s, start),
            "AESTDTC": start,
            "AEENDTC": end,
            "AESTDY": ctx.study_day(s, start),
            "AEENDY": ctx.study_day(s, end),
            "AEENRTPT": "ONGOING" if ongoing else None,
            "AEENTPT": cut if ongoing else None,
            "_number": number(ae["ae_number"]),
            "_start": start or "9999",
        }
        for column, field in SAFETY_CRITERIA.items():
            row[column] = _yn(ae[field])
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return finish(add_seq(pd.DataFrame(columns=["USUBJID"]), "AE", []), "AE")
    return finish(add_seq(frame, "AE", ["_start", "_number"]), "AE")


def build_mh(ctx: Context) -> pd.DataFrame:
    """MH: the primary diagnosis (DX) and the general medical history (MH form).

    The diagnosis is ongoing at screening by definition; a history item not ongoing
    ended before screening (MHENRTPT BEFORE, reference point the screening date).
    """
    rows = []
    groups = {}
    try:
        dx_form = ctx.source.protocol.form("DX")
        field = next(f for f in dx_form.fields if f.code == "diagnosis_group")
        groups = {c.code: c.label.en for c in field.choices or []}
    except (KeyError, StopIteration):
        pass
    for _, dx in forms_of(ctx, "DX").iterrows():
        s = str(dx["subject"])
        group = text(dx.get("diagnosis_group"))
        detail = text(dx.get("diagnosis_detail"))
        term = detail or groups.get(group or "", group)
        if term is None:
            continue
        collected = dtc(dx["visit_date"])
        rows.append({"_subject": s, "MHTERM": fit(term), "MHCAT": "PRIMARY DIAGNOSIS",
                     "MHSTDTC": dtc(dx.get("symptom_onset_date")), "MHENRTPT": "ONGOING",
                     "MHENTPT": collected, "MHDTC": collected})
    for _, mh in forms_of(ctx, "MH").iterrows():
        s = str(mh["subject"])
        term = fit(mh.get("condition"))
        if term is None:
            continue
        collected = dtc(mh["visit_date"])
        rows.append({"_subject": s, "MHTERM": term, "MHCAT": "GENERAL MEDICAL HISTORY",
                     "MHSTDTC": dtc(mh.get("start_date")),
                     "MHENRTPT": "ONGOING" if _yn(mh.get("ongoing")) == "Y" else "BEFORE",
                     "MHENTPT": collected, "MHDTC": collected})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return finish(add_seq(pd.DataFrame(columns=["USUBJID"]), "MH", []), "MH")
    frame["STUDYID"], frame["DOMAIN"] = ctx.studyid, "MH"
    frame["USUBJID"] = frame["_subject"].map(ctx.subject_id)
    frame["MHDY"] = [ctx.study_day(s, d) for s, d in zip(frame["_subject"], frame["MHDTC"], strict=True)]
    frame["_cat"] = frame["MHCAT"].map({"PRIMARY DIAGNOSIS": 0}).fillna(1)
    frame["_start"] = frame["MHSTDTC"].fillna("9999")
    return finish(add_seq(frame, "MH", ["_cat", "_start", "MHTERM"]), "MH")
