"""DSMB safety reports: the OPEN report (pooled, for every VIEW_SAFETY role) and the CLOSED
report (by arm, VIEW_CLOSED_REPORTS only: DSMB members and the unblinded statistician).

Both are generated on demand from the stored records, with the statistics of
:mod:`ildtrial.stats.safety_tables`. The open report is built from datasets that have no
arm column at all (``pooled=True``, and the allocation is never read), so no page, PDF or
error message of it can carry arm-level data, whatever the masking mode. Each generation
is recorded (:class:`DSMBReportRun`): a closed report is unblinded information, and who
saw it when is part of the trial's record.

Datasets (ADaM-like, see the stats module): the safety population is every randomized
participant with at least one recorded infusion (day 1 = first infusion); days at risk run
to the earliest of the data cut-off, the end of the protocol's follow-up, death and the
end-of-study date. An event is treatment emergent when its onset falls in that period.
"""

from __future__ import annotations

import calendar
import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd
from django.template.loader import render_to_string
from django.utils import timezone

from ildtrial.core.roles import Permission
from ildtrial.edc.crfs.models import FormInstance, FormStatus
from ildtrial.edc.errors import require
from ildtrial.edc.participants.models import Participant
from ildtrial.edc.safety import stopping
from ildtrial.edc.safety.models import AdverseEvent, DSMBReportKind, DSMBReportRun, Outcome
from ildtrial.edc.study.protocol import current_protocol
from ildtrial.stats.safety_tables import ae_summary_tables, primary_sae_analysis

_AEREL = {"not_related": "NOT RELATED", "unlikely": "UNLIKELY", "possible": "POSSIBLE", "probable": "PROBABLE",
          "definite": "DEFINITE"}
ADSL_COLUMNS = ["USUBJID", "SAFFL", "TRTDURD", "DTHFL"]
ADAE_COLUMNS = ["USUBJID", "AETERM", "AEDECOD", "AESOC", "AETOXGR", "AESER", "AEREL", "TRTEMFL", "INFREL",
                "AESTDY"]
TABLE_TITLES = {
    "overview": "Overview of treatment-emergent adverse events",
    "by_term": "Adverse events by term",
    "by_max_grade": "Participants by maximum CTCAE grade",
    "by_seriousness": "Adverse events by seriousness",
    "serious_by_term": "Serious adverse events by term",
    "by_relatedness": "Adverse events by relatedness to the product",
    "infusion_related": "Infusion-related reactions (onset within the reaction window of an infusion)",
    "deaths": "Deaths",
}


def _add_months(day: date, months: int) -> date:
    year, month = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _dates(form: FormInstance, key: str) -> date | None:
    value = form.data.get(key)
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


@dataclass
class _Subject:
    participant: Participant
    arm: str | None
    first_infusion: date | None
    end: date | None
    died: bool


def _subjects(cutoff: date, with_arm: bool) -> list[_Subject]:
    """Randomized participants with their observation period; the arm only when asked for."""
    months = current_protocol().safety.follow_up_months
    participants = Participant.objects.exclude(randomization_number="").select_related("site").order_by("pk")
    if with_arm:
        participants = participants.select_related("allocation")
    subjects = []
    for p in participants:
        forms = list(FormInstance.objects.filter(participant=p, form_code__in=["INF", "EOS"])
                     .exclude(status=FormStatus.NOT_DONE))
        infusions = [d for f in forms if f.form_code == "INF" and (d := _dates(f, "infusion_date"))]
        first = min(infusions) if infusions else None
        deaths = [ae.resolution_date or ae.onset_date
                  for ae in p.adverse_events.filter(outcome=Outcome.FATAL)]
        eos = [f for f in forms if f.form_code == "EOS"]
        deaths += [d for f in eos if f.data.get("status") == "DEATH" and (d := _dates(f, "death_date"))]
        ends = [cutoff, *deaths, *[d for f in eos if (d := _dates(f, "end_date"))]]
        end = None
        if first is not None:
            end = max(first, min([*ends, _add_months(first, months)]))
        arm = p.allocation.arm if with_arm else None
        subjects.append(_Subject(p, arm, first, end, bool(deaths)))
    return subjects


def datasets(cutoff: date, *, with_arm: bool) -> tuple[pd.DataFrame, pd.DataFrame, list[AdverseEvent]]:
    """ADSL and ADAE frames (with ``ARM`` only when ``with_arm``) and the events they hold."""
    subjects = _subjects(cutoff, with_arm)
    adsl_rows, adae_rows, events = [], [], []
    for s in subjects:
        p = s.participant
        row: dict[str, Any] = {
            "USUBJID": p.label, "SAFFL": "Y" if s.first_infusion else "N",
            "TRTDURD": (s.end - s.first_infusion).days + 1 if s.first_infusion and s.end else 0,
            "DTHFL": "Y" if s.died else "N"}
        if with_arm:
            row["ARM"] = s.arm
        adsl_rows.append(row)
        for ae in p.adverse_events.all().order_by("ae_number"):
            day = None
            emergent = False
            if s.first_infusion is not None:
                delta = (ae.onset_date - s.first_infusion).days
                day = delta + 1 if delta >= 0 else delta  # there is no study day 0
                emergent = s.end is not None and s.first_infusion <= ae.onset_date <= s.end
            adae_rows.append({
                "USUBJID": p.label, "AETERM": ae.verbatim_term, "AEDECOD": ae.coded_term, "AESOC": ae.soc or None,
                "AETOXGR": ae.grade, "AESER": "Y" if ae.serious else "N", "AEREL": _AEREL[ae.relatedness_product],
                "TRTEMFL": "Y" if emergent else "N", "INFREL": "Y" if ae.infusion_related else "N",
                "AESTDY": day})
            ae.study_day = day  # type: ignore[attr-defined]
            ae.emergent = emergent  # type: ignore[attr-defined]
            if with_arm:
                ae.arm = s.arm  # type: ignore[attr-defined]
            events.append(ae)
    adsl_cols = ADSL_COLUMNS + (["ARM"] if with_arm else [])
    return pd.DataFrame(adsl_rows, columns=adsl_cols), pd.DataFrame(adae_rows, columns=ADAE_COLUMNS), events


def _frame(frame: pd.DataFrame) -> dict[str, Any]:
    """A DataFrame as headers and rows of text, for the template."""
    headers = [frame.index.name or "", *[str(c) for c in frame.columns]]
    rows = [[str(label), *["" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v) for v in values]]
            for label, values in zip(frame.index, frame.itertuples(index=False, name=None), strict=True)]
    return {"headers": headers, "rows": rows}


@dataclass
class DSMBReport:
    """Everything the report template shows."""

    kind: str
    generated_at: datetime
    generated_by: str
    cutoff: date
    masking_mode: str
    arms: list[tuple[str, str]]
    n_by_group: dict[str, int]
    primary: dict[str, Any]
    primary_note: str
    tables: list[tuple[str, dict[str, Any]]]
    sae_listing: dict[str, Any]
    ae_listing: dict[str, Any]
    stopping_rules: list[str]
    flags: list[Any] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        return self.kind == DSMBReportKind.CLOSED


def _listing(events: list[AdverseEvent], with_arm: bool) -> dict[str, Any]:
    headers = ([*(["Arm"] if with_arm else []), "Participant", "Site", "AE", "Term (verbatim)", "SOC",
                "Onset (study day)", "Grade", "Seriousness criteria", "Related: product", "Related: procedure",
                "Expectedness", "SUSAR", "Outcome", "Infusion-related", "Treatment emergent"])
    rows = []
    ordered = sorted(events, key=lambda e: ((e.arm or "") if with_arm else "", e.participant.label, e.ae_number))
    for e in ordered:
        report = getattr(e, "sae_report", None) if e.serious else None
        susar = "—" if report is None or report.susar is None else ("yes" if report.susar else "no")
        rows.append([*([e.arm] if with_arm else []), e.participant.label, e.participant.site.code,
                     str(e.ae_number), f"{e.coded_term} ({e.verbatim_term})", e.soc or "—",
                     f"{e.onset_date:%Y-%m-%d} ({e.study_day if e.study_day is not None else '—'})",
                     str(e.grade), ", ".join(e.criteria_labels) or "—", e.get_relatedness_product_display(),
                     e.get_relatedness_procedure_display(), e.get_expectedness_display() or "—", susar,
                     e.get_outcome_display(),
                     f"yes ({e.infusion_visit})" if e.infusion_related else "no",
                     "yes" if e.emergent else "no"])
    return {"headers": headers, "rows": rows}


def build(user, kind: str, *, now: datetime | None = None) -> DSMBReport:  # noqa: ANN001
    """Build the open (pooled) or closed (by arm) report as of now; checks the permission first."""
    if kind == DSMBReportKind.CLOSED:
        require(user, Permission.VIEW_CLOSED_REPORTS)
    elif kind == DSMBReportKind.OPEN:
        require(user, Permission.VIEW_SAFETY)
    else:
        raise ValueError(f"kind: must be open or closed, got {kind!r}")
    protocol = current_protocol()
    now = now or timezone.now()
    cutoff = timezone.localdate(now)
    closed = kind == DSMBReportKind.CLOSED
    adsl, adae, events = datasets(cutoff, with_arm=closed)
    arms = tuple(a.code for a in protocol.arms)
    primary = primary_sae_analysis(adsl, adae, arms, pooled=not closed)
    tables = ae_summary_tables(adsl, adae, arms, pooled=not closed)
    results = stopping.evaluate()
    return DSMBReport(
        kind=kind, generated_at=now, generated_by=user.get_full_name() or user.username, cutoff=cutoff,
        masking_mode=protocol.masking.mode,
        arms=[(a.code, a.name.en) for a in protocol.arms] if closed else [],
        n_by_group=dict(tables.n_by_group), primary=_frame(primary.table()), primary_note=primary.note,
        tables=[(TABLE_TITLES[name], _frame(tables.formatted(name))) for name in tables.tables],
        sae_listing=_listing([e for e in events if e.serious], closed),
        ae_listing=_listing(events, closed),
        stopping_rules=[r.message() for r in results], flags=stopping.active_flags())


def render_html(report: DSMBReport) -> str:
    return render_to_string("safety/dsmb_report.html", {"report": report, "protocol": current_protocol()})


def record_run(user, report: DSMBReport, output_format: str, content: bytes) -> DSMBReportRun:  # noqa: ANN001
    return DSMBReportRun.objects.create(
        kind=report.kind, output_format=output_format, generated_by=user, generated_at=report.generated_at,
        masking_mode=report.masking_mode, sha256=hashlib.sha256(content).hexdigest(),
        protocol_version=current_protocol().version)


def to_pdf(html: str) -> bytes:
    """Render printable HTML (self-contained: inline styles, no external resources) as PDF."""
    import weasyprint

    return weasyprint.HTML(string=html).write_pdf()
