"""Stopping rules: evaluated with the core on every SAE save, recorded once when triggered.

Only relatedness to the *product* counts (the core's :class:`SaeSummary` carries nothing
else), every currently serious event is counted once, and an event downgraded to
non-serious drops out. The verdict is pooled over arms: a halt must not wait for
unblinding, and the e-mail announcing it must not reveal the arm.
"""

from __future__ import annotations

from django.utils import timezone

from ildtrial.core import safety as core
from ildtrial.edc.safety.models import AdverseEvent, StoppingRuleEvent
from ildtrial.edc.study.protocol import current_protocol


def current_saes() -> list[core.SaeSummary]:
    """Every serious AE of the trial, all sites, as the core's stopping rules see it."""
    events = AdverseEvent.objects.filter(serious=True).select_related("participant").order_by("pk")
    return [core.SaeSummary(sae_id=ae.sae_id, relatedness_product=ae.relatedness_product,
                            subject_id=ae.participant.label) for ae in events]


def evaluate() -> list[core.StoppingRuleResult]:
    return core.evaluate_stopping_rules(current_protocol(), current_saes())


def active_flags() -> list[StoppingRuleEvent]:
    """Triggered rules whose halt has not been lifted: the study flag."""
    return list(StoppingRuleEvent.objects.filter(lifted_at__isnull=True).order_by("triggered_at"))


def evaluate_and_record(trigger: AdverseEvent | None) -> list[StoppingRuleEvent]:
    """Evaluate every rule; record (and return) the rules that have just triggered.

    A rule already flagged is not recorded again, so further related SAEs do not send a
    fresh halt notice each time; they remain visible in the DSMB reports.
    """
    protocol = current_protocol()
    new: list[StoppingRuleEvent] = []
    for result in evaluate():
        if not result.triggered:
            continue
        if StoppingRuleEvent.objects.filter(rule_id=result.rule_id, lifted_at__isnull=True).exists():
            continue
        new.append(StoppingRuleEvent.objects.create(
            rule_id=result.rule_id, description=result.description.en, triggered_at=timezone.now(),
            count=result.count, threshold=result.threshold, counted_sae_ids=list(result.counted_sae_ids),
            trigger_event=trigger, protocol_version=protocol.version))
    return new
