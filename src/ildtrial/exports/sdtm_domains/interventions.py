"""EX and CM: the infusions given, and other medication.

EX has one record per INF form with an infusion date (an infusion given). The
treatment is read from the bag the cell lab prepared for it (what was actually given),
else from the allocation; dose, unit, form and route come from the protocol's arm. The
volume infused is the vehicle amount (EXVAMT): it is recorded at the bedside by blinded
staff and is the same for both arms, so it stays in a blinded export, where treatment,
dose, dose form and lot are ``BLINDED``/empty.
"""

from __future__ import annotations

import pandas as pd

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
from ildtrial.exports.terminology import BLINDED

__all__ = ["build_cm", "build_ex"]


def build_ex(ctx: Context) -> pd.DataFrame:
    """EX: one record per infusion given, EXSEQ by start date/time."""
    protocol = ctx.source.protocol
    arms = {a.code: a for a in protocol.arms}
    allocation = dict(zip(ctx.source.raw.allocations["subject"], ctx.source.raw.allocations["arm"], strict=True))
    bags = ctx.source.preparations.set_index("bag_id") if not ctx.source.preparations.empty else None
    rows = []
    inf = forms_of(ctx, "INF")
    for _, f in inf.iterrows():
        day = dtc(f.get("infusion_date"))
        if day is None:
            continue
        s = str(f["subject"])
        bag_id = text(f.get("bag_id"))
        bag = bags.loc[bag_id] if bags is not None and bag_id in bags.index else None
        code = text(bag["arm"]) if bag is not None else None
        code = code or text(allocation.get(s))
        arm = arms.get(code or "")
        if arm is None:
            treatment, dose, unit, form, route, lot = BLINDED, None, None, None, "INTRAVENOUS", None
        else:
            i = arm.intervention
            treatment = "PLACEBO" if arm.type == "placebo_comparator" else i.name.en.upper()
            dose, unit, form, route = i.dose, i.dose_unit, i.form, i.route
            lot = None if bag is None else (text(bag["lot"]) or text(bag["saline_batch"]))
        interrupted = (text(f.get("interrupted")) or "").lower() in ("true", "yes", "1")
        number_, name = ctx.visit(s, f["visit"])
        start, end = dtc(day, f.get("start_time")), dtc(day, f.get("stop_time"))
        rows.append(
            {
                "STUDYID": ctx.studyid,
                "DOMAIN": "EX",
                "USUBJID": ctx.subject_id(s),
                "EXREFID": bag_id,
                "EXLOT": lot,
                "EXTRT": treatment,
                "EXDOSE": dose,
                "EXDOSU": unit,
                "EXDOSFRM": form,
                "EXDOSFRQ": "ONCE",
                "EXROUTE": route,
                "EXVAMT": number(f.get("volume_ml")),
                "EXVAMTU": "mL" if text(f.get("volume_ml")) else None,
                "EXADJ": (fit(f.get("interruption_reason")) or "INFUSION INTERRUPTED") if interrupted else None,
                "VISITNUM": number_,
                "VISIT": name,
                "EPOCH": ctx.epoch(s, start),
                "EXSTDTC": start,
                "EXENDTC": end,
                "EXSTDY": ctx.study_day(s, start),
                "EXENDY": ctx.study_day(s, end),
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return finish(add_seq(pd.DataFrame(columns=["USUBJID"]), "EX", []), "EX")
    return finish(add_seq(frame, "EX", ["EXSTDTC", "VISITNUM"]), "EX")


def _class_labels(ctx: Context, form: str) -> dict[str, str]:
    try:
        definition = ctx.source.protocol.form(form)
    except KeyError:
        return {}
    for f in definition.fields:
        if f.code == "medication_class":
            return {c.code: c.label.en for c in f.choices or []}
    return {}


def build_cm(ctx: Context) -> pd.DataFrame:
    """CM: concomitant medication (CM form) and the prior anti-inflammatory or antifibrotic
    treatment recorded at screening (PROHIB), told apart by CMCAT.

    A medication without a stop date is ongoing: at the data cut for CM, at screening for
    PROHIB (whose stop date is left empty when the treatment continues).
    """
    rows = []
    cut = ctx.source.data_cut.isoformat()
    for form, category, name_field in (("CM", "CONCOMITANT MEDICATION", "medication"),
                                       ("PROHIB", "PRIOR ANTI-INFLAMMATORY OR ANTIFIBROTIC", "medication_name")):
        classes = _class_labels(ctx, form)
        for _, m in forms_of(ctx, form).iterrows():
            treatment = fit(m.get(name_field))
            if treatment is None:
                continue
            s = str(m["subject"])
            cls = text(m.get("medication_class"))
            stop = dtc(m.get("stop_date"))
            rows.append(
                {
                    "_subject": s,
                    "CMTRT": treatment,
                    "CMCAT": category,
                    "CMCLAS": classes.get(cls, cls) if cls and cls != "none" else None,
                    "CMINDC": fit(m.get("indication")),
                    "CMSTDTC": dtc(m.get("start_date")),
                    "CMENDTC": stop,
                    "CMENRTPT": None if stop else "ONGOING",
                    "CMENTPT": None if stop else (cut if form == "CM" else dtc(m["visit_date"])),
                }
            )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return finish(add_seq(pd.DataFrame(columns=["USUBJID"]), "CM", []), "CM")
    frame["STUDYID"], frame["DOMAIN"] = ctx.studyid, "CM"
    frame["USUBJID"] = frame["_subject"].map(ctx.subject_id)
    frame["EPOCH"] = [ctx.epoch(s, d) for s, d in zip(frame["_subject"], frame["CMSTDTC"], strict=True)]
    frame["CMSTDY"] = [ctx.study_day(s, d) for s, d in zip(frame["_subject"], frame["CMSTDTC"], strict=True)]
    frame["CMENDY"] = [ctx.study_day(s, d) for s, d in zip(frame["_subject"], frame["CMENDTC"], strict=True)]
    frame["_start"] = frame["CMSTDTC"].fillna("0000")
    return finish(add_seq(frame, "CM", ["CMCAT", "_start", "CMTRT"]), "CM")
