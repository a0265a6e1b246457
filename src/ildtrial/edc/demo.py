"""The demo installation: a fresh database, the protocol, one account per role.

Shared by ``ildtrial demo`` and the tests that check the demo works, so what a newcomer
sees is exactly what is tested.
"""

from __future__ import annotations

import base64
import secrets
import string
from dataclasses import dataclass

from django.core.management import call_command
from django.db import transaction

from ildtrial.core.roles import Role, requires_two_factor

DEMO_TOTP_KEY_BYTES = 20


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: Role
    password: str
    totp_secret: str | None  # base32, for roles that must use two-factor authentication


def _password() -> str:
    """A random password that satisfies the password rules (length, classes, not common)."""
    alphabet = string.ascii_letters + string.digits
    core = "".join(secrets.choice(alphabet) for _ in range(14))
    return f"{core[:5]}-{core[5:10]}-{core[10:]}7a"


def migrate(verbosity: int = 0) -> None:
    call_command("migrate", interactive=False, verbosity=verbosity)


def create_demo_accounts(site_code: str) -> list[DemoAccount]:
    """One account per role at the protocol's site; TOTP devices for the roles that need them."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from ildtrial.edc.accounts.services import create_user
    from ildtrial.edc.audit.context import acting_as
    from ildtrial.edc.study.protocol import current_protocol

    unblinded = set(current_protocol().masking.unblinded_roles)
    accounts: list[DemoAccount] = []
    with acting_as(None, source="demo", reason="demo account"), transaction.atomic():
        for role in Role:
            password = _password()
            sites = [] if role in (Role.ADMINISTRATOR,) else [site_code]
            user = create_user(username=f"demo_{role.value}", role=role.value, password=password,
                               first_name="Demo", last_name=role.label, site_codes=sites)
            secret = None
            if requires_two_factor(role, unblinded):
                key = secrets.token_bytes(DEMO_TOTP_KEY_BYTES)
                TOTPDevice.objects.create(user=user, name="demo authenticator", confirmed=True, key=key.hex())
                secret = base64.b32encode(key).decode()
            accounts.append(DemoAccount(user.username, role, password, secret))
    return accounts


def current_totp(username: str) -> str:
    """The current code of a demo user's authenticator (demo convenience; refused in production)."""
    from django.conf import settings
    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if settings.PRODUCTION:
        raise PermissionError("authenticator codes are never printed in production")
    device = TOTPDevice.objects.filter(user__username=username, confirmed=True).first()
    if device is None:
        raise LookupError(f"username: {username!r} has no authenticator")
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"
