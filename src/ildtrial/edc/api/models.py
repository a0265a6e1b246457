"""API tokens: a long random secret shown once, stored only as its SHA-256 digest."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models

from ildtrial.edc.audit.models import AuditedModel


class ApiToken(AuditedModel):
    """One bearer token of one user. Audited (creation and revocation), never deleted.

    Why SHA-256 and not a password hash: the secret is 256 random bits, so a fast digest
    cannot be brute-forced, and the lookup by digest is one indexed query per request.
    ``last_used_at`` is bookkeeping, not trial data: excluded from the audit trail so a
    read does not write an audit entry.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="the first characters of the token, to recognise it")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    created_by = models.CharField(max_length=150, help_text="who issued the token (a username, or 'cli')")
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=150, blank=True)

    audit_exclude_fields: ClassVar[frozenset[str]] = frozenset({"last_used_at"})
    audit_masked_fields: ClassVar[frozenset[str]] = frozenset({"token_hash"})

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"API token {self.prefix}… of {self.user}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None
