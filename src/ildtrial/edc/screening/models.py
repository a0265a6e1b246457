"""The eligibility verdict with its evidence, the inputs it was computed from, and its sign-off."""

from __future__ import annotations

from django.db import models

from ildtrial.edc.audit.models import AuditedModel


class EligibilityAssessment(AuditedModel):
    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT,
                                    related_name="eligibility_assessments")
    evaluated_at = models.DateTimeField()
    status = models.CharField(max_length=20)  # eligible / not_eligible / incomplete
    verdict = models.JSONField()
    inputs = models.JSONField()
    protocol_version = models.CharField(max_length=20)
    protocol_sha256 = models.CharField(max_length=64)
    signature = models.OneToOneField("esign.Signature", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")

    class Meta:
        ordering = ["evaluated_at"]

    def __str__(self) -> str:
        return f"eligibility of {self.participant} ({self.status})"

    def audit_site_code(self) -> str:
        return self.participant.site.code
