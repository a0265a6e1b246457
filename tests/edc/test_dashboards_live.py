"""The eCRF page's live checks: a field's messages when it is left, derived values as typed."""

from __future__ import annotations

import pytest

from ildtrial.edc.crfs.models import FormInstance
from tests.conftest import sign_in
from tests.edc.test_data_capture import at_week13, team, w13, week13_values  # noqa: F401

pytestmark = pytest.mark.django_db


def url(p, code="SPIRO"):  # noqa: ANN001, ANN201
    return f"/data/participant/{p.pk}/visit/W13/{code}/check/"


def test_leaving_a_field_returns_its_messages_and_nothing_is_saved(client, team, at_week13):  # noqa: F811
    p = at_week13
    sign_in(client, team["coordinator"])
    answer = client.post(url(p), {"field": "fvc_l", "fvc_l": "25", "fev1_l": "", "test_date": ""}).json()
    assert answer["field"] == "fvc_l"
    assert answer["fields"]["fvc_l"]["errors"] and "FVC" in answer["fields"]["fvc_l"]["errors"][0]
    # an empty field is not scolded while moving through the form, and is not reported at all
    assert "fev1_l" not in answer["fields"] and "test_date" not in answer["fields"]
    assert not FormInstance.objects.filter(form_code="SPIRO", visit=w13(p)).exists()


def test_a_cross_field_check_lands_on_its_field_and_clears_when_fixed(client, team, at_week13):  # noqa: F811
    p = at_week13
    sign_in(client, team["coordinator"])
    values = {**week13_values(p, "SPIRO"), "fev1_l": "2,50", "fvc_l": "2,08", "field": "fvc_l"}
    answer = client.post(url(p), values).json()
    assert answer["fields"]["fev1_l"]["errors"][0].endswith("FEV1 cannot exceed FVC.")
    assert answer["fields"]["fvc_l"]["errors"] == [] and answer["derived"] == []
    fixed = client.post(url(p), {**values, "fev1_l": "1,74"}).json()
    assert fixed["fields"]["fev1_l"]["errors"] == []


def test_implausible_value_is_a_warning(client, team, at_week13):  # noqa: F811
    p = at_week13
    sign_in(client, team["coordinator"])
    answer = client.post(url(p, "VS"), {"field": "temperature_c", "temperature_c": "39.8"}).json()
    assert answer["fields"]["temperature_c"]["warnings"] and not answer["fields"]["temperature_c"]["errors"]


def test_percent_predicted_is_shown_live_in_the_page_language(client, team, at_week13):  # noqa: F811
    p = at_week13
    user = team["coordinator"]
    sign_in(client, user)
    answer = client.post(url(p), {**week13_values(p, "SPIRO"), "field": "fvc_l"}).json()
    derived = {d["key"]: d for d in answer["derived"]}
    assert {"fvc_percent_predicted", "fev1_percent_predicted", "fev1_fvc_ratio"} <= set(derived)
    assert derived["fvc_percent_predicted"]["unit"] == "%" and "." in derived["fvc_percent_predicted"]["value"]
    assert derived["fvc_percent_predicted"]["label"] == "FVC, % predicted"
    assert derived["fev1_fvc_ratio"]["value"] == "0.84"
    client.post("/i18n/setlang/", {"language": "ru", "next": "/"})
    ru = {d["key"]: d for d in client.post(url(p), {**week13_values(p, "SPIRO"), "field": "fvc_l"}).json()["derived"]}
    assert ru["fev1_fvc_ratio"]["value"] == "0,84" and "," in ru["fvc_percent_predicted"]["value"]
    assert ru["fvc_percent_predicted"]["label"] == "ФЖЕЛ, % от должного"
    answer = client.post(url(p), {"field": "fvc_l", "fvc_l": "25"}).json()
    assert answer["fields"]["fvc_l"]["errors"][0].startswith("ФЖЕЛ")


@pytest.mark.parametrize("code", ["DLCO", "SIXMWT"])
def test_dlco_and_walk_test_derive_live(client, team, at_week13, code):  # noqa: F811
    p = at_week13
    sign_in(client, team["coordinator"])
    answer = client.post(url(p, code), {**week13_values(p, code), "field": "test_date"}).json()
    keys = {d["key"] for d in answer["derived"]}
    assert {"DLCO": "dlco_percent_predicted", "SIXMWT": "sixmwd_percent_predicted"}[code] in keys


def test_only_data_entry_roles_at_the_site_may_check(client, team, at_week13, make_user):  # noqa: F811
    p = at_week13
    sign_in(client, team["monitor"])
    assert client.post(url(p), {"field": "fvc_l", "fvc_l": "2"}).status_code == 403
    client.logout()
    sign_in(client, make_user("study_coordinator", sites=("SPB01",)) if False else team["coordinator"])
    assert client.get(url(p)).status_code == 405
    assert client.post(f"/data/participant/{p.pk}/visit/W13/NOPE/check/", {}).status_code == 404
    assert client.post(f"/data/participant/{p.pk}/visit/W26/SPIRO/check/", {}).status_code == 404


def test_form_page_offers_live_checks_and_keeps_keyboard_order(client, team, at_week13):  # noqa: F811
    p = at_week13
    sign_in(client, team["coordinator"])
    page = client.get(f"/data/participant/{p.pk}/visit/W13/SPIRO/new/").content.decode()
    assert f'data-check-url="/data/participant/{p.pk}/visit/W13/SPIRO/check/"' in page
    assert "ildtrial/crf.js" in page and 'id="derived-live"' in page
    # fields in protocol order, the first one focused, each described by its message slot
    assert page.index('id="f-test_date"') < page.index('id="f-fev1_l"') < page.index('id="f-fvc_l"')
    first = page.split('id="f-test_date"')[1].split(">")[0]
    assert "autofocus" in first and 'aria-describedby="m-test_date"' in first and 'aria-required="true"' in first
    assert "tabindex" not in page.split('<form method="post" class="crf"')[1].split("</form>")[0].replace(
        'tabindex="-1"', "")


def test_refused_save_focuses_and_summarises_the_first_error(client, team, at_week13):  # noqa: F811
    p = at_week13
    sign_in(client, team["coordinator"])
    response = client.post(f"/data/participant/{p.pk}/visit/W13/SPIRO/new/",
                           {**week13_values(p, "SPIRO"), "fev1_l": "2,50"}, HTTP_X_REQUESTED_WITH="fetch")
    page = response.content.decode()
    assert response.status_code == 422
    assert 'class="error-summary"' in page and '<a href="#f-fev1_l">FEV1</a>' in page
    fev1 = page.split('id="f-fev1_l"')[1].split(">")[0]
    assert 'aria-invalid="true"' in fev1 and "autofocus" in fev1
    assert 'value="2,50"' in page
    test_date = page.split('id="f-test_date"')[1].split(">")[0]
    assert "autofocus" not in test_date
