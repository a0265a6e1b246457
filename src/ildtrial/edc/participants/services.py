"""Registering candidates, consent and its withdrawal, the site-scoped participant list."""

from __future__ import annotations

from datetime import date, datetime

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from ildtrial.core.roles import Permission
from ildtrial.edc.audit.context import because
from ildtrial.edc.errors import InputRefused, require, require_site
from ildtrial.edc.participants.models import Consent, Participant, ParticipantStatus
from ildtrial.edc.study.models import Site
from ildtrial.edc.study.protocol import current_protocol


def visible_to(user) -> QuerySet[Participant]:  # noqa: ANN001
    """Participants of the user's sites only; nothing for roles without access to participants."""
    if not user.can(Permission.VIEW_PARTICIPANTS):
        return Participant.objects.none()
    return Participant.objects.filter(site__code__in=user.site_codes()).select_related("site")


def get_for(user, pk: int) -> Participant:  # noqa: ANN001
    """The participant if the user may see it; the same 'not found' otherwise, so ids cannot be probed."""
    from django.http import Http404

    participant = visible_to(user).filter(pk=pk).first()
    if participant is None:
        raise Http404("no such participant")
    return participant


def register_candidate(user, site: Site, screening_date: date, rescreen_of: Participant | None = None) -> Participant:  # noqa: ANN001
    """Open a screening attempt (and its screening visit) for a candidate."""
    require(user, Permission.SCREEN_PARTICIPANTS)
    require_site(user, site)
    today = timezone.localdate()
    if screening_date > today:
        raise InputRefused("screening_date", f"{screening_date} is in the future")
    if rescreen_of is not None:
        if rescreen_of.site_id != site.pk:
            raise InputRefused("rescreen_of", "a re-screening must be at the site of the first attempt")
        if rescreen_of.status != ParticipantStatus.SCREEN_FAILED:
            raise InputRefused("rescreen_of", f"{rescreen_of} is not a screen failure and cannot be re-screened")
        if Participant.objects.filter(rescreen_of=rescreen_of).exists():
            raise InputRefused("rescreen_of", f"{rescreen_of} was already re-screened")
    from ildtrial.edc.visits.models import Visit, VisitState

    protocol = current_protocol()
    screening_code = protocol.schedule.visits[0].code
    for _attempt in range(5):
        number = Participant.objects.filter(site=site).count() + 1
        try:
            with transaction.atomic():
                participant = Participant.objects.create(
                    site=site, screening_number=f"{site.code}-S{number:03d}", screening_date=screening_date,
                    rescreen_of=rescreen_of, protocol_version=protocol.version)
                Visit.objects.create(participant=participant, code=screening_code, state=VisitState.DONE,
                                     actual_date=screening_date, protocol_version=protocol.version)
                return participant
        except IntegrityError:
            continue  # another coordinator took the number at the same moment
    raise InputRefused(None, "could not assign a screening number; try again")


def record_consent(user, participant: Participant, *, form_version: str, signed_at: datetime,  # noqa: ANN001
                   obtained_by=None) -> Consent:  # noqa: ANN001
    """Record informed consent; it must precede every study procedure."""
    require(user, Permission.RECORD_CONSENT)
    require_site(user, participant.site)
    if not form_version.strip():
        raise InputRefused("form_version", "is required (the version of the consent form signed)")
    if timezone.is_naive(signed_at):
        signed_at = timezone.make_aware(signed_at)
    if signed_at > timezone.now():
        raise InputRefused("signed_at", "consent cannot be dated in the future")
    if participant.active_consent() is not None:
        raise InputRefused(None, f"{participant} already has an active consent")
    earliest = earliest_procedure_date(participant)
    if earliest is not None and timezone.localtime(signed_at).date() > earliest:
        raise InputRefused("signed_at", f"consent on {timezone.localtime(signed_at).date()} is after a study "
                                        f"procedure dated {earliest}; no procedure may precede consent")
    return Consent.objects.create(participant=participant, form_version=form_version.strip(), signed_at=signed_at,
                                  obtained_by=obtained_by or user, protocol_version=current_protocol().version)


def earliest_procedure_date(participant: Participant) -> date | None:
    """The earliest date of any study procedure recorded for the participant (each form's procedure date)."""
    protocol = current_protocol()
    dating = {f.code: f.procedure_date for f in protocol.forms if f.procedure_date}
    dates: list[date] = []
    for form in participant.forms.all():
        key = dating.get(form.form_code)
        value = form.data.get(key) if key else None
        if value:
            dates.append(date.fromisoformat(value))
    return min(dates) if dates else None


def withdraw_consent(user, participant: Participant, *, withdrawn_at: datetime, reason: str) -> Consent:  # noqa: ANN001
    require(user, Permission.RECORD_CONSENT)
    require_site(user, participant.site)
    consent = participant.active_consent()
    if consent is None:
        raise InputRefused(None, f"{participant} has no active consent to withdraw")
    if not reason.strip():
        raise InputRefused("reason", "is required")
    if timezone.is_naive(withdrawn_at):
        withdrawn_at = timezone.make_aware(withdrawn_at)
    if withdrawn_at < consent.signed_at or withdrawn_at > timezone.now():
        raise InputRefused("withdrawn_at", "must be between the consent and now")
    with transaction.atomic(), because(f"consent withdrawn: {reason.strip()}"):
        consent.withdrawn_at = withdrawn_at
        consent.withdrawal_reason = reason.strip()
        consent.save()
        if participant.status in (ParticipantStatus.SCREENING, ParticipantStatus.ELIGIBLE):
            participant.status = ParticipantStatus.SCREEN_FAILED
            participant.outcome_reason = f"consent withdrawn: {reason.strip()}"
        elif participant.status == ParticipantStatus.RANDOMIZED:
            participant.status = ParticipantStatus.WITHDRAWN
            participant.outcome_reason = f"consent withdrawn: {reason.strip()}"
        participant.save()
    return consent
