"""Evaluating eligibility from the stored screening forms, and the investigator's sign-off."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from ildtrial.core import eligibility as engine
from ildtrial.core.roles import Permission
from ildtrial.edc.audit.context import because
from ildtrial.edc.crfs.models import FormInstance, FormStatus
from ildtrial.edc.errors import InputRefused, require, require_site
from ildtrial.edc.esign.services import authenticate_signer, sign
from ildtrial.edc.participants.models import Participant, ParticipantStatus
from ildtrial.edc.screening.models import EligibilityAssessment
from ildtrial.edc.study.protocol import current_protocol, loaded_protocol

#: A repeating screening form marked not done with this reason means "asked, and there is none".
NONE_REPORTED = "none reported"


def candidate_data(participant: Participant) -> dict[str, Any]:
    """The eligibility engine's input (docs/eligibility-input.md) built from the stored screening forms."""
    protocol = current_protocol()
    screening_code = protocol.schedule.visits[0].code
    forms = FormInstance.objects.filter(participant=participant, visit__code=screening_code).order_by("instance")
    data: dict[str, Any] = {"candidate_id": participant.screening_number,
                            "screening_date": participant.screening_date.isoformat()}
    repeating: dict[str, list[dict[str, Any]]] = {}
    for form in forms:
        definition = protocol.form(form.form_code)
        if definition.repeating:
            rows = repeating.setdefault(form.form_code, [])
            if form.status != FormStatus.NOT_DONE:
                rows.append(dict(form.data))
        elif form.status != FormStatus.NOT_DONE:
            data[form.form_code] = dict(form.data)
    data.update(repeating)
    consent = participant.consents.order_by("signed_at").first()
    if consent is not None and consent.withdrawn_at is None:
        from ildtrial.edc.participants.services import earliest_procedure_date

        first = earliest_procedure_date(participant)
        data["consent"] = {"signed": timezone.localtime(consent.signed_at).isoformat(),
                           "first_procedure": first.isoformat() if first else None}
    else:
        data["consent"] = None
    return data


def evaluate(user, participant: Participant) -> EligibilityAssessment:  # noqa: ANN001
    """Run the engine on the stored data and keep the verdict with its inputs."""
    require(user, Permission.SCREEN_PARTICIPANTS)
    require_site(user, participant.site)
    if participant.status not in (ParticipantStatus.SCREENING, ParticipantStatus.ELIGIBLE):
        raise InputRefused(None, f"{participant} is no longer in screening")
    return evaluate_stored(participant, language=getattr(user, "language", "en"))


def evaluate_stored(participant: Participant, language: str = "en") -> EligibilityAssessment:
    """The engine's verdict on what is stored now (called after every screening form save).

    A new evaluation of an eligible participant whose data changed makes them 'screening'
    again: the earlier sign-off no longer covers what is stored.
    """
    loaded = loaded_protocol()
    inputs = candidate_data(participant)
    previous = latest(participant)
    if previous is not None and previous.inputs == inputs:
        return previous
    try:
        candidate = engine.CandidateData.from_dict(inputs, loaded.protocol)
    except engine.CandidateDataError as exc:
        raise InputRefused(None, "; ".join(f"{path}: {rule}" for path, rule in exc.issues)) from None
    verdict = engine.evaluate(loaded, candidate, language=language)
    assessment = EligibilityAssessment.objects.create(
        participant=participant, evaluated_at=timezone.now(), status=verdict.status, verdict=verdict.to_dict(),
        inputs=inputs, protocol_version=loaded.version, protocol_sha256=loaded.sha256)
    if participant.status == ParticipantStatus.ELIGIBLE:
        with because("screening data changed after the eligibility sign-off; sign again"):
            participant.status = ParticipantStatus.SCREENING
            participant.save()
    return assessment


def latest(participant: Participant) -> EligibilityAssessment | None:
    return participant.eligibility_assessments.order_by("-evaluated_at", "-pk").first()


def signature_meaning(assessment: EligibilityAssessment) -> str:
    if assessment.status == "eligible":
        return (f"I confirm that participant {assessment.participant.screening_number} meets all inclusion criteria "
                f"and no exclusion criterion of protocol {assessment.protocol_version}.")
    return (f"I confirm that participant {assessment.participant.screening_number} is not eligible under protocol "
            f"{assessment.protocol_version} for the reasons listed.")


def confirm(user, assessment: EligibilityAssessment, password: str) -> Participant:  # noqa: ANN001
    """The investigator signs the verdict: the participant becomes eligible or a screen failure."""
    require(user, Permission.SIGN_ELIGIBILITY)
    participant = assessment.participant
    require_site(user, participant.site)
    if latest(participant) != assessment:
        raise InputRefused(None, "a newer evaluation exists; sign the latest one")
    if assessment.signature_id:
        raise InputRefused(None, "this evaluation is already signed")
    if assessment.status == "incomplete":
        missing = [str(m.get("criterion", m)) if isinstance(m, dict) else str(m)
                   for m in assessment.verdict.get("missing", [])]
        raise InputRefused(None, "the evaluation is incomplete: enter the missing data first (criteria "
                                 + ", ".join(missing[:6]) + ")")
    if candidate_data(participant) != assessment.inputs:
        raise InputRefused(None, "the screening data changed after this evaluation; evaluate again before signing")
    authenticate_signer(user, password, assessment, participant.site.code)
    with transaction.atomic():
        signature = sign(user=user, password=password, meaning=signature_meaning(assessment), record=assessment,
                         content=assessment.verdict, site_code=participant.site.code, authenticated=True)
        with because("eligibility signed off"):
            assessment.signature = signature
            assessment.save()
            if assessment.status == "eligible":
                participant.status = ParticipantStatus.ELIGIBLE
                participant.outcome_reason = ""
            else:
                participant.status = ParticipantStatus.SCREEN_FAILED
                reasons = [f"{r['criterion']}: {r['sentence']}" for r in assessment.verdict.get("reasons", [])]
                participant.outcome_reason = "; ".join(reasons) or "not eligible"
            participant.save()
    return participant


def record_screen_failure(user, participant: Participant, reason: str) -> Participant:  # noqa: ANN001
    """End screening early (e.g. the candidate declined) with the reason for the screening log."""
    require(user, Permission.SCREEN_PARTICIPANTS)
    require_site(user, participant.site)
    if participant.status not in (ParticipantStatus.SCREENING, ParticipantStatus.ELIGIBLE):
        raise InputRefused(None, f"{participant} is not in screening")
    if not reason.strip():
        raise InputRefused("reason", "is required for the screening log")
    with because(f"screening ended: {reason.strip()}"):
        participant.status = ParticipantStatus.SCREEN_FAILED
        participant.outcome_reason = reason.strip()
        participant.save()
    return participant
