"""Extraction from the EDC, the ``ildtrial report`` command and the report pages."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from django.test import override_settings

from ildtrial.cli import main
from ildtrial.datasets import build_datasets
from ildtrial.datasets.extract import take_snapshot
from ildtrial.edc.reports import services as report_services
from tests.conftest import sign_in
from tests.reports.helpers import build_trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(make_user):
    return {"coordinator": make_user("study_coordinator"), "investigator": make_user("investigator"),
            "statistician": make_user("unblinded_statistician", sites=()),
            "sponsor": make_user("sponsor_viewer", sites=()), "dsmb": make_user("dsmb_member", sites=())}


@pytest.fixture
def trial(team):
    report_services.clear_cache()
    return build_trial(team, n=2)


@pytest.fixture
def fast_pdf(monkeypatch):
    """PDF rendering is tested on its own (tests/reports/test_report.py); here a stand-in keeps
    the command and the download fast while the bytes still travel the whole way."""
    monkeypatch.setattr("ildtrial.reports.build.render_pdf", lambda html, base_url=None: b"%PDF-1.7 stand-in")


@pytest.fixture
def double_blind():
    with override_settings(ILDTRIAL_MASKING="double_blind"):
        yield


def test_extraction_gives_raw_frames_and_datasets(team):
    trial = build_trial(team, n=3)
    snap = take_snapshot()
    raw = snap.raw
    randomized = [p.screening_number for p in trial]
    assert set(randomized) < set(raw.participants["subject"])
    assert len(raw.participants) == 4  # three randomized, one screen failure
    assert sorted(raw.allocations["subject"]) == sorted(randomized)
    arms = dict(zip(raw.allocations["subject"], raw.allocations["arm"], strict=True))
    assert set(arms.values()) <= {"MSC", "PBO"}

    ds = build_datasets(snap)
    adsl = ds.adsl.set_index("SUBJID")
    assert list(adsl.index) == sorted(randomized)
    for p in trial:
        row = adsl.loc[p.screening_number]
        assert row["TRT01P"] == arms[p.screening_number] == p.allocation.arm
        assert (row["FASFL"], row["SAFFL"], row["NINF"]) == ("Y", "Y", 1)
        assert row["TRTSDT"] == pd.Timestamp(p.visits.get(code="C1A").actual_date)
        assert row["DIAGGRP"] == p.stratum
        assert row["FVCBL"] == pytest.approx(2120.0)  # the screening spirometry of the example candidate
        assert row["FVCPPBL"] > 0  # % predicted recomputed for forms stored without derived values
    fvc = ds.adlf.loc[(ds.adlf["PARAMCD"] == "FVC") & (ds.adlf["AVISIT"] == "Week 13")]
    assert len(fvc) == 2 and set(fvc["ADY"]) == {91.0} and set(fvc["ANL01FL"]) == {"Y"}
    assert fvc["CHG"].tolist() == pytest.approx([-40.0, -40.0])
    assert set(ds.adlf.loc[ds.adlf["AVISIT"] == "Week 13", "PARAMCD"]) == {"FVC", "FVCPP", "DLCOPP", "SIXMWD"}
    adae = ds.adae
    assert adae["AEDECOD"].tolist() == ["Fever"]
    assert (adae.loc[0, "TRTEMFL"], adae.loc[0, "INFREL"], adae.loc[0, "ASTDY"]) == ("Y", "Y", 2.0)
    # same data, same digest
    assert take_snapshot().data_sha256 == snap.data_sha256


def test_cli_writes_report_and_datasets(trial, team, tmp_path, fast_pdf, capsys):
    out = tmp_path / "closed"
    assert main(["report", "--out", str(out), "--user", team["statistician"].username, "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "closed report" in said
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Closed report: results by arm" in html and "MSC" in html and "PBO" in html
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    adsl = pd.read_csv(out / "adsl.csv")
    assert len(adsl) == 2 and set(adsl["TRT01P"]) <= {"MSC", "PBO"}
    results = json.loads((out / "results.json").read_text())
    assert results["kind"] == "closed" and results["by_arm"] is True

    # a coordinator may not have a report at all; an unknown user neither
    assert main(["report", "--out", str(tmp_path / "x"), "--user", team["coordinator"].username,
                 "--no-progress"]) == 2
    assert "may not view" in capsys.readouterr().err
    assert main(["report", "--out", str(tmp_path / "x"), "--user", "nobody", "--no-progress"]) == 2

    # double blind without --user: pooled, said so, datasets without any arm column
    out = tmp_path / "open"
    with override_settings(ILDTRIAL_MASKING="double_blind"):
        assert main(["report", "--out", str(out), "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "open report" in said and "double-blind" in said
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "MSC" not in html and "PBO" not in html
    for name in ("adsl", "adae", "adlf"):
        header = (out / f"{name}.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
        assert not {"ARM", "ARMCD", "TRT01P", "TRT01A", "TRTP", "TRTA"} & set(header), name


def test_report_pages_by_role(client, trial, team, fast_pdf, double_blind):
    # site staff: no report, whatever the masking
    sign_in(client, team["coordinator"])
    for url in ("/reports/", "/reports/statistical/", "/reports/statistical.pdf"):
        assert client.get(url).status_code == 403, url
    client.logout()

    # sponsor viewer in a double-blind trial: the pooled report
    sign_in(client, team["sponsor"])
    page = client.get("/reports/")
    assert page.status_code == 200 and "Open report" in page.content.decode()
    response = client.get("/reports/statistical/")
    html = response.content.decode()
    assert response.status_code == 200 and "Open report: all participants pooled" in html
    assert "MSC" not in html and "PBO" not in html and "placebo" not in html.lower()
    client.logout()

    # the unblinded statistician: by arm, HTML and PDF
    sign_in(client, team["statistician"])
    html = client.get("/reports/statistical/").content.decode()
    assert "Closed report: results by arm" in html and "MSC" in html and "PBO" in html
    pdf = client.get("/reports/statistical.pdf")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and "attachment" in pdf["Content-Disposition"]
    client.logout()

    # a DSMB member reads the closed report too
    sign_in(client, team["dsmb"])
    assert "Closed report: results by arm" in client.get("/reports/statistical/").content.decode()


def test_anonymous_users_are_sent_to_sign_in(client):
    response = client.get("/reports/statistical/")
    assert response.status_code == 302 and "login" in response["Location"]
