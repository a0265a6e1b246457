"""Accounts: password rules, lockout, two-factor, user administration, createuser."""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.contrib.auth.hashers import identify_hasher
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from ildtrial.cli import main
from ildtrial.edc.accounts.models import User
from ildtrial.edc.accounts.services import AccountError, create_user
from ildtrial.edc.audit.context import acting_as
from ildtrial.edc.audit.models import AuditEntry
from tests.conftest import PASSWORD, sign_in

pytestmark = pytest.mark.django_db


def test_passwords_are_hashed_with_argon2(make_user):
    user = make_user("monitor")
    assert identify_hasher(user.password).algorithm == "argon2"


@pytest.mark.parametrize(
    ("password", "rule"),
    [("Short-1a", "too short"), ("alllowercaseletters", "must mix"), ("123456789012345", "entirely numeric")],
)
def test_weak_passwords_are_refused_with_the_rule(password, rule):
    with acting_as(None), pytest.raises(AccountError) as info:
        create_user(username="weak", role="monitor", password=password)
    assert info.value.field == "password" and rule in info.value.message
    assert not User.objects.filter(username="weak").exists()


def test_unknown_role_is_refused():
    with acting_as(None), pytest.raises(AccountError, match="role: unknown role 'janitor'"):
        create_user(username="x", role="janitor", password=PASSWORD)


def test_duplicate_username_is_refused_case_insensitively(make_user):
    make_user("monitor", username="anna")
    with acting_as(None), pytest.raises(AccountError, match="username: a user named 'Anna' already exists"):
        create_user(username="Anna", role="monitor", password=PASSWORD)
    assert User.objects.filter(username__iexact="anna").count() == 1


def test_unknown_site_is_refused():
    with acting_as(None), pytest.raises(AccountError, match="sites: unknown site code"):
        create_user(username="x", role="monitor", password=PASSWORD, site_codes=["XX99"])


def test_login_and_failed_login_are_audited(client, make_user):
    user = make_user("monitor")
    assert client.post("/accounts/login/", {"username": user.username, "password": "wrong"}).status_code == 200
    assert AuditEntry.objects.filter(action="login_failed", actor_username=user.username).exists()
    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302
    assert AuditEntry.objects.filter(action="login", actor_username=user.username).exists()
    client.post("/accounts/logout/")
    assert AuditEntry.objects.filter(action="logout", actor_username=user.username).exists()


def test_account_locks_after_repeated_failures(client, make_user):
    user = make_user("monitor")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/accounts/login/", {"username": user.username, "password": "wrong"})
    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 429
    assert b"Account locked" in response.content
    assert "_auth_user_id" not in client.session


def test_idle_sessions_expire():
    assert settings.SESSION_SAVE_EVERY_REQUEST is True
    assert settings.SESSION_COOKIE_AGE <= 30 * 60


@pytest.mark.parametrize("role", ["administrator", "cell_lab", "unblinded_statistician", "dsmb_member"])
def test_two_factor_roles_reach_nothing_before_verification(client, make_user, role):
    user = make_user(role, sites=())
    client.force_login(user)
    response = client.get("/protocol/")
    assert response.status_code == 302 and "/accounts/2fa/setup/" in response["Location"]


def test_two_factor_enrolment_and_verification(client, make_user):
    user = make_user("administrator", sites=())
    client.force_login(user)
    assert client.get("/accounts/2fa/setup/").status_code == 200
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    assert client.post("/accounts/2fa/setup/", {"token": "000000"}).status_code == 200  # wrong code: stays
    device.refresh_from_db()
    assert device.throttling_failure_count == 1  # a wrong code slows the next attempt down
    device.throttle_reset()  # as if the person waited
    token = TOTP(device.bin_key).token()
    assert client.post("/accounts/2fa/setup/", {"token": f"{token:06d}"}).status_code == 302
    assert client.get("/accounts/users/").status_code == 200
    assert AuditEntry.objects.filter(action="2fa_enrolled", object_pk=str(user.pk)).exists()


def test_wrong_second_factor_is_refused_and_audited(client, make_user):
    user = make_user("unblinded_statistician", sites=())
    TOTPDevice.objects.create(user=user, name="t", confirmed=True)
    client.force_login(user)
    response = client.post("/accounts/2fa/verify/", {"token": "123456"})
    assert response.status_code == 200 and b"not valid" in response.content
    assert AuditEntry.objects.filter(action="2fa_failed").exists()
    assert client.get("/protocol/").status_code == 302


def test_clinical_roles_do_not_need_two_factor(client, make_user):
    client.force_login(make_user("study_coordinator"))
    assert client.get("/protocol/").status_code == 200


def test_administrator_creates_a_user_with_a_reason(client, signed_in):
    signed_in("administrator", sites=())
    data = {"username": "olga", "role": "study_coordinator", "language": "ru", "password": "Strong-Enough-Pass-3",
            "sites": [], "reason": "new coordinator joined"}
    assert client.post("/accounts/users/new/", data).status_code == 302
    olga = User.objects.get(username="olga")
    assert olga.role == "study_coordinator" and olga.language == "ru"
    entry = AuditEntry.objects.filter(model="accounts.User", object_pk=str(olga.pk), action="create").get()
    assert entry.reason == "new coordinator joined"


def test_duplicate_user_on_the_page_keeps_what_was_typed(client, signed_in, make_user):
    signed_in("administrator", sites=())
    make_user("monitor", username="ivan")
    data = {"username": "ivan", "first_name": "Ivan", "role": "monitor", "language": "en",
            "password": "Strong-Enough-Pass-3", "reason": "x"}
    response = client.post("/accounts/users/new/", data)
    assert response.status_code == 200
    assert b"already exists" in response.content and b'value="Ivan"' in response.content


def test_administrator_edits_role_with_reason_and_it_is_audited(client, signed_in, make_user):
    signed_in("administrator", sites=())
    target = make_user("monitor")
    data = {"role": "data_manager", "language": "en", "is_active": "on", "reason": "moved to data management",
            "first_name": "", "last_name": "", "email": ""}
    assert client.post(f"/accounts/users/{target.pk}/", data).status_code == 302
    target.refresh_from_db()
    assert target.role == "data_manager"
    entries = AuditEntry.objects.filter(model="accounts.User", object_pk=str(target.pk), action="update")
    entry = next(e for e in entries if "role" in e.changes)
    assert entry.changes["role"] == ["monitor", "data_manager"] and entry.reason == "moved to data management"


def test_edit_without_reason_is_refused(client, signed_in, make_user):
    signed_in("administrator", sites=())
    target = make_user("monitor")
    response = client.post(f"/accounts/users/{target.pk}/", {"role": "data_manager", "language": "en", "reason": ""})
    assert response.status_code == 200 and b"required" in response.content
    target.refresh_from_db()
    assert target.role == "monitor"


@pytest.mark.parametrize("role", ["investigator", "study_coordinator", "monitor", "data_manager", "sponsor_viewer"])
def test_only_administrators_manage_users(client, signed_in, role):
    signed_in(role)
    assert client.get("/accounts/users/").status_code == 403
    assert client.post("/accounts/users/new/", {"username": "x"}).status_code == 403
    assert not User.objects.filter(username="x").exists()


def test_createuser_command(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["createuser", "--username", "pi", "--role", "investigator", "--site", "MOW01",
                 "--password-stdin"]) == 0
    assert "created pi (Principal investigator) sites: MOW01" in capsys.readouterr().out
    assert User.objects.get(username="pi").site_codes() == ["MOW01"]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--role", "janitor"], "role: unknown role"), (["--role", "monitor", "--site", "ZZ1"], "sites: unknown site")],
)
def test_createuser_command_refuses_bad_input(monkeypatch, capsys, args, message):
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["createuser", "--username", "bad", *args, "--password-stdin"]) == 2
    assert message in capsys.readouterr().err
    assert not User.objects.filter(username="bad").exists()


def test_sign_in_helper_verifies_second_factor(client, make_user):
    user = make_user("cell_lab")
    sign_in(client, user)
    assert client.get("/protocol/").status_code == 200
