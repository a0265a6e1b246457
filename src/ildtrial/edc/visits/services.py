"""Recording visits against the plan; deviations; the participant calendar and the site's due list."""

from __future__ import annotations

from datetime import date, timedelta

from django.db import transaction
from django.utils import timezone

from ildtrial.core import schedule
from ildtrial.core.roles import Permission
from ildtrial.edc.audit.context import because
from ildtrial.edc.errors import InputRefused, require, require_site
from ildtrial.edc.participants.models import Participant, ParticipantStatus
from ildtrial.edc.study.protocol import current_protocol
from ildtrial.edc.visits.models import ProtocolDeviation, Visit, VisitState

FOLLOWED = (ParticipantStatus.RANDOMIZED, ParticipantStatus.COMPLETED)


def _scheduled_visits(participant: Participant) -> list[Visit]:
    return [v for v in participant.visits.all() if not v.unscheduled]


def calendar(participant: Participant) -> list[schedule.PlannedVisit]:
    """The participant's plan from the protocol, anchored on the actual dates recorded so far."""
    protocol = current_protocol()
    visits = _scheduled_visits(participant)
    actual = {v.code: v.actual_date for v in visits if v.state == VisitState.DONE and v.actual_date}
    missed = {v.code for v in visits if v.state == VisitState.MISSED}
    return schedule.plan(protocol, actual.get(protocol.schedule.day_zero), actual, missed=missed)


def record_visit(user, participant: Participant, code: str, actual_date: date, reason: str = "") -> Visit:  # noqa: ANN001
    """Record that a protocol visit took place on ``actual_date``; a date outside its window is a deviation."""
    require(user, Permission.ENTER_DATA)
    require_site(user, participant.site)
    protocol = current_protocol()
    try:
        protocol_visit = protocol.visit(code)
    except KeyError:
        raise InputRefused("code", f"{code!r} is not a visit of protocol {protocol.version}") from None
    if protocol_visit.kind != "screening" and participant.status not in FOLLOWED:
        raise InputRefused(None, f"{participant} is not randomized; only screening can be recorded")
    if actual_date > timezone.localdate():
        raise InputRefused("actual_date", f"{actual_date} is in the future")
    if code == protocol.schedule.day_zero:
        randomized_on = timezone.localtime(participant.randomized_at).date() if participant.randomized_at else None
        if randomized_on and actual_date < randomized_on:
            raise InputRefused("actual_date", f"the first infusion cannot precede randomization ({randomized_on})")
        latest = participant.screening_date + timedelta(days=protocol.eligibility.screening_window_days)
        if actual_date > latest:
            raise InputRefused("actual_date", f"day 0 must fall within {protocol.eligibility.screening_window_days} "
                                              f"days of screening (by {latest})")
    plans = {p.code: p for p in calendar(participant)}
    plan = plans[code]
    if plan.anchor != "day0" and plans[plan.anchor].actual is None and not plans[plan.anchor].missed:
        # a missed anchor visit leaves the next one planned from the anchor's planned date
        raise InputRefused("code", f"{code} follows {plan.anchor}, which has not been recorded yet")
    if code != protocol.schedule.day_zero and protocol_visit.kind != "screening" and plans[protocol.schedule.day_zero].actual is None:
        raise InputRefused("code", f"record day 0 ({protocol.schedule.day_zero}) first")
    with transaction.atomic():
        visit = Visit.objects.filter(participant=participant, code=code).first()
        if visit is None:
            visit = Visit.objects.create(participant=participant, code=code, state=VisitState.DONE,
                                         actual_date=actual_date, protocol_version=protocol.version, reason=reason)
        else:
            if not reason.strip():
                raise InputRefused("reason", f"{code} is already recorded; give a reason for the change")
            with because(reason):
                visit.state = VisitState.DONE
                visit.actual_date = actual_date
                visit.save()
        updated = {p.code: p for p in calendar(participant)}[code]
        deviation = updated.deviation
        if deviation is not None:
            ProtocolDeviation.objects.create(participant=participant, visit=visit, kind="visit_out_of_window",
                                             description=deviation.describe(), detected_at=timezone.now())
    return visit


def mark_missed(user, participant: Participant, code: str, reason: str) -> Visit:  # noqa: ANN001
    require(user, Permission.ENTER_DATA)
    require_site(user, participant.site)
    if not reason.strip():
        raise InputRefused("reason", "say why the visit was missed")
    protocol = current_protocol()
    protocol.visit(code)
    with transaction.atomic(), because(f"visit missed: {reason.strip()}"):
        visit, created = Visit.objects.get_or_create(
            participant=participant, code=code,
            defaults={"state": VisitState.MISSED, "reason": reason.strip(), "protocol_version": protocol.version})
        if not created:
            if visit.state == VisitState.DONE:
                raise InputRefused("code", f"{code} was done on {visit.actual_date}")
            visit.state = VisitState.MISSED
            visit.reason = reason.strip()
            visit.save()
        ProtocolDeviation.objects.create(participant=participant, visit=visit, kind="visit_missed",
                                         description=f"{code} missed: {reason.strip()}", detected_at=timezone.now())
    return visit


def add_unscheduled(user, participant: Participant, on: date, reason: str) -> Visit:  # noqa: ANN001
    require(user, Permission.ENTER_DATA)
    require_site(user, participant.site)
    if on > timezone.localdate():
        raise InputRefused("actual_date", f"{on} is in the future")
    existing = [schedule.UnscheduledVisit(v.code, v.actual_date, v.reason)
                for v in participant.visits.filter(unscheduled=True)]
    try:
        entry = schedule.unscheduled_visit(existing, on, reason)
    except ValueError as exc:
        raise InputRefused("reason", str(exc)) from None
    return Visit.objects.create(participant=participant, code=entry.code, state=VisitState.DONE, actual_date=on,
                                unscheduled=True, reason=entry.reason, protocol_version=current_protocol().version)


def due_between(user, start: date, end: date) -> list[schedule.DueVisit]:  # noqa: ANN001
    """Visits of the user's participants whose window overlaps [start, end] and that are not done."""
    from ildtrial.edc.participants.services import visible_to

    participants = visible_to(user).filter(status__in=FOLLOWED).prefetch_related("visits")
    plans = {p.label: calendar(p) for p in participants}
    return schedule.due_between(plans, start, end)


def icalendar(participant: Participant) -> str:
    return schedule.to_icalendar(participant.label, calendar(participant), participant.site.timezone)
