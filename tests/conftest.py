"""Shared fixtures: users of each role, signed-in clients (with the second factor when needed)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PASSWORD = "Correct-Horse-7-Battery"
_counter = itertools.count(1)


@pytest.fixture
def make_user(db) -> Callable[..., object]:
    from ildtrial.edc.accounts.services import create_user
    from ildtrial.edc.audit.context import acting_as

    def make(role: str, sites: tuple[str, ...] = ("MOW01",), username: str | None = None, **extra: object):
        name = username or f"{role}_{next(_counter)}"
        with acting_as(None, source="test", reason="test account"):
            return create_user(username=name, role=role, password=PASSWORD, site_codes=sites, **extra)

    return make


def sign_in(client, user) -> None:
    """Sign ``user`` in on ``client``, completing TOTP verification when the role needs it."""
    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    client.force_login(user)
    if user.needs_two_factor():
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
        token = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token()
        response = client.post("/accounts/2fa/verify/", {"token": f"{token:06d}"})
        assert response.status_code == 302, response.content[:500]


@pytest.fixture
def signed_in(client, make_user) -> Callable[..., object]:
    def make(role: str, **kwargs: object):
        user = make_user(role, **kwargs)
        sign_in(client, user)
        return user

    return make


@pytest.fixture(autouse=True)
def _audit_triggers(request):
    """Keep the append-only triggers in place during every database test.

    Transactional tests end with a flush (DELETE/TRUNCATE of every table), which the
    triggers rightly refuse, so those tests lift them at teardown; every test re-installs
    them first, so no test runs without them.
    """
    marker = request.node.get_closest_marker("django_db")
    uses_db = marker is not None or {"db", "transactional_db"} & set(request.fixturenames)
    if not uses_db:
        yield
        return
    transactional = "transactional_db" in request.fixturenames or bool(marker and marker.kwargs.get("transaction"))
    request.getfixturevalue("transactional_db" if transactional else "db")
    from django.db import connection

    from ildtrial.edc.audit import triggers

    triggers.install(connection)
    yield
    if transactional:
        triggers.remove(connection)
