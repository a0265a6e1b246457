"""DM, DS, SV and IE: who took part, what happened to them, which visits took place.

DM has every participant record, screen failures included (the IG wants every subject
who signed consent): a screen failure has ARMCD ``SCRNFAIL`` / ARM ``Screen Failure``;
a randomized participant never infused has ACTARMCD ``NOTTRT``; a participant still in
screening at the data cut has no arm yet. In a blinded export the arm of a randomized
participant is ``BLINDED`` (the source holds no allocation to tell it).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from ildtrial.exports.sdtm_domains._common import (
    Context,
    add_seq,
    dtc,
    finish,
    first_value,
    fit,
    forms_of,
    iso_date,
    text,
)
from ildtrial.exports.terminology import BLINDED, NOT_TREATED, SCREEN_FAILURE, iso3

__all__ = ["build_dm", "build_ds", "build_ie", "build_sv", "death_dates", "RACE"]

#: DM ethnicity (the GLI reference-equation group) → SDTM RACE.
RACE: dict[str, str] = {
    "caucasian": "WHITE",
    "african_american": "BLACK OR AFRICAN AMERICAN",
    "ne_asian": "ASIAN",
    "se_asian": "ASIAN",
    "other": "OTHER",
}

#: EOS status → (DSDECOD, default DSTERM).
_EOS: dict[str, str] = {
    "COMPLETED": "COMPLETED",
    "WITHDRAWN": "WITHDRAWAL BY SUBJECT",
    "DEATH": "DEATH",
    "LOST": "LOST TO FOLLOW-UP",
    "INVESTIGATOR": "PHYSICIAN DECISION",
}


def _age(birth: date | None, on: date | None) -> float:
    if birth is None or on is None:
        return float("nan")
    return float(on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day)))


def death_dates(ctx: Context) -> dict[str, str | None]:
    """Participants known to have died → date of death (ISO text, None when unknown).

    Same precedence as ADSL: EOS death date; the EOS end date when EOS says DEATH; the
    latest end of an adverse event with a fatal outcome or grade 5.
    """
    out: dict[str, str | None] = {}
    eos = forms_of(ctx, "EOS")
    for _, row in eos.iterrows():
        s = str(row["subject"])
        status = (text(row.get("status")) or "").upper()
        when = dtc(row.get("death_date")) or (dtc(row.get("end_date")) if status == "DEATH" else None)
        if when or status == "DEATH":
            out[s] = when
    fatal_end: dict[str, str] = {}
    for _, ae in ctx.source.raw.aes.iterrows():
        if (text(ae["outcome"]) or "").lower() == "fatal" or text(ae["grade"]) == "5":
            s = str(ae["subject"])
            when = dtc(ae["resolution_date"]) or dtc(ae["onset_date"])
            if when and when > fatal_end.get(s, ""):
                fatal_end[s] = when
    for s, when in fatal_end.items():
        if out.get(s) is None:
            out[s] = when
    for s, status in zip(ctx.source.raw.participants["subject"], ctx.source.raw.participants["status"],
                         strict=True):
        if status == "died":
            out.setdefault(str(s), None)
    return out


def _arms(ctx: Context, subject: str, status: str, randomized: bool) -> tuple[Any, Any, Any, Any]:
    arm_of = dict(zip(ctx.source.raw.allocations["subject"], ctx.source.raw.allocations["arm"], strict=True))
    names = {a.code: a.name.en for a in ctx.source.protocol.arms}
    treated = subject in ctx.first_infusion
    if status == "screen_failed" and not randomized:
        return SCREEN_FAILURE[0], SCREEN_FAILURE[1], SCREEN_FAILURE[0], SCREEN_FAILURE[1]
    if not randomized:
        return None, None, None, None
    code = text(arm_of.get(subject))
    planned = (BLINDED, BLINDED) if code is None else (code, names.get(code, code))
    actual = planned if treated else NOT_TREATED
    return planned[0], planned[1], actual[0], actual[1]


def build_dm(ctx: Context) -> pd.DataFrame:
    """DM: one record per participant record (screening attempt), sorted by USUBJID."""
    raw = ctx.source.raw
    dm_form = forms_of(ctx, "DM")
    eos = forms_of(ctx, "EOS")
    deaths = death_dates(ctx)
    consent = raw.consents.groupby("subject")["signed_date"].min().to_dict() if not raw.consents.empty else {}
    screening = dict(zip(raw.screening["subject"], raw.screening["evaluated_date"], strict=True))
    country = {s.code: iso3(s.country) for s in ctx.source.protocol.identity.sites}
    last_visit: dict[str, str] = {}
    for s, d in zip(ctx.source.visits["subject"], ctx.source.visits["actual_date"], strict=True):
        if text(d) and (str(s) not in last_visit or str(d) > last_visit[str(s)]):
            last_visit[str(s)] = str(d)
    rows = []
    for _, p in raw.participants.iterrows():
        s = str(p["subject"])
        randomized = text(p["randomized_date"]) is not None
        armcd, arm, actarmcd, actarm = _arms(ctx, s, str(p["status"]), randomized)
        rfic = dtc(consent.get(s))
        end = dtc(first_value(eos, s, "end_date"))
        if end:
            rfpend = end
        elif p["status"] == "screen_failed":
            rfpend = dtc(screening.get(s)) or dtc(p["screening_date"])
        else:
            rfpend = dtc(last_visit.get(s)) or dtc(p["screening_date"])
        birth = iso_date(first_value(dm_form, s, "birth_date"))
        ethnicity = text(first_value(dm_form, s, "ethnicity"))
        collected = dm_form.loc[dm_form["subject"] == s, "visit_date"] if not dm_form.empty else pd.Series([])
        dmdtc = dtc(collected.iloc[0]) if len(collected) else None
        first, last = ctx.first_infusion.get(s), ctx.last_infusion.get(s)
        rows.append(
            {
                "STUDYID": ctx.studyid,
                "DOMAIN": "DM",
                "USUBJID": ctx.subject_id(s),
                "SUBJID": s,
                "RFSTDTC": first.isoformat() if first else None,
                "RFENDTC": end if randomized else None,
                "RFXSTDTC": first.isoformat() if first else None,
                "RFXENDTC": last.isoformat() if last else None,
                "RFICDTC": rfic,
                "RFPENDTC": rfpend,
                "DTHDTC": deaths.get(s),
                "DTHFL": "Y" if s in deaths else None,
                "SITEID": p["site"],
                "AGE": _age(birth, iso_date(rfic) or iso_date(p["screening_date"])),
                "AGEU": "YEARS" if birth else None,
                "SEX": text(first_value(dm_form, s, "sex")),
                "RACE": RACE.get(ethnicity or ""),
                "ARMCD": armcd,
                "ARM": arm,
                "ACTARMCD": actarmcd,
                "ACTARM": actarm,
                "COUNTRY": country.get(str(p["site"])),
                "DMDTC": dmdtc,
                "DMDY": ctx.study_day(s, dmdtc),
            }
        )
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values("USUBJID", kind="mergesort").reset_index(drop=True)
    return finish(frame, "DM")


def build_ds(ctx: Context) -> pd.DataFrame:
    """DS: consent and randomization milestones, screen failure and end-of-study disposition."""
    raw = ctx.source.raw
    rows: list[dict[str, Any]] = []

    def add(subject: str, term: Any, decod: str, cat: str, when: Any) -> None:
        rows.append({"_subject": subject, "USUBJID": ctx.subject_id(subject), "DSTERM": fit(term) or decod,
                     "DSDECOD": decod, "DSCAT": cat, "DSSTDTC": dtc(when), "_order": len(rows)})

    for _, c in raw.consents.iterrows():
        add(str(c["subject"]), "INFORMED CONSENT OBTAINED", "INFORMED CONSENT OBTAINED", "PROTOCOL MILESTONE",
            c["signed_date"])
    screening = dict(zip(raw.screening["subject"], raw.screening["evaluated_date"], strict=True))
    eos = forms_of(ctx, "EOS")
    ended = set(eos["subject"].astype(str)) if not eos.empty else set()
    withdrawn = raw.consents.loc[raw.consents["withdrawn_date"].notna()]
    withdrawn_on = dict(zip(withdrawn["subject"], withdrawn["withdrawn_date"], strict=True))
    deaths = death_dates(ctx)
    for _, p in raw.participants.iterrows():
        s = str(p["subject"])
        if text(p["randomized_date"]):
            add(s, "RANDOMIZED", "RANDOMIZED", "PROTOCOL MILESTONE", p["randomized_date"])
        if p["status"] == "screen_failed" and not text(p["randomized_date"]):
            add(s, p["outcome_reason"], "SCREEN FAILURE", "DISPOSITION EVENT",
                screening.get(s) or p["screening_date"])
        elif s not in ended and p["status"] == "died":
            add(s, p["outcome_reason"], "DEATH", "DISPOSITION EVENT", deaths.get(s))
        elif s not in ended and p["status"] == "withdrawn":
            add(s, p["outcome_reason"], "WITHDRAWAL BY SUBJECT", "DISPOSITION EVENT", withdrawn_on.get(s))
    for _, e in eos.iterrows():
        s = str(e["subject"])
        status = (text(e.get("status")) or "").upper()
        decod = _EOS.get(status, status or "COMPLETED")
        if status == "DEATH":
            term, when = e.get("death_cause"), e.get("death_date") or e.get("end_date")
        else:
            term, when = (e.get("comment") if status not in ("COMPLETED", "") else None), e.get("end_date")
        add(s, term, decod, "DISPOSITION EVENT", when)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return finish(add_seq(pd.DataFrame(columns=["USUBJID"]), "DS", []), "DS")
    frame["STUDYID"], frame["DOMAIN"] = ctx.studyid, "DS"
    frame["EPOCH"] = [ctx.epoch(s, d) for s, d in zip(frame["_subject"], frame["DSSTDTC"], strict=True)]
    frame["DSSTDY"] = [ctx.study_day(s, d) for s, d in zip(frame["_subject"], frame["DSSTDTC"], strict=True)]
    frame["_date"] = frame["DSSTDTC"].fillna("9999")
    return finish(add_seq(frame, "DS", ["_date", "_order"]), "DS")


def build_sv(ctx: Context) -> pd.DataFrame:
    """SV: one record per visit that took place (planned visits missed are not visits)."""
    visits = ctx.source.visits
    done = visits.loc[(visits["state"] == "done") & visits["actual_date"].notna()]
    rows = []
    for _, v in done.iterrows():
        s = str(v["subject"])
        number_, name = ctx.visit(s, v["visit"])
        when = dtc(v["actual_date"])
        rows.append(
            {
                "STUDYID": ctx.studyid,
                "DOMAIN": "SV",
                "USUBJID": ctx.subject_id(s),
                "VISITNUM": number_,
                "VISIT": name,
                "VISITDY": None if v["unscheduled"] else ctx.planned_days.get(str(v["visit"])),
                "EPOCH": ctx.epoch(s, when),
                "SVSTDTC": when,
                "SVENDTC": when,
                "SVSTDY": ctx.study_day(s, when),
                "SVENDY": ctx.study_day(s, when),
                "SVUPDES": fit(v["reason"]) if v["unscheduled"] else None,
            }
        )
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(["USUBJID", "VISITNUM"], kind="mergesort").reset_index(drop=True)
    return finish(frame, "SV")


def build_ie(ctx: Context) -> pd.DataFrame:
    """IE: one record per criterion the latest eligibility verdict found not met.

    An inclusion criterion not met has IEORRES ``N``; an exclusion criterion that
    applies has ``Y`` (the IG's convention: the answer to the criterion as written).
    """
    criteria = {c.id: c for c in ctx.source.protocol.eligibility.criteria}
    rows = []
    screening_visit = ctx.source.protocol.schedule.visits[0].code
    for _, r in ctx.source.raw.screening.iterrows():
        failed = [c for c in (text(r["failed_criteria"]) or "").split(";") if c]
        s = str(r["subject"])
        for cid in failed:
            criterion = criteria.get(cid)
            category = (criterion.type if criterion else ("inclusion" if cid.startswith("IN") else "exclusion"))
            answer = "N" if category == "inclusion" else "Y"
            number_, name = ctx.visit(s, screening_visit)
            when = dtc(r["evaluated_date"])
            rows.append(
                {
                    "_subject": s,
                    "STUDYID": ctx.studyid,
                    "DOMAIN": "IE",
                    "USUBJID": ctx.subject_id(s),
                    "IETESTCD": cid,
                    "IETEST": fit(criterion.summary.en if criterion else cid),
                    "IECAT": category.upper(),
                    "IEORRES": answer,
                    "IESTRESC": answer,
                    "VISITNUM": number_,
                    "VISIT": name,
                    "EPOCH": "SCREENING",
                    "IEDTC": when,
                    "IEDY": ctx.study_day(s, when),
                }
            )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return finish(add_seq(pd.DataFrame(columns=["USUBJID"]), "IE", []), "IE")
    return finish(add_seq(frame, "IE", ["IETESTCD"]), "IE")
