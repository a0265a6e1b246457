"""A signature binds a person, a time, a stated meaning and the exact content signed."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from ildtrial.edc.audit.models import AuditedModel


class Signature(AuditedModel):
    signer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="signatures")
    signer_name = models.CharField(max_length=300)
    signer_role = models.CharField(max_length=40)
    signed_at = models.DateTimeField()
    meaning = models.TextField()
    record_model = models.CharField(max_length=100)
    record_pk = models.CharField(max_length=64)
    content_sha256 = models.CharField(max_length=64)
    site_code = models.CharField(max_length=8, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["signed_at"]
        indexes = [models.Index(fields=["record_model", "record_pk"], name="signature_record_idx")]

    def __str__(self) -> str:
        return f"signature of {self.signer_name} on {self.record_model} {self.record_pk}"

    def audit_site_code(self) -> str:
        return self.site_code

    @property
    def valid(self) -> bool:
        return self.voided_at is None
