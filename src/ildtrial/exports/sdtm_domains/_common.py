"""Shared SDTM conventions: ISO 8601 text, study days, visits, epochs, --SEQ, column order.

Everything a domain builder needs about the participant's timeline is computed once in
:class:`Context` (reference dates, visit numbers, epochs), so every domain applies the
same rules:

* **Study day** (``--DY``): SDTM convention, day 1 = RFSTDTC = the date of the first
  infusion, the day before is -1 (no day 0). The protocol counts the first infusion as
  day 0; SDTM days are therefore protocol days + 1 from the first infusion on. Only full
  dates have a study day; a partial date leaves ``--DY`` empty.
* **EPOCH**: SCREENING before the first infusion; TREATMENT from the first to the last
  infusion (open-ended while infusions are still due); FOLLOW-UP after it. A finding
  dated on the day of the first infusion is taken before it (the schedule measures
  before infusing), so it belongs to SCREENING and may be the last observation before
  exposure; a post-infusion measurement that day is TREATMENT.
* **VISITNUM**: scheduled visits are numbered 1, 2, … in protocol order; an unscheduled
  visit gets the number of the last scheduled visit before it plus 0.01, 0.02, …, and
  the name ``UNSCHEDULED <n>``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from ildtrial.datasets.raw import form_frame
from ildtrial.exports.source import ExportSource
from ildtrial.exports.spec import SDTM_SPECS

__all__ = [
    "Context",
    "DTC_PATTERN",
    "dtc",
    "finish",
    "fit",
    "iso_date",
    "number",
    "text",
]

#: ISO 8601 date/time as SDTM accepts it: full or partial (right-truncated) date, optional time.
DTC_PATTERN = re.compile(
    r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])(T([01]\d|2[0-3])(:[0-5]\d(:[0-5]\d(\.\d+)?)?)?)?)?)?$"
)
_FULL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def text(value: Any) -> str | None:
    """A stored value as stripped text; empty, None and NaN → None."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    out = str(value).strip()
    return out or None


def fit(value: Any, limit: int = 200) -> str | None:
    """Text shortened to ``limit`` UTF-8 bytes at a word boundary (XPT v5 holds at most 200).

    Only free text that may run long (a screen-failure reason, a cause of death) is
    passed through here; the full text stays in the EDC.
    """
    s = text(value)
    if s is None or len(s.encode("utf-8")) <= limit:
        return s
    cut = s.encode("utf-8")[: limit - 3].decode("utf-8", errors="ignore")
    if " " in cut[len(cut) // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:") + "..."


def number(value: Any) -> float:
    """A stored number (JSON number or text, a decimal comma accepted) → float; else NaN."""
    if value is None or isinstance(value, bool):
        return float("nan")
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip().replace(",", "."))
    except ValueError:
        return float("nan")


def dtc(day: Any, clock: Any = None) -> str | None:
    """ISO 8601 text of a stored date (full or partial) and optional time (``HH:MM``).

    Partial dates (``2024``, ``2024-05``) stay partial: SDTM never imputes. A time is
    added only to a full date, to the minute (the EDC records minutes).
    """
    s = text(day)
    if s is None:
        return None
    s = s[:10] if _FULL_DATE.match(s) else s
    if not DTC_PATTERN.match(s):
        return None
    t = text(clock)
    if t and _FULL_DATE.match(s) and re.match(r"^\d{2}:\d{2}", t):
        s = f"{s}T{t[:5]}"
    return s


def iso_date(value: Any) -> date | None:
    """The full date of an ISO 8601 text, or None when partial or absent."""
    s = text(value)
    if s is None or not _FULL_DATE.match(s):
        return None
    try:
        return date.fromisoformat(s[:10])
    except ValueError:
        return None


@dataclass
class Context:
    """The timeline of every participant and the protocol facts the domains share."""

    source: ExportSource
    studyid: str = ""
    usubjid: dict[str, str] = field(default_factory=dict)
    first_infusion: dict[str, date] = field(default_factory=dict)
    last_infusion: dict[str, date] = field(default_factory=dict)
    treatment_closed: dict[str, bool] = field(default_factory=dict)
    visit_numbers: dict[tuple[str, str], float] = field(default_factory=dict)
    visit_names: dict[tuple[str, str], str] = field(default_factory=dict)
    schedule_numbers: dict[str, float] = field(default_factory=dict)
    schedule_names: dict[str, str] = field(default_factory=dict)
    planned_days: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, source: ExportSource) -> Context:
        protocol = source.protocol
        ctx = cls(source=source, studyid=protocol.identity.registration)
        for p in source.raw.participants["subject"]:
            ctx.usubjid[str(p)] = f"{ctx.studyid}-{p}"
        ctx._schedule()
        ctx._infusions()
        ctx._visits()
        return ctx

    # ------------------------------------------------------------------ setup
    def _schedule(self) -> None:
        protocol_days: dict[str, int] = {}
        for i, visit in enumerate(self.source.protocol.schedule.visits, start=1):
            self.schedule_numbers[visit.code] = float(i)
            self.schedule_names[visit.code] = visit.name.en
            anchor = 0 if visit.anchor == "day0" else protocol_days.get(visit.anchor, 0)
            protocol_days[visit.code] = anchor + visit.day
        self.planned_days = {code: (d + 1 if d >= 0 else d) for code, d in protocol_days.items()}

    def _infusions(self) -> None:
        inf = form_frame(self.source.forms, "INF")
        if "infusion_date" not in inf.columns:
            return
        for subject, day in zip(inf["subject"], inf["infusion_date"], strict=True):
            d = iso_date(day)
            if d is None:
                continue
            s = str(subject)
            self.first_infusion[s] = min(d, self.first_infusion.get(s, d))
            self.last_infusion[s] = max(d, self.last_infusion.get(s, d))
        counts = inf.loc[inf["infusion_date"].map(iso_date).notna()].groupby("subject").size()
        planned = self.source.snapshot.config.infusions_planned
        ended = set(form_frame(self.source.forms, "EOS")["subject"].astype(str))
        status = dict(zip(self.source.raw.participants["subject"], self.source.raw.participants["status"],
                          strict=True))
        for s in self.first_infusion:
            self.treatment_closed[s] = (
                int(counts.get(s, 0)) >= planned or s in ended or status.get(s) in ("died", "withdrawn", "completed")
            )

    def _visits(self) -> None:
        visits = self.source.visits
        for subject, group in visits.groupby("subject", sort=True):
            s = str(subject)
            scheduled: list[tuple[date, float]] = []
            for code, unscheduled, actual in zip(group["visit"], group["unscheduled"], group["actual_date"],
                                                 strict=True):
                if not unscheduled and code in self.schedule_numbers:
                    self.visit_numbers[(s, code)] = self.schedule_numbers[code]
                    self.visit_names[(s, code)] = self.schedule_names[code]
                    d = iso_date(actual)
                    if d is not None:
                        scheduled.append((d, self.schedule_numbers[code]))
            extra = group.loc[group["unscheduled"].astype(bool)].copy()
            extra["_d"] = extra["actual_date"].map(lambda v: iso_date(v) or date.max)
            used: dict[float, int] = {}
            for code, day in sorted(zip(extra["visit"], extra["_d"], strict=True), key=lambda r: (r[1], r[0])):
                before = [n for d, n in scheduled if d <= day]
                base = max(before) if before else 0.0
                used[base] = used.get(base, 0) + 1
                number_ = round(base + used[base] / 100.0, 2)
                self.visit_numbers[(s, code)] = number_
                self.visit_names[(s, code)] = f"UNSCHEDULED {number_:.2f}"

    # ------------------------------------------------------------------ per record
    def subject_id(self, subject: Any) -> str:
        s = str(subject)
        return self.usubjid.get(s, f"{self.studyid}-{s}")

    def rfstdtc(self, subject: Any) -> date | None:
        return self.first_infusion.get(str(subject))

    def study_day(self, subject: Any, value: Any) -> float:
        """SDTM study day of an ISO 8601 value (NaN when partial or without first infusion)."""
        ref = self.rfstdtc(subject)
        d = iso_date(value)
        if ref is None or d is None:
            return float("nan")
        diff = (d - ref).days
        return float(diff + 1 if diff >= 0 else diff)

    def epoch(self, subject: Any, value: Any, *, pre_dose_on_day1: bool = False) -> str | None:
        """EPOCH of a date for a participant (see module docstring)."""
        d = iso_date(value)
        if d is None:
            return None
        s = str(subject)
        first = self.first_infusion.get(s)
        if first is None:
            return "SCREENING"
        if d < first or (pre_dose_on_day1 and d == first):
            return "SCREENING"
        last = self.last_infusion[s]
        if d <= last or not self.treatment_closed.get(s, False):
            return "TREATMENT"
        return "FOLLOW-UP"

    def visit(self, subject: Any, code: Any) -> tuple[float, str | None]:
        key = (str(subject), str(code))
        if key in self.visit_numbers:
            return self.visit_numbers[key], self.visit_names[key]
        if code in self.schedule_numbers:
            return self.schedule_numbers[str(code)], self.schedule_names[str(code)]
        return float("nan"), None


def add_seq(frame: pd.DataFrame, domain: str, order: Sequence[str]) -> pd.DataFrame:
    """Sort by USUBJID then ``order`` and number ``--SEQ`` 1, 2, … within each USUBJID."""
    if frame.empty:
        frame[f"{domain}SEQ"] = pd.Series([], dtype=float)
        return frame
    keys = ["USUBJID", *order]
    frame = frame.sort_values(keys, kind="mergesort", na_position="last").reset_index(drop=True)
    frame[f"{domain}SEQ"] = frame.groupby("USUBJID").cumcount().astype(float) + 1.0
    return frame


def last_before_exposure(frame: pd.DataFrame, ctx: Context, domain: str, test: str, *,
                         post_dose: pd.Series | None = None) -> pd.Series:
    """``--LOBXFL``: "Y" on the last non-missing result on or before the first infusion.

    A result dated on the day of the first infusion counts as before it unless it is a
    post-infusion time point (``post_dose``). Participants never infused have no flag.
    """
    flags = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    if frame.empty:
        return flags
    result = frame[f"{domain}STRESC"].notna() | frame[f"{domain}ORRES"].notna()
    post = post_dose if post_dose is not None else pd.Series(False, index=frame.index)
    candidates = []
    for idx, subject, when, ok, is_post in zip(frame.index, frame["_subject"], frame[f"{domain}DTC"], result,
                                               post, strict=True):
        ref = ctx.rfstdtc(subject)
        d = iso_date(when)
        if not ok or ref is None or d is None:
            continue
        if d < ref or (d == ref and not is_post):
            candidates.append(idx)
    if not candidates:
        return flags
    part = frame.loc[candidates].copy()
    part["_date"] = part[f"{domain}DTC"].map(iso_date)
    order = ["_date", "VISITNUM"] + ([f"{domain}TPTNUM"] if f"{domain}TPTNUM" in part.columns else [])
    part = part.sort_values(order, kind="mergesort", na_position="first")
    last = part.groupby(["USUBJID", test], sort=False).tail(1).index
    flags.loc[last] = "Y"
    return flags


def finish(frame: pd.DataFrame | list[dict[str, Any]], domain: str, *, drop_empty_permissible: bool = True
           ) -> pd.DataFrame:
    """The domain in the order and types of its spec: missing columns added, helpers dropped.

    Permissible variables that are empty in every record are left out (the IG allows
    it, and an all-empty column only draws a reviewer's question); required and expected
    ones always stay.
    """
    spec = SDTM_SPECS[domain]
    df = pd.DataFrame(frame) if isinstance(frame, list) else frame
    out: dict[str, pd.Series] = {}
    n = len(df)
    for var in spec.variables:
        values = df[var.name] if var.name in df.columns else pd.Series([None] * n, index=df.index, dtype=object)
        if var.type == "Num":
            series = pd.to_numeric(values, errors="coerce").astype(float)
            empty = bool(series.isna().all())
        else:
            series = pd.Series([text(v) for v in values], index=df.index, dtype=object)
            empty = bool(series.isna().all())
        if drop_empty_permissible and var.core == "Perm" and empty:
            continue
        out[var.name] = series.reset_index(drop=True)
    return pd.DataFrame(out, columns=list(out))


def forms_of(ctx: Context, code: str) -> pd.DataFrame:
    """One row per instance of a form (not-done instances left out), as :func:`form_frame`."""
    return form_frame(ctx.source.forms, code)


def first_value(frame: pd.DataFrame, subject: str, column: str) -> Any:
    """The value of ``column`` in the first instance of a participant (None when absent)."""
    if frame.empty or column not in frame.columns:
        return None
    rows = frame.loc[frame["subject"] == subject, column]
    for v in rows:
        if text(v) is not None:
            return v
    return None
