"""DSMB reports and masking: the closed report by arm for DSMB and the unblinded statistician
only, the open report pooled for everyone else, and in double-blind mode no arm-level data
for blinded roles anywhere (pages, PDFs, e-mails, errors)."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from ildtrial.cli import main
from ildtrial.edc.audit.context import acting_as
from ildtrial.edc.errors import Denied
from ildtrial.edc.randomization import services as randomization
from ildtrial.edc.safety import dsmb, services
from ildtrial.edc.safety.models import DSMBReportRun
from ildtrial.edc.study.protocol import _load
from tests.conftest import sign_in
from tests.edc.test_safety_helpers import (
    add_infusion,
    ae_values,
    no_arm,
    randomized_participant,
    report,
    sae_values,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(make_user):
    return {
        "coordinator": make_user("study_coordinator", email="coordinator@site.test"),
        "investigator": make_user("investigator", email="pi@site.test"),
        "monitor": make_user("monitor"),
        "sponsor": make_user("sponsor_viewer", sites=(), email="sponsor@sponsor.test"),
        "dsmb": make_user("dsmb_member", sites=(), email="dsmb@dsmb.test"),
        "statistician": make_user("unblinded_statistician", sites=(), email="stat@cro.test"),
    }


@pytest.fixture
def double_blind():
    _load.cache_clear()
    with override_settings(ILDTRIAL_MASKING="double_blind"):
        yield
    _load.cache_clear()


def trial(team):
    """Two randomized, infused participants; one SAE (a SUSAR) and one non-serious AE."""
    with acting_as(team["statistician"], reason="list"):
        randomization.generate(team["statistician"], seed=20151102)
    infusion_day = timezone.localdate() - timedelta(days=10)
    people = []
    for _ in range(2):
        p = randomized_participant(team["coordinator"], team["investigator"])
        add_infusion(p, "C1A", infusion_day, time(10, 0))
        people.append(p)
    onset = infusion_day + timedelta(days=1)
    ae = report(team["coordinator"], people[0], sae_values(onset_date=onset, onset_time=time(8, 0),
                                                           relatedness_product="possible",
                                                           expectedness="unexpected"))
    report(team["coordinator"], people[1], ae_values(onset_date=onset, coded_term="Chills", grade=2))
    with acting_as(team["investigator"]):
        services.assess_susar(team["investigator"], ae.sae_report, relatedness_product="possible",
                              expectedness="unexpected")
    return people, ae


def test_closed_report_shows_tables_and_listings_by_arm(client, team):
    people, ae = trial(team)
    arm = people[0].allocation.arm
    sign_in(client, team["statistician"])
    html = client.get("/safety/dsmb/closed/").content.decode()
    assert "CLOSED REPORT" in html and "MSC n (%)" in html and "PBO n (%)" in html
    assert "Placebo" in html and "<th>Arm</th>" in html and f"<td>{arm}</td>" in html
    assert "Infusion-related reactions" in html and "Pneumonitis" in html
    pdf = client.get("/safety/dsmb/closed.pdf")
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    runs = list(DSMBReportRun.objects.values_list("kind", "output_format", "generated_by"))
    assert sorted(runs) == [("closed", "html", team["statistician"].pk), ("closed", "pdf", team["statistician"].pk)]


def test_open_report_is_pooled_for_every_safety_role(client, team):
    trial(team)
    for role in ("investigator", "coordinator", "monitor", "sponsor", "dsmb", "statistician"):
        client.logout()
        sign_in(client, team[role])
        html = client.get("/safety/dsmb/open/").content.decode()
        assert "OPEN REPORT" in html and "All n (%)" in html, role
        assert no_arm(html) and "<th>Arm</th>" not in html, role


def test_open_report_counts_the_safety_population_and_saes(team):
    trial(team)
    built = dsmb.build(team["sponsor"], "open")
    assert built.n_by_group == {"All": 2}
    primary = dict(zip((row[0] for row in built.primary["rows"]), built.primary["rows"], strict=True))
    assert primary["Number of SAEs"][1] == "1" and primary["Participants (N)"][1] == "2"
    assert len(built.sae_listing["rows"]) == 1 and len(built.ae_listing["rows"]) == 2
    assert built.ae_listing["rows"][0][-2].startswith("yes (C1A)")  # onset 22 h after the infusion


def test_open_report_datasets_carry_no_arm_column(team):
    trial(team)
    adsl, adae, _events = dsmb.datasets(timezone.localdate(), with_arm=False)
    assert "ARM" not in adsl.columns and "ARM" not in adae.columns


@pytest.mark.parametrize("role", ["sponsor", "investigator", "coordinator", "monitor"])
def test_roles_without_closed_report_permission_get_403(client, team, role):
    sign_in(client, team[role])
    assert client.get("/safety/dsmb/closed/").status_code == 403
    assert client.get("/safety/dsmb/closed.pdf").status_code == 403
    with pytest.raises(Denied):
        dsmb.build(team[role], "closed")


def test_dsmb_member_gets_the_closed_report(client, team):
    trial(team)
    sign_in(client, team["dsmb"])
    assert "MSC n (%)" in client.get("/safety/dsmb/closed/").content.decode()


def test_double_blind_blinded_roles_never_receive_arm_level_safety_data(client, team, double_blind):
    people, ae = trial(team)
    rep = ae.sae_report
    for message in mail.outbox:
        assert no_arm(message.subject + message.body) and "MSC" not in message.body
    pages = ["/safety/", f"/safety/participant/{people[0].pk}/", f"/safety/ae/{ae.pk}/", f"/safety/sae/{rep.pk}/",
             f"/safety/sae/{rep.pk}/print/", "/safety/dsmb/open/"]
    for role in ("investigator", "coordinator", "monitor", "sponsor"):
        client.logout()
        sign_in(client, team[role])
        for url in pages:
            response = client.get(url)
            assert response.status_code == 200, (role, url)
            assert no_arm(response.content.decode()), (role, url)
        closed = client.get("/safety/dsmb/closed/")
        assert closed.status_code == 403 and no_arm(closed.content.decode()), role
        assert client.get("/safety/dsmb/open.pdf").content.startswith(b"%PDF")
        assert client.get(f"/safety/sae/{rep.pk}/pdf/").content.startswith(b"%PDF")


def test_double_blind_dsmb_member_and_statistician_still_see_the_closed_report(client, team, double_blind):
    trial(team)
    for role in ("dsmb", "statistician"):
        client.logout()
        sign_in(client, team[role])
        assert "PBO n (%)" in client.get("/safety/dsmb/closed/").content.decode(), role


def test_dsmb_report_command_writes_a_pdf_and_checks_the_right(team, tmp_path):
    trial(team)
    out = tmp_path / "closed.pdf"
    assert main(["safety", "dsmb-report", "--user", team["statistician"].username, "--kind", "closed",
                 "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"%PDF")
    refused = tmp_path / "refused.pdf"
    assert main(["safety", "dsmb-report", "--user", team["investigator"].username, "--kind", "closed",
                 "--out", str(refused)]) == 2
    assert not refused.exists()
