"""Creating and changing accounts: the rules shared by the admin pages and ``ildtrial createuser``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import transaction

from ildtrial.core.roles import Role
from ildtrial.edc.accounts.models import User
from ildtrial.edc.study.models import Site


@dataclass
class AccountError(ValueError):
    """Bad account input: which field, and what rule it broke."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise AccountError("role", f"unknown role {value!r}; choose one of: {', '.join(r.value for r in Role)}") from None


def resolve_sites(codes: Iterable[str]) -> list[Site]:
    codes = [c.strip() for c in codes if c.strip()]
    sites = list(Site.objects.filter(code__in=codes))
    unknown = sorted(set(codes) - {s.code for s in sites})
    if unknown:
        raise AccountError("sites", f"unknown site code(s): {', '.join(unknown)}")
    return sites


def create_user(
    *,
    username: str,
    role: str,
    password: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    site_codes: Iterable[str] = (),
    language: str = "en",
) -> User:
    """Create an account after checking every rule; nothing is stored when one fails."""
    username = username.strip()
    if not username:
        raise AccountError("username", "is required")
    parsed_role = parse_role(role)
    if User.objects.filter(username__iexact=username).exists():
        raise AccountError("username", f"a user named {username!r} already exists")
    if language not in ("en", "ru"):
        raise AccountError("language", "must be 'en' or 'ru'")
    sites = resolve_sites(site_codes)
    candidate = User(username=username, email=email, first_name=first_name, last_name=last_name)
    try:
        password_validation.validate_password(password, candidate)
    except ValidationError as exc:
        raise AccountError("password", "; ".join(exc.messages)) from None
    with transaction.atomic():
        user = User(
            username=username,
            email=email,
            first_name=first_name,
            last_name=last_name,
            role=parsed_role.value,
            language=language,
        )
        user.set_password(password)
        user.save()
        if sites:
            user.sites.set(sites)
    return user
