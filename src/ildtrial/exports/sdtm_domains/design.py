"""Trial design domains TA, TE, TV, TI, TS, read from the computable protocol.

The design is protocol content, not participant data, so it is the same in blinded and
unblinded exports (the arms of the trial are public; who is in which one is not).

Elements: SCRN (screening, from consent to the first infusion), one treatment element
per arm (first to last infusion) and FU (follow-up, from the day after the last infusion
to the end-of-study visit). Visit days in TV are SDTM study days (day 1 = first
infusion); TVSTRL also gives the protocol's own day (day 0 = first infusion).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ildtrial.core.protocol import AgeRangeRule, Protocol
from ildtrial.exports.sdtm_domains._common import Context, finish
from ildtrial.exports.terminology import codelists

__all__ = ["TS_CODES", "build_ta", "build_te", "build_ti", "build_ts", "build_tv"]

_PHASES = {"1": "PHASE I TRIAL", "1/2": "PHASE I/II TRIAL", "2": "PHASE II TRIAL", "3": "PHASE III TRIAL",
           "4": "PHASE IV TRIAL"}
#: NCI codes of TS values stated in the trial's CDISC notes or the registry of CT terms
#: used here (others are left without a code rather than guessed).
TS_CODES: dict[str, str] = {"PHASE I TRIAL": "C15600", "INTRAVENOUS": "C38276", "Y": "C49488", "N": "C49487"}


def _protocol_days(protocol: Protocol) -> dict[str, int]:
    days: dict[str, int] = {}
    for v in protocol.schedule.visits:
        days[v.code] = (0 if v.anchor == "day0" else days.get(v.anchor, 0)) + v.day
    return days


def _treatment_span(protocol: Protocol) -> tuple[int, int]:
    """Protocol days of the last infusion and of the end-of-study visit."""
    days = _protocol_days(protocol)
    last = max((days[v.code] for v in protocol.schedule.visits if v.infusion), default=0)
    end = max((days[v.code] for v in protocol.schedule.visits if v.kind == "end_of_study"), default=last)
    return last, end


def build_ta(ctx: Context) -> pd.DataFrame:
    """TA: screening, the arm's treatment element, follow-up, for each arm."""
    rows = []
    for arm in ctx.source.protocol.arms:
        for order, (etcd, element, branch, epoch) in enumerate(
            (("SCRN", "Screening", f"Randomized to {arm.name.en}", "SCREENING"),
             (arm.code, arm.name.en, None, "TREATMENT"),
             ("FU", "Follow-up", None, "FOLLOW-UP")),
            start=1,
        ):
            rows.append({"STUDYID": ctx.studyid, "DOMAIN": "TA", "ARMCD": arm.code, "ARM": arm.name.en,
                         "TAETORD": order, "ETCD": etcd, "ELEMENT": element, "TABRANCH": branch,
                         "TATRANS": None, "EPOCH": epoch})
    return finish(rows, "TA", drop_empty_permissible=False)


def build_te(ctx: Context) -> pd.DataFrame:
    """TE: the elements with their start and end rules and planned durations."""
    protocol = ctx.source.protocol
    last, end = _treatment_span(protocol)
    window = protocol.eligibility.screening_window_days
    rows = [{"ETCD": "SCRN", "ELEMENT": "Screening", "TESTRL": "Informed consent signed",
             "TEENRL": "First infusion, or screen failure", "TEDUR": f"P{window}D"}]
    for arm in protocol.arms:
        i = arm.intervention
        rows.append({"ETCD": arm.code, "ELEMENT": arm.name.en,
                     "TESTRL": f"First infusion of {i.name.en} (study day 1)",
                     "TEENRL": f"Last infusion ({protocol.regimen.cycles} cycles of "
                               f"{protocol.regimen.infusions_per_cycle} infusions)",
                     "TEDUR": f"P{last + 1}D"})
    rows.append({"ETCD": "FU", "ELEMENT": "Follow-up", "TESTRL": "Day after the last infusion",
                 "TEENRL": "End-of-study visit", "TEDUR": f"P{end - last}D"})
    for r in rows:
        r.update({"STUDYID": ctx.studyid, "DOMAIN": "TE"})
    return finish(rows, "TE", drop_empty_permissible=False)


def build_tv(ctx: Context) -> pd.DataFrame:
    """TV: the planned visits, for all arms (ARMCD empty), with their windows."""
    protocol = ctx.source.protocol
    days = _protocol_days(protocol)
    names = {v.code: v.name.en for v in protocol.schedule.visits}
    rows = []
    for v in protocol.schedule.visits:
        w = v.window
        if v.anchor == "day0":
            rule = f"Protocol day {days[v.code]} (study day {ctx.planned_days[v.code]})"
        else:
            rule = f"{v.day} days after {names.get(v.anchor, v.anchor)}"
        rule += f", window -{w.before}/+{w.after} days"
        rows.append({"STUDYID": ctx.studyid, "DOMAIN": "TV", "VISITNUM": ctx.schedule_numbers[v.code],
                     "VISIT": v.name.en, "VISITDY": ctx.planned_days[v.code], "ARMCD": None,
                     "TVSTRL": rule, "TVENRL": None})
    return finish(rows, "TV")


def build_ti(ctx: Context) -> pd.DataFrame:
    """TI: every eligibility criterion of the protocol (summary as IETEST, ≤ 200 characters)."""
    protocol = ctx.source.protocol
    rows = [{"STUDYID": ctx.studyid, "DOMAIN": "TI", "IETESTCD": c.id, "IETEST": c.summary.en[:200],
             "IECAT": c.type.upper(), "TIVERS": protocol.version} for c in protocol.eligibility.criteria]
    return finish(rows, "TI")


def build_ts(ctx: Context) -> pd.DataFrame:
    """TS: the trial summary parameters of the trial's CDISC notes (plus registry and IG version)."""
    protocol = ctx.source.protocol
    identity = protocol.identity
    ages = next((c.rule for c in protocol.eligibility.criteria if isinstance(c.rule, AgeRangeRule)), None)
    experimental = [a for a in protocol.arms if a.type == "experimental"]
    treatment = experimental[0] if experimental else protocol.arms[0]
    control = {"placebo_comparator": "PLACEBO", "active_comparator": "ACTIVE"}
    controls = [control[a.type] for a in protocol.arms if a.type in control]
    regimen = protocol.regimen
    days = _protocol_days(protocol)
    starts = sorted({days[v.code] for v in protocol.schedule.visits if v.infusion and v.anchor == "day0"})
    interval = f"every {(starts[1] - starts[0]) // 7} weeks" if len(starts) > 1 else "once"
    values: list[tuple[str, Any]] = [
        ("TITLE", identity.title),
        ("TPHASE", _PHASES.get(identity.phase, identity.phase)),
        ("TTYPE", "SAFETY"),
        ("TTYPE", "EFFICACY"),
        ("RANDOM", "Y"),
        ("TBLIND", "DOUBLE BLIND" if protocol.is_blinded else "OPEN LABEL"),
        ("TCNTRL", controls[0] if controls else "NONE"),
        ("AGEMIN", f"P{int(ages.min_years)}Y" if ages else None),
        ("AGEMAX", f"P{int(ages.max_years)}Y" if ages else None),
        ("PLANSUB", str(identity.planned_enrolment)),
        ("NARMS", str(len(protocol.arms))),
        ("TRT", treatment.intervention.name.en),
        ("ROUTE", treatment.intervention.route),
        ("DOSE", f"{treatment.intervention.dose:g}"),
        ("DOSU", treatment.intervention.dose_unit),
        ("DOSFRQ", f"{regimen.infusions_per_cycle} infusions {regimen.days_between_infusions_in_cycle} days "
                   f"apart {interval}, {regimen.cycles} cycles"),
        *(("INDIC", c) for c in identity.conditions),
        ("STYPE", identity.study_type.upper()),
        ("SEXPOP", "BOTH"),
        ("REGID", identity.registration),
        ("SPONSOR", identity.sponsor),
        ("SDTIGVER", "3.4"),
        ("DCUTDTC", ctx.source.data_cut.isoformat()),
    ]
    names = {t.value: t.decode for t in codelists(protocol)["TSPARMCD"].terms}
    rows, seq = [], {}
    for parmcd, value in values:
        seq[parmcd] = seq.get(parmcd, 0) + 1
        code = TS_CODES.get(value or "")
        if parmcd == "REGID":
            code, ref = value, "ClinicalTrials.gov"
        else:
            ref = "CDISC CT" if code else None
        rows.append({"STUDYID": ctx.studyid, "DOMAIN": "TS", "TSSEQ": seq[parmcd], "TSPARMCD": parmcd,
                     "TSPARM": names.get(parmcd, parmcd), "TSVAL": None if value is None else str(value)[:200],
                     "TSVALNF": "UNK" if value is None else None, "TSVALCD": code, "TSVCDREF": ref,
                     "TSVCDVER": None})
    return finish(rows, "TS")
