"""A visit record per protocol visit (or unscheduled visit) of a participant, and deviations."""

from __future__ import annotations

from django.db import models

from ildtrial.edc.audit.models import AuditedModel


class VisitState(models.TextChoices):
    PLANNED = "planned", "Planned"
    DONE = "done", "Done"
    MISSED = "missed", "Missed"


class Visit(AuditedModel):
    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT, related_name="visits")
    code = models.CharField(max_length=8)
    state = models.CharField(max_length=10, choices=VisitState.choices, default=VisitState.PLANNED)
    actual_date = models.DateField(null=True, blank=True)
    unscheduled = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    protocol_version = models.CharField(max_length=20)

    class Meta:
        ordering = ["participant", "actual_date", "code"]
        constraints = [models.UniqueConstraint(fields=["participant", "code"], name="visit_code_unique")]

    def __str__(self) -> str:
        return f"{self.code} of {self.participant}"

    def audit_site_code(self) -> str:
        return self.participant.site.code


class ProtocolDeviation(AuditedModel):
    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT, related_name="deviations")
    visit = models.ForeignKey(Visit, null=True, blank=True, on_delete=models.PROTECT, related_name="deviations")
    kind = models.CharField(max_length=40)
    description = models.TextField()
    detected_at = models.DateTimeField()
    resolved = models.BooleanField(default=False)

    class Meta:
        ordering = ["detected_at"]

    def __str__(self) -> str:
        return f"deviation {self.kind} of {self.participant}"

    def audit_site_code(self) -> str:
        return self.participant.site.code
