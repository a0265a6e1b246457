"""Saving a form: protocol validation, consent rule, edit checks, derived values, revisions, audit.

Every path that stores form data (pages, API, simulator) goes through ``save_form``, so
the same checks and the same audit trail apply whoever submits the values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.db import transaction
from django.utils import timezone

from ildtrial.core import crf
from ildtrial.core.protocol import Form
from ildtrial.core.roles import Permission
from ildtrial.edc.audit.context import because
from ildtrial.edc.crfs.models import FormInstance, FormStatus
from ildtrial.edc.errors import InputRefused, require, require_site
from ildtrial.edc.participants.models import Participant
from ildtrial.edc.study.protocol import current_protocol
from ildtrial.edc.visits.models import Visit, VisitState


class EditConflict(Exception):
    """Someone else saved the form since this user opened it; nothing was overwritten."""

    def __init__(self, stored: FormInstance, submitted: dict[str, Any]):
        self.stored = stored
        self.submitted = submitted
        super().__init__(f"{stored} was changed by someone else (revision {stored.revision}); review both versions")


@dataclass
class SaveOutcome:
    saved: bool
    form: FormInstance | None
    issues: list[crf.FieldIssue] = field(default_factory=list)
    needs_confirmation: list[str] = field(default_factory=list)


def definition_at(visit: Visit, form_code: str) -> Form:
    """The form definition if the form belongs at this visit (schedule or unscheduled forms)."""
    protocol = current_protocol()
    try:
        definition = protocol.form(form_code)
    except KeyError:
        raise InputRefused("form", f"{form_code!r} is not a form of protocol {protocol.version}") from None
    allowed = protocol.schedule.unscheduled_forms if visit.unscheduled else protocol.visit(visit.code).forms
    if form_code not in allowed:
        raise InputRefused("form", f"{definition.name.en} is not collected at {visit.code}")
    return definition


def _consent_issues(participant: Participant, definition: Form, cleaned: dict[str, Any]) -> list[crf.FieldIssue]:
    if not definition.procedure_date:
        return []
    day = cleaned.get(definition.procedure_date)
    consent = participant.active_consent()
    if day is None or consent is None:
        return []
    signed = timezone.localtime(consent.signed_at).date()
    if day < signed:
        label = definition.field(definition.procedure_date).label
        return [crf.FieldIssue(
            field=definition.procedure_date, rule="before_consent", severity="error",
            message=f"{label.en}: {day} is before informed consent ({signed}); no procedure may precede consent",
            message_ru=f"{label.ru}: {day} раньше информированного согласия ({signed})",
            key=f"{definition.procedure_date}:before_consent")]
    return []


def _before_birth_issues(participant: Participant, definition: Form, cleaned: dict[str, Any]) -> list[crf.FieldIssue]:
    """A test dated before the participant was born is impossible (birth date from the DM form)."""
    dm = participant.forms.filter(form_code="DM").exclude(status=FormStatus.NOT_DONE).order_by("instance").first()
    birth = dm.data.get("birth_date") if dm else (cleaned.get("birth_date") if definition.code == "DM" else None)
    if not birth:
        return []
    birth_date = date.fromisoformat(birth) if isinstance(birth, str) else birth
    issues = []
    for f in definition.fields:
        value = cleaned.get(f.code)
        if f.type == "date" and f.code != "birth_date" and isinstance(value, date) and value < birth_date:
            issues.append(crf.FieldIssue(
                field=f.code, rule="before_birth", severity="error",
                message=f"{f.label.en}: {value} is before the date of birth ({birth_date})",
                message_ru=f"{f.label.ru}: {value} раньше даты рождения ({birth_date})", key=f"{f.code}:before_birth"))
    return issues


def _cross_visit_issues(participant: Participant, visit: Visit, definition: Form,
                        cleaned: dict[str, Any]) -> list[crf.FieldIssue]:
    from ildtrial.core import edit_checks

    issues: list[crf.FieldIssue] = _before_birth_issues(participant, definition, cleaned)
    if definition.code == "SPIRO" and cleaned.get("fvc_l") is not None and cleaned.get("test_date"):
        previous = (FormInstance.objects.filter(participant=participant, form_code="SPIRO")
                    .exclude(visit=visit).exclude(status=FormStatus.NOT_DONE).select_related("visit"))
        earlier = [(date.fromisoformat(f.data["test_date"]), float(f.data["fvc_l"])) for f in previous
                   if f.data.get("test_date") and f.data.get("fvc_l") is not None
                   and date.fromisoformat(f.data["test_date"]) < cleaned["test_date"]]
        if earlier:
            issues += edit_checks.fvc_change_since_previous(max(earlier), (cleaned["test_date"],
                                                                           float(cleaned["fvc_l"])))
    if definition.code == "CM" and cleaned.get("start_date"):
        day0_visit = participant.visits.filter(code=current_protocol().schedule.day_zero, state=VisitState.DONE).first()
        if day0_visit is not None:
            classes = edit_checks.prohibited_classes_from_protocol(current_protocol())
            issues += edit_checks.prohibited_medication_started([cleaned], day0_visit.actual_date, classes)
    return issues


def _bedside_check(user, participant: Participant, visit: Visit, cleaned: dict[str, Any],  # noqa: ANN001
                   instance: int | None) -> tuple[Any, Any, list[crf.FieldIssue]]:
    """The infusion bag scanned at the bedside must be this participant's, for this visit, in date.

    Checked only when the bag identifier is new or changed: an edit of other fields of an
    infusion already given must not be refused as 'already administered'.
    """
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from ildtrial.edc.cellproduct.services import check_bag

    bag_id = cleaned.get("bag_id")
    if not bag_id or cleaned.get("infusion_date") is None or cleaned.get("start_time") is None:
        return None, None, []
    stored = FormInstance.objects.filter(visit=visit, form_code="INF", instance=instance or 1).first()
    if stored is not None and stored.data.get("bag_id") == bag_id:
        return None, None, []
    at = datetime.combine(cleaned["infusion_date"], cleaned["start_time"]).replace(
        tzinfo=ZoneInfo(participant.site.timezone))
    try:
        bag = check_bag(user, participant, visit.code, bag_id, at)
    except InputRefused as exc:
        return None, None, [crf.FieldIssue(field="bag_id", rule="bedside_check", severity="error",
                                           message=f"Infusion bag identifier: {exc.message}",
                                           message_ru=f"Идентификатор инфузионного пакета: {exc.message}",
                                           key="bag_id:bedside_check")]
    return bag, at, []


def derived_values(participant: Participant, definition: Form, cleaned: dict[str, Any]) -> dict[str, Any]:
    """Derived values (% predicted, z, LLN, ...) with the method that produced them."""
    from ildtrial.core import derivations

    protocol = current_protocol()
    dm = participant.forms.filter(form_code="DM").exclude(status=FormStatus.NOT_DONE).order_by("instance").first()
    if dm is None:
        return {}
    demographics = crf.validate_form(protocol.form("DM"), dm.data, today=timezone.localdate()).cleaned
    context = derivations.DerivationContext.from_demographics(demographics, protocol)
    return {k: v.to_dict() for k, v in derivations.derive(definition.code, cleaned, context).items()}


def save_form(user, participant: Participant, visit: Visit, form_code: str, raw: dict[str, Any], *,  # noqa: ANN001, PLR0913
              instance: int | None = None, confirmed: list[str] | tuple[str, ...] = (), reason: str = "",
              expected_revision: int | None = None, language: str = "en") -> SaveOutcome:
    """Validate and store one form instance. Refusals come back as issues; nothing is half-saved."""
    require(user, Permission.ENTER_DATA)
    require_site(user, participant.site)
    if visit.participant_id != participant.pk:
        raise InputRefused("visit", "the visit belongs to another participant")
    from ildtrial.edc.crfs.locking import ensure_unlocked

    ensure_unlocked()
    definition = definition_at(visit, form_code)
    if participant.active_consent() is None:
        raise InputRefused(None, "record informed consent before entering any study data")
    validation = crf.validate_form(definition, raw, today=timezone.localdate(), confirmed_warnings=confirmed,
                                   language=language)
    issues = list(validation.issues)
    if not any(i.severity == "error" for i in issues):
        issues += _consent_issues(participant, definition, validation.cleaned)
        issues += _cross_visit_issues(participant, visit, definition, validation.cleaned)
    bag, administered_at = None, None
    if definition.code == "INF" and not any(i.severity == "error" for i in issues):
        bag, administered_at, bag_issues = _bedside_check(user, participant, visit, validation.cleaned, instance)
        issues += bag_issues
    errors = [i for i in issues if i.severity == "error"]
    unconfirmed = [i.key for i in issues if i.severity == "warning" and i.key not in set(confirmed)]
    if errors or unconfirmed:
        return SaveOutcome(False, None, issues, unconfirmed)
    data = validation.json_values()
    warnings = sorted(i.key for i in issues if i.severity == "warning")
    derived = derived_values(participant, definition, validation.cleaned)
    with transaction.atomic():
        existing = None
        if instance is not None:
            existing = (FormInstance.objects.select_for_update()
                        .filter(visit=visit, form_code=form_code, instance=instance).first())
        elif not definition.repeating:
            existing = FormInstance.objects.select_for_update().filter(visit=visit, form_code=form_code).first()
        if existing is None:
            number = instance or ((FormInstance.objects.filter(visit=visit, form_code=form_code)
                                   .order_by("-instance").values_list("instance", flat=True).first() or 0) + 1)
            form = FormInstance.objects.create(
                participant=participant, visit=visit, form_code=form_code, form_version=definition.version,
                instance=number, status=FormStatus.COMPLETE, data=data, derived=derived,
                confirmed_warnings=warnings, protocol_version=current_protocol().version)
        else:
            form = existing
            if expected_revision is not None and form.revision != expected_revision:
                raise EditConflict(form, data)
            if form.status == FormStatus.LOCKED:
                raise InputRefused(None, f"{form} is locked")
            if form.data == data and form.status != FormStatus.NOT_DONE:
                return SaveOutcome(True, form, issues, [])
            if not reason.strip():
                raise InputRefused("reason", "a reason is required to change a saved form")
            with because(reason.strip()):
                from ildtrial.edc.crfs.lifecycle import void_signatures

                void_signatures(form, reason.strip())
                form.data = data
                form.derived = derived
                form.confirmed_warnings = warnings
                form.status = FormStatus.COMPLETE
                form.not_done_reason = ""
                form.revision += 1
                form.save()
        from ildtrial.edc.crfs.lifecycle import open_automatic_queries

        open_automatic_queries(form, [i for i in issues if i.severity == "warning"])
        if bag is not None:
            from ildtrial.edc.cellproduct.services import record_administration

            record_administration(user, bag, administered_at)
    _reevaluate_eligibility(participant, visit)
    if form_code == "EOS":
        _apply_end_of_study(participant, form)
    return SaveOutcome(True, form, issues, [])


#: End-of-study status (EOS form) → participant status
_EOS_STATUS = {"COMPLETED": "completed", "DEATH": "died", "WITHDRAWN": "withdrawn", "LOST": "withdrawn",
               "INVESTIGATOR": "withdrawn"}


def _apply_end_of_study(participant: Participant, form: FormInstance) -> None:
    """The end-of-study form decides whether the participant completed, died or left."""
    status = _EOS_STATUS.get(form.data.get("status", ""))
    if status and participant.status != status:
        detail = form.data.get("death_cause") or form.data.get("comment") or ""
        with because(f"end of study recorded: {form.data.get('status')}"):
            participant.status = status
            participant.outcome_reason = detail[:500]
            participant.save()


def _reevaluate_eligibility(participant: Participant, visit: Visit) -> None:
    """Keep the eligibility verdict live: every saved screening form re-runs the engine."""
    from ildtrial.edc.participants.models import ParticipantStatus
    from ildtrial.edc.screening.services import evaluate_stored

    if visit.code == current_protocol().schedule.visits[0].code and participant.status in (
        ParticipantStatus.SCREENING, ParticipantStatus.ELIGIBLE
    ):
        evaluate_stored(participant)


def mark_not_done(user, participant: Participant, visit: Visit, form_code: str, reason: str) -> FormInstance:  # noqa: ANN001
    """A form due at a visit that will not be filled: recorded with the reason."""
    require(user, Permission.ENTER_DATA)
    require_site(user, participant.site)
    from ildtrial.edc.crfs.locking import ensure_unlocked

    ensure_unlocked()
    definition = definition_at(visit, form_code)
    if not reason.strip():
        raise InputRefused("reason", "say why the form was not done")
    with transaction.atomic():
        existing = FormInstance.objects.filter(visit=visit, form_code=form_code).order_by("instance").first()
        if existing is not None and not definition.repeating:
            if existing.status == FormStatus.LOCKED:
                raise InputRefused(None, f"{existing} is locked")
            with because(f"not done: {reason.strip()}"):
                existing.status = FormStatus.NOT_DONE
                existing.not_done_reason = reason.strip()
                existing.revision += 1
                existing.save()
            return existing
        number = (FormInstance.objects.filter(visit=visit, form_code=form_code).count()) + 1
        return FormInstance.objects.create(
            participant=participant, visit=visit, form_code=form_code, form_version=definition.version,
            instance=number, status=FormStatus.NOT_DONE, not_done_reason=reason.strip(),
            protocol_version=current_protocol().version)
