"""Enrolment: screening attempts, consent, eligibility sign-off, randomization, masking, calendar."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from ildtrial.edc.audit.context import acting_as
from ildtrial.edc.audit.models import AuditEntry
from ildtrial.edc.errors import Denied, InputRefused
from ildtrial.edc.esign.services import SignatureRefused
from ildtrial.edc.participants import services as participants
from ildtrial.edc.participants.models import Participant, ParticipantStatus
from ildtrial.edc.randomization import services as randomization
from ildtrial.edc.randomization.models import AllocationSlot, EmergencyUnblinding
from ildtrial.edc.screening import services as screening
from ildtrial.edc.study.models import Site
from ildtrial.edc.study.protocol import _load
from ildtrial.edc.visits import services as visits
from ildtrial.edc.visits.models import ProtocolDeviation
from tests.conftest import PASSWORD, sign_in
from tests.edc.enrolment_helpers import eligible_participant, shifted_example, store_screening_forms

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(make_user):
    return {
        "coordinator": make_user("study_coordinator", email="coord@example.org"),
        "investigator": make_user("investigator", email="pi@example.org"),
        "statistician": make_user("unblinded_statistician", sites=(), email="stat@example.org"),
        "cell_lab": make_user("cell_lab", email="lab@example.org"),
        "monitor": make_user("monitor"),
    }


@pytest.fixture
def allocation_list(team):
    with acting_as(team["statistician"], reason="list"):
        return randomization.generate(team["statistician"], seed=20151102)


@pytest.fixture
def double_blind():
    _load.cache_clear()
    with override_settings(ILDTRIAL_MASKING="double_blind"):
        yield
    _load.cache_clear()


def site():
    return Site.objects.get(code="MOW01")


# ---------------------------------------------------------------- screening attempts
def test_screening_numbers_run_per_site(team):
    c = team["coordinator"]
    with acting_as(c):
        first = participants.register_candidate(c, site(), timezone.localdate())
        second = participants.register_candidate(c, site(), timezone.localdate())
    assert (first.screening_number, second.screening_number) == ("MOW01-S001", "MOW01-S002")
    assert first.visits.get(code="SCR").actual_date == timezone.localdate()


def test_screening_in_the_future_is_refused(team):
    with acting_as(team["coordinator"]), pytest.raises(InputRefused, match="screening_date: .* is in the future"):
        participants.register_candidate(team["coordinator"], site(), timezone.localdate() + timedelta(days=1))
    assert not Participant.objects.exists()


def test_users_cannot_screen_at_a_site_they_are_not_assigned_to(make_user):
    other = make_user("study_coordinator", sites=())
    with acting_as(other), pytest.raises(Denied):
        participants.register_candidate(other, site(), timezone.localdate())


def test_monitor_cannot_screen(team):
    with acting_as(team["monitor"]), pytest.raises(Denied):
        participants.register_candidate(team["monitor"], site(), timezone.localdate())


def test_rescreening_is_a_new_attempt_linked_to_the_failed_one(team):
    c = team["coordinator"]
    with acting_as(c):
        first = participants.register_candidate(c, site(), timezone.localdate() - timedelta(days=60))
        with pytest.raises(InputRefused, match="not a screen failure"):
            participants.register_candidate(c, site(), timezone.localdate(), rescreen_of=first)
        screening.record_screen_failure(c, first, "FVC decline 8 % (needs more than 10 %)")
        second = participants.register_candidate(c, site(), timezone.localdate(), rescreen_of=first)
        with pytest.raises(InputRefused, match="already re-screened"):
            participants.register_candidate(c, site(), timezone.localdate(), rescreen_of=first)
    assert second.rescreen_of == first and first.status == ParticipantStatus.SCREEN_FAILED


# ---------------------------------------------------------------- consent
def test_consent_cannot_be_dated_in_the_future(team):
    c = team["coordinator"]
    with acting_as(c):
        p = participants.register_candidate(c, site(), timezone.localdate())
        with pytest.raises(InputRefused, match="signed_at: consent cannot be dated in the future"):
            participants.record_consent(c, p, form_version="v1", signed_at=timezone.now() + timedelta(hours=2))
    assert not p.consents.exists()


def test_no_study_procedure_may_precede_consent(team):
    c = team["coordinator"]
    day = timezone.localdate() - timedelta(days=5)
    with acting_as(c):
        p = participants.register_candidate(c, site(), day)
        store_screening_forms(p, shifted_example(day))
        later = timezone.make_aware(datetime.combine(day + timedelta(days=1), datetime.min.time()))
        with pytest.raises(InputRefused, match="after a study procedure dated"):
            participants.record_consent(c, p, form_version="v1", signed_at=later)


def test_prior_measurements_are_not_study_procedures(team):
    c = team["coordinator"]
    day = timezone.localdate() - timedelta(days=5)
    with acting_as(c):
        p = participants.register_candidate(c, site(), day)
        data = shifted_example(day)
        store_screening_forms(p, {"PRIORLF": data["PRIORLF"]})  # measured months before the trial
        consent = participants.record_consent(
            c, p, form_version="v1", signed_at=timezone.make_aware(datetime.combine(day, datetime.min.time())))
    assert consent.pk


def test_withdrawal_of_consent_ends_screening(team):
    p = eligible_participant(team["coordinator"], team["investigator"], sign=False)
    with acting_as(team["coordinator"]):
        participants.withdraw_consent(team["coordinator"], p, withdrawn_at=timezone.now(), reason="changed mind")
    p.refresh_from_db()
    assert p.status == ParticipantStatus.SCREEN_FAILED and "consent withdrawn" in p.outcome_reason


# ---------------------------------------------------------------- eligibility and sign-off
def test_eligibility_is_signed_by_the_investigator_with_password_and_meaning(team):
    p = eligible_participant(team["coordinator"], team["investigator"], password=PASSWORD)
    assert p.status == ParticipantStatus.ELIGIBLE
    assessment = screening.latest(p)
    signature = assessment.signature
    assert signature.signer == team["investigator"]
    assert "meets all inclusion criteria" in signature.meaning and len(signature.content_sha256) == 64


def test_wrong_password_signs_nothing(team):
    p = eligible_participant(team["coordinator"], team["investigator"], sign=False)
    assessment = screening.latest(p)
    with acting_as(team["investigator"]), pytest.raises(SignatureRefused, match="password"):
        screening.confirm(team["investigator"], assessment, "not-my-password")
    p.refresh_from_db()
    assert p.status == ParticipantStatus.SCREENING and screening.latest(p).signature is None
    assert AuditEntry.objects.filter(action="signature_refused").exists()


def test_coordinator_cannot_sign_eligibility(team):
    p = eligible_participant(team["coordinator"], team["investigator"], sign=False)
    with acting_as(team["coordinator"]), pytest.raises(Denied):
        screening.confirm(team["coordinator"], screening.latest(p), PASSWORD)


def test_signing_refused_when_data_changed_after_evaluation(team):
    from ildtrial.edc.audit.context import because

    p = eligible_participant(team["coordinator"], team["investigator"], sign=False)
    form = p.forms.get(form_code="SPIRO")
    with acting_as(team["coordinator"]), because("typo"):
        form.data = {**form.data, "fvc_l": 2.15}
        form.save()
    with acting_as(team["investigator"]), pytest.raises(InputRefused, match="changed after this evaluation"):
        screening.confirm(team["investigator"], screening.latest(p), PASSWORD)


def test_not_eligible_candidate_becomes_a_screen_failure_with_reasons(team):
    c, pi = team["coordinator"], team["investigator"]
    day = timezone.localdate() - timedelta(days=2)
    with acting_as(c):
        p = participants.register_candidate(c, site(), day)
        participants.record_consent(c, p, form_version="v1",
                                    signed_at=timezone.make_aware(datetime.combine(day, datetime.min.time())))
        store_screening_forms(p, shifted_example(day, SPIRO={"fev1_l": 1.2, "fvc_l": 2.12},
                                                 EXCL={"other_trial": True}))
        assessment = screening.evaluate(c, p)
    assert assessment.status == "not_eligible"
    with acting_as(pi):
        screening.confirm(pi, assessment, PASSWORD)
    p.refresh_from_db()
    assert p.status == ParticipantStatus.SCREEN_FAILED
    assert "EX2" in p.outcome_reason and "EX11" in p.outcome_reason


def test_incomplete_evaluation_cannot_be_signed(team):
    c, pi = team["coordinator"], team["investigator"]
    with acting_as(c):
        p = participants.register_candidate(c, site(), timezone.localdate())
        participants.record_consent(c, p, form_version="v1", signed_at=timezone.now() - timedelta(minutes=5))
        assessment = screening.evaluate(c, p)
    assert assessment.status == "incomplete"
    with acting_as(pi), pytest.raises(InputRefused, match="incomplete"):
        screening.confirm(pi, assessment, PASSWORD)


# ---------------------------------------------------------------- randomization
def test_only_the_unblinded_statistician_generates_the_list(team):
    with acting_as(team["investigator"]), pytest.raises(Denied):
        randomization.generate(team["investigator"], seed=1)


def test_list_is_reproducible_from_its_seed_and_verified(team, allocation_list):
    assert allocation_list.slots.count() == 80
    report = randomization.balance(team["statistician"])
    assert report["verified"] is True
    again = randomization.regenerate(allocation_list)
    assert again.digest == allocation_list.digest


def test_randomization_needs_signed_off_eligibility(team, allocation_list):
    p = eligible_participant(team["coordinator"], team["investigator"], sign=False)
    with acting_as(team["coordinator"]), pytest.raises(InputRefused, match="eligibility was signed off"):
        randomization.randomize(team["coordinator"], p)


def test_randomization_takes_the_next_slot_of_the_stratum(team, allocation_list):
    p = eligible_participant(team["coordinator"], team["investigator"], diagnosis="IIP")
    with acting_as(team["coordinator"]):
        slot = randomization.randomize(team["coordinator"], p)
        with pytest.raises(InputRefused, match="already randomized|only a participant"):
            randomization.randomize(team["coordinator"], p)
    assert (slot.stratum, slot.sequence, slot.number) == ("IIP", 1, "IIP-001")
    p.refresh_from_db()
    assert p.status == ParticipantStatus.RANDOMIZED and p.randomization_number == "IIP-001"


def test_monitor_cannot_randomize(team, allocation_list):
    p = eligible_participant(team["coordinator"], team["investigator"])
    with acting_as(team["monitor"]), pytest.raises(Denied):
        randomization.randomize(team["monitor"], p)


def test_existing_list_in_use_cannot_be_replaced(team, allocation_list):
    p = eligible_participant(team["coordinator"], team["investigator"])
    with acting_as(team["coordinator"]):
        randomization.randomize(team["coordinator"], p)
    with acting_as(team["statistician"]), pytest.raises(InputRefused, match="in use"):
        randomization.generate(team["statistician"], seed=2)


def test_cell_lab_is_told_what_to_prepare(team, allocation_list):
    p = eligible_participant(team["coordinator"], team["investigator"])
    with acting_as(team["coordinator"]):
        slot = randomization.randomize(team["coordinator"], p)
    message = next(m for m in mail.outbox if "prepare" in m.subject)
    assert message.to == ["lab@example.org"]
    expected = "Saline" if slot.arm == "PBO" else "mesenchymal"
    assert expected in message.body


@pytest.mark.django_db(transaction=True)
def test_parallel_randomization_never_double_allocates_or_skips(team, allocation_list):
    people = [eligible_participant(team["coordinator"], team["investigator"], diagnosis=d)
              for d in ["IIP", "CTD_ILD"] * 6]
    errors: list[Exception] = []
    barrier = threading.Barrier(len(people))

    def go(participant):  # noqa: ANN001
        try:
            barrier.wait()
            with acting_as(team["coordinator"]):
                randomization.randomize(team["coordinator"], participant)
        except Exception as exc:  # noqa: BLE001 - collected and asserted
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=go, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    used = AllocationSlot.objects.filter(participant__isnull=False)
    assert used.count() == 12
    for stratum in ("IIP", "CTD_ILD"):
        sequences = sorted(used.filter(stratum=stratum).values_list("sequence", flat=True))
        assert sequences == list(range(1, 7)), stratum  # none skipped, none twice
    from ildtrial.edc.audit.services import verify

    assert verify().ok


# ---------------------------------------------------------------- masking
def test_open_label_shows_the_arm_to_the_coordinator(client, team, allocation_list):
    p = eligible_participant(team["coordinator"], team["investigator"])
    with acting_as(team["coordinator"]):
        slot = randomization.randomize(team["coordinator"], p)
    sign_in(client, team["coordinator"])
    page = client.get(f"/participants/{p.pk}/").content.decode()
    assert f"<strong>{slot.arm}</strong>" in page


def test_double_blind_hides_the_arm_from_blinded_roles_everywhere(client, team, allocation_list, double_blind):
    p = eligible_participant(team["coordinator"], team["investigator"])
    with acting_as(team["coordinator"]):
        slot = randomization.randomize(team["coordinator"], p)
    arm_name = "mesenchymal" if slot.arm == "MSC" else "Saline"
    for role in ("coordinator", "investigator", "monitor"):
        client.logout()
        sign_in(client, team[role])
        for url in (f"/participants/{p.pk}/", "/participants/", "/participants/screening-log/",
                    f"/visits/participant/{p.pk}/", "/audit/", "/audit/export.csv",
                    f"/audit/record/randomization.AllocationSlot/{slot.pk}/"):
            response = client.get(url)
            body = response.content.decode()
            assert f">{slot.arm}<" not in body and f",{slot.arm}," not in body, (role, url)
            assert arm_name not in body or url.startswith("/participants/") is False or "prepare" not in body
        assert randomization.arm_for(team[role], p) == randomization.BLINDED
        assert client.get("/randomization/").status_code == 403
    assert randomization.arm_for(team["cell_lab"], p) == slot.arm
    assert randomization.arm_for(team["statistician"], p) == slot.arm


def test_double_blind_audit_export_masks_the_arm_for_blinded_viewers(client, team, allocation_list, double_blind):
    sign_in(client, team["monitor"])
    body = client.get("/audit/export.csv?model=randomization.AllocationSlot").content.decode()
    assert "(masked)" in body and ",MSC," not in body and ",PBO," not in body


def test_emergency_unblinding_is_recorded_notified_and_personal(client, team, allocation_list, double_blind, make_user):
    p = eligible_participant(team["coordinator"], team["investigator"])
    with acting_as(team["coordinator"]):
        slot = randomization.randomize(team["coordinator"], p)
    pi = team["investigator"]
    with acting_as(pi):
        with pytest.raises(InputRefused, match="password"):
            randomization.emergency_unblind(pi, p, reason="anaphylaxis", password="wrong")
        with pytest.raises(InputRefused, match="reason"):
            randomization.emergency_unblind(pi, p, reason=" ", password=PASSWORD)
        assert randomization.emergency_unblind(pi, p, reason="anaphylaxis", password=PASSWORD) == slot.arm
    record = EmergencyUnblinding.objects.get(participant=p)
    assert record.user == pi and record.reason == "anaphylaxis"
    notice = next(m for m in mail.outbox if "EMERGENCY UNBLINDING" in m.subject)
    assert set(notice.to) == {"lab@example.org", "stat@example.org"}
    assert randomization.arm_for(pi, p) == slot.arm
    assert randomization.arm_for(team["coordinator"], p) == randomization.BLINDED


def test_emergency_unblinding_denied_to_coordinators(team, allocation_list, double_blind):
    p = eligible_participant(team["coordinator"], team["investigator"])
    with acting_as(team["coordinator"]):
        randomization.randomize(team["coordinator"], p)
        with pytest.raises(Denied):
            randomization.emergency_unblind(team["coordinator"], p, reason="x", password=PASSWORD)


# ---------------------------------------------------------------- calendar
def randomized(team, days_ago: int = 120) -> Participant:
    p = eligible_participant(team["coordinator"], team["investigator"],
                             screening_date=timezone.localdate() - timedelta(days=days_ago))
    with acting_as(team["coordinator"]):
        randomization.randomize(team["coordinator"], p)
    p.refresh_from_db()
    with acting_as(None, reason="test: randomized on the screening day"):
        p.randomized_at = timezone.make_aware(datetime.combine(p.screening_date, datetime.min.time()))
        p.save()
    return p


def test_calendar_follows_actual_dates_when_infusions_slip(team, allocation_list):
    p = randomized(team)
    c = team["coordinator"]
    day0 = p.screening_date + timedelta(days=5)
    with acting_as(c):
        visits.record_visit(c, p, "C1A", day0)
        visits.record_visit(c, p, "C1B", day0 + timedelta(days=8))  # +1 day: still in window
        visits.record_visit(c, p, "W13", day0 + timedelta(days=96))  # +5 days
    plan = {v.code: v for v in visits.calendar(p)}
    assert plan["C1B"].planned == day0 + timedelta(days=7)
    assert plan["C2B"].planned == day0 + timedelta(days=103)  # anchored on the actual W13
    assert (plan["C2B"].earliest, plan["C2B"].latest) == (day0 + timedelta(days=102), day0 + timedelta(days=104))
    assert plan["W26"].planned == day0 + timedelta(days=182)  # quarterly visits stay on day 0
    assert not ProtocolDeviation.objects.filter(participant=p).exists()


def test_visit_outside_its_window_is_a_protocol_deviation(team, allocation_list):
    p = randomized(team)
    c = team["coordinator"]
    day0 = p.screening_date + timedelta(days=5)
    with acting_as(c):
        visits.record_visit(c, p, "C1A", day0)
        visits.record_visit(c, p, "C1B", day0 + timedelta(days=10))
    deviation = ProtocolDeviation.objects.get(participant=p)
    assert deviation.kind == "visit_out_of_window" and "C1B" in deviation.description


def test_second_infusion_cannot_be_recorded_before_the_first(team, allocation_list):
    p = randomized(team)
    with acting_as(team["coordinator"]), pytest.raises(InputRefused, match="record day 0|has not been recorded"):
        visits.record_visit(team["coordinator"], p, "C1B", p.screening_date + timedelta(days=10))


def test_day_zero_must_fall_within_the_screening_window(team, allocation_list):
    p = randomized(team)
    with acting_as(team["coordinator"]), pytest.raises(InputRefused, match="within 28 days of screening"):
        visits.record_visit(team["coordinator"], p, "C1A", p.screening_date + timedelta(days=40))


def test_changing_a_recorded_visit_date_needs_a_reason(team, allocation_list):
    p = randomized(team)
    c = team["coordinator"]
    day0 = p.screening_date + timedelta(days=5)
    with acting_as(c):
        visits.record_visit(c, p, "C1A", day0)
        with pytest.raises(InputRefused, match="reason"):
            visits.record_visit(c, p, "C1A", day0 + timedelta(days=1))
        visits.record_visit(c, p, "C1A", day0 + timedelta(days=1), reason="date entered wrongly")
    assert p.visits.get(code="C1A").actual_date == day0 + timedelta(days=1)


def test_unscheduled_visits_and_missed_visits(team, allocation_list):
    p = randomized(team)
    c = team["coordinator"]
    with acting_as(c):
        visits.record_visit(c, p, "C1A", p.screening_date + timedelta(days=5))
        v = visits.add_unscheduled(c, p, timezone.localdate(), "fever after infusion")
        m = visits.mark_missed(c, p, "C1B", "participant in hospital")
    assert v.code == "UNS1" and v.unscheduled
    assert m.state == "missed"
    statuses = {pl.code: pl.status(timezone.localdate()) for pl in visits.calendar(p)}
    assert statuses["C1B"] == "missed"


def test_calendar_pages_due_list_and_icalendar(client, team, allocation_list):
    p = randomized(team, days_ago=30)
    with acting_as(team["coordinator"]):
        visits.record_visit(team["coordinator"], p, "C1A", p.screening_date + timedelta(days=5))
    sign_in(client, team["coordinator"])
    assert client.get(f"/visits/participant/{p.pk}/").status_code == 200
    assert client.get("/visits/due/").status_code == 200
    ics = client.get(f"/visits/participant/{p.pk}/visits.ics")
    assert ics["Content-Type"].startswith("text/calendar")
    assert ics.content.decode().count("BEGIN:VEVENT") >= 9


def test_other_sites_participants_are_not_found(client, team, make_user):
    p = eligible_participant(team["coordinator"], team["investigator"], sign=False)
    with acting_as(None, reason="test"):
        Site.objects.create(code="SPB01", name="Other", city="Saint Petersburg", country="RU")
    outsider = make_user("study_coordinator", sites=("SPB01",))
    sign_in(client, outsider)
    for url in (f"/participants/{p.pk}/", f"/visits/participant/{p.pk}/", f"/visits/participant/{p.pk}/visits.ics"):
        assert client.get(url).status_code == 404, url
    assert p.screening_number not in client.get("/participants/").content.decode()


def test_visit_after_a_missed_anchor_is_planned_from_the_anchor_plan(team, allocation_list):
    p = randomized(team, days_ago=200)
    c = team["coordinator"]
    day0 = p.screening_date + timedelta(days=5)
    with acting_as(c):
        visits.record_visit(c, p, "C1A", day0)
        visits.record_visit(c, p, "C1B", day0 + timedelta(days=7))
        visits.mark_missed(c, p, "W13", "in hospital")
        visits.record_visit(c, p, "C2B", day0 + timedelta(days=98))
    plan = {v.code: v for v in visits.calendar(p)}
    assert plan["C2B"].planned == day0 + timedelta(days=98) and not plan["C2B"].anchor_is_actual


def test_allocation_list_page_shows_balance_after_randomizations(client, team, allocation_list):
    p = eligible_participant(team["coordinator"], team["investigator"], diagnosis="IIP")
    with acting_as(team["coordinator"]):
        randomization.randomize(team["coordinator"], p)
    report = randomization.balance(team["statistician"])
    assert report["strata"]["IIP"]["used"]["n"] == 1 and report["verified"]
    sign_in(client, team["statistician"])
    assert client.get("/randomization/").status_code == 200


def test_stylesheet_is_served(client):
    from django.contrib.staticfiles import finders

    assert finders.find("ildtrial/site.css")
