"""The SAE workflow through the Django layer: clocks and their boundaries, SUSAR assessment,
submissions, follow-ups, notifications, stopping rules, the dashboard, the printable report
and the reminder command. Each test is named after the rule it pins down."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from ildtrial.cli import main
from ildtrial.edc.audit.context import acting_as
from ildtrial.edc.errors import Denied, InputRefused
from ildtrial.edc.safety import services
from ildtrial.edc.safety.models import SafetyNotification, StoppingRuleEvent
from tests.conftest import sign_in
from tests.edc.test_safety_helpers import (
    consented_participant,
    make_site,
    moscow,
    no_arm,
    report,
    sae_values,
)

pytestmark = pytest.mark.django_db

AWARE = moscow(2026, 11, 1, 10, 0)  # Europe/Moscow: UTC+3 all year
ONSET = date(2026, 11, 1)


@pytest.fixture
def team(make_user):
    return {
        "coordinator": make_user("study_coordinator", email="coordinator@site.test"),
        "investigator": make_user("investigator", email="pi@site.test"),
        "sub_investigator": make_user("sub_investigator", email="subi@site.test"),
        "monitor": make_user("monitor", email="monitor@site.test"),
        "sponsor": make_user("sponsor_viewer", sites=(), email="sponsor@sponsor.test"),
        "dsmb": make_user("dsmb_member", sites=(), email="dsmb@dsmb.test"),
        "statistician": make_user("unblinded_statistician", sites=(), email="stat@cro.test"),
    }


@pytest.fixture
def participant(team):
    return consented_participant()


def sae(team, participant, **overrides):
    values = sae_values(awareness=AWARE, onset_date=ONSET)
    values.update(overrides)
    return report(team["coordinator"], participant, values).sae_report


def submit(user, rep, kind, at, **kwargs):
    with acting_as(user):
        return services.record_submission(user, rep, kind, at, **kwargs)


def assess(user, rep, relatedness="possible", expectedness="unexpected", **kwargs):
    with acting_as(user):
        return services.assess_susar(user, rep, relatedness_product=relatedness, expectedness=expectedness,
                                     **kwargs)


def clock(rep, key, now=None):
    return next(c for c in services.clocks(rep, now) if c.key == key)


def recipients(message_filter: str) -> set[str]:
    return {m.to[0] for m in mail.outbox if message_filter in m.subject}


# ---------------------------------------------------------------- sponsor clock (24 h, absolute)
def test_sponsor_deadline_is_24_hours_after_awareness_not_onset(team, participant):
    rep = sae(team, participant, onset_date=date(2026, 10, 28))
    assert rep.sponsor_due_at == AWARE + timedelta(hours=24)
    assert rep.site_timezone == "Europe/Moscow" and rep.status == "awaiting_sponsor"


def test_sponsor_report_sent_23h59_after_awareness_is_on_time(client, team, participant):
    rep = submit(team["coordinator"], sae(team, participant), "sponsor", AWARE + timedelta(hours=23, minutes=59))
    assert clock(rep, "sponsor").status.state == "on_time"
    assert rep.status == "awaiting_assessment"
    sign_in(client, team["investigator"])
    page = client.get(f"/safety/sae/{rep.pk}/").content.decode()
    assert "sent on time" in page and "2026-11-02 09:59 MSK" in page


def test_sponsor_report_sent_24h01_after_awareness_is_late(client, team, participant):
    rep = submit(team["coordinator"], sae(team, participant), "sponsor", "2026-11-02T10:01")  # site time
    state = clock(rep, "sponsor").status
    assert state.state == "submitted_late" and state.late_by == timedelta(minutes=1)
    sign_in(client, team["investigator"])
    assert "sent late by 1 min" in client.get(f"/safety/sae/{rep.pk}/").content.decode()


def test_sponsor_report_exactly_at_the_deadline_is_on_time_a_microsecond_later_is_late(team, participant):
    rep = sae(team, participant)
    assert clock(rep, "sponsor", now=AWARE + timedelta(hours=24)).status.state == "due"
    assert clock(rep, "sponsor", now=AWARE + timedelta(hours=24, microseconds=1)).status.state == "overdue"
    rep = submit(team["coordinator"], rep, "sponsor", AWARE + timedelta(hours=24))
    assert clock(rep, "sponsor").status.state == "on_time"


def test_dashboard_marks_an_sae_unreported_24h01_after_awareness_overdue_in_words(client, team, participant):
    now = timezone.now()
    report(team["coordinator"], participant, sae_values(awareness=now - timedelta(hours=24, minutes=1),
                                                        onset_date=timezone.localdate(now) - timedelta(days=2)))
    sign_in(client, team["investigator"])
    page = client.get("/safety/").content.decode()
    assert "OVERDUE by 1 min" in page and "status-overdue" in page  # text and colour, not colour only


def test_dashboard_shows_an_sae_unreported_23h59_after_awareness_as_still_due(client, team, participant):
    now = timezone.now()
    report(team["coordinator"], participant, sae_values(awareness=now - timedelta(hours=23, minutes=59),
                                                        onset_date=timezone.localdate(now) - timedelta(days=2)))
    sign_in(client, team["investigator"])
    page = client.get("/safety/").content.decode()
    assert "OVERDUE" not in page and "due in" in page and "Awaiting report to the sponsor" in page


def test_changing_the_awareness_date_time_moves_the_clocks(team, participant):
    rep = sae(team, participant)
    with acting_as(team["coordinator"]):
        services.update_adverse_event(team["coordinator"], rep.adverse_event,
                                      sae_values(awareness=AWARE + timedelta(hours=5), onset_date=ONSET),
                                      reason="awareness corrected from the phone log")
    rep.refresh_from_db()
    assert rep.sponsor_due_at == AWARE + timedelta(hours=29)


# ---------------------------------------------------------------- SUSAR assessment and regulatory clocks
def test_life_threatening_susar_is_due_in_7_calendar_days_and_complete_in_8_more(team, participant):
    rep = assess(team["investigator"], sae(team, participant, sae_life_threatening=True, grade=4))
    assert rep.susar is True and rep.status == "awaiting_sponsor"
    assert rep.regulatory_due_at == moscow(2026, 11, 8, 10, 0)
    assert rep.regulatory_complete_due_at == moscow(2026, 11, 16, 10, 0)


def test_other_susar_is_due_in_15_calendar_days_without_a_complete_report(team, participant):
    rep = assess(team["investigator"], sae(team, participant))
    assert rep.regulatory_due_at == moscow(2026, 11, 16, 10, 0) and rep.regulatory_complete_due_at is None


def test_susar_report_at_the_deadline_is_on_time_one_minute_later_is_late(team, participant):
    rep = assess(team["investigator"], sae(team, participant))
    submit(team["coordinator"], rep, "sponsor", AWARE + timedelta(hours=3))
    rep = submit(team["investigator"], rep, "regulatory", moscow(2026, 11, 16, 10, 0))
    assert clock(rep, "regulatory").status.state == "on_time" and rep.status == "reported"
    rep = submit(team["investigator"], rep, "regulatory", moscow(2026, 11, 16, 10, 1), reason="date corrected")
    assert clock(rep, "regulatory").status.state == "submitted_late"


def test_fatal_or_life_threatening_susar_clocks_are_on_time_at_the_deadline_and_late_a_minute_after(team, participant):
    rep = assess(team["investigator"], sae(team, participant, sae_life_threatening=True, grade=4))
    submit(team["coordinator"], rep, "sponsor", AWARE + timedelta(hours=1))
    rep = submit(team["investigator"], rep, "regulatory", moscow(2026, 11, 8, 10, 1))
    assert clock(rep, "regulatory").status.state == "submitted_late" and rep.status == "awaiting_complete"
    rep = submit(team["investigator"], rep, "regulatory_complete", moscow(2026, 11, 16, 10, 0))
    assert clock(rep, "regulatory_complete").status.state == "on_time" and rep.status == "reported"
    assert clock(rep, "regulatory_complete", now=moscow(2026, 11, 16, 10, 0)).status.state == "on_time"


def test_complete_report_is_refused_for_a_susar_that_is_neither_fatal_nor_life_threatening(team, participant):
    rep = assess(team["investigator"], sae(team, participant))
    rep = submit(team["investigator"], rep, "regulatory", AWARE + timedelta(days=3))
    with pytest.raises(InputRefused, match="fatal or life-threatening"):
        submit(team["investigator"], rep, "regulatory_complete", AWARE + timedelta(days=4))


def test_susar_calendar_day_clock_across_the_spring_change_in_berlin_is_167_hours(make_user):
    make_site("BER01", "Europe/Berlin")
    coordinator = make_user("study_coordinator", sites=("BER01",))
    investigator = make_user("investigator", sites=("BER01",))
    p = consented_participant("BER01")
    rep = report(coordinator, p, sae_values(awareness="2026-03-27T10:00", onset_date=date(2026, 3, 27),
                                            sae_life_threatening=True, grade=4)).sae_report
    aware = datetime(2026, 3, 27, 9, 0, tzinfo=UTC)  # 10:00 CET
    assert rep.awareness_at == aware and rep.sponsor_due_at == aware + timedelta(hours=24)
    rep = assess(investigator, rep)
    assert rep.regulatory_due_at == datetime(2026, 4, 3, 8, 0, tzinfo=UTC)  # 10:00 CEST
    assert rep.regulatory_due_at - rep.awareness_at == timedelta(hours=167)


def test_not_related_to_the_product_is_not_a_susar_even_if_the_procedure_is(team, participant):
    rep = sae(team, participant, relatedness_procedure="definite")
    rep = assess(team["investigator"], rep, relatedness="not_related", expectedness="")
    assert rep.susar is False and rep.regulatory_due_at is None
    with pytest.raises(InputRefused, match="only a SUSAR"):
        submit(team["investigator"], rep, "regulatory", AWARE + timedelta(days=1))


def test_coordinator_cannot_assess_a_susar(client, team, participant):
    rep = sae(team, participant)
    with pytest.raises(Denied):
        assess(team["coordinator"], rep)
    sign_in(client, team["coordinator"])
    response = client.post(f"/safety/sae/{rep.pk}/assess/", {"relatedness_product": "possible",
                                                            "expectedness": "unexpected"})
    assert response.status_code == 403
    rep.refresh_from_db()
    assert rep.susar is None


def test_coordinator_cannot_record_a_regulatory_submission(team, participant):
    rep = assess(team["investigator"], sae(team, participant))
    with pytest.raises(Denied):
        submit(team["coordinator"], rep, "regulatory", AWARE + timedelta(days=1))


def test_related_event_needs_expectedness_to_be_assessed(team, participant):
    with pytest.raises(InputRefused) as info:
        assess(team["investigator"], sae(team, participant), expectedness="")
    assert info.value.field == "expectedness"


def test_unassessed_potential_susar_shows_a_provisional_regulatory_clock(client, team, participant):
    rep = sae(team, participant, relatedness_product="probable", expectedness="unexpected")
    provisional = clock(rep, "regulatory")
    assert provisional.provisional and provisional.deadline == moscow(2026, 11, 16, 10, 0)
    sign_in(client, team["investigator"])
    assert "provisional: SUSAR assessment pending" in client.get(f"/safety/sae/{rep.pk}/").content.decode()


def test_changing_relatedness_after_assessment_sends_the_report_back_for_assessment(team, participant):
    rep = assess(team["investigator"], sae(team, participant))
    submit(team["coordinator"], rep, "sponsor", AWARE + timedelta(hours=2))
    with acting_as(team["coordinator"]):
        services.update_adverse_event(team["coordinator"], rep.adverse_event,
                                      sae_values(awareness=AWARE, onset_date=ONSET, relatedness_product="unlikely"),
                                      reason="investigator's note transcribed")
    rep.refresh_from_db()
    assert rep.susar is None and rep.status == "awaiting_assessment" and rep.regulatory_due_at is None


def test_reassessment_needs_a_reason(team, participant):
    rep = assess(team["investigator"], sae(team, participant))
    with pytest.raises(InputRefused, match="reason"):
        assess(team["investigator"], rep, relatedness="unlikely", expectedness="")
    rep = assess(team["investigator"], rep, relatedness="unlikely", expectedness="", reason="new information")
    assert rep.susar is False


def test_submission_before_awareness_or_in_the_future_is_refused(team, participant):
    rep = sae(team, participant)
    with pytest.raises(InputRefused, match="before the site became aware"):
        submit(team["coordinator"], rep, "sponsor", AWARE - timedelta(minutes=1))
    with pytest.raises(InputRefused, match="future"):
        submit(team["coordinator"], rep, "sponsor", timezone.now() + timedelta(minutes=5))


# ---------------------------------------------------------------- notifications
def test_new_sae_notifies_site_investigators_and_sponsor_viewers_only(team, participant, make_user):
    make_site("SPB01", "Europe/Moscow")
    make_user("investigator", sites=("SPB01",), email="pi@spb.test")
    sae(team, participant)
    assert recipients("SAE reported") == {"pi@site.test", "subi@site.test", "sponsor@sponsor.test"}
    assert all(len(m.to) == 1 for m in mail.outbox)  # recipients do not see each other
    logged = SafetyNotification.objects.get(kind="sae_new")
    assert set(logged.recipients) == {team["investigator"].username, team["sub_investigator"].username,
                                      team["sponsor"].username} and logged.error == ""


def test_susar_also_notifies_the_unblinded_statistician(team, participant):
    rep = sae(team, participant)
    mail.outbox.clear()
    assess(team["investigator"], rep)
    assert recipients("SUSAR") == {"pi@site.test", "subi@site.test", "sponsor@sponsor.test", "stat@cro.test"}


def test_follow_up_is_recorded_and_sent_to_sponsor_and_investigators(team, participant):
    rep = sae(team, participant)
    mail.outbox.clear()
    with acting_as(team["coordinator"]):
        services.add_follow_up(team["coordinator"], rep, AWARE + timedelta(days=2), "discharged home")
    assert rep.follow_ups.get().information == "discharged home"
    assert recipients("SAE follow-up") == {"pi@site.test", "subi@site.test", "sponsor@sponsor.test"}


def test_safety_emails_never_contain_the_arm(team, participant):
    rep = sae(team, participant, sae_life_threatening=True, grade=4)
    assess(team["investigator"], rep)
    assert mail.outbox
    for message in mail.outbox:
        assert no_arm(message.subject + message.body) and "MSC" not in message.body


# ---------------------------------------------------------------- stopping rules
def test_stopping_rule_fires_at_the_second_related_sae(client, team, participant):
    first = sae(team, participant, relatedness_product="possible", expectedness="unexpected")
    assert not StoppingRuleEvent.objects.exists()
    mail.outbox.clear()
    second = sae(team, consented_participant(), relatedness_product="probable", expectedness="expected")
    event = StoppingRuleEvent.objects.get()
    assert event.rule_id == "RELATED_SAE_HALT" and event.count == 2 and event.trigger_event == second.adverse_event
    assert event.counted_sae_ids == [first.adverse_event.sae_id, second.adverse_event.sae_id]
    assert recipients("STOPPING RULE") == {"pi@site.test", "subi@site.test", "sponsor@sponsor.test",
                                           "dsmb@dsmb.test"}
    sign_in(client, team["monitor"])
    assert "STOPPING RULE TRIGGERED" in client.get("/safety/").content.decode()


def test_stopping_rule_does_not_fire_for_unrelated_or_procedure_only_saes(team, participant):
    sae(team, participant, relatedness_product="not_related")
    sae(team, participant, relatedness_product="unlikely")
    sae(team, participant, relatedness_product="not_related", relatedness_procedure="definite")
    sae(team, participant, relatedness_product="possible", expectedness="unexpected")
    assert not StoppingRuleEvent.objects.exists()
    assert not recipients("STOPPING RULE")


def test_stopping_rule_is_recorded_once_and_counts_relatedness_changed_on_assessment(team, participant):
    sae(team, participant, relatedness_product="possible", expectedness="unexpected")
    unrelated = sae(team, participant, relatedness_product="not_related")
    assert not StoppingRuleEvent.objects.exists()
    assess(team["investigator"], unrelated, relatedness="definite", expectedness="unexpected")
    assert StoppingRuleEvent.objects.count() == 1
    sae(team, participant, relatedness_product="definite", expectedness="unexpected")
    assert StoppingRuleEvent.objects.count() == 1


def test_non_serious_related_events_do_not_count_towards_the_stopping_rule(team, participant):
    from tests.edc.test_safety_helpers import ae_values

    for _ in range(3):
        report(team["coordinator"], participant, ae_values(relatedness_product="definite", grade=3))
    assert not StoppingRuleEvent.objects.exists()


# ---------------------------------------------------------------- pages: report, PDF, deaths
def test_sae_report_renders_as_html_and_pdf(client, team, participant):
    rep = sae(team, participant)
    sign_in(client, team["sponsor"])
    html = client.get(f"/safety/sae/{rep.pk}/print/").content.decode()
    assert "Serious adverse event report" in html and "Requires or prolongs inpatient hospitalisation" in html
    assert "2026-11-02 10:00 MSK" in html  # sponsor deadline in site time
    pdf = client.get(f"/safety/sae/{rep.pk}/pdf/")
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")


def test_deaths_and_hospitalisations_link_to_their_adverse_events(client, team, participant):
    day = timezone.localdate() - timedelta(days=1)
    death = report(team["coordinator"], participant, sae_values(
        sae_death=True, grade=5, outcome="fatal", resolution_date=day, onset_date=day - timedelta(days=2)))
    sign_in(client, team["investigator"])
    page = client.get("/safety/").content.decode()
    assert f'href="/safety/ae/{death.pk}/"' in page
    hosp = report(team["coordinator"], participant, sae_values())
    assert f'href="/safety/ae/{hosp.pk}/"' in client.get("/safety/").content.decode()


def test_sae_page_actions_record_submission_and_follow_up(client, team, participant):
    rep = sae(team, participant)
    sign_in(client, team["coordinator"])
    client.post(f"/safety/sae/{rep.pk}/submit/", {"kind": "sponsor", "submitted_at": "2026-11-01T18:00"})
    client.post(f"/safety/sae/{rep.pk}/follow-up/", {"received_at": "2026-11-03T09:00", "information": "CT done"})
    rep.refresh_from_db()
    assert rep.sponsor_submitted_at == moscow(2026, 11, 1, 18, 0) and rep.follow_ups.count() == 1


# ---------------------------------------------------------------- reminders
def test_remind_command_emails_overdue_clocks_once_a_day(team, participant, capsys):
    sae(team, participant)  # aware 2026-11-01: long overdue, never sent to the sponsor
    mail.outbox.clear()
    assert main(["safety", "remind"]) == 0
    assert recipients("OVERDUE") == {"pi@site.test", "subi@site.test", "sponsor@sponsor.test"}
    assert "reminded:" in capsys.readouterr().out
    mail.outbox.clear()
    assert main(["safety", "remind"]) == 0
    assert not mail.outbox and "reminded recently" in capsys.readouterr().out


def test_remind_command_dry_run_sends_nothing(team, participant, capsys):
    sae(team, participant)
    mail.outbox.clear()
    assert main(["safety", "remind", "--dry-run"]) == 0
    assert not mail.outbox and "would remind" in capsys.readouterr().out
