"""Receivers that put authentication events and many-to-many changes into the trail."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed
from django.dispatch import receiver

from ildtrial.edc.audit import context
from ildtrial.edc.audit.middleware import client_ip
from ildtrial.edc.audit.models import AuditedModel, append


def _ip(request: Any) -> str:
    return client_ip(request) if request is not None else ""


@receiver(user_logged_in)
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    append(action="login", model="accounts.User", object_pk=user.pk, object_repr=user.get_username(),
           ctx=context.AuditContext(user=user, source="web", ip=_ip(request)))


@receiver(user_logged_out)
def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is None:
        return
    append(action="logout", model="accounts.User", object_pk=user.pk, object_repr=user.get_username(),
           ctx=context.AuditContext(user=user, source="web", ip=_ip(request)))


@receiver(user_login_failed)
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    username = str(credentials.get("username", ""))[:150]
    append(action="login_failed", model="accounts.User", object_repr=username,
           ctx=context.AuditContext(user=None, source="web", ip=_ip(request)), actor_username=username or "unknown")


@receiver(m2m_changed)
def _m2m_changed(sender: Any, instance: Any, action: str, reverse: bool, model: Any, pk_set: Any, **kwargs: Any) -> None:
    """Membership changes (e.g. a user's sites) are changes too; record them on the owning record."""
    if reverse or not isinstance(instance, AuditedModel) or action not in {"post_add", "post_remove", "post_clear"}:
        return
    field = next((f.name for f in instance._meta.many_to_many if f.remote_field.through is sender), "members")
    verb = {"post_add": "added", "post_remove": "removed", "post_clear": "cleared"}[action]
    ctx = context.require()
    append(action="update", model=instance._meta.label, object_pk=instance.pk, object_repr=instance._audit_label(),
           changes={field: {verb: sorted(str(pk) for pk in (pk_set or []))}}, site_code=instance.audit_site_code(), ctx=ctx)
