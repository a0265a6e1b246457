"""Participant list, screening log, registration, the participant page and its actions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from ildtrial.core.roles import Permission
from ildtrial.edc.errors import InputRefused
from ildtrial.edc.participants import services
from ildtrial.edc.participants.forms import (
    ConsentForm,
    PasswordSignForm,
    ReasonForm,
    RegisterForm,
    UnblindForm,
    WithdrawForm,
)
from ildtrial.edc.participants.models import Participant, ParticipantStatus
from ildtrial.edc.permissions import require_permission
from ildtrial.edc.randomization import services as randomization
from ildtrial.edc.screening import services as screening
from ildtrial.edc.study.models import Site
from ildtrial.edc.study.protocol import current_protocol


def _attempt(request: HttpRequest, form: Any, action: Callable[[], Any], success: str) -> bool:
    """Run a service call; put a refusal on the form (field named) instead of losing the input."""
    try:
        action()
    except InputRefused as exc:
        if form is not None and exc.field in getattr(form, "fields", {}):
            form.add_error(exc.field, exc.message)
        else:
            messages.error(request, str(exc))
        return False
    messages.success(request, success)
    return True


@require_permission(Permission.VIEW_PARTICIPANTS)
def participant_list(request: HttpRequest) -> HttpResponse:
    participants = services.visible_to(request.user).select_related("allocation").order_by("screening_number")
    rows = [{"p": p, "arm": randomization.arm_for(request.user, p) if p.randomization_number else None}
            for p in participants]
    return render(request, "participants/list.html", {"rows": rows})


@require_permission(Permission.VIEW_PARTICIPANTS)
def screening_log(request: HttpRequest) -> HttpResponse:
    """Every screening attempt with outcome and reason, and the counts of the CONSORT enrolment box."""
    attempts = list(services.visible_to(request.user).order_by("screening_date", "screening_number"))
    counts = Counter(p.status for p in attempts)
    failure_reasons = Counter()
    for p in attempts:
        if p.status == ParticipantStatus.SCREEN_FAILED:
            for part in (p.outcome_reason or "not recorded").split("; "):
                failure_reasons[part.split(":")[0]] += 1
    randomized = [p for p in attempts if p.randomization_number]
    by_arm: Counter[str] = Counter()
    if request.user.sees_allocation():
        by_arm = Counter(randomization.arm_for(request.user, p) for p in randomized)
    people = len([p for p in attempts if p.rescreen_of_id is None])
    return render(request, "participants/screening_log.html", {
        "attempts": attempts, "counts": counts, "failure_reasons": sorted(failure_reasons.items()),
        "randomized": len(randomized), "by_arm": sorted(by_arm.items()), "people": people})


@require_permission(Permission.SCREEN_PARTICIPANTS)
def register(request: HttpRequest) -> HttpResponse:
    sites = list(Site.objects.filter(code__in=request.user.site_codes()))
    failures = services.visible_to(request.user).filter(status=ParticipantStatus.SCREEN_FAILED,
                                                        rescreened_as__isnull=True)
    form = RegisterForm(request.POST or None, sites=sites, failures=failures)
    if request.method == "POST" and form.is_valid():
        site = next(s for s in sites if s.code == form.cleaned_data["site"])
        earlier = failures.filter(pk=form.cleaned_data["rescreen_of"]).first() if form.cleaned_data["rescreen_of"] else None
        created: list[Participant] = []
        if _attempt(request, form, lambda: created.append(services.register_candidate(
                request.user, site, form.cleaned_data["screening_date"], earlier)), _("Screening attempt opened.")):
            return redirect("participants:detail", created[0].pk)
    return render(request, "participants/register.html", {"form": form})


@require_permission(Permission.VIEW_PARTICIPANTS)
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    participant = services.get_for(request.user, pk)
    protocol = current_protocol()
    screening_code = protocol.schedule.visits[0].code
    stored = {(f.form_code, f.instance): f for f in participant.forms.filter(visit__code=screening_code)}
    screening_forms = []
    for code in protocol.visit(screening_code).forms:
        definition = protocol.form(code)
        instances = sorted((f for (c, _i), f in stored.items() if c == code), key=lambda f: f.instance)
        screening_forms.append({"definition": definition, "instances": instances})
    assessment = screening.latest(participant)
    from ildtrial.edc.visits.services import calendar

    return render(request, "participants/detail.html", {
        "participant": participant, "consent": participant.active_consent(),
        "consents": participant.consents.all(), "screening_forms": screening_forms, "assessment": assessment,
        "meaning": screening.signature_meaning(assessment) if assessment else "",
        "arm": randomization.arm_for(request.user, participant),
        "consent_form": ConsentForm(), "withdraw_form": WithdrawForm(), "sign_form": PasswordSignForm(),
        "fail_form": ReasonForm(), "unblind_form": UnblindForm(), "calendar": calendar(participant),
        "screening_code": screening_code,
    })


@require_POST
@require_permission(Permission.RECORD_CONSENT)
def consent(request: HttpRequest, pk: int) -> HttpResponse:
    participant = services.get_for(request.user, pk)
    form = ConsentForm(request.POST)
    if form.is_valid():
        _attempt(request, form, lambda: services.record_consent(
            request.user, participant, form_version=form.cleaned_data["form_version"],
            signed_at=form.cleaned_data["signed_at"]), _("Consent recorded."))
    else:
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    return redirect("participants:detail", pk)


@require_POST
@require_permission(Permission.RECORD_CONSENT)
def withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    participant = services.get_for(request.user, pk)
    form = WithdrawForm(request.POST)
    if form.is_valid():
        _attempt(request, form, lambda: services.withdraw_consent(
            request.user, participant, withdrawn_at=form.cleaned_data["withdrawn_at"],
            reason=form.cleaned_data["reason"]), _("Withdrawal of consent recorded."))
    else:
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    return redirect("participants:detail", pk)


@require_POST
@require_permission(Permission.SCREEN_PARTICIPANTS)
def evaluate(request: HttpRequest, pk: int) -> HttpResponse:
    participant = services.get_for(request.user, pk)
    _attempt(request, None, lambda: screening.evaluate(request.user, participant), _("Eligibility evaluated."))
    return redirect("participants:detail", pk)


@require_POST
@require_permission(Permission.SIGN_ELIGIBILITY)
def sign_eligibility(request: HttpRequest, pk: int) -> HttpResponse:
    participant = services.get_for(request.user, pk)
    assessment = screening.latest(participant)
    form = PasswordSignForm(request.POST)
    if assessment is None:
        messages.error(request, _("Evaluate eligibility first."))
    elif form.is_valid():
        from ildtrial.edc.esign.services import SignatureRefused

        try:
            screening.confirm(request.user, assessment, form.cleaned_data["password"])
        except SignatureRefused as exc:
            messages.error(request, str(exc))
        except InputRefused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, _("Eligibility signed."))
    return redirect("participants:detail", pk)


@require_POST
@require_permission(Permission.SCREEN_PARTICIPANTS)
def screen_fail(request: HttpRequest, pk: int) -> HttpResponse:
    participant = services.get_for(request.user, pk)
    form = ReasonForm(request.POST)
    if form.is_valid():
        _attempt(request, form, lambda: screening.record_screen_failure(request.user, participant,
                                                                        form.cleaned_data["reason"]),
                 _("Screening ended."))
    else:
        messages.error(request, _("reason: is required for the screening log"))
    return redirect("participants:detail", pk)


@require_POST
@require_permission(Permission.RANDOMIZE)
def randomize(request: HttpRequest, pk: int) -> HttpResponse:
    participant = services.get_for(request.user, pk)
    done: list[Any] = []
    if _attempt(request, None, lambda: done.append(randomization.randomize(request.user, participant)),
                _("Participant randomized.")):
        participant.refresh_from_db()
        messages.info(request, _("Randomization number: %(n)s") % {"n": participant.randomization_number})
    return redirect("participants:detail", pk)


@require_permission(Permission.EMERGENCY_UNBLIND)
def unblind(request: HttpRequest, pk: int) -> HttpResponse:
    participant = services.get_for(request.user, pk)
    form = UnblindForm(request.POST or None)
    revealed = None
    if request.method == "POST" and form.is_valid():
        result: list[str] = []
        if _attempt(request, form, lambda: result.append(randomization.emergency_unblind(
                request.user, participant, reason=form.cleaned_data["reason"],
                password=form.cleaned_data["password"])), _("Emergency unblinding recorded; the unblinded roles "
                                                              "were notified.")):
            revealed = current_protocol().arm(result[0])
    return render(request, "participants/unblind.html", {"participant": participant, "form": form,
                                                          "revealed": revealed})
