"""A query and its thread: open → answered → closed, or re-opened."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from ildtrial.edc.audit.models import AuditedModel


class QueryState(models.TextChoices):
    OPEN = "open", "Open"
    ANSWERED = "answered", "Answered"
    CLOSED = "closed", "Closed"


class Query(AuditedModel):
    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT, related_name="queries")
    form = models.ForeignKey("crfs.FormInstance", on_delete=models.PROTECT, related_name="queries")
    field_code = models.CharField(max_length=64, blank=True)
    rule = models.CharField(max_length=64, blank=True)
    origin = models.CharField(max_length=10, choices=[("auto", "Edit check"), ("manual", "Person")])
    state = models.CharField(max_length=10, choices=QueryState.choices, default=QueryState.OPEN)
    text = models.TextField()
    raised_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+")
    raised_at = models.DateTimeField()

    class Meta:
        ordering = ["raised_at"]
        indexes = [models.Index(fields=["participant", "state"], name="query_participant_state_idx")]

    def __str__(self) -> str:
        return f"query on {self.form.form_code}.{self.field_code or '*'} of {self.participant}"

    def audit_site_code(self) -> str:
        return self.participant.site.code


class QueryMessage(AuditedModel):
    query = models.ForeignKey(Query, on_delete=models.PROTECT, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="+")
    action = models.CharField(max_length=10)  # raise / answer / close / reopen
    text = models.TextField()
    written_at = models.DateTimeField()

    class Meta:
        ordering = ["written_at", "pk"]

    def __str__(self) -> str:
        return f"{self.action} on {self.query}"

    def audit_site_code(self) -> str:
        return self.query.participant.site.code
