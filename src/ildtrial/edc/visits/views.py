"""The participant calendar (record, miss, add unscheduled), its iCalendar export, and the due list."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from ildtrial.core.roles import Permission
from ildtrial.edc.errors import InputRefused
from ildtrial.edc.participants.forms import MissedForm, UnscheduledForm, VisitDateForm
from ildtrial.edc.participants.services import get_for, visible_to
from ildtrial.edc.permissions import require_permission
from ildtrial.edc.visits import services


@require_permission(Permission.VIEW_PARTICIPANTS)
def calendar(request: HttpRequest, pk: int) -> HttpResponse:
    participant = get_for(request.user, pk)
    today = timezone.localdate()
    rows = [{"plan": p, "status": p.status(today)} for p in services.calendar(participant)]
    return render(request, "visits/calendar.html", {
        "participant": participant, "rows": rows, "today": today,
        "unscheduled": participant.visits.filter(unscheduled=True).order_by("actual_date"),
        "deviations": participant.deviations.select_related("visit"),
        "unscheduled_form": UnscheduledForm()})


def _post(request: HttpRequest, pk: int, form_class, action) -> HttpResponse:  # noqa: ANN001
    participant = get_for(request.user, pk)
    form = form_class(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    else:
        try:
            action(participant, form.cleaned_data)
        except InputRefused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, _("Saved."))
    return redirect("visits:calendar", pk)


@require_POST
@require_permission(Permission.ENTER_DATA)
def record(request: HttpRequest, pk: int) -> HttpResponse:
    return _post(request, pk, VisitDateForm, lambda p, d: services.record_visit(
        request.user, p, d["code"], d["actual_date"], d.get("reason") or ""))


@require_POST
@require_permission(Permission.ENTER_DATA)
def missed(request: HttpRequest, pk: int) -> HttpResponse:
    return _post(request, pk, MissedForm, lambda p, d: services.mark_missed(request.user, p, d["code"], d["reason"]))


@require_POST
@require_permission(Permission.ENTER_DATA)
def unscheduled(request: HttpRequest, pk: int) -> HttpResponse:
    return _post(request, pk, UnscheduledForm, lambda p, d: services.add_unscheduled(
        request.user, p, d["actual_date"], d["reason"]))


@require_permission(Permission.VIEW_PARTICIPANTS)
def icalendar(request: HttpRequest, pk: int) -> HttpResponse:
    participant = get_for(request.user, pk)
    response = HttpResponse(services.icalendar(participant), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{participant.label}-visits.ics"'
    return response


@require_permission(Permission.VIEW_PARTICIPANTS)
def due(request: HttpRequest) -> HttpResponse:
    today = timezone.localdate()
    start = today - timedelta(days=today.weekday())
    end = start + timedelta(days=6)
    items = services.due_between(request.user, start, end)
    by_label = {p.label: p for p in visible_to(request.user)}
    rows = [{"due": d, "participant": by_label.get(d.participant), "status": d.visit.status(today)} for d in items]
    return render(request, "visits/due.html", {"rows": rows, "start": start, "end": end, "today": today})
