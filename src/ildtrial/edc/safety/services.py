"""Adverse events and SAE reports: entry, edits, SUSAR assessment, submissions, follow-ups,
clocks and who may see what.

Every path that stores safety data (pages, commands, tests) goes through these functions,
so the same checks, clocks and audit trail apply whoever enters the values. The rules and
the numbers come from the pure core (:mod:`ildtrial.core.safety`) and the protocol file;
this module parses input, keeps the records consistent and decides who is told.

Decisions (see also ``notifications`` and ``stopping``):

* Values may be typed (``date``, ``time``, aware ``datetime``, ``int``, ``bool``) or the
  text a form sends. A date-time given as text without an offset is the site's wall-clock
  time (the form says so); a *naive* ``datetime`` object is refused, because code that
  passes one has not decided which zone it meant.
* An event marked serious opens its SAE report at once; the awareness date-time is
  required then, because every clock starts there (never at onset).
* Whether a serious event is a SUSAR is the investigator's assessment (``ASSESS_SAE``).
  Until it is made, the dashboard shows the regulatory deadline the entered values imply
  as *provisional*, so a missing assessment cannot hide a clock that is already running.
  Changing product relatedness or expectedness afterwards sends the report back for
  assessment: a coordinator's edit must not silently override the investigator.
* Site staff see the events of their sites; roles without participant access that hold
  ``VIEW_SAFETY`` (sponsor viewer, DSMB member, unblinded statistician) oversee the whole
  trial and see every site. Nothing here reads the allocation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Max, QuerySet
from django.http import Http404
from django.utils import timezone

from ildtrial.core import safety as core
from ildtrial.core.roles import Permission
from ildtrial.edc.audit.context import because
from ildtrial.edc.crfs.locking import ensure_unlocked
from ildtrial.edc.crfs.models import FormInstance, FormStatus
from ildtrial.edc.errors import InputRefused, require, require_site
from ildtrial.edc.participants.models import Participant
from ildtrial.edc.safety import dictionary, notifications, stopping
from ildtrial.edc.safety.models import (
    CRITERIA_FIELDS,
    ActionTaken,
    AdverseEvent,
    Outcome,
    SAEFollowUp,
    SAEReport,
    SAEStatus,
    StoppingRuleEvent,
)
from ildtrial.edc.study.protocol import current_protocol

INFUSION_FORM = "INF"

#: field names of the core's issues → the names of this module's values (and the form)
_CORE_FIELD = {
    "term": "coded_term",
    "onset": "onset_date",
    "resolution": "resolution_date",
    "awareness": "awareness_at",
    "seriousness.death": "sae_death",
    "seriousness": "serious",
}
EDITABLE_FIELDS = ("verbatim_term", "onset_date", "onset_time", "resolution_date", "grade", "serious",
                   *(name for name, _c, _l in CRITERIA_FIELDS), "relatedness_product", "relatedness_procedure",
                   "expectedness", "action_taken", "outcome")
#: changes to these after an investigator's SUSAR assessment send the report back for assessment
_ASSESSED_FIELDS = ("relatedness_product", "expectedness")


# =========================================================================== refusals
@dataclass(frozen=True)
class Problem:
    """One refused value: the field, and the rule in English and Russian."""

    field: str
    message: str
    message_ru: str = ""

    def text(self, language: str = "en") -> str:
        return self.message_ru if language.startswith("ru") and self.message_ru else self.message


class AdverseEventRefused(InputRefused):
    """The adverse event was not stored; ``problems`` names every field and rule broken."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(problems[0].field, "; ".join(
            p.message if i == 0 else f"{p.field}: {p.message}" for i, p in enumerate(problems)))


# =========================================================================== who sees what
def sees_all_sites(user) -> bool:  # noqa: ANN001
    """Trial-level safety oversight (sponsor, DSMB, unblinded statistician): every site."""
    return user.can(Permission.VIEW_SAFETY) and not user.can(Permission.VIEW_PARTICIPANTS)


def events_visible_to(user) -> QuerySet[AdverseEvent]:  # noqa: ANN001
    """Adverse events the user may see: none without VIEW_SAFETY, else their sites (or all, see above)."""
    if not user.can(Permission.VIEW_SAFETY):
        return AdverseEvent.objects.none()
    events = AdverseEvent.objects.select_related("participant", "participant__site")
    if sees_all_sites(user):
        return events
    return events.filter(participant__site__code__in=user.site_codes())


def participant_for(user, pk: int) -> Participant:  # noqa: ANN001
    """The participant if the user may see its safety data; the same 404 otherwise, so ids cannot be probed."""
    participants = Participant.objects.select_related("site")
    if not user.can(Permission.VIEW_SAFETY):
        raise Http404("no such participant")
    if not sees_all_sites(user):
        participants = participants.filter(site__code__in=user.site_codes())
    participant = participants.filter(pk=pk).first()
    if participant is None:
        raise Http404("no such participant")
    return participant


def event_for(user, pk: int) -> AdverseEvent:  # noqa: ANN001
    event = events_visible_to(user).filter(pk=pk).first()
    if event is None:
        raise Http404("no such adverse event")
    return event


def report_for(user, pk: int) -> SAEReport:  # noqa: ANN001
    report = (SAEReport.objects.select_related("adverse_event", "adverse_event__participant",
                                               "adverse_event__participant__site")
              .filter(adverse_event__in=events_visible_to(user), pk=pk).first())
    if report is None:
        raise Http404("no such SAE report")
    return report


# =========================================================================== parsing
_TRUE = {"true", "on", "yes", "y", "1", "да"}
_FALSE = {"false", "off", "no", "n", "0", "нет"}
_DMY = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")


class _Parser:
    """Reads typed or text values, collecting a field-named problem for each bad one."""

    def __init__(self, values: dict[str, Any], zone: ZoneInfo):
        self.values = values
        self.zone = zone
        self.problems: list[Problem] = []

    def refuse(self, name: str, message: str, message_ru: str = "") -> None:
        self.problems.append(Problem(name, message, message_ru))

    def raw(self, name: str) -> Any:
        value = self.values.get(name)
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    def text(self, name: str, max_length: int, required: bool = False) -> str:
        value = self.raw(name)
        if value is None:
            if required:
                self.refuse(name, "is required", "обязательное поле")
            return ""
        value = str(value)
        if len(value) > max_length:
            self.refuse(name, f"must be at most {max_length} characters", f"не более {max_length} символов")
        return value

    def date(self, name: str) -> date | None:
        value = self.raw(name)
        if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
            return value
        if isinstance(value, str):
            m = _DMY.match(value)
            try:
                return date(int(m[3]), int(m[2]), int(m[1])) if m else date.fromisoformat(value)
            except ValueError:
                pass
        self.refuse(name, f"{value!r} is not a date (YYYY-MM-DD)", f"{value!r} не является датой (ГГГГ-ММ-ДД)")
        return None

    def time(self, name: str) -> time | None:
        value = self.raw(name)
        if value is None or isinstance(value, time):
            return value
        if isinstance(value, str):
            try:
                return time.fromisoformat(value)
            except ValueError:
                pass
        self.refuse(name, f"{value!r} is not a time (HH:MM)", f"{value!r} не является временем (ЧЧ:ММ)")
        return None

    def moment(self, name: str) -> datetime | None:
        """An aware datetime; text without an offset is the site's wall-clock time; a naive
        datetime object is passed on for the core to refuse by name."""
        value = self.raw(name)
        if value is None or isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                parsed = None
            if parsed is not None:
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=self.zone)
        self.refuse(name, f"{value!r} is not a date and time (YYYY-MM-DD HH:MM)",
                    f"{value!r} не является датой и временем (ГГГГ-ММ-ДД ЧЧ:ММ)")
        return None

    def integer(self, name: str) -> int | None:
        value = self.raw(name)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value):
            return int(value)
        self.refuse(name, f"{value!r} is not a whole number", f"{value!r} не является целым числом")
        return None

    def boolean(self, name: str, default: bool | None = None) -> bool | None:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if str(value).casefold() in _TRUE:
            return True
        if str(value).casefold() in _FALSE:
            return False
        self.refuse(name, f"{value!r} is not yes or no", f"{value!r}: допустимо только «да» или «нет»")
        return default

    def choice(self, name: str, choices: type, required: bool = True) -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                self.refuse(name, "is required", "обязательное поле")
            return None
        allowed = [c.value for c in choices]
        if str(value) not in allowed:
            self.refuse(name, f"{value!r} is not one of {', '.join(allowed)}",
                        f"{value!r}: допустимо {', '.join(allowed)}")
            return None
        return str(value)


@dataclass
class _Cleaned:
    fields: dict[str, Any]
    awareness: datetime | None
    narrative: str
    warnings: list[Problem] = field(default_factory=list)


def _validate(participant: Participant, values: dict[str, Any], now: datetime) -> _Cleaned:
    """Parse and check the values; raise AdverseEventRefused listing every problem."""
    zone = ZoneInfo(participant.site.timezone)
    p = _Parser(values, zone)
    verbatim = p.text("verbatim_term", 250, required=True)
    coded_text = p.text("coded_term", 250)
    onset_date, onset_time = p.date("onset_date"), p.time("onset_time")
    resolution = p.date("resolution_date")
    grade = p.integer("grade")
    serious = p.boolean("serious")
    criteria = {name: bool(p.boolean(name, default=False)) for name, _c, _l in CRITERIA_FIELDS}
    action = p.choice("action_taken", ActionTaken, required=False) or ActionTaken.NONE
    awareness = p.moment("awareness_at")
    narrative = p.text("narrative", 20000)
    parsed_bad = {pr.field for pr in p.problems}

    term = None
    if coded_text:
        found = dictionary.find_term(coded_text)
        if found is None:
            p.refuse("coded_term", f"{coded_text!r} is not in the term dictionary; choose a CTCAE term from the "
                                   "list (or import the site's dictionary)",
                     f"{coded_text!r} нет в словаре терминов; выберите термин CTCAE из списка")
            parsed_bad.add("coded_term")
        else:
            term = found

    onset: date | datetime | None = onset_date
    if onset_date is not None and onset_time is not None:
        onset = datetime.combine(onset_date, onset_time).replace(tzinfo=zone)
    entry = core.AdverseEventInput(
        term=term[0].term if term else (coded_text or None), onset=onset, grade=grade, serious=serious,
        outcome=p.raw("outcome"), relatedness_product=p.raw("relatedness_product"),
        relatedness_procedure=p.raw("relatedness_procedure"),
        seriousness=core.Seriousness(**{c.value: criteria[name] for name, c, _l in CRITERIA_FIELDS}),
        resolution=resolution, expectedness=p.raw("expectedness"), awareness=awareness)
    warnings: list[Problem] = []
    for issue in core.validate_adverse_event(entry, now, site_tz=zone):
        name = _CORE_FIELD.get(issue.field, issue.field)
        if name in parsed_bad:
            continue  # already refused as unreadable; "is required" would only repeat it
        problem = Problem(name, issue.en, issue.ru)
        if issue.severity == core.Severity.WARNING:
            warnings.append(problem)
        else:
            p.problems.append(problem)
    if p.problems:
        raise AdverseEventRefused(p.problems)
    assert term is not None and onset_date is not None and grade is not None and serious is not None
    outcome = str(p.raw("outcome"))
    fields = {
        "verbatim_term": verbatim, "coded_term": term[0].term, "meddra_code": term[0].code or "",
        "soc": (term[0].soc or "")[:200], "term_source": term[1][:200], "onset_date": onset_date,
        "onset_time": onset_time, "resolution_date": resolution,
        # ongoing: not known to have ended (no end date) and not fatal
        "ongoing": resolution is None and outcome != Outcome.FATAL, "grade": grade, "serious": serious,
        **criteria, "relatedness_product": str(p.raw("relatedness_product")),
        "relatedness_procedure": str(p.raw("relatedness_procedure")),
        "expectedness": str(p.raw("expectedness") or ""), "action_taken": action, "outcome": outcome,
    }
    return _Cleaned(fields, awareness.astimezone(UTC) if serious and awareness else None, narrative, warnings)


# =========================================================================== infusion window
def infusion_starts(participant: Participant) -> list[tuple[datetime, str]]:
    """Start of every recorded infusion (INF form: infusion_date + start_time at the site), with its visit."""
    zone = ZoneInfo(participant.site.timezone)
    starts = []
    forms = (FormInstance.objects.filter(participant=participant, form_code=INFUSION_FORM)
             .exclude(status=FormStatus.NOT_DONE).select_related("visit"))
    for form in forms:
        day, clock = form.data.get("infusion_date"), form.data.get("start_time")
        if not day or not clock:
            continue
        try:
            local = datetime.combine(date.fromisoformat(str(day)), time.fromisoformat(str(clock)))
        except ValueError:
            continue
        # fold=0: a start in the repeated autumn hour is read as its first occurrence
        starts.append((local.replace(tzinfo=zone, fold=0).astimezone(UTC), form.visit.code))
    return starts


def infusion_match(participant: Participant, onset_date: date, onset_time: time | None) -> str | None:
    """The visit of the infusion whose reaction window holds the onset, else None.

    With an onset time the core decides (window ``[start, start + reaction_window_hours]``).
    With a date only, the event is flagged when the window overlaps any part of that day at
    the site: the flag asks the investigator to look, and a missed reaction costs more.
    """
    starts = infusion_starts(participant)
    if not starts:
        return None
    protocol = current_protocol()
    zone = ZoneInfo(participant.site.timezone)
    if onset_time is not None:
        onset = datetime.combine(onset_date, onset_time).replace(tzinfo=zone)
        match = core.infusion_window_match(onset, [s for s, _v in starts], protocol=protocol)
        return next((v for s, v in starts if s == match), None) if match is not None else None
    window = timedelta(hours=protocol.regimen.reaction_window_hours)
    day_start = datetime.combine(onset_date, time()).replace(tzinfo=zone).astimezone(UTC)
    day_end = datetime.combine(onset_date + timedelta(days=1), time()).replace(tzinfo=zone).astimezone(UTC)
    overlapping = [(s, v) for s, v in starts if s < day_end and s + window >= day_start]
    return max(overlapping)[1] if overlapping else None


def _apply_infusion_flag(ae: AdverseEvent) -> None:
    visit = infusion_match(ae.participant, ae.onset_date, ae.onset_time)
    ae.infusion_related = visit is not None
    ae.infusion_visit = visit or ""


def refresh_infusion_flags(participant: Participant) -> list[AdverseEvent]:
    """Recompute the flag of the participant's events after infusion data changed (caller gives the reason)."""
    changed = []
    for ae in AdverseEvent.objects.filter(participant=participant).select_related("participant__site"):
        before = (ae.infusion_related, ae.infusion_visit)
        _apply_infusion_flag(ae)
        if (ae.infusion_related, ae.infusion_visit) != before:
            ae.save()
            changed.append(ae)
    return changed


# =========================================================================== SAE clocks
def _set_deadlines(report: SAEReport, ae: AdverseEvent) -> None:
    """Deadlines from the awareness date-time: sponsor (absolute hours), SUSAR (site calendar days)."""
    protocol = current_protocol()
    report.sponsor_due_at = core.sponsor_deadline(report.awareness_at, protocol)
    if report.susar:
        d = core.susar_deadlines(report.awareness_at, ae.sae_death or ae.sae_life_threatening,
                                 site_tz=report.site_timezone, protocol=protocol)
        report.regulatory_due_at, report.regulatory_complete_due_at = d.initial, d.complete
    else:
        report.regulatory_due_at = report.regulatory_complete_due_at = None


def _refresh_status(report: SAEReport, ae: AdverseEvent) -> None:
    if not ae.serious:
        report.status = SAEStatus.DOWNGRADED
    elif report.sponsor_submitted_at is None:
        report.status = SAEStatus.AWAITING_SPONSOR
    elif report.susar is None:
        report.status = SAEStatus.AWAITING_ASSESSMENT
    elif report.susar and report.regulatory_submitted_at is None:
        report.status = SAEStatus.AWAITING_REGULATORY
    elif report.susar and report.regulatory_complete_due_at and report.regulatory_complete_submitted_at is None:
        report.status = SAEStatus.AWAITING_COMPLETE
    else:
        report.status = SAEStatus.REPORTED


def potential_susar(report: SAEReport) -> bool:
    """What the entered values say before the investigator's assessment (unassessed expectedness = unexpected)."""
    ae = report.adverse_event
    return core.is_susar(ae.serious, ae.relatedness_product, ae.expectedness or None)


@dataclass(frozen=True)
class Clock:
    """One reporting clock of a report, as shown and reminded."""

    key: str  # sponsor | regulatory | regulatory_complete
    label: str
    deadline: datetime
    submitted_at: datetime | None
    status: core.ClockStatus
    provisional: bool = False

    @property
    def overdue(self) -> bool:
        return self.status.state == core.ClockState.OVERDUE

    @property
    def late(self) -> bool:
        return self.status.state in (core.ClockState.OVERDUE, core.ClockState.SUBMITTED_LATE)


def clocks(report: SAEReport, now: datetime | None = None) -> list[Clock]:
    """The report's clocks with their state at ``now`` (submitted exactly at the deadline is on time)."""
    now = now or timezone.now()
    if report.status == SAEStatus.DOWNGRADED:
        return []
    out = [Clock("sponsor", "Report to the sponsor", report.sponsor_due_at, report.sponsor_submitted_at,
                 core.clock_status(report.sponsor_due_at, report.sponsor_submitted_at, now))]
    ae = report.adverse_event
    fatal_lt = ae.sae_death or ae.sae_life_threatening
    if report.susar:
        assert report.regulatory_due_at is not None
        out.append(Clock("regulatory", "SUSAR report to regulators/ethics", report.regulatory_due_at,
                         report.regulatory_submitted_at,
                         core.clock_status(report.regulatory_due_at, report.regulatory_submitted_at, now)))
        if report.regulatory_complete_due_at:
            out.append(Clock("regulatory_complete", "Complete SUSAR report", report.regulatory_complete_due_at,
                             report.regulatory_complete_submitted_at,
                             core.clock_status(report.regulatory_complete_due_at,
                                               report.regulatory_complete_submitted_at, now)))
    elif report.susar is None and potential_susar(report):
        d = core.susar_deadlines(report.awareness_at, fatal_lt, site_tz=report.site_timezone,
                                 protocol=current_protocol())
        out.append(Clock("regulatory", "SUSAR report to regulators/ethics (if confirmed)", d.initial, None,
                         core.clock_status(d.initial, None, now), provisional=True))
    return out


def describe_duration(delta: timedelta) -> str:
    """``2 d 3 h 4 min``: how late or how long left, to the (whole) minute."""
    if delta < timedelta(minutes=1):
        return "less than 1 min"
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = ([f"{days} d"] if days else []) + ([f"{hours} h"] if hours or days else []) + [f"{mins} min"]
    return " ".join(parts)


# =========================================================================== entry and edits
def _check_can_write(user, participant: Participant) -> None:  # noqa: ANN001
    require(user, Permission.REPORT_AE)
    require_site(user, participant.site)
    ensure_unlocked()


def _open_report(ae: AdverseEvent, awareness: datetime, narrative: str) -> SAEReport:
    report = SAEReport(adverse_event=ae, awareness_at=awareness, site_timezone=ae.participant.site.timezone,
                       narrative=narrative, protocol_version=current_protocol().version)
    _set_deadlines(report, ae)
    _refresh_status(report, ae)
    report.save()
    return report


def report_adverse_event(user, participant: Participant, values: dict[str, Any], *,  # noqa: ANN001
                         now: datetime | None = None) -> AdverseEvent:
    """Record a new adverse event; a serious one opens its SAE report and starts the clocks.

    Refusals raise :class:`AdverseEventRefused` naming every field; nothing is stored. The
    returned event carries ``validation_warnings`` (problems that do not block, e.g. a fatal
    event without its date of death yet).
    """
    _check_can_write(user, participant)
    if not participant.consents.exists():
        raise InputRefused(None, f"{participant} has no informed consent recorded; adverse events are collected "
                                 "from consent onwards")
    now = now or timezone.now()
    cleaned = _validate(participant, values, now)
    with transaction.atomic():
        Participant.objects.select_for_update().filter(pk=participant.pk).first()
        last = AdverseEvent.objects.filter(participant=participant).aggregate(n=Max("ae_number"))["n"] or 0
        ae = AdverseEvent(participant=participant, ae_number=last + 1, reported_by=user, reported_at=now,
                          protocol_version=current_protocol().version, **cleaned.fields)
        _apply_infusion_flag(ae)
        ae.save()
        report = _open_report(ae, cleaned.awareness, cleaned.narrative) if ae.serious else None
        halted = stopping.evaluate_and_record(ae) if ae.serious else []
    _after_save(new_report=report, halted=halted)
    ae.validation_warnings = cleaned.warnings  # type: ignore[attr-defined]
    return ae


def update_adverse_event(user, ae: AdverseEvent, values: dict[str, Any], *, reason: str,  # noqa: ANN001
                         now: datetime | None = None) -> AdverseEvent:
    """Change a recorded event (reason required); keeps its SAE report and clocks consistent.

    The values are the whole event as it should now read (the form sends every field). The
    coded term is looked up again; the infusion flag is recomputed; an event that becomes
    serious opens its report, one that stops being serious marks it downgraded.
    """
    participant = ae.participant
    _check_can_write(user, participant)
    if not (reason or "").strip():
        raise InputRefused("reason", "a reason is required to change a recorded adverse event")
    now = now or timezone.now()
    cleaned = _validate(participant, values, now)
    new_report: SAEReport | None = None
    with transaction.atomic(), because(reason.strip()):
        ae = AdverseEvent.objects.select_for_update().select_related("participant__site").get(pk=ae.pk)
        was_serious = ae.serious
        before = {name: getattr(ae, name) for name in _ASSESSED_FIELDS}
        for name, value in cleaned.fields.items():
            setattr(ae, name, value)
        _apply_infusion_flag(ae)
        ae.save()
        report = SAEReport.objects.select_for_update().filter(adverse_event=ae).first()
        if ae.serious and report is None:
            new_report = report = _open_report(ae, cleaned.awareness, cleaned.narrative)
        elif report is not None:
            if ae.serious:
                report.awareness_at = cleaned.awareness
                if report.susar is not None and any(getattr(ae, n) != v for n, v in before.items()):
                    report.susar = None  # the assessment was of other values: assess again
                    report.susar_assessed_by = None
                    report.susar_assessed_at = None
                if cleaned.narrative:
                    report.narrative = cleaned.narrative
                _set_deadlines(report, ae)
            _refresh_status(report, ae)
            report.save()
        halted = stopping.evaluate_and_record(ae) if (ae.serious or was_serious) else []
    _after_save(new_report=new_report, halted=halted)
    ae.validation_warnings = cleaned.warnings  # type: ignore[attr-defined]
    return ae


def _after_save(*, new_report: SAEReport | None = None, halted: list[StoppingRuleEvent] | None = None,
                susar: SAEReport | None = None) -> None:
    """Send the notifications once the records are stored (a rollback must not leave an e-mail behind)."""
    if new_report is not None:
        notifications.notify_new_sae(new_report)
    if susar is not None:
        notifications.notify_susar(susar)
    for event in halted or []:
        notifications.notify_stopping_rule(event)


# =========================================================================== SUSAR assessment
def assess_susar(user, report: SAEReport, *, relatedness_product: str, expectedness: str | None,  # noqa: ANN001
                 reason: str = "", now: datetime | None = None) -> SAEReport:
    """The investigator's causality and expectedness judgement; a SUSAR starts the regulatory clocks.

    The clocks count from the awareness date-time (first knowledge), in calendar days of the
    site's zone: 7 (+8 for the complete report) when fatal or life-threatening, else 15.
    Only relatedness to the product counts; the procedure alone does not make a SUSAR.
    """
    ae = report.adverse_event
    require(user, Permission.ASSESS_SAE)
    require_site(user, ae.participant.site)
    ensure_unlocked()
    if not ae.serious:
        raise InputRefused(None, "the event is no longer serious; there is nothing to assess")
    problems = []
    if relatedness_product not in {r.value for r in core.Relatedness}:
        problems.append(Problem("relatedness_product", f"{relatedness_product!r} is not on the relatedness scale"))
    exp = (expectedness or "").strip() or None
    if exp is not None and exp not in {e.value for e in core.Expectedness}:
        problems.append(Problem("expectedness", f"{exp!r} is not expected or unexpected"))
    if not problems and core.is_suspected_related(relatedness_product) and exp is None:
        problems.append(Problem("expectedness", "is required when the event is suspected to be related to the "
                                                "product (it decides whether the event is a SUSAR)"))
    if report.susar is not None and not (reason or "").strip():
        problems.append(Problem("reason", "a reason is required to change an assessment already made"))
    if problems:
        raise AdverseEventRefused(problems)
    now = now or timezone.now()
    was_susar = report.susar is True
    susar = core.is_susar(True, relatedness_product, exp)
    with transaction.atomic(), because((reason or "").strip() or "SUSAR assessment by the investigator"):
        ae = AdverseEvent.objects.select_for_update().select_related("participant__site").get(pk=ae.pk)
        ae.relatedness_product = relatedness_product
        ae.expectedness = exp or ""
        ae.save()
        report = SAEReport.objects.select_for_update().get(pk=report.pk)
        report.susar = susar
        report.susar_assessed_by = user
        report.susar_assessed_at = now
        _set_deadlines(report, ae)
        _refresh_status(report, ae)
        report.save()
        halted = stopping.evaluate_and_record(ae)
    _after_save(halted=halted, susar=report if susar and not was_susar else None)
    return report


# =========================================================================== submissions, follow-ups
SUBMISSIONS = {
    "sponsor": ("sponsor_submitted_at", Permission.REPORT_AE, "report to the sponsor"),
    "regulatory": ("regulatory_submitted_at", Permission.ASSESS_SAE, "SUSAR report to regulators/ethics"),
    "regulatory_complete": ("regulatory_complete_submitted_at", Permission.ASSESS_SAE, "complete SUSAR report"),
}


def _moment(report: SAEReport, name: str, value: datetime | str | None, now: datetime) -> datetime:
    """A submission or receipt time: aware, not in the future, not before the site became aware."""
    parser = _Parser({name: value}, ZoneInfo(report.site_timezone))
    moment = parser.moment(name)
    if parser.problems:
        raise InputRefused(name, parser.problems[0].message)
    if moment is None:
        raise InputRefused(name, "is required")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InputRefused(name, "must be timezone-aware (enter it with the site's time zone)")
    if moment > now:
        raise InputRefused(name, "must not be in the future")
    if moment < report.awareness_at:
        raise InputRefused(name, "must not be before the site became aware of the event")
    return moment.astimezone(UTC)


def record_submission(user, report: SAEReport, kind: str, submitted_at: datetime | str | None, *,  # noqa: ANN001
                      reason: str = "", now: datetime | None = None) -> SAEReport:
    """Record when a report was sent: to the sponsor (site staff) or to regulators (investigator).

    Correcting a recorded time needs a reason. Whether it was on time is read from the clock,
    never stored: exactly at the deadline is on time, one microsecond later is late.
    """
    if kind not in SUBMISSIONS:
        raise InputRefused("kind", f"must be one of {', '.join(SUBMISSIONS)}")
    attribute, permission, label = SUBMISSIONS[kind]
    ae = report.adverse_event
    require(user, permission)
    require_site(user, ae.participant.site)
    ensure_unlocked()
    now = now or timezone.now()
    moment = _moment(report, "submitted_at", submitted_at, now)
    if kind != "sponsor" and not report.susar:
        raise InputRefused(None, "only a SUSAR is reported to regulators; the investigator has not assessed "
                                 "this event as one")
    if kind == "regulatory_complete":
        if report.regulatory_complete_due_at is None:
            raise InputRefused(None, "a complete report is due only for a fatal or life-threatening SUSAR")
        if report.regulatory_submitted_at is None or moment < report.regulatory_submitted_at:
            raise InputRefused("submitted_at", "the complete report follows the initial SUSAR report")
    previous = getattr(report, attribute)
    if previous is not None and not (reason or "").strip():
        raise InputRefused("reason", f"the {label} was already recorded; give a reason to correct it")
    with transaction.atomic(), because((reason or "").strip() or f"{label} recorded"):
        report = SAEReport.objects.select_for_update().get(pk=report.pk)
        setattr(report, attribute, moment)
        _refresh_status(report, report.adverse_event)
        report.save()
    return report


def add_follow_up(user, report: SAEReport, received_at: datetime | str | None, information: str, *,  # noqa: ANN001
                  now: datetime | None = None) -> SAEFollowUp:
    """Information received after the initial report; the sponsor and investigators are told."""
    ae = report.adverse_event
    require(user, Permission.REPORT_AE)
    require_site(user, ae.participant.site)
    ensure_unlocked()
    now = now or timezone.now()
    if not (information or "").strip():
        raise InputRefused("information", "is required")
    moment = _moment(report, "received_at", received_at, now)
    follow_up = SAEFollowUp.objects.create(report=report, received_at=moment, information=information.strip(),
                                           by=user, recorded_at=now)
    notifications.notify_follow_up(report, information)
    return follow_up


def update_narrative(user, report: SAEReport, narrative: str, *, reason: str = "") -> SAEReport:  # noqa: ANN001
    """The case narrative of the report; rewriting an existing one needs a reason."""
    require(user, Permission.REPORT_AE)
    require_site(user, report.adverse_event.participant.site)
    ensure_unlocked()
    if report.narrative and not (reason or "").strip():
        raise InputRefused("reason", "a reason is required to change the narrative")
    with because((reason or "").strip() or "narrative written"):
        report.narrative = (narrative or "").strip()
        report.save()
    return report


# =========================================================================== dashboard
@dataclass(frozen=True)
class DashboardRow:
    report: SAEReport
    clocks: list[Clock]

    @property
    def overdue(self) -> bool:
        return any(c.overdue for c in self.clocks)

    @property
    def next_deadline(self) -> datetime:
        pending = [c.deadline for c in self.clocks if c.submitted_at is None]
        return min(pending) if pending else datetime.max.replace(tzinfo=UTC)


def open_reports(user, now: datetime | None = None) -> list[DashboardRow]:  # noqa: ANN001
    """Reports with an obligation still open, most urgent first (overdue, then next deadline)."""
    from ildtrial.edc.safety.models import OPEN_STATUSES

    now = now or timezone.now()
    reports = (SAEReport.objects.filter(adverse_event__in=events_visible_to(user), status__in=OPEN_STATUSES)
               .select_related("adverse_event", "adverse_event__participant", "adverse_event__participant__site"))
    rows = [DashboardRow(r, clocks(r, now)) for r in reports]
    return sorted(rows, key=lambda row: (not row.overdue, row.next_deadline))


def overdue_clocks(now: datetime | None = None) -> list[tuple[SAEReport, Clock]]:
    """Every overdue, unsubmitted clock of the trial (the reminder command's work list)."""
    from ildtrial.edc.safety.models import OPEN_STATUSES

    now = now or timezone.now()
    out = []
    reports = SAEReport.objects.filter(status__in=OPEN_STATUSES).select_related(
        "adverse_event", "adverse_event__participant", "adverse_event__participant__site")
    for report in reports:
        out += [(report, c) for c in clocks(report, now) if c.overdue]
    return out
