"""Sites and the registered protocol versions."""

from __future__ import annotations

from django.db import models

from ildtrial.edc.audit.models import AuditedModel


class Site(AuditedModel):
    code = models.CharField(max_length=8, unique=True)
    name = models.CharField(max_length=200)
    city = models.CharField(max_length=100)
    country = models.CharField(max_length=2)
    timezone = models.CharField(max_length=64, default="Europe/Moscow")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    def audit_site_code(self) -> str:
        return self.code


class ProtocolRecord(models.Model):
    """A protocol version that has been in force here; records store the version they were entered under."""

    version = models.CharField(max_length=20)
    sha256 = models.CharField(max_length=64)
    effective_date = models.DateField()
    source = models.CharField(max_length=255)
    registered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["registered_at"]
        constraints = [models.UniqueConstraint(fields=["version", "sha256"], name="protocol_version_digest_unique")]

    def __str__(self) -> str:
        return f"protocol {self.version} ({self.sha256[:12]})"
