"""The two ways a service refuses: bad input (which field, which rule) and a missing right."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied


class InputRefused(ValueError):
    """Bad input. ``field`` names the field (or None for the whole record), ``message`` the rule."""

    def __init__(self, field: str | None, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class Denied(PermissionDenied):
    """The user's role or site does not allow this action."""


def require(user, permission) -> None:  # noqa: ANN001 - a User and a Permission
    if not user.can(permission):
        raise Denied(f"your role ({user.role_label}) may not {str(permission).replace('_', ' ')}")


def require_site(user, site) -> None:  # noqa: ANN001
    if site.code not in user.site_codes():
        raise Denied("this participant belongs to a site you are not assigned to")
