"""Generating the list, allocating the next slot atomically, masking, emergency unblinding."""

from __future__ import annotations

from typing import Any

from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from ildtrial.core import randomization as core
from ildtrial.core.roles import Permission
from ildtrial.edc.audit.context import because
from ildtrial.edc.errors import Denied, InputRefused, require, require_site
from ildtrial.edc.participants.models import Participant, ParticipantStatus
from ildtrial.edc.randomization.models import AllocationList, AllocationSlot, EmergencyUnblinding
from ildtrial.edc.study.protocol import current_protocol

BLINDED = "blinded"


def active_list() -> AllocationList | None:
    return AllocationList.objects.filter(active=True).order_by("-generated_at").first()


def generate(user, seed: int | None = None) -> AllocationList:  # noqa: ANN001
    """Generate and store the allocation list; refused once any slot of the active list is used."""
    require(user, Permission.GENERATE_RANDOMIZATION_LIST)
    protocol = current_protocol()
    try:
        generated = core.generate_list(protocol.randomization, seed)
    except ValueError as exc:
        raise InputRefused("seed", str(exc)) from None
    with transaction.atomic():
        current = active_list()
        if current is not None:
            if current.slots.filter(participant__isnull=False).exists():
                raise InputRefused(None, "the active list is in use; it cannot be replaced")
            with because("replaced by a newly generated list before first use"):
                current.active = False
                current.save()
        config = {"ratio": dict(generated.ratio), "block_sizes": list(generated.block_sizes),
                  "strata": [[f, list(levels)] for f, levels in generated.stratification],
                  "slots_per_stratum": generated.slots_per_stratum}
        stored = AllocationList.objects.create(
            algorithm=generated.algorithm, seed=generated.seed, seed_source=generated.seed_source,
            digest=generated.digest, config=config, generated_by=user, generated_at=timezone.now())
        for slot in generated.slots:
            AllocationSlot.objects.create(allocation_list=stored, stratum=slot.stratum, sequence=slot.sequence,
                                          block=slot.block, block_size=slot.block_size, arm=slot.arm,
                                          number=slot.number)
    return stored


def stratum_of(participant: Participant) -> str:
    """The participant's stratum from the screening form named in the protocol (e.g. DX.diagnosis_group)."""
    protocol = current_protocol()
    levels: list[str] = []
    for stratum in protocol.randomization.strata:
        form_code, _, field_code = stratum.source.partition(".")
        form = participant.forms.filter(form_code=form_code).order_by("instance").first()
        value = form.data.get(field_code) if form else None
        if value not in stratum.levels:
            raise InputRefused(stratum.factor, f"{stratum.source} must be one of {stratum.levels} to randomize "
                                               f"(recorded: {value!r})")
        levels.append(value)
    return core.stratum_key(levels)


def randomize(user, participant: Participant) -> AllocationSlot:  # noqa: ANN001
    """Give the participant the next unused slot of their stratum, atomically.

    The active list row is locked first (FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE
    transactions serialise writers), so two concurrent requests can neither take the same
    slot nor skip one.
    """
    require(user, Permission.RANDOMIZE)
    require_site(user, participant.site)
    if participant.status != ParticipantStatus.ELIGIBLE:
        raise InputRefused(None, f"{participant} is {participant.get_status_display().lower()}; only a participant "
                                 "whose eligibility was signed off can be randomized")
    if participant.active_consent() is None:
        raise InputRefused(None, f"{participant} has no active consent")
    stratum = stratum_of(participant)
    with transaction.atomic():
        current = active_list()
        if current is None:
            raise InputRefused(None, "no allocation list has been generated")
        AllocationList.objects.select_for_update().get(pk=current.pk)
        fresh = Participant.objects.select_for_update().get(pk=participant.pk)
        if fresh.status != ParticipantStatus.ELIGIBLE or AllocationSlot.objects.filter(participant=fresh).exists():
            raise InputRefused(None, f"{participant} is already randomized")
        slot = (AllocationSlot.objects.filter(allocation_list=current, stratum=stratum, participant__isnull=True)
                .order_by("sequence").first())
        if slot is None:
            raise InputRefused(None, f"the allocation list has no slot left in stratum {stratum}")
        now = timezone.now()
        with because("randomized"):
            slot.participant = fresh
            slot.allocated_at = now
            slot.allocated_by = user
            slot.save()
            fresh.status = ParticipantStatus.RANDOMIZED
            fresh.stratum = stratum
            fresh.randomization_number = slot.number
            fresh.randomized_at = now
            fresh.save()
    participant.refresh_from_db()
    _notify_preparation(participant, slot)
    return slot


def _notify_preparation(participant: Participant, slot: AllocationSlot) -> None:
    """Tell the cell lab what to prepare. Only unblinded recipients get the arm."""
    from ildtrial.edc.accounts.models import User

    protocol = current_protocol()
    arm = protocol.arm(slot.arm)
    recipients = [u for u in User.objects.filter(role="cell_lab", is_active=True, sites=participant.site) if u.email]
    if recipients:
        send_mail(
            subject=f"[{protocol.identity.registration}] prepare infusions for {participant.label}",
            message=(f"Participant {participant.label} ({participant.site.code}) was randomized.\n"
                     f"Prepare: {arm.intervention.name.en}, {arm.intervention.dose:g} {arm.intervention.dose_unit} "
                     "per infusion. This message is for the unblinded cell-therapy lab only."),
            from_email=None, recipient_list=[u.email for u in recipients], fail_silently=True)


def sees_arm_of(user, participant: Participant) -> bool:  # noqa: ANN001
    """Whether this user may see this participant's arm (role, or their own emergency unblinding)."""
    if user.sees_allocation():
        return True
    return EmergencyUnblinding.objects.filter(participant=participant, user=user).exists()


def arm_for(user, participant: Participant) -> str | None:  # noqa: ANN001
    """The arm code for display, ``BLINDED`` when concealed, None before randomization."""
    try:
        slot = participant.allocation
    except AllocationSlot.DoesNotExist:
        return None
    return slot.arm if sees_arm_of(user, participant) else BLINDED


def emergency_unblind(user, participant: Participant, *, reason: str, password: str) -> str:  # noqa: ANN001
    """Reveal one participant's arm to an investigator in an emergency; recorded and notified."""
    from ildtrial.edc.accounts.models import User

    require(user, Permission.EMERGENCY_UNBLIND)
    require_site(user, participant.site)
    protocol = current_protocol()
    if not protocol.is_blinded:
        raise InputRefused(None, "the trial is open label; the arm is already shown")
    if not reason.strip():
        raise InputRefused("reason", "is required: say why the treatment must be known")
    if not password or not user.check_password(password):
        raise InputRefused("password", "the password is not correct")
    try:
        slot = participant.allocation
    except AllocationSlot.DoesNotExist:
        raise InputRefused(None, f"{participant} is not randomized") from None
    with because(f"emergency unblinding: {reason.strip()}"):
        EmergencyUnblinding.objects.create(participant=participant, user=user, reason=reason.strip(),
                                           unblinded_at=timezone.now())
    unblinded = set(protocol.masking.unblinded_roles)
    recipients = [u.email for u in User.objects.filter(is_active=True, role__in=unblinded | {"dsmb_member"}) if u.email]
    if recipients:
        send_mail(subject=f"[{protocol.identity.registration}] EMERGENCY UNBLINDING of {participant.label}",
                  message=(f"{user.get_full_name() or user.username} ({user.role_label}) unblinded participant "
                           f"{participant.label} at {participant.site.code}.\nReason: {reason.strip()}"),
                  from_email=None, recipient_list=recipients, fail_silently=True)
    return slot.arm


def balance(user) -> dict[str, Any]:  # noqa: ANN001
    """The balance report of the active list (unblinded statistician only: it shows arms)."""
    require(user, Permission.GENERATE_RANDOMIZATION_LIST)
    current = active_list()
    if current is None:
        raise InputRefused(None, "no allocation list has been generated")
    generated = regenerate(current)
    # slots are used in sequence order, so the number used per stratum is all the report needs
    used: dict[str, int] = {}
    for stratum in current.slots.filter(participant__isnull=False).values_list("stratum", flat=True):
        used[stratum] = used.get(stratum, 0) + 1
    report = core.balance_report(generated, used)
    report["verified"] = generated.digest == current.digest
    return report


def regenerate(stored: AllocationList) -> core.AllocationList:
    """Rebuild the list from its seed and configuration, to check the stored one against it."""
    cfg = stored.config

    class _Stratum:
        def __init__(self, factor: str, levels: list[str]):
            self.factor, self.levels = factor, levels

    class _Config:
        ratio = cfg["ratio"]
        block_sizes = cfg["block_sizes"]
        strata = [_Stratum(f, levels) for f, levels in cfg["strata"]]
        slots_per_stratum = cfg["slots_per_stratum"]

    if stored.seed_source not in ("given", "secrets"):
        raise Denied("unknown seed source")
    return core.generate_list(_Config(), stored.seed)
