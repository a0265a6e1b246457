"""Form entry and review pages, generated from the protocol's form definitions."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from ildtrial.core.protocol import Form
from ildtrial.core.roles import Permission
from ildtrial.edc.crfs import lifecycle, locking
from ildtrial.edc.crfs.models import FormInstance
from ildtrial.edc.crfs.services import EditConflict, definition_at, mark_not_done, save_form
from ildtrial.edc.errors import InputRefused
from ildtrial.edc.esign.services import SignatureRefused
from ildtrial.edc.participants.services import get_for
from ildtrial.edc.permissions import require_permission
from ildtrial.edc.queries import services as queries


def _display(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_rows(definition: Form, values: dict[str, Any], issues: list[Any], language: str) -> list[dict[str, Any]]:
    """Everything the template needs per field: label, unit, widget type, value as typed, messages."""
    rows = []
    for f in definition.fields:
        own = [i for i in issues if i.field == f.code]
        rows.append({
            "code": f.code, "label": f.label.get(language), "type": f.type, "unit": f.unit or "",
            "required": f.required, "help": f.help.get(language) if f.help else "",
            "value": _display(values.get(f.code)),
            "choices": [(c.code, c.label.get(language)) for c in (f.choices or [])],
            "errors": [i.message_ru if language.startswith("ru") else i.message for i in own if i.severity == "error"],
            "warnings": [(i.key, i.message_ru if language.startswith("ru") else i.message)
                         for i in own if i.severity == "warning"],
            "min": f.min, "max": f.max, "textarea": f.type == "text" and (f.max_length or 0) > 200})
    return rows


def _context(request, participant, visit, definition, form_instance, values, issues, **extra):  # noqa: ANN001, ANN003, ANN202
    language = get_language() or "en"
    form_level = [i for i in issues if not i.field]
    return {"participant": participant, "visit": visit, "definition": definition, "instance": form_instance,
            "fields": field_rows(definition, values, issues, language),
            "form_errors": [i.message_ru if language.startswith("ru") else i.message
                            for i in form_level if i.severity == "error"],
            "form_warnings": [(i.key, i.message_ru if language.startswith("ru") else i.message)
                              for i in form_level if i.severity == "warning"],
            "locked": locking.is_locked(), **extra}


def _visit(participant, code: str):  # noqa: ANN001, ANN202
    visit = participant.visits.filter(code=code).first()
    if visit is None:
        from django.http import Http404

        raise Http404("this visit has not been recorded")
    return visit


@require_permission(Permission.VIEW_PARTICIPANTS)
def edit(request: HttpRequest, pk: int, visit_code: str, form_code: str, instance: int | None = None) -> HttpResponse:
    participant = get_for(request.user, pk)
    visit = _visit(participant, visit_code)
    try:
        definition = definition_at(visit, form_code)
    except InputRefused as exc:
        from django.http import Http404

        raise Http404(str(exc)) from None
    stored = None
    if instance is not None:
        stored = get_object_or_404(FormInstance, visit=visit, form_code=form_code, instance=instance)
    elif not definition.repeating:
        stored = FormInstance.objects.filter(visit=visit, form_code=form_code).first()
    values: dict[str, Any] = dict(stored.data) if stored else {}
    issues: list[Any] = []
    conflict = None
    if request.method == "POST":
        if not request.user.can(Permission.ENTER_DATA):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied("your role may not enter data")
        raw = {f.code: request.POST.get(f.code, "") for f in definition.fields}
        values = raw
        confirmed = request.POST.getlist("confirm")
        revision = request.POST.get("revision")
        try:
            outcome = save_form(request.user, participant, visit, form_code, raw,
                                instance=stored.instance if stored else None, confirmed=confirmed,
                                reason=request.POST.get("reason", ""),
                                expected_revision=int(revision) if revision and stored else None,
                                language=get_language() or "en")
        except EditConflict as exc:
            conflict = exc
            messages.error(request, _("Someone else saved this form while you were editing. Nothing was "
                                      "overwritten: compare both versions below and save again."))
        except InputRefused as exc:
            from ildtrial.core.crf import FieldIssue

            issues = [FieldIssue(field=exc.field if exc.field in {f.code for f in definition.fields} else None,
                                 rule="refused", severity="error", message=str(exc), message_ru=str(exc),
                                 key="refused")]
        else:
            issues = list(outcome.issues)
            if outcome.saved:
                messages.success(request, _("Saved."))
                target = outcome.form
                if request.headers.get("HX-Request"):
                    response = HttpResponse(status=204)
                    response["HX-Redirect"] = request.path
                    return response
                return redirect("crfs:edit", participant.pk, visit.code, form_code, target.instance)
    context = _context(request, participant, visit, definition, stored, values, issues, conflict=conflict)
    if stored is not None:
        context.update(review_context(request, stored))
    return render(request, "crfs/form.html", context, status=200 if not issues or request.method == "GET" else 422)


def review_context(request: HttpRequest, form: FormInstance) -> dict[str, Any]:
    return {"verifications": form.verifications.select_related("verified_by"),
            "outstanding": lifecycle.outstanding_verifications(form),
            "signatures": lifecycle.signatures(form),
            "form_queries": form.queries.prefetch_related("messages").order_by("raised_at"),
            "meaning": lifecycle.SIGNATURE_MEANING}


@require_permission(Permission.ENTER_DATA)
def new(request: HttpRequest, pk: int, visit_code: str, form_code: str) -> HttpResponse:
    return edit(request, pk, visit_code, form_code, None)


def _form_for(request: HttpRequest, pk: int, form_pk: int) -> FormInstance:
    participant = get_for(request.user, pk)
    return get_object_or_404(FormInstance, pk=form_pk, participant=participant)


def _back(form: FormInstance) -> HttpResponse:
    return redirect("crfs:edit", form.participant_id, form.visit.code, form.form_code, form.instance)


def _act(request: HttpRequest, action, success: str) -> None:  # noqa: ANN001
    try:
        action()
    except (InputRefused, SignatureRefused) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, success)


@require_POST
@require_permission(Permission.ENTER_DATA)
def not_done(request: HttpRequest, pk: int, visit_code: str, form_code: str) -> HttpResponse:
    participant = get_for(request.user, pk)
    visit = _visit(participant, visit_code)
    _act(request, lambda: mark_not_done(request.user, participant, visit, form_code, request.POST.get("reason", "")),
         _("Marked as not done."))
    return redirect("visits:calendar", participant.pk)


@require_POST
@require_permission(Permission.VERIFY_SOURCE)
def verify(request: HttpRequest, pk: int, form_pk: int) -> HttpResponse:
    form = _form_for(request, pk, form_pk)
    fields = request.POST.getlist("field") or [""]
    _act(request, lambda: lifecycle.verify(request.user, form, fields), _("Source verification recorded."))
    return _back(form)


@require_POST
@require_permission(Permission.SIGN_FORMS)
def sign(request: HttpRequest, pk: int, form_pk: int) -> HttpResponse:
    form = _form_for(request, pk, form_pk)
    _act(request, lambda: lifecycle.sign_form(request.user, form, request.POST.get("password", "")), _("Signed."))
    return _back(form)


@require_POST
@require_permission(Permission.LOCK_DATA)
def lock(request: HttpRequest, pk: int, form_pk: int) -> HttpResponse:
    form = _form_for(request, pk, form_pk)
    _act(request, lambda: lifecycle.lock_form(request.user, form), _("Form locked."))
    return _back(form)


@require_POST
@require_permission(Permission.RAISE_QUERY)
def raise_query(request: HttpRequest, pk: int, form_pk: int) -> HttpResponse:
    form = _form_for(request, pk, form_pk)
    _act(request, lambda: queries.raise_query(request.user, form, request.POST.get("field", ""),
                                              request.POST.get("text", "")), _("Query raised."))
    return _back(form)


@require_POST
@require_permission(Permission.VIEW_PARTICIPANTS)
def query_action(request: HttpRequest, pk: int, query_pk: int) -> HttpResponse:
    query = get_object_or_404(queries.visible_to(request.user), pk=query_pk, participant_id=pk)
    action = request.POST.get("action")
    text = request.POST.get("text", "")
    handlers = {"answer": queries.answer, "close": queries.close, "reopen": queries.reopen}
    if action not in handlers:
        messages.error(request, _("Unknown action."))
    else:
        from django.core.exceptions import PermissionDenied

        try:
            handlers[action](request.user, query, text)
        except InputRefused as exc:
            messages.error(request, str(exc))
        except PermissionDenied as exc:
            raise PermissionDenied(str(exc)) from None
        else:
            messages.success(request, _("Query updated."))
    return _back(query.form)


@require_permission(Permission.VIEW_PARTICIPANTS)
def query_list(request: HttpRequest) -> HttpResponse:
    state = request.GET.get("state", "unresolved")
    items = queries.visible_to(request.user)
    if state == "unresolved":
        items = items.filter(state__in=queries.UNRESOLVED)
    elif state in ("open", "answered", "closed"):
        items = items.filter(state=state)
    everything = queries.visible_to(request.user)
    return render(request, "crfs/queries.html", {
        "items": items.order_by("raised_at"), "state": state,
        "by_participant": queries.counts(everything, "participant"), "by_visit": queries.counts(everything, "visit"),
        "by_site": queries.counts(everything, "site")})


@require_permission(Permission.LOCK_DATA)
def database_lock(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        wanted = request.POST.get("locked") == "1"
        _act(request, lambda: locking.set_lock(request.user, wanted, request.POST.get("reason", "")),
             _("Database locked.") if wanted else _("Database unlocked."))
        return redirect("crfs:lock")
    from ildtrial.edc.crfs.models import StudyLock

    return render(request, "crfs/lock.html", {"lock": StudyLock.objects.filter(pk=1).first()})
