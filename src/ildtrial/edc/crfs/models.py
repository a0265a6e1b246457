"""Form instances (REDCap/OpenClinica style): a new field is a protocol amendment, not a migration."""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from ildtrial.edc.audit.models import AuditedModel


class FormStatus(models.TextChoices):
    NOT_STARTED = "not_started", "Not started"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETE = "complete", "Complete"
    VERIFIED = "verified", "Source-verified"
    SIGNED = "signed", "Signed"
    LOCKED = "locked", "Locked"
    NOT_DONE = "not_done", "Not done"


class FormInstance(AuditedModel):
    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT, related_name="forms")
    visit = models.ForeignKey("visits.Visit", on_delete=models.PROTECT, related_name="forms")
    form_code = models.CharField(max_length=8)
    form_version = models.PositiveIntegerField()
    instance = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=20, choices=FormStatus.choices, default=FormStatus.IN_PROGRESS)
    data = models.JSONField(default=dict)
    derived = models.JSONField(default=dict, blank=True)
    confirmed_warnings = models.JSONField(default=list, blank=True)
    not_done_reason = models.TextField(blank=True)
    protocol_version = models.CharField(max_length=20)
    revision = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    audit_exclude_fields: ClassVar[frozenset[str]] = frozenset({"updated_at", "derived"})
    audit_expand_fields: ClassVar[frozenset[str]] = frozenset({"data"})

    class Meta:
        ordering = ["participant", "visit", "form_code", "instance"]
        constraints = [
            models.UniqueConstraint(fields=["visit", "form_code", "instance"], name="form_instance_unique"),
        ]
        indexes = [models.Index(fields=["participant", "form_code"], name="form_participant_code_idx")]

    def __str__(self) -> str:
        suffix = f" #{self.instance}" if self.instance > 1 else ""
        return f"{self.form_code}{suffix} at {self.visit.code} of {self.participant}"

    def audit_site_code(self) -> str:
        return self.participant.site.code


class SourceVerification(AuditedModel):
    """A monitor's check of values against source documents: a whole form or one field, at one revision."""

    form = models.ForeignKey(FormInstance, on_delete=models.PROTECT, related_name="verifications")
    field_code = models.CharField(max_length=64, blank=True)
    form_revision = models.PositiveIntegerField()
    verified_by = models.ForeignKey("accounts.User", on_delete=models.PROTECT, related_name="+")
    verified_at = models.DateTimeField()

    class Meta:
        ordering = ["verified_at"]

    def __str__(self) -> str:
        return f"SDV of {self.form} {self.field_code or '(form)'}"

    def audit_site_code(self) -> str:
        return self.form.participant.site.code


class StudyLock(AuditedModel):
    """Database lock: while locked no form can be created, changed or marked not done."""

    locked = models.BooleanField(default=False)
    changed_by = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return "study lock"
