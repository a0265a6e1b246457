"""Adverse-event entry: validation, seriousness vs severity, coding, infusion flag, edits,
permissions and site scoping. Each test is named after the rule it pins down."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from ildtrial.cli import main
from ildtrial.edc.audit.context import ReasonRequired, acting_as
from ildtrial.edc.audit.models import AuditEntry
from ildtrial.edc.errors import Denied, InputRefused
from ildtrial.edc.safety import dictionary, services
from ildtrial.edc.safety.models import AdverseEvent, SAEReport, TermDictionary
from tests.conftest import sign_in
from tests.edc.test_safety_helpers import (
    add_infusion,
    ae_values,
    consented_participant,
    make_site,
    report,
    sae_values,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(make_user):
    return {"coordinator": make_user("study_coordinator"), "investigator": make_user("investigator"),
            "monitor": make_user("monitor"), "data_manager": make_user("data_manager"),
            "sponsor": make_user("sponsor_viewer", sites=())}


@pytest.fixture
def participant(team):
    return consented_participant()


# ---------------------------------------------------------------- validation
def test_valid_event_is_numbered_per_participant_and_stamped(team, participant):
    first = report(team["coordinator"], participant, ae_values())
    second = report(team["coordinator"], participant, ae_values(coded_term="Chills", verbatim_term="shivering"))
    other = report(team["coordinator"], consented_participant(), ae_values())
    assert (first.ae_number, second.ae_number, other.ae_number) == (1, 2, 1)
    assert first.reported_by == team["coordinator"] and first.protocol_version == "1.0"
    assert first.coded_term == "Fever" and first.meddra_code == "10016558"
    assert first.soc == "General disorders and administration site conditions"
    assert first.ongoing and not first.serious and not SAEReport.objects.filter(adverse_event=first).exists()


def test_refused_event_names_every_field_and_stores_nothing(team, participant):
    values = ae_values(grade=7, onset_date=timezone.localdate() + timedelta(days=1), outcome="fine",
                       coded_term="Feverishness", verbatim_term="")
    with pytest.raises(services.AdverseEventRefused) as info:
        report(team["coordinator"], participant, values)
    fields = {p.field for p in info.value.problems}
    assert {"grade", "onset_date", "outcome", "coded_term", "verbatim_term"} <= fields
    assert "not in the term dictionary" in str(info.value)
    assert AdverseEvent.objects.count() == 0


def test_unreadable_values_are_refused_by_field_not_as_missing(team, participant):
    with pytest.raises(services.AdverseEventRefused) as info:
        report(team["coordinator"], participant, ae_values(onset_date="31/02/2026", grade="three"))
    messages = {p.field: p.message for p in info.value.problems}
    assert "is not a date" in messages["onset_date"] and "is not a whole number" in messages["grade"]


def test_form_text_values_are_accepted_like_typed_ones(team, participant):
    day = timezone.localdate() - timedelta(days=1)
    ae = report(team["coordinator"], participant, {
        "verbatim_term": "short of breath", "coded_term": "dyspnea", "onset_date": day.isoformat(),
        "onset_time": "08:30", "grade": "2", "serious": "false", "relatedness_product": "unlikely",
        "relatedness_procedure": "not_related", "outcome": "recovered", "resolution_date": day.isoformat()})
    assert ae.coded_term == "Dyspnea" and ae.meddra_code == "10013963" and ae.grade == 2
    assert ae.onset_time == time(8, 30) and ae.ongoing is False


def test_serious_event_needs_a_criterion_and_the_awareness_date_time(team, participant):
    with pytest.raises(services.AdverseEventRefused) as info:
        report(team["coordinator"], participant, ae_values(serious=True))
    fields = {p.field for p in info.value.problems}
    assert "serious" in fields and "awareness_at" in fields
    assert SAEReport.objects.count() == 0


def test_criterion_ticked_on_a_non_serious_event_is_refused(team, participant):
    with pytest.raises(services.AdverseEventRefused) as info:
        report(team["coordinator"], participant, ae_values(sae_hospitalisation=True))
    assert info.value.problems[0].field == "serious"


def test_awareness_in_the_future_is_refused(team, participant):
    with pytest.raises(services.AdverseEventRefused) as info:
        report(team["coordinator"], participant, sae_values(awareness=timezone.now() + timedelta(minutes=5)))
    assert [p.field for p in info.value.problems] == ["awareness_at"]


def test_naive_awareness_datetime_object_is_refused_not_guessed(team, participant):
    naive = (timezone.now() - timedelta(hours=2)).replace(tzinfo=None)
    with pytest.raises(services.AdverseEventRefused) as info:
        report(team["coordinator"], participant, sae_values(awareness=naive))
    assert info.value.problems[0].field == "awareness_at" and "time zone" in info.value.problems[0].message


def test_awareness_text_without_offset_is_site_wall_clock_time(team, participant):
    ae = report(team["coordinator"], participant,
                sae_values(awareness="2026-11-01T10:00", onset_date=date(2026, 11, 1)))
    assert ae.sae_report.awareness_at.isoformat() == "2026-11-01T07:00:00+00:00"  # 10:00 MSK = 07:00 UTC


def test_seriousness_criteria_are_stored_separately(team, participant):
    ae = report(team["coordinator"], participant,
                sae_values(sae_hospitalisation=True, sae_important_medical_event=True, sae_life_threatening=False))
    ae.refresh_from_db()
    assert (ae.sae_death, ae.sae_life_threatening, ae.sae_hospitalisation, ae.sae_disability,
            ae.sae_congenital_anomaly, ae.sae_important_medical_event) == (False, False, True, False, False, True)
    assert ae.criteria_labels == ["Requires or prolongs inpatient hospitalisation", "Important medical event"]


def test_grade_and_seriousness_are_independent(team, participant):
    severe_not_serious = report(team["coordinator"], participant, ae_values(grade=3))
    moderate_serious = report(team["coordinator"], participant, sae_values(grade=2))
    assert severe_not_serious.grade == 3 and not severe_not_serious.serious
    assert not SAEReport.objects.filter(adverse_event=severe_not_serious).exists()
    assert moderate_serious.grade == 2 and moderate_serious.serious and moderate_serious.sae_report


def test_death_requires_grade_5_fatal_outcome_and_the_death_criterion_together(team, participant):
    with pytest.raises(services.AdverseEventRefused) as info:
        report(team["coordinator"], participant, sae_values(sae_death=True, grade=4, outcome="not_recovered"))
    assert {"grade", "sae_death"} & {p.field for p in info.value.problems}
    day = timezone.localdate() - timedelta(days=1)
    ae = report(team["coordinator"], participant, sae_values(
        sae_death=True, grade=5, outcome="fatal", resolution_date=day, onset_date=day - timedelta(days=1)))
    assert ae.is_death and ae.ongoing is False


def test_fatal_event_without_date_of_death_is_accepted_with_a_warning(team, participant):
    ae = report(team["coordinator"], participant, sae_values(sae_death=True, grade=5, outcome="fatal"))
    assert [w.field for w in ae.validation_warnings] == ["resolution_date"]


def test_related_serious_event_needs_expectedness(team, participant):
    with pytest.raises(services.AdverseEventRefused) as info:
        report(team["coordinator"], participant, sae_values(relatedness_product="possible"))
    assert info.value.problems[0].field == "expectedness"


def test_event_needs_informed_consent_on_record(team):
    from ildtrial.edc.participants.models import Participant
    from ildtrial.edc.study.models import Site

    with acting_as(None, reason="test"):
        p = Participant.objects.create(site=Site.objects.get(code="MOW01"), screening_number="MOW01-X1",
                                       screening_date=timezone.localdate(), protocol_version="1.0")
    with pytest.raises(InputRefused, match="informed consent"):
        report(team["coordinator"], p, ae_values())


def test_locked_database_refuses_new_adverse_events(team, participant):
    from ildtrial.edc.crfs import locking

    with acting_as(team["data_manager"]):
        locking.set_lock(team["data_manager"], True, "final lock")
    with pytest.raises(InputRefused, match="locked"):
        report(team["coordinator"], participant, ae_values())


# ---------------------------------------------------------------- infusion-related flag
@pytest.fixture
def infused(participant):
    day = timezone.localdate() - timedelta(days=5)
    add_infusion(participant, "C1A", day, time(10, 0))
    return participant, day


def test_onset_23_hours_after_infusion_start_is_flagged(team, infused):
    p, day = infused
    ae = report(team["coordinator"], p, ae_values(onset_date=day + timedelta(days=1), onset_time=time(9, 0)))
    assert ae.infusion_related and ae.infusion_visit == "C1A"


def test_onset_25_hours_after_infusion_start_is_not_flagged(team, infused):
    p, day = infused
    ae = report(team["coordinator"], p, ae_values(onset_date=day + timedelta(days=1), onset_time=time(11, 0)))
    assert not ae.infusion_related and ae.infusion_visit == ""


def test_onset_before_the_infusion_is_not_flagged(team, infused):
    p, day = infused
    ae = report(team["coordinator"], p, ae_values(onset_date=day, onset_time=time(9, 59)))
    assert not ae.infusion_related


def test_date_only_onset_is_flagged_when_the_window_reaches_that_day(team, infused):
    p, day = infused
    next_day = report(team["coordinator"], p, ae_values(onset_date=day + timedelta(days=1)))
    two_days = report(team["coordinator"], p, ae_values(onset_date=day + timedelta(days=2)))
    assert next_day.infusion_related and not two_days.infusion_related


def test_infusion_recorded_after_the_event_updates_the_flag_with_a_reason(team, participant):
    day = timezone.localdate() - timedelta(days=5)
    ae = report(team["coordinator"], participant, ae_values(onset_date=day + timedelta(days=1),
                                                            onset_time=time(9, 0)))
    assert not ae.infusion_related
    add_infusion(participant, "C1A", day, time(10, 0))
    ae.refresh_from_db()
    assert ae.infusion_related and ae.infusion_visit == "C1A"
    entry = AuditEntry.objects.filter(model="safety.AdverseEvent", object_pk=str(ae.pk), action="update").last()
    assert "infusion-related flag recomputed" in entry.reason


# ---------------------------------------------------------------- edits
def test_edit_needs_a_reason_and_is_audited(team, participant):
    ae = report(team["coordinator"], participant, ae_values())
    with acting_as(team["coordinator"]), pytest.raises(InputRefused, match="reason"):
        services.update_adverse_event(team["coordinator"], ae, ae_values(grade=2), reason="")
    with acting_as(team["coordinator"]):
        services.update_adverse_event(team["coordinator"], ae, ae_values(grade=2), reason="source: grade 2")
    ae.refresh_from_db()
    assert ae.grade == 2
    entry = AuditEntry.objects.filter(model="safety.AdverseEvent", object_pk=str(ae.pk), action="update").last()
    assert entry.reason == "source: grade 2" and entry.changes["grade"] == [1, 2]


def test_direct_save_without_reason_is_refused_by_the_audit_layer(team, participant):
    ae = report(team["coordinator"], participant, ae_values())
    ae.grade = 2
    with acting_as(team["coordinator"]), pytest.raises(ReasonRequired):
        ae.save()


def test_event_made_serious_on_edit_opens_its_report_and_downgrade_closes_it(team, participant):
    ae = report(team["coordinator"], participant, ae_values())
    with acting_as(team["coordinator"]):
        services.update_adverse_event(team["coordinator"], ae, sae_values(), reason="admitted to hospital")
    ae.refresh_from_db()
    assert ae.serious and ae.sae_report.status == "awaiting_sponsor"
    with acting_as(team["coordinator"]):
        services.update_adverse_event(team["coordinator"], ae, ae_values(), reason="elective admission, not an SAE")
    ae.sae_report.refresh_from_db()
    assert ae.sae_report.status == "downgraded"


# ---------------------------------------------------------------- permissions and scoping
def test_monitor_cannot_report_adverse_events(client, team, participant):
    with pytest.raises(Denied):
        report(team["monitor"], participant, ae_values())
    sign_in(client, team["monitor"])
    assert client.get(f"/safety/participant/{participant.pk}/new/").status_code == 403
    assert client.get(f"/safety/participant/{participant.pk}/").status_code == 200  # may read


def test_other_sites_events_are_not_found(client, make_user, team):
    make_site("SPB01", "Europe/Moscow")
    elsewhere = consented_participant("SPB01")
    spb_coordinator = make_user("study_coordinator", sites=("SPB01",))
    ae = report(spb_coordinator, elsewhere, sae_values())
    with pytest.raises(Denied):
        report(team["coordinator"], elsewhere, ae_values())
    sign_in(client, team["investigator"])
    for url in (f"/safety/participant/{elsewhere.pk}/", f"/safety/ae/{ae.pk}/", f"/safety/ae/{ae.pk}/edit/",
                f"/safety/sae/{ae.sae_report.pk}/", f"/safety/sae/{ae.sae_report.pk}/pdf/"):
        assert client.get(url).status_code == 404, url
    assert "SPB01" not in client.get("/safety/").content.decode()


def test_sponsor_viewer_oversees_every_site_but_cannot_report(client, team):
    make_site("SPB01", "Europe/Moscow")
    elsewhere = consented_participant("SPB01")
    ae = report(team["investigator"], consented_participant(), sae_values())
    sign_in(client, team["sponsor"])
    page = client.get("/safety/").content.decode()
    assert f"/safety/sae/{ae.sae_report.pk}/" in page
    assert client.get(f"/safety/participant/{elsewhere.pk}/").status_code == 200
    assert client.get(f"/safety/participant/{elsewhere.pk}/new/").status_code == 403


def test_cell_lab_has_no_safety_pages(client, make_user, participant):
    sign_in(client, make_user("cell_lab"))
    assert client.get("/safety/").status_code == 403
    assert client.get(f"/safety/participant/{participant.pk}/").status_code == 403


# ---------------------------------------------------------------- pages
def test_event_form_page_stores_the_event_and_shows_field_errors(client, team, participant):
    sign_in(client, team["coordinator"])
    url = f"/safety/participant/{participant.pk}/new/"
    assert b"ctcae-terms" in client.get(url).content
    bad = client.post(url, {"verbatim_term": "fever", "coded_term": "Fever", "grade": "3", "serious": "true",
                            "onset_date": str(timezone.localdate()), "relatedness_product": "not_related",
                            "relatedness_procedure": "not_related", "outcome": "recovering"})
    assert bad.status_code == 422
    body = bad.content.decode()
    assert "tick at least one seriousness criterion" in body and "the 24-hour reporting clock starts there" in body
    assert AdverseEvent.objects.count() == 0
    aware = (timezone.localtime() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    ok = client.post(url, {"verbatim_term": "fever", "coded_term": "Fever", "grade": "3", "serious": "true",
                           "sae_hospitalisation": "true", "awareness_at": aware,
                           "onset_date": str(timezone.localdate() - timedelta(days=1)),
                           "relatedness_product": "not_related", "relatedness_procedure": "not_related",
                           "outcome": "recovering", "action_taken": "none"})
    assert ok.status_code == 302
    ae = AdverseEvent.objects.get()
    assert ae.sae_hospitalisation and ae.sae_report.status == "awaiting_sponsor"
    listing = client.get(f"/safety/participant/{participant.pk}/").content.decode()
    assert "Fever" in listing and "Awaiting report to the sponsor" in listing
    detail = client.get(f"/safety/ae/{ae.pk}/").content.decode()
    assert "Requires or prolongs inpatient hospitalisation" in detail


def test_edit_page_requires_a_reason(client, team, participant):
    ae = report(team["coordinator"], participant, ae_values())
    sign_in(client, team["coordinator"])
    form = {**{k: ("" if v is None else str(v)) for k, v in ae_values(grade=2).items()}}
    refused = client.post(f"/safety/ae/{ae.pk}/edit/", form)
    assert refused.status_code == 422 and "reason" in refused.content.decode()
    assert client.post(f"/safety/ae/{ae.pk}/edit/", {**form, "reason": "typo"}).status_code == 302
    ae.refresh_from_db()
    assert ae.grade == 2


# ---------------------------------------------------------------- dictionary
CSV = b"term,meddra_code,soc\nPyrexia,10037660,General disorders\nFever,10016558,General disorders\n"


def test_imported_dictionary_codes_terms_the_curated_list_lacks(team, participant):
    with acting_as(team["data_manager"]):
        stored = dictionary.import_site_dictionary(team["data_manager"], CSV, "meddra.csv", "MedDRA extract")
    assert stored.term_count == 2 and stored.active
    ae = report(team["coordinator"], participant, ae_values(coded_term="pyrexia"))
    assert ae.coded_term == "Pyrexia" and ae.meddra_code == "10037660" and "MedDRA extract" in ae.term_source
    by_code = report(team["coordinator"], participant, ae_values(coded_term="10037660"))
    assert by_code.coded_term == "Pyrexia"


def test_dictionary_file_with_formula_cells_or_wrong_type_is_refused(team):
    with acting_as(team["data_manager"]), pytest.raises(dictionary.DictionaryRefused) as info:
        dictionary.import_site_dictionary(team["data_manager"], b"term,code\n=HYPERLINK(1),100\n", "x.csv")
    assert "formula" in str(info.value)
    with acting_as(team["data_manager"]), pytest.raises(dictionary.DictionaryRefused, match="not a .csv"):
        dictionary.import_site_dictionary(team["data_manager"], CSV, "terms.xlsx")
    assert TermDictionary.objects.count() == 0


def test_only_data_management_imports_dictionaries(client, team):
    with acting_as(team["investigator"]), pytest.raises(Denied):
        dictionary.import_site_dictionary(team["investigator"], CSV, "meddra.csv")
    sign_in(client, team["investigator"])
    assert client.get("/safety/dictionary/").status_code == 403


def test_dictionary_page_imports_and_reports_refusals(client, team):
    sign_in(client, team["data_manager"])
    bad = client.post("/safety/dictionary/", {"file": SimpleUploadedFile("d.csv", b"term\nFever\n")})
    assert bad.status_code == 422 and "lacks the column" in bad.content.decode()
    ok = client.post("/safety/dictionary/", {"name": "site list", "file": SimpleUploadedFile("d.csv", CSV)})
    assert ok.status_code == 302 and TermDictionary.objects.get().term_count == 2


def test_dictionary_command_imports_a_file(team, tmp_path, capsys):
    path = tmp_path / "ctcae_full.csv"
    path.write_bytes(CSV)
    assert main(["safety", "import-dictionary", str(path), "--user", team["data_manager"].username]) == 0
    assert TermDictionary.objects.get().filename == "ctcae_full.csv"
    assert main(["safety", "import-dictionary", str(path), "--user", team["coordinator"].username]) == 2
