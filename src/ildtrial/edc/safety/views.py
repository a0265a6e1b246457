"""Safety pages: the dashboard, a participant's adverse events, the AE form, the SAE report
(with its actions, printable HTML and PDF), the DSMB reports and the dictionary import.

Views gather input and show results; the services decide. No view reads the allocation
except the closed DSMB report, behind VIEW_CLOSED_REPORTS.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from ildtrial.core.roles import Permission
from ildtrial.edc.errors import InputRefused
from ildtrial.edc.permissions import require_permission
from ildtrial.edc.safety import dictionary, dsmb, services, stopping
from ildtrial.edc.safety.forms import (
    AdverseEventForm,
    AssessmentForm,
    DictionaryForm,
    FollowUpForm,
    NarrativeForm,
)
from ildtrial.edc.safety.models import (
    CRITERIA_FIELDS,
    AdverseEvent,
    DSMBReportKind,
    SAEReport,
    SafetyNotification,
    TermDictionary,
)
from ildtrial.edc.safety.notifications import local
from ildtrial.edc.study.protocol import current_protocol

#: a clock due within this time is highlighted (and says how long is left, as every clock does)
DUE_SOON = timedelta(hours=6)


def _language() -> str:
    return get_language() or "en"


def _show_refusal(request: HttpRequest, form: Any, exc: InputRefused) -> None:
    """Put each refused field's message on the form (or on the page when the field is not there)."""
    problems = getattr(exc, "problems", None) or [services.Problem(exc.field or "", exc.message)]
    for problem in problems:
        text = problem.text(_language()) if isinstance(problem, services.Problem) else str(problem)
        if form is not None and problem.field in getattr(form, "fields", {}):
            form.add_error(problem.field, text)
        elif form is not None:
            form.add_error(None, f"{problem.field}: {text}" if problem.field else text)
        else:
            messages.error(request, f"{problem.field}: {text}" if problem.field else text)


def _clock_rows(report: SAEReport, now: datetime | None = None) -> list[dict[str, Any]]:
    """Clocks formatted for display: deadline in the site's zone and the state in words."""
    rows = []
    for clock in services.clocks(report, now):
        state = clock.status
        if state.state == "overdue":
            text = _("OVERDUE by %(t)s") % {"t": services.describe_duration(state.late_by)}
        elif state.state == "submitted_late":
            text = _("sent late by %(t)s") % {"t": services.describe_duration(state.late_by)}
        elif state.state == "on_time":
            text = _("sent on time")
        else:
            text = _("due in %(t)s") % {"t": services.describe_duration(state.remaining)}
        rows.append({"clock": clock, "label": clock.label, "deadline": local(clock.deadline, report.site_timezone),
                     "submitted": local(clock.submitted_at, report.site_timezone) if clock.submitted_at else "",
                     "state": state.state, "text": text, "late": clock.late, "provisional": clock.provisional,
                     "soon": state.state == "due" and state.remaining is not None and state.remaining <= DUE_SOON})
    return rows


def _local_input(moment: datetime | None, tz_name: str) -> str:
    """A moment as the value of a datetime-local input at the site."""
    return moment.astimezone(ZoneInfo(tz_name)).strftime("%Y-%m-%dT%H:%M") if moment else ""


# =========================================================================== dashboard
@require_permission(Permission.VIEW_SAFETY)
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    rows = [{"report": row.report, "ae": row.report.adverse_event, "overdue": row.overdue,
             "clocks": _clock_rows(row.report, now)} for row in services.open_reports(request.user, now)]
    visible = services.events_visible_to(request.user)
    deaths = [ae for ae in visible.filter(sae_death=True).order_by("onset_date") if ae.is_death]
    hospitalisations = visible.filter(sae_hospitalisation=True).order_by("onset_date")
    failures = SafetyNotification.objects.exclude(error="").order_by("-sent_at")[:10]
    return render(request, "safety/dashboard.html", {
        "rows": rows, "flags": stopping.active_flags(), "deaths": deaths, "hospitalisations": hospitalisations,
        "failures": failures, "now": local(now, timezone.get_current_timezone_name()),
        "all_sites": services.sees_all_sites(request.user)})


# =========================================================================== adverse events
@require_permission(Permission.VIEW_SAFETY)
def participant_events(request: HttpRequest, pk: int) -> HttpResponse:
    participant = services.participant_for(request.user, pk)
    events = (AdverseEvent.objects.filter(participant=participant).select_related("sae_report")
              .order_by("ae_number"))
    return render(request, "safety/participant.html", {"participant": participant, "events": events})


def _form_context(participant: Any, form: AdverseEventForm, **extra: Any) -> dict[str, Any]:
    return {"participant": participant, "form": form, "terms": dictionary.suggestions(),
            "site_tz": participant.site.timezone, **extra}


@require_permission(Permission.REPORT_AE)
def new_event(request: HttpRequest, pk: int) -> HttpResponse:
    participant = services.participant_for(request.user, pk)
    form = AdverseEventForm(request.POST or None, initial={"action_taken": "none"})
    if request.method == "POST":
        try:
            ae = services.report_adverse_event(request.user, participant, request.POST.dict())
        except InputRefused as exc:
            _show_refusal(request, form, exc)
            return render(request, "safety/ae_form.html", _form_context(participant, form), status=422)
        for warning in ae.validation_warnings:
            messages.warning(request, f"{warning.field}: {warning.text(_language())}")
        messages.success(request, _("Adverse event %(n)s recorded.") % {"n": ae.ae_number}
                         + (" " + _("SAE report opened; the reporting clocks are running.") if ae.serious else ""))
        return redirect("safety:event", ae.pk)
    return render(request, "safety/ae_form.html", _form_context(participant, form))


def _initial(ae: AdverseEvent) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(ae, name) for name in services.EDITABLE_FIELDS}
    values.update({
        "coded_term": ae.coded_term, "onset_date": ae.onset_date.isoformat(),
        "onset_time": ae.onset_time.strftime("%H:%M") if ae.onset_time else "",
        "resolution_date": ae.resolution_date.isoformat() if ae.resolution_date else "",
        "grade": str(ae.grade), "serious": "true" if ae.serious else "false"})
    report = getattr(ae, "sae_report", None)
    if report is not None:
        values["awareness_at"] = _local_input(report.awareness_at, report.site_timezone)
    return values


@require_permission(Permission.REPORT_AE)
def edit_event(request: HttpRequest, pk: int) -> HttpResponse:
    ae = services.event_for(request.user, pk)
    participant = ae.participant
    form = AdverseEventForm(request.POST or None, initial=_initial(ae))
    if request.method == "POST":
        try:
            ae = services.update_adverse_event(request.user, ae, request.POST.dict(),
                                               reason=request.POST.get("reason", ""))
        except InputRefused as exc:
            _show_refusal(request, form, exc)
            return render(request, "safety/ae_form.html",
                          _form_context(participant, form, event=ae, reason=request.POST.get("reason", "")),
                          status=422)
        messages.success(request, _("Changes saved."))
        return redirect("safety:event", ae.pk)
    return render(request, "safety/ae_form.html", _form_context(participant, form, event=ae))


@require_permission(Permission.VIEW_SAFETY)
def event_detail(request: HttpRequest, pk: int) -> HttpResponse:
    ae = services.event_for(request.user, pk)
    report = getattr(ae, "sae_report", None)
    return render(request, "safety/ae_detail.html", {
        "ae": ae, "participant": ae.participant, "report": report,
        "criteria": [(label, getattr(ae, name)) for name, _c, label in CRITERIA_FIELDS]})


# =========================================================================== SAE reports
def _report_context(report: SAEReport, **extra: Any) -> dict[str, Any]:
    ae = report.adverse_event
    tz = report.site_timezone
    return {
        "report": report, "ae": ae, "participant": ae.participant, "clocks": _clock_rows(report),
        "criteria": [(label, getattr(ae, name)) for name, _c, label in CRITERIA_FIELDS],
        "awareness": local(report.awareness_at, tz),
        "assessed_at": local(report.susar_assessed_at, tz) if report.susar_assessed_at else "",
        "follow_ups": [{"f": f, "received": local(f.received_at, tz)} for f in report.follow_ups.select_related("by")],
        "potential_susar": report.susar is None and services.potential_susar(report),
        "site_tz": tz, **extra}


@require_permission(Permission.VIEW_SAFETY)
def sae_detail(request: HttpRequest, pk: int) -> HttpResponse:
    report = services.report_for(request.user, pk)
    tz = report.site_timezone
    ae = report.adverse_event
    return render(request, "safety/sae_detail.html", _report_context(
        report,
        assess_form=AssessmentForm(initial={"relatedness_product": ae.relatedness_product,
                                            "expectedness": ae.expectedness}),
        follow_up_form=FollowUpForm(initial={"received_at": _local_input(timezone.now(), tz)}),
        narrative_form=NarrativeForm(initial={"narrative": report.narrative}),
        now_input=_local_input(timezone.now(), tz),
        submissions=[{"kind": kind, "label": label,
                      "done": local(getattr(report, attr), tz) if getattr(report, attr) else "",
                      "allowed": request.user.can(permission)}
                     for kind, (attr, permission, label) in services.SUBMISSIONS.items()
                     if kind == "sponsor" or (report.susar and (kind == "regulatory"
                                                                or report.regulatory_complete_due_at))]))


def _print_html(request: HttpRequest, report: SAEReport) -> str:
    return render_to_string("safety/sae_print.html", _report_context(
        report, generated_at=local(timezone.now(), report.site_timezone),
        generated_by=request.user.get_full_name() or request.user.username, protocol=current_protocol()))


@require_permission(Permission.VIEW_SAFETY)
def sae_print(request: HttpRequest, pk: int) -> HttpResponse:
    return HttpResponse(_print_html(request, services.report_for(request.user, pk)))


@require_permission(Permission.VIEW_SAFETY)
def sae_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    report = services.report_for(request.user, pk)
    pdf = dsmb.to_pdf(_print_html(request, report))
    response = HttpResponse(pdf, content_type="application/pdf")
    ae = report.adverse_event
    response["Content-Disposition"] = f'inline; filename="SAE-{ae.participant.label}-AE{ae.ae_number}.pdf"'
    return response


@require_POST
@require_permission(Permission.ASSESS_SAE)
def sae_assess(request: HttpRequest, pk: int) -> HttpResponse:
    report = services.report_for(request.user, pk)
    try:
        report = services.assess_susar(request.user, report,
                                       relatedness_product=request.POST.get("relatedness_product", ""),
                                       expectedness=request.POST.get("expectedness", ""),
                                       reason=request.POST.get("reason", ""))
    except InputRefused as exc:
        _show_refusal(request, None, exc)
    else:
        messages.success(request, _("Assessed as a SUSAR: the regulatory clock is running.") if report.susar
                         else _("Assessed: not a SUSAR."))
    return redirect("safety:sae", pk)


@require_POST
@require_permission(Permission.VIEW_SAFETY)
def sae_submit(request: HttpRequest, pk: int) -> HttpResponse:
    """Record a submission; the service checks the right for the kind (sponsor or regulatory)."""
    report = services.report_for(request.user, pk)
    kind = request.POST.get("kind", "")
    try:
        services.record_submission(request.user, report, kind, request.POST.get("submitted_at", ""),
                                   reason=request.POST.get("reason", ""))
    except InputRefused as exc:
        _show_refusal(request, None, exc)
    else:
        messages.success(request, _("Submission recorded."))
    return redirect("safety:sae", pk)


@require_POST
@require_permission(Permission.REPORT_AE)
def sae_follow_up(request: HttpRequest, pk: int) -> HttpResponse:
    report = services.report_for(request.user, pk)
    try:
        services.add_follow_up(request.user, report, request.POST.get("received_at", ""),
                               request.POST.get("information", ""))
    except InputRefused as exc:
        _show_refusal(request, None, exc)
    else:
        messages.success(request, _("Follow-up recorded; the sponsor and investigators were notified."))
    return redirect("safety:sae", pk)


@require_POST
@require_permission(Permission.REPORT_AE)
def sae_narrative(request: HttpRequest, pk: int) -> HttpResponse:
    report = services.report_for(request.user, pk)
    try:
        services.update_narrative(request.user, report, request.POST.get("narrative", ""),
                                  reason=request.POST.get("reason", ""))
    except InputRefused as exc:
        _show_refusal(request, None, exc)
    else:
        messages.success(request, _("Narrative saved."))
    return redirect("safety:sae", pk)


# =========================================================================== DSMB reports
def _dsmb(request: HttpRequest, kind: str, output_format: str) -> HttpResponse:
    report = dsmb.build(request.user, kind)
    html = dsmb.render_html(report)
    if output_format == "pdf":
        content = dsmb.to_pdf(html)
        dsmb.record_run(request.user, report, "pdf", content)
        response = HttpResponse(content, content_type="application/pdf")
        response["Content-Disposition"] = (f'inline; filename="DSMB-{kind}-{report.cutoff:%Y%m%d}.pdf"')
        return response
    dsmb.record_run(request.user, report, "html", html.encode())
    return HttpResponse(html)


@require_permission(Permission.VIEW_SAFETY)
def dsmb_open(request: HttpRequest) -> HttpResponse:
    return _dsmb(request, DSMBReportKind.OPEN, "html")


@require_permission(Permission.VIEW_SAFETY)
def dsmb_open_pdf(request: HttpRequest) -> HttpResponse:
    return _dsmb(request, DSMBReportKind.OPEN, "pdf")


@require_permission(Permission.VIEW_CLOSED_REPORTS)
def dsmb_closed(request: HttpRequest) -> HttpResponse:
    return _dsmb(request, DSMBReportKind.CLOSED, "html")


@require_permission(Permission.VIEW_CLOSED_REPORTS)
def dsmb_closed_pdf(request: HttpRequest) -> HttpResponse:
    return _dsmb(request, DSMBReportKind.CLOSED, "pdf")


# =========================================================================== dictionary
@require_permission(dictionary.IMPORT_PERMISSION)
def dictionary_import(request: HttpRequest) -> HttpResponse:
    form = DictionaryForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > dictionary.MAX_DICTIONARY_BYTES:
            form.add_error("file", _("The file is %(size)s bytes; the limit is %(limit)s.")
                           % {"size": f"{upload.size:,}", "limit": f"{dictionary.MAX_DICTIONARY_BYTES:,}"})
        else:
            try:
                stored = dictionary.import_site_dictionary(request.user, upload.read(), upload.name,
                                                           form.cleaned_data["name"])
            except dictionary.DictionaryRefused as exc:
                for problem in exc.problems:
                    form.add_error("file", problem)
            except InputRefused as exc:
                _show_refusal(request, form, exc)
            else:
                messages.success(request, _("Dictionary imported: %(n)s terms.") % {"n": stored.term_count})
                return redirect("safety:dictionary")
        status = 422
    elif request.method == "POST":
        status = 422
    return render(request, "safety/dictionary.html", {
        "form": form, "dictionaries": TermDictionary.objects.select_related("imported_by")[:20],
        "shipped": len(dictionary.shipped_terms()), "shipped_source": dictionary.SHIPPED_SOURCE}, status=status)
