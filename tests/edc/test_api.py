"""REST API: token authentication, the role matrix, site scoping, blinding, and form writes."""

from __future__ import annotations

import io
import json
import sys
import zipfile

import pytest
from django.test import override_settings

from ildtrial.core.roles import Permission, has_permission
from ildtrial.edc.api import tokens
from ildtrial.edc.api.models import ApiToken
from ildtrial.edc.audit.context import acting_as
from ildtrial.edc.audit.models import AuditEntry
from ildtrial.edc.crfs.models import FormInstance
from ildtrial.edc.study.protocol import _load
from tests.conftest import sign_in
from tests.edc.test_api_support import ROLES, build_trial, make_team, w13_values

pytestmark = pytest.mark.django_db


def token_for(user) -> str:
    with acting_as(None, source="test", reason="test token"):
        return tokens.issue(None, user, "tests")[1]


def call(client, method: str, url: str, token: str | None = None, payload: dict | None = None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    if method == "get":
        return client.get(url, **headers)
    return client.post(url, data=json.dumps(payload or {}), content_type="application/json", **headers)


@pytest.fixture
def team(make_user):
    return make_team(make_user)


@pytest.fixture
def trial(team):
    return build_trial(team)


@pytest.fixture
def double_blind():
    _load.cache_clear()
    with override_settings(ILDTRIAL_MASKING="double_blind"):
        yield
    _load.cache_clear()


def w13_url(trial, form_code: str) -> str:
    return f"/api/participants/{trial.participant.pk}/visits/W13/forms/{form_code}"


# ------------------------------------------------------------------ authentication
def test_missing_bad_revoked_or_inactive_token_is_401(client, team):
    user = team["study_coordinator"]
    raw = token_for(user)
    assert call(client, "get", "/api/me").status_code == 401
    assert call(client, "get", "/api/me", "not-a-token").status_code == 401
    assert call(client, "get", "/api/me", raw[:-2] + "xx").status_code == 401
    response = call(client, "get", "/api/me", raw)
    assert response.status_code == 200 and response.json()["username"] == user.username
    stored = ApiToken.objects.get(user=user)
    assert stored.last_used_at is not None and stored.token_hash != raw and raw not in stored.token_hash
    with acting_as(None, source="test"):
        tokens.revoke(None, stored, "test")
    assert call(client, "get", "/api/me", raw).status_code == 401
    other = token_for(team["monitor"])
    with acting_as(None, source="test", reason="test: account closed"):
        team["monitor"].is_active = False
        team["monitor"].save()
    assert call(client, "get", "/api/me", other).status_code == 401


def test_schema_and_docs_are_published(client):
    schema = client.get("/api/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/participants/{participant_id}/visits/{visit_code}/forms/{form_code}" in paths
    assert "/api/exports/{kind}" in paths
    assert client.get("/api/docs").status_code == 200


# ------------------------------------------------------------------ role matrix
ENDPOINTS = [
    ("get", "/api/participants", Permission.VIEW_PARTICIPANTS),
    ("get", "/api/participants/999999", Permission.VIEW_PARTICIPANTS),
    ("get", "/api/participants/999999/visits", Permission.VIEW_PARTICIPANTS),
    ("get", "/api/participants/999999/forms", Permission.VIEW_PARTICIPANTS),
    ("get", "/api/participants/999999/visits/W13/forms/SPIRO", Permission.VIEW_PARTICIPANTS),
    ("get", "/api/queries", Permission.VIEW_PARTICIPANTS),
    ("get", "/api/adverse-events", Permission.VIEW_SAFETY),
    ("post", "/api/participants/999999/visits/W13/forms/SPIRO", Permission.ENTER_DATA),
    ("get", "/api/exports/odm", Permission.EXPORT_DATA),
]


def test_each_endpoint_refuses_roles_without_its_permission(client, team):
    raw = {role: token_for(team[role]) for role in ROLES}
    for method, url, permission in ENDPOINTS:
        for role in ROLES:
            allowed = has_permission(role, permission)
            if allowed and url.startswith("/api/exports"):
                continue  # building an export is tested below; here only the refusals
            response = call(client, method, url, raw[role], {"values": {}})
            if allowed:
                assert response.status_code in (200, 404), (role, url, response.content[:200])
            else:
                assert response.status_code == 403, (role, url, response.status_code)
                assert "may not" in response.json()["detail"]


# ------------------------------------------------------------------ site scoping
def test_participant_of_another_site_is_404_everywhere(client, trial, make_user):
    from ildtrial.edc.study.models import Site

    with acting_as(None, source="test", reason="second site"):
        Site.objects.create(code="SPB01", name="St Petersburg", city="Saint Petersburg", country="RU",
                            timezone="Europe/Moscow")
    stranger = token_for(make_user("study_coordinator", sites=("SPB01",)))
    pk = trial.participant.pk
    assert call(client, "get", "/api/participants", stranger).json() == []
    missing = call(client, "get", "/api/participants/999999", stranger)
    for url in (f"/api/participants/{pk}", f"/api/participants/{pk}/visits", f"/api/participants/{pk}/forms",
                w13_url(trial, "SPIRO")):
        response = call(client, "get", url, stranger)
        assert response.status_code == 404 and response.content == missing.content, url
    before = FormInstance.objects.count()
    response = call(client, "post", w13_url(trial, "LAB"), stranger, {"values": {"sample_date": "2020-01-01"}})
    assert response.status_code == 404 and FormInstance.objects.count() == before
    assert call(client, "get", "/api/queries", stranger).json() == []
    assert call(client, "get", "/api/adverse-events", stranger).json() == []
    own = call(client, "get", "/api/adverse-events", token_for(trial.team["study_coordinator"])).json()
    assert [e["coded_term"] for e in own] == ["Cough"]


# ------------------------------------------------------------------ blinding
def test_blinded_users_get_no_arm_anywhere(client, trial, double_blind):
    arm, pk = trial.arm, trial.participant.pk
    for role in ("study_coordinator", "investigator", "monitor", "data_manager"):
        raw = token_for(trial.team[role])
        listing = call(client, "get", "/api/participants", raw).json()
        assert [p["arm"] for p in listing] == ["blinded"]
        bodies = [call(client, method, url, raw, payload) for method, url, payload in (
            ("get", f"/api/participants/{pk}", None),
            ("get", f"/api/participants/{pk}/forms", None),
            ("get", "/api/queries", None),
            ("get", "/api/adverse-events", None),
            ("get", "/api/participants/999999", None),
            ("post", w13_url(trial, "INF"), {"values": {"bag_id": "BAG-UNKNOWN", "infusion_date": "2020-01-01"}}),
            ("post", w13_url(trial, "SPIRO"), {"values": {"fvc_l": "99"}}),
        )]
        for response in [*bodies]:
            text = response.content.decode()
            assert f'"{arm}"' not in text and "PBO" not in text and "MSC" not in text, (role, text[:300])
        assert json.loads(bodies[0].content)["arm"] == "blinded"
    # the unblinded cell lab sees it
    lab = call(client, "get", f"/api/participants/{pk}", token_for(trial.team["cell_lab"])).json()
    assert lab["arm"] == arm
    # exports are built blinded for a blinded data manager
    response = call(client, "get", "/api/exports/odm", token_for(trial.team["data_manager"]))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == ["odm-clinical.xml", "odm-metadata.xml"]
    assert all(b"ARMCD" not in archive.read(name) for name in archive.namelist())
    entry = AuditEntry.objects.filter(action="export").latest("sequence")
    assert entry.source == "api" and entry.changes == {"kind": "odm", "blinded": True}


def test_unavailable_exporter_is_503_with_a_clear_message(client, team, monkeypatch):
    monkeypatch.setitem(sys.modules, "ildtrial.exports.package", None)  # import now fails
    response = call(client, "get", "/api/exports/sdtm", token_for(team["data_manager"]))
    assert response.status_code == 503 and "sdtm export is not available" in response.json()["detail"]


# ------------------------------------------------------------------ writing forms
def test_refused_values_are_422_naming_field_and_rule_and_nothing_is_stored(client, trial):
    raw = token_for(trial.team["study_coordinator"])
    spiro = FormInstance.objects.get(visit__participant=trial.participant, visit__code="W13", form_code="SPIRO")
    trail = AuditEntry.objects.count()
    values = {**w13_values(trial.participant, "SPIRO"), "fev1_l": "2.5", "fvc_l": "25"}
    response = call(client, "post", w13_url(trial, "SPIRO"), raw, {"values": values, "reason": "re-entry"})
    assert response.status_code == 422
    issues = response.json()["issues"]
    assert {"field": "fvc_l", "rule": "max", "severity": "error"}.items() <= issues[0].items()
    assert "FVC" in issues[0]["message"] and issues[0]["message_ru"]
    spiro_after = FormInstance.objects.get(pk=spiro.pk)
    assert (spiro_after.revision, spiro_after.data) == (spiro.revision, spiro.data)
    assert AuditEntry.objects.count() == trail

    cross = {**w13_values(trial.participant, "SPIRO"), "fev1_l": "2.5", "fvc_l": "2.2"}
    response = call(client, "post", w13_url(trial, "SPIRO"), raw, {"values": cross, "reason": "re-entry"})
    assert any(i["rule"] == "SPIRO_FEV1_LE_FVC" and i["field"] for i in response.json()["issues"])

    # a warning is not an error: 422 asking for confirmation, then saved once confirmed
    vs = {**w13_values(trial.participant, "VS"), "temperature_c": "39.8"}
    first = call(client, "post", w13_url(trial, "VS"), raw, {"values": vs, "reason": "fever noted"})
    assert first.status_code == 422 and first.json()["needs_confirmation"]
    confirmed = call(client, "post", w13_url(trial, "VS"), raw,
                     {"values": vs, "reason": "fever noted", "confirm": first.json()["needs_confirmation"]})
    assert confirmed.status_code == 200 and confirmed.json()["form"]["revision"] == 2

    # a form not collected at the visit, or a visit not recorded: 404
    assert call(client, "post", w13_url(trial, "DM"), raw, {"values": {}}).status_code == 404
    url = f"/api/participants/{trial.participant.pk}/visits/W26/forms/SPIRO"
    assert call(client, "post", url, raw, {"values": {}}).status_code == 404


def test_stale_revision_is_409_with_both_versions(client, trial):
    raw = token_for(trial.team["study_coordinator"])
    values = {**w13_values(trial.participant, "SPIRO"), "fvc_l": "2.30"}
    response = call(client, "post", w13_url(trial, "SPIRO"), raw,
                    {"values": values, "reason": "late correction", "expected_revision": 1})
    assert response.status_code == 409
    body = response.json()
    assert body["stored"]["revision"] == 2 and body["stored"]["data"]["fvc_l"] == 2.18
    assert body["submitted"]["fvc_l"] == 2.3
    assert FormInstance.objects.get(visit__participant=trial.participant, visit__code="W13",
                                    form_code="SPIRO").revision == 2


def test_saved_form_is_audited_with_source_api(client, trial):
    coordinator = trial.team["study_coordinator"]
    day = trial.participant.visits.get(code="W13").actual_date.isoformat()
    values = {"sample_date": day, "haemoglobin_g_dl": 13.1, "wbc_10e9_l": 7.2, "platelets_10e9_l": 240,
              "creatinine_umol_l": 84, "alt_u_l": 22, "ast_u_l": 25, "crp_mg_l": 4.1}
    response = call(client, "post", w13_url(trial, "LAB"), token_for(coordinator), {"values": values})
    assert response.status_code == 200, response.content
    form = response.json()["form"]
    assert form["form_code"] == "LAB" and form["revision"] == 1 and form["data"]["platelets_10e9_l"] == 240
    entry = AuditEntry.objects.get(model="crfs.FormInstance", object_pk=str(form["id"]), action="create")
    assert (entry.source, entry.actor_username, entry.ip) == ("api", coordinator.username, "127.0.0.1")
    got = call(client, "get", w13_url(trial, "LAB"), token_for(coordinator)).json()
    assert [f["id"] for f in got] == [form["id"]]


# ------------------------------------------------------------------ issuing tokens
def test_tokens_from_the_command_line(team, capsys, client):
    from ildtrial.cli import main

    user = team["unblinded_statistician"]  # a two-factor role may hold a token
    assert main(["api-token", "create", "--user", user.username, "--name", "analysis"]) == 0
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    assert call(client, "get", "/api/me", secret).json()["role"] == "unblinded_statistician"
    assert main(["api-token", "list", "--user", user.username]) == 0
    assert "analysis" in capsys.readouterr().out
    token = ApiToken.objects.get(user=user)
    assert main(["api-token", "revoke", str(token.pk)]) == 0
    assert call(client, "get", "/api/me", secret).status_code == 401
    assert AuditEntry.objects.filter(model="api.ApiToken", object_pk=str(token.pk)).count() == 2
    assert main(["api-token", "create", "--user", "nobody"]) == 2


def test_token_page_creates_lists_and_revokes_own_tokens(client, team):
    user = team["study_coordinator"]
    sign_in(client, user)
    page = client.post("/api/tokens/", {"name": "lab import"})
    assert page.status_code == 200
    token = ApiToken.objects.get(user=user)
    secret = next(w for w in page.content.decode().replace("<", " ").replace(">", " ").split()
                  if w.startswith(tokens.TOKEN_PREFIX))
    assert tokens.digest(secret) == token.token_hash
    assert call(client, "get", "/api/me", secret).status_code == 200
    client.post(f"/api/tokens/{token.pk}/revoke/")
    assert call(client, "get", "/api/me", secret).status_code == 401
    assert "revoked" in client.get("/api/tokens/").content.decode()
