"""Production posture: Django's deploy checks, security headers, CSRF, and no start without a secret."""

from __future__ import annotations

import os
import re
import secrets
import string
import subprocess
import sys

import pytest
from django.test import Client

#: Deploy-check warnings that come from a deliberate setting, not an oversight.
ACCEPTED = {
    # settings.py sets SECURE_HSTS_PRELOAD = False on purpose: preload-list submission is an
    # irreversible, domain-wide decision for the hosting organisation, not for the application.
    "security.W021",
}


def _production_env(**overrides: str) -> dict[str, str]:
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}}
    env.update({
        "ILDTRIAL_ENV": "production",
        "SECRET_KEY": "".join(secrets.choice(alphabet) for _ in range(50)),
        "ALLOWED_HOSTS": "trial.example.org",
        "DJANGO_SETTINGS_MODULE": "ildtrial.edc.settings",
        "DATABASE_URL": "sqlite:////tmp/x.sqlite3",
    })
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def _deploy_check(tmp_path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "django", "check", "--deploy", "--fail-level", "WARNING"],
        env=_production_env(), cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture(scope="module")
def deploy_check(tmp_path_factory) -> subprocess.CompletedProcess[str]:
    return _deploy_check(tmp_path_factory.mktemp("deploy"))


def test_deploy_check_reports_only_accepted_warnings(deploy_check):
    output = deploy_check.stdout + deploy_check.stderr
    assert "Traceback" not in output, output
    found = set(re.findall(r"\((\w+\.[EW]\d+)\)", output))
    assert not [f for f in found if ".E" in f], output
    assert found <= ACCEPTED, output


@pytest.mark.xfail(reason="security.W021 (SECURE_HSTS_PRELOAD=False) is set deliberately in settings.py, "
                          "which this change may not edit", strict=True)
def test_deploy_check_passes_at_warning_level(deploy_check):
    assert deploy_check.returncode == 0, deploy_check.stdout + deploy_check.stderr


def test_production_refuses_to_start_without_secret_key(tmp_path):
    env = _production_env()
    del env["SECRET_KEY"]
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "django", "check"], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_security_headers(db, client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_csrf_is_enforced_on_forms(make_user):
    from tests.conftest import PASSWORD

    anonymous = Client(enforce_csrf_checks=True)
    user = make_user("study_coordinator")
    assert anonymous.post("/accounts/login/", {"username": user.username, "password": PASSWORD}).status_code == 403

    signed_in = Client(enforce_csrf_checks=True)
    signed_in.force_login(user)
    assert signed_in.post("/participants/new/", {"screening_date": "2026-01-01"}).status_code == 403
