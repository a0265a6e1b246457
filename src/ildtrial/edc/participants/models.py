"""A participant is one screening attempt and, if randomized, the person followed for a year.

Re-screening creates a new participant record linked to the earlier attempt, so the
screening log keeps every attempt with its outcome (what a CONSORT enrolment box counts).
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models

from ildtrial.edc.audit.models import AuditedModel


class ParticipantStatus(models.TextChoices):
    SCREENING = "screening", "Screening"
    SCREEN_FAILED = "screen_failed", "Screen failure"
    ELIGIBLE = "eligible", "Eligible, not yet randomized"
    RANDOMIZED = "randomized", "Randomized"
    WITHDRAWN = "withdrawn", "Withdrawn"
    COMPLETED = "completed", "Completed"
    DIED = "died", "Died"


class Participant(AuditedModel):
    site = models.ForeignKey("study.Site", on_delete=models.PROTECT, related_name="participants")
    screening_number = models.CharField(max_length=20, unique=True)
    rescreen_of = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="rescreened_as")
    status = models.CharField(max_length=20, choices=ParticipantStatus.choices, default=ParticipantStatus.SCREENING)
    screening_date = models.DateField()
    outcome_reason = models.TextField(blank=True)
    stratum = models.CharField(max_length=40, blank=True)
    randomization_number = models.CharField(max_length=20, blank=True)
    randomized_at = models.DateTimeField(null=True, blank=True)
    protocol_version = models.CharField(max_length=20)
    created_at = models.DateTimeField(auto_now_add=True)

    audit_exclude_fields: ClassVar[frozenset[str]] = frozenset({"created_at"})

    class Meta:
        ordering = ["screening_number"]
        indexes = [models.Index(fields=["site", "status"], name="participant_site_status_idx")]

    def __str__(self) -> str:
        return self.screening_number

    def audit_site_code(self) -> str:
        return self.site.code

    @property
    def label(self) -> str:
        """How the participant is shown: randomization number once randomized, else screening number."""
        return self.randomization_number or self.screening_number

    def active_consent(self) -> Consent | None:
        return self.consents.filter(withdrawn_at__isnull=True).order_by("-signed_at").first()


class Consent(AuditedModel):
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="consents")
    form_version = models.CharField(max_length=40)
    signed_at = models.DateTimeField()
    obtained_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawal_reason = models.TextField(blank=True)
    protocol_version = models.CharField(max_length=20)

    class Meta:
        ordering = ["signed_at"]

    def __str__(self) -> str:
        return f"consent {self.form_version} of {self.participant}"

    def audit_site_code(self) -> str:
        return self.participant.site.code
