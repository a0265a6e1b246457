"""The casebook: one participant's whole record on one page."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from ildtrial.core.roles import Permission
from ildtrial.edc.crfs.models import FormInstance
from ildtrial.edc.participants.charts import Series, line_chart
from ildtrial.edc.participants.services import get_for
from ildtrial.edc.permissions import require_permission
from ildtrial.edc.queries.services import UNRESOLVED
from ildtrial.edc.randomization.services import arm_for
from ildtrial.edc.study.protocol import current_protocol
from ildtrial.edc.visits.services import calendar

TREND = (("SPIRO", "fvc_percent_predicted", "FVC", "% pred"),
         ("DLCO", "dlco_percent_predicted", "DLCO", "% pred"),
         ("SIXMWT", None, "6MWD", "m"))


def trend(forms: list[FormInstance]) -> list[Series]:
    """FVC and DLCO % predicted and 6MWD over time, from stored values and derived values."""
    series = []
    for code, derived_key, label, unit in TREND:
        points: list[tuple[date, float]] = []
        for f in forms:
            if f.form_code != code or f.status == "not_done" or not f.data.get("test_date"):
                continue
            if derived_key:
                value = (f.derived.get(derived_key) or {}).get("value")
            else:
                value = f.data.get("distance_m")
            if value is not None:
                points.append((date.fromisoformat(f.data["test_date"]), float(value)))
        series.append(Series(label, unit, sorted(points)))
    return series


@require_permission(Permission.VIEW_PARTICIPANTS)
def casebook(request: HttpRequest, pk: int) -> HttpResponse:
    participant = get_for(request.user, pk)
    protocol = current_protocol()
    forms = list(participant.forms.select_related("visit").order_by("visit__actual_date", "form_code", "instance"))
    by_visit: dict[str, list[FormInstance]] = {}
    for f in forms:
        by_visit.setdefault(f.visit.code, []).append(f)
    today = timezone.localdate()
    timeline: list[dict[str, Any]] = []
    for plan in calendar(participant):
        visit_def = protocol.visit(plan.code)
        stored = by_visit.get(plan.code, [])
        due = []
        for code in visit_def.forms:
            instances = [f for f in stored if f.form_code == code]
            due.append({"definition": protocol.form(code), "instances": instances})
        timeline.append({"plan": plan, "status": plan.status(today), "forms": due})
    unscheduled = [v for v in participant.visits.all() if v.unscheduled]
    series = trend(forms)
    open_queries = participant.queries.filter(state__in=UNRESOLVED).select_related("form", "form__visit")
    return render(request, "participants/casebook.html", {
        "participant": participant, "timeline": timeline, "unscheduled": unscheduled,
        "unscheduled_forms": {v.code: by_visit.get(v.code, []) for v in unscheduled},
        "open_queries": open_queries, "arm": arm_for(request.user, participant),
        "chart": line_chart(series, title=_("Lung function of %(label)s") % {"label": participant.label}),
        "series": series})
