"""The REST API (django-ninja): the pages' services behind bearer tokens.

Why it is thin: every rule lives in the services the pages use (site scoping in
``participants.services.visible_to/get_for``, form validation and audit in
``crfs.services.save_form``, allocation concealment in ``randomization.services.arm_for``),
so the API cannot drift from the pages. What the API adds is the HTTP mapping:

* 401: no token, an unknown or revoked one, or an inactive account;
* 403: the role lacks the permission the endpoint needs (checked first, whatever the id);
* 404: the participant is not at the caller's sites (the same answer as a missing id, so
  ids cannot be probed), the visit is not recorded, the form is not collected there;
* 422: the values were refused; ``issues`` names field, rule, severity and message (en
  and ru) of each problem and nothing is stored; warnings are confirmed by sending their
  ``key`` back in ``confirm``;
* 409: the form changed since ``expected_revision``; both versions are returned.

Blinding: ``arm`` is the arm code only for users who may see it
(``randomization.services.arm_for``), ``"blinded"`` for everyone else in a double-blind
trial, null before randomization. No other response or error names an arm; exports are
built blinded for such users.

Writes act as the token's user with audit source ``api`` and the client address.
"""

from __future__ import annotations

import importlib
import inspect
import tempfile
import zipfile
from collections.abc import Callable
from datetime import date, datetime
from functools import wraps
from pathlib import Path
from typing import Any, Literal

from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema, Status
from ninja.errors import HttpError
from ninja.security import HttpBearer

from ildtrial.core.roles import Permission
from ildtrial.edc.api import tokens
from ildtrial.edc.audit.context import acting_as
from ildtrial.edc.audit.middleware import client_ip
from ildtrial.edc.errors import InputRefused, require

ExportKind = Literal["sdtm", "adam", "odm", "fhir", "csv"]


class TokenAuth(HttpBearer):
    """``Authorization: Bearer ildt_…``; the request then acts as the token's user."""

    def authenticate(self, request: HttpRequest, token: str) -> Any | None:
        return tokens.authenticate(token)


api = NinjaAPI(
    title="ildtrial EDC API",
    version="1",
    description=(
        "REST API of the NCT02594839 trial platform. Authenticate with `Authorization: Bearer <token>` "
        "(create a token on /api/tokens/ or with `ildtrial api-token create --user U`). A token acts as "
        "its user: same role permissions, site scoping and blinding as the pages."
    ),
    auth=TokenAuth(),
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
)


# --------------------------------------------------------------------------- schemas
class Error(Schema):
    detail: str


class Me(Schema):
    username: str
    role: str
    sites: list[str]
    sees_allocation: bool


class ParticipantOut(Schema):
    id: int
    screening_number: str
    randomization_number: str | None
    site: str
    status: str
    screening_date: date
    randomized_at: datetime | None
    stratum: str | None
    arm: str | None = None


class VisitOut(Schema):
    code: str
    state: str
    actual_date: date | None
    unscheduled: bool
    reason: str


class ParticipantDetail(ParticipantOut):
    visits: list[VisitOut]


class FormOut(Schema):
    id: int
    visit: str
    form_code: str
    form_version: int
    instance: int
    status: str
    revision: int
    data: dict[str, Any]
    derived: dict[str, Any]
    confirmed_warnings: list[str]
    not_done_reason: str
    updated_at: datetime


class FormSubmission(Schema):
    """Values by field code, as JSON scalars or the text a form would send ("2,08" is fine)."""

    values: dict[str, Any]
    confirm: list[str] = []
    reason: str = ""
    expected_revision: int | None = None
    instance: int | None = None
    language: Literal["en", "ru"] = "en"


class IssueOut(Schema):
    field: str | None
    rule: str
    severity: str
    message: str
    message_ru: str
    key: str


class FormSaved(Schema):
    form: FormOut
    issues: list[IssueOut]


class Refused(Schema):
    detail: str
    issues: list[IssueOut]
    needs_confirmation: list[str]


class StoredVersion(Schema):
    revision: int
    status: str
    data: dict[str, Any]
    updated_at: datetime


class Conflict(Schema):
    detail: str
    stored: StoredVersion
    submitted: dict[str, Any]


class QueryMessageOut(Schema):
    action: str
    text: str
    written_at: datetime
    author: str | None


class QueryOut(Schema):
    id: int
    participant_id: int
    participant: str
    visit: str
    form_code: str
    form_instance: int
    field_code: str
    rule: str
    origin: str
    state: str
    text: str
    raised_at: datetime
    messages: list[QueryMessageOut]


class AdverseEventOut(Schema):
    id: int
    participant_id: int
    participant: str
    ae_number: int
    verbatim_term: str
    coded_term: str
    meddra_code: str
    soc: str
    onset_date: date
    resolution_date: date | None
    ongoing: bool
    grade: int
    serious: bool
    seriousness_criteria: list[str]
    relatedness_product: str
    relatedness_procedure: str
    expectedness: str
    action_taken: str
    outcome: str
    infusion_related: bool
    infusion_visit: str
    reported_at: datetime


READ_ERRORS: dict[int, Any] = {401: Error, 403: Error, 404: Error}


# --------------------------------------------------------------------------- helpers
def _user(request: HttpRequest) -> Any:
    return request.auth  # type: ignore[attr-defined]


def audited(view: Callable[..., Any]) -> Callable[..., Any]:
    """Run the view as the token's user in the audit trail (source ``api``)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        with acting_as(_user(request), source="api", ip=client_ip(request)):
            return view(request, *args, **kwargs)

    return wrapped


def _participant_out(user: Any, participant: Any) -> dict[str, Any]:
    from ildtrial.edc.randomization.services import arm_for

    return {
        "id": participant.pk, "screening_number": participant.screening_number,
        "randomization_number": participant.randomization_number or None, "site": participant.site.code,
        "status": participant.status, "screening_date": participant.screening_date,
        "randomized_at": participant.randomized_at, "stratum": participant.stratum or None,
        "arm": arm_for(user, participant),
    }


def _visit_out(visit: Any) -> dict[str, Any]:
    return {"code": visit.code, "state": visit.state, "actual_date": visit.actual_date,
            "unscheduled": visit.unscheduled, "reason": visit.reason}


def _form_out(form: Any) -> dict[str, Any]:
    return {"id": form.pk, "visit": form.visit.code, "form_code": form.form_code, "form_version": form.form_version,
            "instance": form.instance, "status": form.status, "revision": form.revision, "data": form.data or {},
            "derived": form.derived or {}, "confirmed_warnings": list(form.confirmed_warnings or []),
            "not_done_reason": form.not_done_reason, "updated_at": form.updated_at}


def _participant(user: Any, participant_id: int) -> Any:
    from ildtrial.edc.participants.services import get_for

    require(user, Permission.VIEW_PARTICIPANTS)
    return get_for(user, participant_id)


def _visit(participant: Any, code: str) -> Any:
    visit = participant.visits.filter(code=code).first()
    if visit is None:
        raise HttpError(404, "this visit has not been recorded for the participant")
    return visit


def _issue(issue: Any) -> dict[str, Any]:
    return {"field": issue.field, "rule": issue.rule, "severity": issue.severity, "message": issue.message,
            "message_ru": issue.message_ru, "key": issue.key}


# --------------------------------------------------------------------------- errors
@api.exception_handler(PermissionDenied)
def _denied(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc) or "forbidden"}, status=403)


@api.exception_handler(InputRefused)
def _refused(request: HttpRequest, exc: InputRefused) -> HttpResponse:
    issue = {"field": exc.field, "rule": "refused", "severity": "error", "message": exc.message,
             "message_ru": exc.message, "key": f"{exc.field or 'form'}:refused"}
    return api.create_response(request, {"detail": str(exc), "issues": [issue], "needs_confirmation": []},
                               status=422)


# --------------------------------------------------------------------------- reads
@api.get("/me", response={200: Me, 401: Error}, tags=["account"])
def me(request: HttpRequest) -> dict[str, Any]:
    """Who the token acts as."""
    user = _user(request)
    return {"username": user.username, "role": user.role, "sites": user.site_codes(),
            "sees_allocation": user.sees_allocation()}


@api.get("/participants", response={200: list[ParticipantOut], **READ_ERRORS}, tags=["participants"])
def participants(request: HttpRequest, status: str | None = None) -> list[dict[str, Any]]:
    """Participants of the caller's sites (``VIEW_PARTICIPANTS``); ``arm`` only when the caller may see it."""
    from ildtrial.edc.participants.services import visible_to

    user = _user(request)
    require(user, Permission.VIEW_PARTICIPANTS)
    rows = visible_to(user).select_related("allocation").order_by("screening_number")
    if status:
        rows = rows.filter(status=status)
    return [_participant_out(user, p) for p in rows]


@api.get("/participants/{participant_id}", response={200: ParticipantDetail, **READ_ERRORS}, tags=["participants"])
def participant(request: HttpRequest, participant_id: int) -> dict[str, Any]:
    """One participant with its visits; 404 for a participant of another site."""
    user = _user(request)
    p = _participant(user, participant_id)
    return {**_participant_out(user, p), "visits": [_visit_out(v) for v in p.visits.order_by("actual_date", "code")]}


@api.get("/participants/{participant_id}/visits", response={200: list[VisitOut], **READ_ERRORS}, tags=["visits"])
def participant_visits(request: HttpRequest, participant_id: int) -> list[dict[str, Any]]:
    """The recorded visits of a participant."""
    p = _participant(_user(request), participant_id)
    return [_visit_out(v) for v in p.visits.order_by("actual_date", "code")]


@api.get("/participants/{participant_id}/forms", response={200: list[FormOut], **READ_ERRORS}, tags=["forms"])
def participant_forms(request: HttpRequest, participant_id: int, visit: str | None = None,
                      form_code: str | None = None) -> list[dict[str, Any]]:
    """Every stored form of a participant (data, derived values, status, revision), optionally filtered."""
    p = _participant(_user(request), participant_id)
    forms = p.forms.select_related("visit").order_by("visit__actual_date", "visit__code", "form_code", "instance")
    if visit:
        forms = forms.filter(visit__code=visit)
    if form_code:
        forms = forms.filter(form_code=form_code)
    return [_form_out(f) for f in forms]


@api.get("/participants/{participant_id}/visits/{visit_code}/forms/{form_code}",
         response={200: list[FormOut], **READ_ERRORS}, tags=["forms"])
def visit_form(request: HttpRequest, participant_id: int, visit_code: str, form_code: str) -> list[dict[str, Any]]:
    """The stored instance(s) of one form at one visit (a list: repeating forms have several)."""
    p = _participant(_user(request), participant_id)
    visit = _visit(p, visit_code)
    return [_form_out(f) for f in visit.forms.select_related("visit").filter(form_code=form_code).order_by("instance")]


@api.get("/queries", response={200: list[QueryOut], 401: Error, 403: Error}, tags=["queries"])
def query_list(request: HttpRequest, state: Literal["open", "answered", "closed"] | None = None,
               participant_id: int | None = None) -> list[dict[str, Any]]:
    """Queries on the forms of the caller's sites."""
    from ildtrial.edc.queries.services import visible_to

    user = _user(request)
    require(user, Permission.VIEW_PARTICIPANTS)
    rows = visible_to(user).prefetch_related("messages", "messages__author").order_by("raised_at", "pk")
    if state:
        rows = rows.filter(state=state)
    if participant_id is not None:
        rows = rows.filter(participant_id=participant_id)
    return [{
        "id": q.pk, "participant_id": q.participant_id, "participant": q.participant.label,
        "visit": q.form.visit.code, "form_code": q.form.form_code, "form_instance": q.form.instance,
        "field_code": q.field_code, "rule": q.rule, "origin": q.origin, "state": q.state, "text": q.text,
        "raised_at": q.raised_at,
        "messages": [{"action": m.action, "text": m.text, "written_at": m.written_at,
                      "author": m.author.username if m.author else None} for m in q.messages.all()],
    } for q in rows]


@api.get("/adverse-events", response={200: list[AdverseEventOut], 401: Error, 403: Error}, tags=["safety"])
def adverse_events(request: HttpRequest, participant_id: int | None = None) -> list[dict[str, Any]]:
    """Adverse events the caller may see (``VIEW_SAFETY``; site staff their sites, oversight roles all)."""
    from ildtrial.edc.safety.services import events_visible_to

    user = _user(request)
    require(user, Permission.VIEW_SAFETY)
    rows = events_visible_to(user).order_by("participant__screening_number", "ae_number")
    if participant_id is not None:
        rows = rows.filter(participant_id=participant_id)
    return [{
        "id": ae.pk, "participant_id": ae.participant_id, "participant": ae.participant.label,
        "ae_number": ae.ae_number, "verbatim_term": ae.verbatim_term, "coded_term": ae.coded_term,
        "meddra_code": ae.meddra_code, "soc": ae.soc, "onset_date": ae.onset_date,
        "resolution_date": ae.resolution_date, "ongoing": ae.ongoing, "grade": ae.grade, "serious": ae.serious,
        "seriousness_criteria": ae.criteria_labels, "relatedness_product": ae.relatedness_product,
        "relatedness_procedure": ae.relatedness_procedure, "expectedness": ae.expectedness,
        "action_taken": ae.action_taken, "outcome": ae.outcome, "infusion_related": ae.infusion_related,
        "infusion_visit": ae.infusion_visit, "reported_at": ae.reported_at,
    } for ae in rows]


# --------------------------------------------------------------------------- write
@api.post("/participants/{participant_id}/visits/{visit_code}/forms/{form_code}",
          response={200: FormSaved, 401: Error, 403: Error, 404: Error, 409: Conflict, 422: Refused},
          tags=["forms"])
@audited
def save(request: HttpRequest, participant_id: int, visit_code: str, form_code: str,
         payload: FormSubmission) -> Any:
    """Validate and store one form through ``save_form`` (the pages' checks and audit trail).

    Refusals (422) list every issue with its field and rule, and store nothing. A warning
    is accepted once its ``key`` is in ``confirm`` (it then opens a query for the monitor).
    Changing a saved form needs ``reason``; pass ``expected_revision`` to be told (409)
    instead of overwriting a change made by someone else.
    """
    from ildtrial.edc.crfs.services import EditConflict, definition_at, save_form

    user = _user(request)
    require(user, Permission.ENTER_DATA)
    p = _participant(user, participant_id)
    visit = _visit(p, visit_code)
    try:
        definition_at(visit, form_code)
    except InputRefused as exc:
        raise HttpError(404, exc.message) from None
    try:
        outcome = save_form(user, p, visit, form_code, payload.values, instance=payload.instance,
                            confirmed=payload.confirm, reason=payload.reason,
                            expected_revision=payload.expected_revision, language=payload.language)
    except EditConflict as exc:
        stored = exc.stored
        return Status(409, {"detail": str(exc), "submitted": exc.submitted,
                     "stored": {"revision": stored.revision, "status": stored.status, "data": stored.data,
                                "updated_at": stored.updated_at}})
    issues = [_issue(i) for i in outcome.issues]
    if not outcome.saved:
        errors = [i for i in outcome.issues if i.severity == "error"]
        detail = (f"{len(errors)} value(s) refused; nothing was stored" if errors else
                  "warnings need confirmation: send their keys in 'confirm'; nothing was stored")
        return Status(422, {"detail": detail, "issues": issues, "needs_confirmation": outcome.needs_confirmation})
    return Status(200, {"form": _form_out(outcome.form), "issues": issues})


# --------------------------------------------------------------------------- exports
#: kind → (module, function). The SDTM/ADaM/CSV writers take the export source as well.
EXPORTERS: dict[str, tuple[str, str]] = {
    "odm": ("ildtrial.exports.odm", "write_odm"),
    "fhir": ("ildtrial.exports.fhir", "write_bundle"),
    "sdtm": ("ildtrial.exports.package", "write_sdtm_package"),
    "adam": ("ildtrial.exports.package", "write_adam_package"),
    "csv": ("ildtrial.exports.package", "write_csv"),
}


def _writer(kind: str) -> Callable[..., Any]:
    """The exporter for ``kind``, imported only when asked for (exports pull in pandas and more).

    A writer is called as ``writer(out_dir, [source,] blinded=...)``; one that cannot be
    imported (not installed, or not part of this build) is a 503 with the reason, not a 500.
    """
    module_name, function = EXPORTERS[kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HttpError(503, f"the {kind} export is not available in this installation ({module_name}: {exc})")\
            from None
    writer = getattr(module, function, None)
    if not callable(writer):
        raise HttpError(503, f"the {kind} export is not available in this installation "
                             f"({module_name} has no {function})")
    return writer


def _call_writer(writer: Callable[..., Any], out_dir: Path, blinded: bool) -> None:
    parameters = inspect.signature(writer).parameters
    if "blinded" not in parameters:
        raise HttpError(503, "this export cannot be built blinded, so it is not offered")
    args: list[Any] = [out_dir]
    if "source" in parameters:
        from ildtrial.exports.source import collect_source

        args.append(collect_source())
    writer(*args, blinded=blinded)


@api.get("/exports/{kind}", response={401: Error, 403: Error, 503: Error}, tags=["exports"],
         openapi_extra={"responses": {200: {"description": "a zip of the export's files",
                                            "content": {"application/zip": {}}}}})
@audited
def export(request: HttpRequest, kind: ExportKind) -> HttpResponse:
    """Download an export as a zip (``EXPORT_DATA``). Built blinded unless the caller may see arms."""
    from ildtrial.edc.audit.models import append
    from ildtrial.edc.study.protocol import current_protocol

    user = _user(request)
    require(user, Permission.EXPORT_DATA)
    protocol = current_protocol()
    blinded = protocol.is_blinded and not user.sees_allocation()
    writer = _writer(kind)
    archive = tempfile.TemporaryFile(suffix=".zip")  # noqa: SIM115 - FileResponse closes (and so deletes) it
    with tempfile.TemporaryDirectory(prefix=f"ildtrial-{kind}-") as tmp:
        out = Path(tmp)
        _call_writer(writer, out, blinded)
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(p for p in out.rglob("*") if p.is_file()):
                zf.write(path, path.relative_to(out).as_posix())
    append(action="export", model="exports", object_repr=f"{kind} export via API",
           changes={"kind": kind, "blinded": blinded})
    archive.seek(0)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"{protocol.identity.registration}-{kind}{'-blinded' if blinded else ''}-{stamp}.zip"
    return FileResponse(archive, as_attachment=True, filename=name, content_type="application/zip")

