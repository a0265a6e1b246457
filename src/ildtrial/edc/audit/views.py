"""The audit log page, a record's history, and the CSV export of either."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from ildtrial.core.roles import Permission
from ildtrial.edc.audit import services
from ildtrial.edc.audit.models import AuditEntry
from ildtrial.edc.permissions import require_permission

#: Fields whose values reveal the allocation; blinded viewers see them masked.
ALLOCATION_FIELDS: frozenset[str] = frozenset({"randomization.AllocationSlot.arm"})


def masked_fields_for(user) -> frozenset[str]:  # noqa: ANN001
    return frozenset() if user.sees_allocation() else ALLOCATION_FIELDS


def scoped(request: HttpRequest) -> QuerySet[AuditEntry]:
    """Entries the viewer may read: their sites' records plus study-wide ones (site users);
    administrators see account and system events only."""
    from ildtrial.edc.cellproduct.models import ARM_REVEALING_AUDIT_MODELS

    entries = AuditEntry.objects.all()
    user = request.user
    if user.role == "administrator":
        return entries.filter(site_code="").filter(Q(model="accounts.User") | Q(model="study.Site") | Q(model=""))
    if not user.sees_allocation():
        # which cell-product fields are filled (lot vs saline batch) tells the arm: hide the records whole
        entries = entries.exclude(model__in=ARM_REVEALING_AUDIT_MODELS)
        for label in ARM_REVEALING_AUDIT_MODELS:  # and the signatures on those records (e.g. a lot release)
            entries = entries.exclude(model="esign.Signature", object_repr__contains=f" on {label} ")
    return entries.filter(Q(site_code="") | Q(site_code__in=user.site_codes()))


def _filtered(request: HttpRequest) -> QuerySet[AuditEntry]:
    entries = scoped(request)
    model = request.GET.get("model", "").strip()
    pk = request.GET.get("object", "").strip()
    actor = request.GET.get("actor", "").strip()
    action = request.GET.get("action", "").strip()
    if model:
        entries = entries.filter(model=model)
    if pk:
        entries = entries.filter(object_pk=pk)
    if actor:
        entries = entries.filter(actor_username=actor)
    if action:
        entries = entries.filter(action=action)
    return entries


@require_permission(Permission.VIEW_AUDIT)
def audit_log(request: HttpRequest) -> HttpResponse:
    entries = _filtered(request).order_by("-sequence")
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    masked = masked_fields_for(request.user)
    rows = [(e, list(services.rows([e], masked))) for e in page]
    return render(request, "audit/log.html", {"page": page, "rows": rows, "filters": request.GET})


@require_permission(Permission.VIEW_AUDIT)
def record_history(request: HttpRequest, model: str, pk: str) -> HttpResponse:
    entries = scoped(request).filter(model=model, object_pk=pk).order_by("sequence")
    masked = masked_fields_for(request.user)
    rows = [(e, list(services.rows([e], masked))) for e in entries]
    return render(request, "audit/history.html", {"rows": rows, "model": model, "pk": pk})


@require_permission(Permission.VIEW_AUDIT)
def audit_export(request: HttpRequest) -> HttpResponse:
    entries = _filtered(request).order_by("sequence")
    body = services.to_csv(entries.iterator(chunk_size=2000), masked_fields_for(request.user))
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="audit-trail.csv"'
    return response
