"""Keep the infusion-related flag true when infusion data arrive after the adverse event.

The flag is stored on the event (analysis datasets read it), but an INF form is often
entered or corrected after the AE it explains. When an INF form is saved, the flags of
that participant's events are recomputed in the same transaction, with the reason stated.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from ildtrial.edc.audit import context
from ildtrial.edc.crfs.models import FormInstance

REASON = "infusion data changed: infusion-related flag recomputed"


@receiver(post_save, sender=FormInstance, dispatch_uid="safety_infusion_flags")
def infusion_form_saved(sender: type, instance: FormInstance, **kwargs: Any) -> None:
    from ildtrial.edc.safety.models import AdverseEvent
    from ildtrial.edc.safety.services import INFUSION_FORM, refresh_infusion_flags

    if instance.form_code != INFUSION_FORM or kwargs.get("raw"):
        return
    if not AdverseEvent.objects.filter(participant_id=instance.participant_id).exists():
        return
    if context.current() is None:  # a save outside any context is refused by the form itself
        return
    with context.because(REASON):
        refresh_infusion_flags(instance.participant)
