"""Home page (one dashboard per role) and the protocol rendered as pages: arms, schedule, forms, criteria."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from ildtrial.core.roles import Permission, Role
from ildtrial.edc import dashboards
from ildtrial.edc.permissions import require_permission
from ildtrial.edc.study.protocol import current_protocol


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The role's work list: what to do next, in a constant number of queries (see ``dashboards``)."""
    user = request.user
    try:
        role = Role(user.role)
    except ValueError:
        role = None
    context = {"role": role, "sees_allocation": user.sees_allocation(), "site_codes": user.site_codes()}
    context.update(dashboards.build(user))
    return render(request, "study/home.html", context)


@require_permission(Permission.VIEW_PROTOCOL)
def protocol_overview(request: HttpRequest) -> HttpResponse:
    return render(request, "study/protocol_overview.html", {})


@require_permission(Permission.VIEW_PROTOCOL)
def protocol_schedule(request: HttpRequest) -> HttpResponse:
    protocol = current_protocol()
    form_codes = [f.code for f in protocol.forms]
    grid = [(f, [f.code in v.forms for v in protocol.schedule.visits]) for f in protocol.forms]
    return render(request, "study/protocol_schedule.html", {"grid": grid, "form_codes": form_codes})


@require_permission(Permission.VIEW_PROTOCOL)
def protocol_forms(request: HttpRequest) -> HttpResponse:
    return render(request, "study/protocol_forms.html", {})


@require_permission(Permission.VIEW_PROTOCOL)
def protocol_form(request: HttpRequest, code: str) -> HttpResponse:
    try:
        form = current_protocol().form(code)
    except KeyError:
        raise Http404(f"no form {code}") from None
    return render(request, "study/protocol_form.html", {"form": form})


@require_permission(Permission.VIEW_PROTOCOL)
def protocol_criteria(request: HttpRequest) -> HttpResponse:
    return render(request, "study/protocol_criteria.html", {})
