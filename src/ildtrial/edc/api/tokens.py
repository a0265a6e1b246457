"""Issuing, checking and revoking API tokens.

Decisions:

* A token acts as its user: the same role matrix, sites and blinding as that user's pages.
  It is not a way around anything, so it carries no scopes of its own.
* Who issues: the user for their own account (the token page, reached after sign-in and,
  for administrators and unblinded roles, after the second factor), an administrator
  (``MANAGE_USERS``) for anyone, or the ``ildtrial api-token`` command (shell access to
  the server is the administrator's). Roles that must use TOTP on the pages may hold
  tokens: the second factor was passed when the token was created; a token is a
  credential for a program and is revoked, not re-verified. Deactivating the account or
  revoking the token stops it at once.
* The secret is shown once and stored as a SHA-256 digest; the first characters are kept
  to recognise it in lists. ``last_used_at`` is written at most once a minute per token.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from ildtrial.core.roles import Permission
from ildtrial.edc.api.models import ApiToken
from ildtrial.edc.audit.context import because
from ildtrial.edc.errors import Denied, InputRefused

TOKEN_PREFIX = "ildt_"
_TOUCH_EVERY = timedelta(minutes=1)


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _may_manage(actor: Any, user: Any) -> bool:
    return actor is None or actor.pk == user.pk or actor.can(Permission.MANAGE_USERS)


def issue(actor: Any, user: Any, name: str) -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns the record and the secret (shown once, never stored).

    ``actor`` None means the command line. The caller provides the audit context.
    """
    if not _may_manage(actor, user):
        raise Denied("only the account holder or an administrator may create an API token")
    if not user.is_active:
        raise InputRefused("user", f"{user} is not active")
    name = name.strip()
    if not name:
        raise InputRefused("name", "give the token a name (what program uses it)")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name[:100], prefix=raw[:12], token_hash=digest(raw),
                                    created_at=timezone.now(),
                                    created_by=actor.get_username() if actor is not None else "cli")
    return token, raw


def authenticate(raw: str | None) -> Any | None:
    """The active user behind an unrevoked token, or None (unknown, revoked, inactive user)."""
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    token = ApiToken.objects.select_related("user").filter(token_hash=digest(raw), revoked_at__isnull=True).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > _TOUCH_EVERY:
        token.last_used_at = now
        token.save(update_fields=["last_used_at"])
    return token.user


def revoke(actor: Any, token: ApiToken, reason: str = "") -> ApiToken:
    """Revoke a token (idempotent). The caller provides the audit context (actor)."""
    if not _may_manage(actor, token.user):
        raise Denied("only the account holder or an administrator may revoke this API token")
    if token.revoked_at is not None:
        return token
    with because(reason.strip() or "API token revoked"):
        token.revoked_at = timezone.now()
        token.revoked_by = actor.get_username() if actor is not None else "cli"
        token.save()
    return token


def tokens_of(user: Any) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by("-created_at")
