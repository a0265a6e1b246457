"""The home page of each role: what that person has to do next, and nothing they may not see.

Every panel is built from a fixed number of queries (``select_related``/``prefetch_related``
and aggregates, never a query per row), so the home page costs the same with 2 or 200
participants. The panels a role gets are declared in :data:`PANELS`; a panel is only
built for a role that holds the permission behind it, so a dashboard can never show
more than the pages it links to.

The module also lists the display labels that come from models and services (statuses,
roles, clock names) with ``gettext_noop``, so ``makemessages`` keeps them in the Russian
catalogue and templates can translate them with ``{% translate value %}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext_noop

from ildtrial.core.roles import Permission, Role
from ildtrial.core.schedule import DueVisit, VisitStatus

#: data are expected in the eCRF within this many days of the visit; later, a missing form is overdue
FORM_ENTRY_DAYS = 3
#: longest list shown in a panel (the page links to the full list)
MAX_ROWS = 50

#: which panels each role's home page shows, in order
PANELS: dict[Role, tuple[str, ...]] = {
    Role.STUDY_COORDINATOR: ("visits", "forms_to_enter", "queries_to_answer"),
    Role.INVESTIGATOR: ("forms_to_sign", "sae_to_assess", "queries_to_answer", "visits"),
    Role.SUB_INVESTIGATOR: ("forms_to_sign", "sae_to_assess", "queries_to_answer", "visits"),
    Role.MONITOR: ("sdv_queue", "queries_to_review", "deviations"),
    Role.DATA_MANAGER: ("lock", "completeness", "queries_to_review"),
    Role.CELL_LAB: ("to_prepare",),
    Role.UNBLINDED_STATISTICIAN: ("reports", "enrolment", "safety_overview"),
    Role.DSMB_MEMBER: ("reports", "enrolment", "safety_overview"),
    Role.SPONSOR_VIEWER: ("enrolment", "safety_overview", "reports"),
    Role.ADMINISTRATOR: ("administration",),
}

#: the permission a panel needs; a role without it never gets the panel, whatever PANELS says
PANEL_PERMISSION: dict[str, Permission] = {
    "visits": Permission.VIEW_PARTICIPANTS,
    "forms_to_enter": Permission.ENTER_DATA,
    "queries_to_answer": Permission.ANSWER_QUERY,
    "forms_to_sign": Permission.SIGN_FORMS,
    "sae_to_assess": Permission.ASSESS_SAE,
    "sdv_queue": Permission.VERIFY_SOURCE,
    "queries_to_review": Permission.CLOSE_QUERY,
    "deviations": Permission.VIEW_PARTICIPANTS,
    "lock": Permission.LOCK_DATA,
    "completeness": Permission.VIEW_PARTICIPANTS,
    "to_prepare": Permission.MANAGE_CELL_PRODUCT,
    "reports": Permission.VIEW_SAFETY,
    "enrolment": Permission.VIEW_SAFETY,
    "safety_overview": Permission.VIEW_SAFETY,
    "administration": Permission.MANAGE_USERS,
}


@dataclass(frozen=True)
class Capped:
    """A list cut at :data:`MAX_ROWS`, with how many were left out."""

    rows: list[Any]
    more: int

    @classmethod
    def of(cls, items: list[Any]) -> Capped:
        return cls(items[:MAX_ROWS], max(0, len(items) - MAX_ROWS))

    def __len__(self) -> int:
        return len(self.rows) + self.more

    def __iter__(self):  # noqa: ANN204
        return iter(self.rows)

    def __bool__(self) -> bool:
        return bool(self.rows)


def panels_for(user: Any) -> list[str]:
    try:
        role = Role(user.role)
    except ValueError:
        return []
    return [p for p in PANELS.get(role, ()) if user.can(PANEL_PERMISSION[p])]


def build(user: Any, today: date | None = None) -> dict[str, Any]:
    """Everything the home page shows for ``user``: ``panels`` (names, in order) and one entry per panel."""
    today = today or timezone.localdate()
    names = panels_for(user)
    context: dict[str, Any] = {"panels": names, "today": today, "form_entry_days": FORM_ENTRY_DAYS}
    for name in names:
        context[name] = _BUILDERS[name](user, today)
    return context


# =========================================================================== site work
def _participants(user: Any):  # noqa: ANN202
    from ildtrial.edc.participants.services import visible_to

    return visible_to(user)


def visits(user: Any, today: date) -> dict[str, Any]:
    """Visits overdue, planned today, and open this week (Monday to Sunday) at the user's sites."""
    from ildtrial.edc.visits.services import due_between

    week_start = today - timedelta(days=today.weekday())
    week_end = week_start + timedelta(days=6)
    items = due_between(user, today - timedelta(days=366), week_end)
    pks = {label: pk for number, randomized, pk in _participants(user).values_list(
        "screening_number", "randomization_number", "pk") for label in (number, randomized) if label}

    def row(d: DueVisit) -> dict[str, Any]:
        return {"participant": d.participant, "pk": pks.get(d.participant), "visit": d.visit,
                "status": d.visit.status(today)}

    overdue = [row(d) for d in items if d.visit.latest is not None and d.visit.latest < today]
    due_today = [row(d) for d in items if d.visit.planned == today]
    week = [row(d) for d in items
            if d.visit.planned != today and d.visit.latest is not None and d.visit.latest >= today
            and d.visit.earliest is not None and d.visit.earliest <= week_end]
    return {"overdue": Capped.of(overdue), "today": Capped.of(due_today), "week": Capped.of(week),
            "week_start": week_start, "week_end": week_end}


def forms_to_enter(user: Any, today: date) -> Capped:
    """Forms the protocol asks for at visits that took place but that nobody has entered (or marked not done)."""
    from ildtrial.edc.crfs.models import FormInstance
    from ildtrial.edc.participants.models import ParticipantStatus
    from ildtrial.edc.study.protocol import current_protocol
    from ildtrial.edc.visits.models import Visit, VisitState

    protocol = current_protocol()
    done = list(Visit.objects.filter(participant__in=_participants(user).exclude(status=ParticipantStatus.SCREEN_FAILED),
                                     state=VisitState.DONE, unscheduled=False, actual_date__isnull=False)
                .select_related("participant").order_by("actual_date", "participant__screening_number"))
    present = set(FormInstance.objects.filter(visit__in=[v.pk for v in done]).values_list("visit_id", "form_code"))
    rows = []
    for visit in done:
        try:
            definition = protocol.visit(visit.code)
        except KeyError:
            continue
        age = (today - visit.actual_date).days
        for code in definition.forms:
            if (visit.pk, code) not in present:
                rows.append({"participant": visit.participant, "visit": visit, "form": protocol.form(code),
                             "days": age, "overdue": age > FORM_ENTRY_DAYS})
    rows.sort(key=lambda r: (not r["overdue"], -r["days"]))
    return Capped.of(rows)


def _queries(user: Any):  # noqa: ANN202
    from ildtrial.edc.queries.services import visible_to

    return visible_to(user).order_by("raised_at")


def queries_to_answer(user: Any, today: date) -> Capped:
    """Open queries: the site's turn to answer."""
    from ildtrial.edc.queries.models import QueryState

    return Capped.of(list(_queries(user).filter(state=QueryState.OPEN)))


def queries_to_review(user: Any, today: date) -> dict[str, Capped]:
    """Answered queries (the reviewer's turn: close or re-open) and open ones (waiting for the site)."""
    from ildtrial.edc.queries.services import UNRESOLVED

    items = list(_queries(user).filter(state__in=UNRESOLVED))
    return {"answered": Capped.of([q for q in items if q.state == "answered"]),
            "open": Capped.of([q for q in items if q.state == "open"])}


def forms_to_sign(user: Any, today: date) -> Capped:
    """Forms ready for the investigator's signature: source-verified (or complete when the
    protocol asks no verification) and without an unresolved query."""
    from ildtrial.edc.crfs.models import FormInstance, FormStatus
    from ildtrial.edc.queries.services import UNRESOLVED
    from ildtrial.edc.study.protocol import current_protocol

    no_sdv = [f.code for f in current_protocol().forms if f.sdv == "none"]
    forms = (FormInstance.objects.filter(participant__in=_participants(user))
             .filter(Q(status=FormStatus.VERIFIED) | Q(status=FormStatus.COMPLETE, form_code__in=no_sdv))
             .exclude(queries__state__in=UNRESOLVED)
             .select_related("participant", "visit").order_by("visit__actual_date", "participant__screening_number",
                                                              "form_code", "instance"))
    return Capped.of(list(forms))


def sae_to_assess(user: Any, today: date) -> Capped:
    """SAE reports whose SUSAR assessment (relatedness, expectedness) the investigator still owes."""
    from ildtrial.edc.safety.models import SAEReport, SAEStatus
    from ildtrial.edc.safety.services import events_visible_to

    reports = (SAEReport.objects.filter(adverse_event__in=events_visible_to(user), susar__isnull=True)
               .exclude(status=SAEStatus.DOWNGRADED)
               .select_related("adverse_event", "adverse_event__participant", "adverse_event__participant__site")
               .order_by("awareness_at"))
    return Capped.of(list(reports))


def sdv_queue(user: Any, today: date) -> Capped:
    """Complete forms whose source verification (whole form or key fields) is outstanding."""
    from ildtrial.edc.crfs import lifecycle
    from ildtrial.edc.crfs.models import FormInstance, FormStatus
    from ildtrial.edc.study.protocol import current_protocol

    needs = [f.code for f in current_protocol().forms if f.sdv != "none"]
    forms = (FormInstance.objects.filter(participant__in=_participants(user), status=FormStatus.COMPLETE,
                                         form_code__in=needs)
             .select_related("participant", "visit").prefetch_related("verifications")
             .order_by("visit__actual_date", "participant__screening_number", "form_code", "instance"))
    rows = []
    for form in forms:
        outstanding = lifecycle.outstanding_verifications(form)
        if outstanding:
            rows.append({"form": form, "outstanding": outstanding})
    return Capped.of(rows)


def deviations(user: Any, today: date) -> Capped:
    from ildtrial.edc.visits.models import ProtocolDeviation

    items = (ProtocolDeviation.objects.filter(participant__in=_participants(user), resolved=False)
             .select_related("participant", "visit").order_by("-detected_at"))
    return Capped.of(list(items))


def lock(user: Any, today: date) -> dict[str, Any]:
    from ildtrial.edc.crfs.models import FormInstance, FormStatus, StudyLock

    study = StudyLock.objects.filter(pk=1).select_related("changed_by").first()
    counts = FormInstance.objects.filter(participant__in=_participants(user)).aggregate(
        total=Count("pk"), signed=Count("pk", filter=Q(status=FormStatus.SIGNED)),
        locked_forms=Count("pk", filter=Q(status=FormStatus.LOCKED)))
    return {**counts, "locked": bool(study and study.locked), "study": study}


def completeness(user: Any, today: date) -> list[dict[str, Any]]:
    """Per scheduled visit and form: how many are due (visits done), entered, not done, missing."""
    from ildtrial.edc.crfs.models import FormInstance, FormStatus
    from ildtrial.edc.participants.models import ParticipantStatus
    from ildtrial.edc.study.protocol import current_protocol
    from ildtrial.edc.visits.models import Visit, VisitState

    protocol = current_protocol()
    participants = _participants(user).exclude(status=ParticipantStatus.SCREEN_FAILED)
    done = dict(Visit.objects.filter(participant__in=participants, state=VisitState.DONE, unscheduled=False)
                .values("code").annotate(n=Count("pk")).values_list("code", "n"))
    stored = {(r["visit__code"], r["form_code"]): r for r in (
        FormInstance.objects.filter(participant__in=participants, visit__unscheduled=False,
                                    visit__state=VisitState.DONE)
        .values("visit__code", "form_code")
        .annotate(entered=Count("visit", distinct=True, filter=~Q(status=FormStatus.NOT_DONE)),
                  not_done=Count("visit", distinct=True, filter=Q(status=FormStatus.NOT_DONE)),
                  signed=Count("pk", filter=Q(status__in=[FormStatus.SIGNED, FormStatus.LOCKED])),
                  instances=Count("pk")))}
    rows = []
    for visit in protocol.schedule.visits:
        due = done.get(visit.code, 0)
        if not due:
            continue
        for code in visit.forms:
            found = stored.get((visit.code, code), {})
            entered, not_done = found.get("entered", 0), found.get("not_done", 0)
            rows.append({"visit": visit, "form": protocol.form(code), "due": due, "entered": entered,
                         "not_done": not_done, "missing": max(0, due - entered - not_done),
                         "signed": found.get("signed", 0), "instances": found.get("instances", 0),
                         "percent": round(100 * (entered + not_done) / due) if due else 100})
    return rows


def to_prepare(user: Any, today: date) -> list[Any]:
    from ildtrial.edc.cellproduct.services import to_prepare as infusions

    return infusions(user, days=7, today=today)


# =========================================================================== trial oversight (pooled)
def reports(user: Any, today: date) -> dict[str, Any]:
    from ildtrial.edc.reports.access import ReportAccess, report_access

    access = report_access(user)
    return {"statistical": access != ReportAccess.NONE, "by_arm": access == ReportAccess.BY_ARM,
            "closed": user.can(Permission.VIEW_CLOSED_REPORTS),
            "allocation": user.can(Permission.GENERATE_RANDOMIZATION_LIST)}


def enrolment(user: Any, today: date) -> dict[str, Any]:
    """Screening and randomization counts over all sites: pooled, never by arm."""
    from ildtrial.edc.participants.models import Participant, ParticipantStatus
    from ildtrial.edc.study.protocol import current_protocol

    s = ParticipantStatus
    counts = Participant.objects.aggregate(
        attempts=Count("pk"), people=Count("pk", filter=Q(rescreen_of__isnull=True)),
        randomized=Count("pk", filter=~Q(randomization_number="")),
        screening=Count("pk", filter=Q(status__in=[s.SCREENING, s.ELIGIBLE])),
        screen_failed=Count("pk", filter=Q(status=s.SCREEN_FAILED)),
        completed=Count("pk", filter=Q(status=s.COMPLETED)),
        withdrawn=Count("pk", filter=Q(status=s.WITHDRAWN)),
        died=Count("pk", filter=Q(status=s.DIED)))
    planned = current_protocol().identity.planned_enrolment
    counts["planned"] = planned
    counts["percent"] = round(100 * counts["randomized"] / planned) if planned else 0
    return counts


def safety_overview(user: Any, today: date) -> dict[str, Any]:
    """Adverse events and SAE reporting over all sites the user may see: pooled, never by arm."""
    from ildtrial.edc.safety import services
    from ildtrial.edc.safety.models import Outcome, SAEReport
    from ildtrial.edc.safety.stopping import active_flags

    events = services.events_visible_to(user)
    counts = events.aggregate(
        events=Count("pk"), participants=Count("participant", distinct=True),
        serious=Count("pk", filter=Q(serious=True)),
        deaths=Count("pk", filter=Q(sae_death=True, outcome=Outcome.FATAL)),
        infusion_related=Count("pk", filter=Q(infusion_related=True)))
    open_rows = services.open_reports(user)
    counts["open_reports"] = len(open_rows)
    counts["overdue_reports"] = sum(1 for r in open_rows if r.overdue)
    counts["susars"] = SAEReport.objects.filter(adverse_event__in=events, susar=True).count()
    counts["flags"] = active_flags()
    return counts


def administration(user: Any, today: date) -> dict[str, Any]:
    from ildtrial.edc.accounts.models import User

    return User.objects.aggregate(users=Count("pk"), active=Count("pk", filter=Q(is_active=True)))


_BUILDERS = {
    "visits": visits, "forms_to_enter": forms_to_enter, "queries_to_answer": queries_to_answer,
    "forms_to_sign": forms_to_sign, "sae_to_assess": sae_to_assess, "sdv_queue": sdv_queue,
    "queries_to_review": queries_to_review, "deviations": deviations, "lock": lock, "completeness": completeness,
    "to_prepare": to_prepare, "reports": reports, "enrolment": enrolment, "safety_overview": safety_overview,
    "administration": administration,
}


# =========================================================================== labels for the catalogue
#: statuses and names that reach the pages from models and services in English; the
#: templates translate them with ``{% translate value %}`` (or the ``label`` filters)
DISPLAY_LABELS = (
    # roles (core.roles.ROLE_LABELS)
    gettext_noop("Principal investigator"), gettext_noop("Sub-investigator"), gettext_noop("Study coordinator"),
    gettext_noop("Monitor"), gettext_noop("Data manager"),
    gettext_noop("Cell-therapy lab / pharmacist (unblinded)"), gettext_noop("Unblinded statistician"),
    gettext_noop("DSMB member"), gettext_noop("Sponsor viewer"), gettext_noop("Administrator"),
    # form status (crfs.models.FormStatus)
    gettext_noop("Not started"), gettext_noop("In progress"), gettext_noop("Complete"),
    gettext_noop("Source-verified"), gettext_noop("Signed"), gettext_noop("Locked"), gettext_noop("Not done"),
    # participant status (participants.models.ParticipantStatus)
    gettext_noop("Screening"), gettext_noop("Screen failure"), gettext_noop("Eligible, not yet randomized"),
    gettext_noop("Randomized"), gettext_noop("Withdrawn"), gettext_noop("Completed"), gettext_noop("Died"),
    # query state and origin (queries.models)
    gettext_noop("Open"), gettext_noop("Answered"), gettext_noop("Closed"), gettext_noop("Edit check"),
    gettext_noop("Person"),
    # SAE report status (safety.models.SAEStatus) and clocks (safety.services.clocks)
    gettext_noop("Awaiting report to the sponsor"), gettext_noop("Awaiting SUSAR assessment"),
    gettext_noop("SUSAR: awaiting expedited report"), gettext_noop("SUSAR: awaiting complete report"),
    gettext_noop("Reporting complete (follow-up continues)"), gettext_noop("No longer serious"),
    gettext_noop("Report to the sponsor"), gettext_noop("SUSAR report to regulators/ethics"),
    gettext_noop("Complete SUSAR report"), gettext_noop("SUSAR report to regulators/ethics (if confirmed)"),
    # adverse events (safety.models)
    gettext_noop("Not related"), gettext_noop("Unlikely"), gettext_noop("Possible"), gettext_noop("Probable"),
    gettext_noop("Definite"), gettext_noop("Expected (listed in the reference safety information)"),
    gettext_noop("Unexpected"), gettext_noop("Recovered/resolved"), gettext_noop("Recovering/resolving"),
    gettext_noop("Not recovered/not resolved"), gettext_noop("Recovered/resolved with sequelae"),
    gettext_noop("Fatal"), gettext_noop("Unknown"), gettext_noop("None"),
    gettext_noop("Infusion interrupted and resumed"), gettext_noop("Infusion stopped"),
    gettext_noop("Product permanently withdrawn"), gettext_noop("Not applicable (no infusion given or planned)"),
    gettext_noop("Other"), gettext_noop("Results in death"), gettext_noop("Life-threatening"),
    gettext_noop("Requires or prolongs inpatient hospitalisation"),
    gettext_noop("Persistent or significant disability/incapacity"), gettext_noop("Congenital anomaly/birth defect"),
    gettext_noop("Important medical event"),
    # cell product (cellproduct.models: ledger movements, release tests; services.bag_state)
    gettext_noop("Received"), gettext_noop("Stored (moved to a storage location)"), gettext_noop("Thawed"),
    gettext_noop("Prepared (bag)"), gettext_noop("Dispensed (bag)"), gettext_noop("Administered (bag)"),
    gettext_noop("Destroyed"), gettext_noop("Returned"), gettext_noop("Correction"),
    gettext_noop("Viability"), gettext_noop("Sterility"), gettext_noop("Mycoplasma"), gettext_noop("Endotoxin"),
    gettext_noop("CD73 (positive marker)"), gettext_noop("CD90 (positive marker)"),
    gettext_noop("CD105 (positive marker)"), gettext_noop("CD34 (negative marker)"),
    gettext_noop("CD45 (negative marker)"),
    gettext_noop("ready"), gettext_noop("expired"), gettext_noop("administered"), gettext_noop("destroyed"),
    gettext_noop("returned"),
)

#: the meaning of the investigator's form signature (crfs.lifecycle.SIGNATURE_MEANING), shown translated;
#: the signature record keeps the English text (a test keeps the two identical)
SIGNATURE_MEANING = gettext_noop("I have reviewed the data in this form and approve them as complete and accurate "
                                 "(investigator approval, 21 CFR 11.50).")

#: visit status (core.schedule.VisitStatus) as words
VISIT_STATUS_LABELS: dict[str, str] = {
    VisitStatus.NOT_PLANNED: gettext_noop("not planned yet"),
    VisitStatus.UPCOMING: gettext_noop("upcoming"),
    VisitStatus.DUE_TODAY: gettext_noop("due today"),
    VisitStatus.IN_WINDOW: gettext_noop("in window"),
    VisitStatus.OVERDUE: gettext_noop("overdue"),
    VisitStatus.DONE: gettext_noop("done"),
    VisitStatus.DONE_OUT_OF_WINDOW: gettext_noop("done out of window"),
    VisitStatus.MISSED: gettext_noop("missed"),
}

#: derived values of the lung-function forms, as a clinician names them
DERIVED_LABELS: dict[str, str] = {
    "age_years": gettext_noop("Age at the test"),
    "fev1_predicted_l": gettext_noop("FEV1 predicted"),
    "fev1_percent_predicted": gettext_noop("FEV1, % predicted"),
    "fev1_z_score": gettext_noop("FEV1 z-score"),
    "fev1_lln_l": gettext_noop("FEV1 lower limit of normal"),
    "fvc_predicted_l": gettext_noop("FVC predicted"),
    "fvc_percent_predicted": gettext_noop("FVC, % predicted"),
    "fvc_z_score": gettext_noop("FVC z-score"),
    "fvc_lln_l": gettext_noop("FVC lower limit of normal"),
    "fev1_fvc_ratio": gettext_noop("FEV1/FVC"),
    "fev1_fvc_below_0_70": gettext_noop("FEV1/FVC below 0.70"),
    "fev1_fvc_predicted": gettext_noop("FEV1/FVC predicted"),
    "fev1_fvc_z_score": gettext_noop("FEV1/FVC z-score"),
    "fev1_fvc_lln": gettext_noop("FEV1/FVC lower limit of normal"),
    "fev1_fvc_below_lln": gettext_noop("FEV1/FVC below the lower limit of normal"),
    "dlco_predicted": gettext_noop("DLCO predicted"),
    "dlco_percent_predicted": gettext_noop("DLCO, % predicted"),
    "dlco_z_score": gettext_noop("DLCO z-score"),
    "dlco_lln": gettext_noop("DLCO lower limit of normal"),
    "dlco_hb_corrected": gettext_noop("DLCO corrected for haemoglobin"),
    "dlco_hb_corrected_percent_predicted": gettext_noop("DLCO corrected for haemoglobin, % predicted"),
    "sixmwd_predicted_m": gettext_noop("6MWD predicted"),
    "sixmwd_lln_m": gettext_noop("6MWD lower limit of normal"),
    "sixmwd_percent_predicted": gettext_noop("6MWD, % predicted"),
    "spo2_drop": gettext_noop("SpO2 fall during the walk"),
}

#: units of the protocol's fields as written on a Russian form (the protocol file writes them in English)
UNIT_LABELS: dict[str, str] = {
    "L": gettext_noop("L"), "mL": gettext_noop("mL"), "L/min": gettext_noop("L/min"), "/min": gettext_noop("/min"),
    "mmHg": gettext_noop("mmHg"), "g/dL": gettext_noop("g/dL"), "10^9/L": gettext_noop("10^9/L"),
    "U/L": gettext_noop("U/L"), "mg/L": gettext_noop("mg/L"), "umol/L": gettext_noop("µmol/L"),
    "cm": gettext_noop("cm"), "kg": gettext_noop("kg"), "m": gettext_noop("m"),
    "10^6 cells": gettext_noop("10^6 cells"),
}
