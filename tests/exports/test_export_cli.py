"""``ildtrial export``: writes the packages, blinds when it must, hands ODM/FHIR to their modules.

The EDC is read by :func:`collect_source`, which the session fixture has already run on
a simulated trial; here it returns that source, so the command is tested end to end
without simulating a second trial.
"""

from __future__ import annotations

import sys
import types

import pandas as pd
import pytest

from ildtrial.cli import main
from ildtrial.exports.sdtm import DOMAINS
from ildtrial.exports.xpt import read_xpt

pytestmark = pytest.mark.django_db

ARM_VALUES = {"MSC", "PBO", "Placebo", "Allogeneic bone-marrow mesenchymal stem cells"}


@pytest.fixture
def edc(simulated_source, monkeypatch):
    """``collect_source`` returns the simulated trial's source."""
    monkeypatch.setattr("ildtrial.exports.source.collect_source", lambda **_: simulated_source)
    return simulated_source


@pytest.fixture
def double_blind(settings):
    settings.ILDTRIAL_MASKING = "double_blind"


def _arms(folder) -> set[str]:
    dm = read_xpt(folder / "dm.xpt")
    return set(dm["ARMCD"]) | set(dm["ARM"]) | set(dm["ACTARMCD"])


def test_sdtm_writes_xpt_define_and_conformance_report(edc, tmp_path, capsys):
    out = tmp_path / "sdtm"
    assert main(["export", "sdtm", "--out", str(out), "--no-progress"]) == 0
    for domain in DOMAINS:
        assert (out / f"{domain.lower()}.xpt").is_file(), domain
    assert (out / "define.xml").is_file() and (out / "conformance.txt").is_file()
    printed = capsys.readouterr().out
    assert "with arms: the trial is open label" in printed and "0 error(s)" in printed
    assert {"MSC", "PBO"} <= _arms(out)


def test_adam_writes_xpt_and_define(edc, tmp_path):
    out = tmp_path / "adam"
    assert main(["export", "adam", "--out", str(out), "--no-progress"]) == 0
    for name in ("adsl", "adae", "adlf"):
        assert (out / f"{name}.xpt").is_file()
    adsl = read_xpt(out / "adsl.xpt")
    assert {"MSC", "PBO"} == set(adsl["TRT01P"])
    assert "ADSL" in (out / "define.xml").read_text()


def test_double_blind_without_user_exports_blinded(edc, double_blind, tmp_path, capsys):
    out = tmp_path / "sdtm"
    assert main(["export", "sdtm", "--out", str(out), "--no-progress"]) == 0
    assert "BLINDED" in capsys.readouterr().out
    assert not _arms(out) & ARM_VALUES
    assert set(read_xpt(out / "ex.xpt")["EXTRT"]) == {"BLINDED"}
    adam = tmp_path / "adam"
    assert main(["export", "adam", "--out", str(adam), "--no-progress"]) == 0
    for name in ("adsl", "adae", "adlf"):
        frame = read_xpt(adam / f"{name}.xpt")
        assert not {"ARMCD", "ARM", "TRT01P", "TRT01A", "TRTP", "TRTA"} & set(frame.columns), name


def test_double_blind_with_unblinded_user_exports_arms(edc, double_blind, make_user, tmp_path, capsys):
    make_user("unblinded_statistician", sites=(), username="ustat")
    out = tmp_path / "sdtm"
    assert main(["export", "sdtm", "--out", str(out), "--user", "ustat", "--no-progress"]) == 0
    assert "may see the allocation" in capsys.readouterr().out
    assert {"MSC", "PBO"} <= _arms(out)


def test_double_blind_with_blinded_user_exports_blinded(edc, double_blind, make_user, tmp_path, capsys):
    make_user("investigator", username="inv1")
    out = tmp_path / "csv"
    assert main(["export", "csv", "--out", str(out), "--user", "inv1", "--no-progress"]) == 0
    assert "may not see the allocation" in capsys.readouterr().out
    dm = pd.read_csv(out / "sdtm" / "dm.csv", dtype=str)
    assert not (set(dm["ARMCD"].dropna()) | set(dm["ARM"].dropna())) & ARM_VALUES
    adsl = pd.read_csv(out / "adam" / "adsl.csv", dtype=str)
    assert "TRT01P" not in adsl.columns


def test_unknown_user_is_refused(edc, tmp_path, capsys):
    assert main(["export", "sdtm", "--out", str(tmp_path), "--user", "nobody", "--no-progress"]) == 2
    assert "no active user" in capsys.readouterr().err


def test_csv_writes_every_dataset_with_formulas_neutralised(edc, tmp_path):
    out = tmp_path / "csv"
    assert main(["export", "csv", "--out", str(out), "--no-progress"]) == 0
    for domain in DOMAINS:
        assert (out / "sdtm" / f"{domain.lower()}.csv").is_file()
    for name in ("adsl", "adae", "adlf"):
        assert (out / "adam" / f"{name}.csv").is_file()
    dm = pd.read_csv(out / "sdtm" / "dm.csv", dtype=str)
    assert len(dm) == len(edc.raw.participants)
    sv = pd.read_csv(out / "sdtm" / "sv.csv", dtype=str)
    assert (sv["SVSTDY"].dropna().astype(float) < 0).any()  # negative numbers stay numbers


def test_csv_cell_neutralises_formulas_but_not_numbers():
    from ildtrial.exports.package import csv_cell

    assert csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("-cmd") == "'-cmd"
    assert csv_cell(-12.0) == "-12" and csv_cell(2.5) == "2.5" and csv_cell(None) == ""
    assert csv_cell(pd.Timestamp("2025-03-01")) == "2025-03-01"


def test_conformance_errors_exit_1(edc, tmp_path, monkeypatch, capsys):
    from ildtrial.exports import conformance

    real = conformance.check

    def broken(frames, specs, lists, **kwargs):
        frames = dict(frames)
        dm = frames["DM"].copy()
        dm.loc[0, "USUBJID"] = None
        frames["DM"] = dm
        return real(frames, specs, lists, **kwargs)

    monkeypatch.setattr("ildtrial.exports.package.check", broken)
    assert main(["export", "sdtm", "--out", str(tmp_path), "--no-progress"]) == 1
    assert "conformance error" in capsys.readouterr().err


def test_exchange_formats_are_handed_the_blinding(edc, double_blind, monkeypatch, tmp_path, capsys):
    calls = []
    odm = types.ModuleType("ildtrial.exports.odm")
    odm.write_odm = lambda out_dir, *, blinded: calls.append(("odm", blinded)) or [out_dir / "odm.xml"]
    fhir = types.ModuleType("ildtrial.exports.fhir")
    fhir.write_bundle = lambda out_dir, *, blinded: calls.append(("fhir", blinded)) or out_dir / "bundle.json"
    monkeypatch.setitem(sys.modules, "ildtrial.exports.odm", odm)
    monkeypatch.setitem(sys.modules, "ildtrial.exports.fhir", fhir)
    assert main(["export", "odm", "--out", str(tmp_path), "--no-progress"]) == 0
    assert main(["export", "fhir", "--out", str(tmp_path), "--no-progress"]) == 0
    assert calls == [("odm", True), ("fhir", True)]
    assert "bundle.json" in capsys.readouterr().out


def test_missing_exchange_module_is_reported(edc, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ildtrial.exports.fhir", None)
    assert main(["export", "fhir", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "FHIR export is not available" in capsys.readouterr().err
