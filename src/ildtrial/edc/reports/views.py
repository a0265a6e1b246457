"""Statistical report pages: an overview, the HTML report and its PDF.

Access follows :func:`ildtrial.edc.reports.access.report_access`: closed (by arm) for the
unblinded statistician and the DSMB, open (pooled) for other safety viewers outside the
sites, 403 for everyone else.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from ildtrial.edc.reports.access import ReportAccess, report_access
from ildtrial.edc.reports.services import report_for


def _access(request: HttpRequest) -> ReportAccess:
    access = report_access(request.user)
    if access == ReportAccess.NONE:
        raise PermissionDenied(f"your role ({request.user.role_label}) may not view the statistical report")
    return access


@login_required
def index(request: HttpRequest) -> HttpResponse:
    """What the user will get (closed or open report) and the links to it."""
    access = _access(request)
    return render(request, "reports/index.html", {"by_arm": access == ReportAccess.BY_ARM})


@login_required
def statistical_html(request: HttpRequest) -> HttpResponse:
    _access(request)
    report = report_for(request.user)
    response = HttpResponse(report.html, content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


@login_required
def statistical_pdf(request: HttpRequest) -> HttpResponse:
    _access(request)
    report = report_for(request.user)
    response = HttpResponse(report.pdf(), content_type="application/pdf")
    name = f"statistical-report-{report.kind}-{report.provenance.data_cut.isoformat()}.pdf"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response
