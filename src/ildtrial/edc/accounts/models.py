"""The user: one role, the sites they work at, the language they read."""

from __future__ import annotations

from typing import ClassVar

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models

from ildtrial.core.roles import (
    Permission,
    Role,
    has_permission,
    requires_two_factor,
    sees_allocation,
)
from ildtrial.edc.audit.models import AuditedModel


class User(AuditedModel, AbstractUser):
    """A person using the system. Roles are single: separation of duties is per account."""

    audit_exclude_fields: ClassVar[frozenset[str]] = frozenset({"last_login"})
    audit_masked_fields: ClassVar[frozenset[str]] = frozenset({"password"})
    # user administration is not trial data; its changes are audited with the reason given when there is one
    audit_reason_required: ClassVar[bool] = False

    role = models.CharField(max_length=40, choices=[(r.value, r.label) for r in Role])
    sites = models.ManyToManyField("study.Site", blank=True, related_name="users")
    language = models.CharField(max_length=5, choices=[("en", "English"), ("ru", "Русский")], default="en")
    objects = UserManager()  # type: ignore[assignment]

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.username

    def can(self, permission: Permission | str) -> bool:
        """The declared role matrix decides; inactive accounts can do nothing."""
        return bool(self.is_active and has_permission(self.role, permission))

    def sees_allocation(self) -> bool:
        from ildtrial.edc.study.protocol import current_protocol

        protocol = current_protocol()
        return bool(self.is_active and sees_allocation(self.role, protocol.is_blinded, set(protocol.masking.unblinded_roles)))

    def needs_two_factor(self) -> bool:
        from ildtrial.edc.study.protocol import current_protocol

        return requires_two_factor(self.role, set(current_protocol().masking.unblinded_roles))

    def site_codes(self) -> list[str]:
        return sorted(s.code for s in self.sites.all())

    @property
    def role_label(self) -> str:
        try:
            return Role(self.role).label
        except ValueError:
            return self.role
