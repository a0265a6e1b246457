"""The conformance checker: each rule caught on a deliberately broken frame; the real export is clean."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from ildtrial.exports.conformance import RULES, check
from ildtrial.exports.package import write_adam_package, write_sdtm_package
from ildtrial.exports.terminology import codelists

pytestmark = pytest.mark.django_db


@pytest.fixture
def lists(simulated_source):
    return codelists(simulated_source.protocol)


def _check_with(sdtm, lists, name, frame, specs=None):
    frames = {"DM": sdtm.frames["DM"], name: frame}
    return check(frames, specs or sdtm.specs, lists)


def _hits(report, rule, severity="error"):
    return [f for f in report.findings if f.rule == rule and f.severity == severity]


def _ae(sdtm):
    return sdtm.frames["AE"].copy()


def test_real_sdtm_export_has_zero_errors(sdtm, sdtm_blinded, simulated_source):
    for datasets, blinded in ((sdtm, False), (sdtm_blinded, True)):
        report = check(datasets.frames, datasets.specs, codelists(simulated_source.protocol, blinded=blinded))
        assert report.ok, report.table()
        assert not report.errors


def test_real_adam_export_has_zero_errors(adam, adam_blinded, simulated_source):
    for datasets, blinded in ((adam, False), (adam_blinded, True)):
        report = check(datasets.frames, datasets.specs, codelists(simulated_source.protocol, blinded=blinded),
                       subjects="ADSL")
        assert report.ok, report.table()


def test_written_packages_report_zero_errors(simulated_source, tmp_path):
    sdtm = write_sdtm_package(tmp_path / "sdtm", simulated_source, blinded=False)
    adam = write_adam_package(tmp_path / "adam", simulated_source, blinded=True)
    assert sdtm.ok and adam.ok
    assert "0 error(s)" in (tmp_path / "sdtm" / "conformance.txt").read_text()
    assert (tmp_path / "adam" / "conformance.csv").read_text().startswith("severity,dataset,variable,row,rule")


def test_rule_dataset_name(sdtm, lists):
    specs = {**sdtm.specs, "AEVENTSXX": sdtm.specs["AE"]}
    report = _check_with(sdtm, lists, "AEVENTSXX", _ae(sdtm), specs)
    assert _hits(report, "DATASET_NAME")


def test_rule_variable_name(sdtm, lists):
    ae = _ae(sdtm).rename(columns={"AEACNOTH": "AEACNOTHER"}) if "AEACNOTH" in sdtm.frames["AE"] else (
        _ae(sdtm).assign(AEACNOTHER="x"))
    report = _check_with(sdtm, lists, "AE", ae)
    assert [f.variable for f in _hits(report, "VARIABLE_NAME")] == ["AEACNOTHER"]


def test_rule_label_length(sdtm, lists):
    spec = sdtm.specs["AE"]
    long = tuple(replace(v, label="L" * 41) if v.name == "AETERM" else v for v in spec.variables)
    report = _check_with(sdtm, lists, "AE", _ae(sdtm), {**sdtm.specs, "AE": replace(spec, variables=long)})
    assert [f.variable for f in _hits(report, "LABEL_LENGTH")] == ["AETERM"]


def test_rule_value_length(sdtm, lists):
    ae = _ae(sdtm)
    ae.loc[1, "AETERM"] = "x" * 201
    report = _check_with(sdtm, lists, "AE", ae)
    [finding] = _hits(report, "VALUE_LENGTH")
    assert (finding.variable, finding.row) == ("AETERM", 2)


def test_rule_value_length_counts_bytes_not_characters(sdtm, lists):
    ae = _ae(sdtm)
    ae.loc[0, "AETERM"] = "ж" * 101  # 101 characters, 202 bytes
    assert _hits(_check_with(sdtm, lists, "AE", ae), "VALUE_LENGTH")


def test_rule_required_variable(sdtm, lists):
    report = _check_with(sdtm, lists, "AE", _ae(sdtm).drop(columns=["AETERM"]))
    assert [f.variable for f in _hits(report, "REQUIRED_VARIABLE")] == ["AETERM"]


def test_rule_expected_variable(sdtm, lists):
    report = _check_with(sdtm, lists, "AE", _ae(sdtm).drop(columns=["AESER"]))
    assert [f.variable for f in _hits(report, "EXPECTED_VARIABLE")] == ["AESER"]


def test_rule_required_value(sdtm, lists):
    ae = _ae(sdtm)
    ae.loc[0, "AEDECOD"] = None
    report = _check_with(sdtm, lists, "AE", ae)
    [finding] = _hits(report, "REQUIRED_VALUE")
    assert (finding.variable, finding.row) == ("AEDECOD", 1)


def test_rule_unknown_variable_is_a_warning(sdtm, lists):
    report = _check_with(sdtm, lists, "AE", _ae(sdtm).assign(AEFOO="x"))
    assert _hits(report, "UNKNOWN_VARIABLE", "warning") and report.ok


def test_rule_domain_value(sdtm, lists):
    ae = _ae(sdtm)
    ae.loc[0, "DOMAIN"] = "AX"
    assert _hits(_check_with(sdtm, lists, "AE", ae), "DOMAIN_VALUE")


def test_rule_numeric_type(sdtm, lists):
    ae = _ae(sdtm)
    ae["AESEQ"] = ae["AESEQ"].astype(object)
    ae.loc[0, "AESEQ"] = "one"
    [finding] = _hits(_check_with(sdtm, lists, "AE", ae), "NUMERIC_TYPE")
    assert finding.variable == "AESEQ"


def test_rule_codelist_non_extensible_is_an_error(sdtm, lists):
    ae = _ae(sdtm)
    ae.loc[0, "AESER"] = "MAYBE"
    [finding] = _hits(_check_with(sdtm, lists, "AE", ae), "CODELIST")
    assert finding.variable == "AESER" and "NY" in finding.message


def test_rule_codelist_extensible_is_a_warning(sdtm, lists):
    re_ = sdtm.frames["RE"].copy()
    re_.loc[0, "RETESTCD"] = "TLC"
    report = _check_with(sdtm, lists, "RE", re_)
    assert _hits(report, "CODELIST", "warning") and not _hits(report, "CODELIST")


def test_rule_usubjid_in_dm(sdtm, lists):
    ae = _ae(sdtm)
    ae.loc[0, "USUBJID"] = "NCT02594839-MOW01-S999"
    [finding] = _hits(_check_with(sdtm, lists, "AE", ae), "USUBJID_IN_DM")
    assert finding.row == 1 and "S999" in finding.message


def test_rule_seq_unique(sdtm, lists):
    ae = _ae(sdtm)
    first = ae["USUBJID"].iloc[0]
    rows = ae.index[ae["USUBJID"] == first]
    ae = pd.concat([ae, ae.loc[[rows[0]]]], ignore_index=True)
    [finding] = _hits(_check_with(sdtm, lists, "AE", ae), "SEQ_UNIQUE")
    assert finding.variable == "AESEQ" and finding.row == len(ae)


@pytest.mark.parametrize("value", ["2025/03/01", "2025-13-01", "01-03-2025", "2025-03-01T25:00"])
def test_rule_iso8601(sdtm, lists, value):
    ae = _ae(sdtm)
    ae.loc[0, "AESTDTC"] = value
    [finding] = _hits(_check_with(sdtm, lists, "AE", ae), "ISO8601")
    assert finding.variable == "AESTDTC"


@pytest.mark.parametrize("value", ["2025", "2025-03", "2025-03-01", "2025-03-01T10:15", "2025-03-01T10:15:30"])
def test_rule_iso8601_accepts_partial_and_full_dates(sdtm, lists, value):
    ae = _ae(sdtm)
    ae.loc[0, "AESTDTC"] = value
    assert not _hits(_check_with(sdtm, lists, "AE", ae), "ISO8601")


def test_rule_xpt_write(sdtm, simulated_source, tmp_path):
    from ildtrial.exports.package import _write_package

    ae = _ae(sdtm)
    ae.loc[0, "AETERM"] = "x" * 300
    frames = {"DM": sdtm.frames["DM"], "AE": ae}
    result = _write_package(tmp_path, frames, sdtm.specs, model="SDTM", source=simulated_source, blinded=False,
                            subjects="DM", progress=None)
    assert {f.rule for f in result.report.errors} == {"VALUE_LENGTH", "XPT_WRITE"}
    assert (tmp_path / "dm.xpt").is_file() and not (tmp_path / "ae.xpt").exists()
    assert "ae.xpt" not in (tmp_path / "define.xml").read_text()


def test_report_prints_a_table_of_findings(sdtm, lists):
    ae = _ae(sdtm)
    ae.loc[0, "AESER"] = "MAYBE"
    report = _check_with(sdtm, lists, "AE", ae)
    table = report.table()
    assert table.splitlines()[0].split() == ["severity", "dataset", "variable", "row", "rule", "message"]
    assert "CODELIST" in table and "1 error(s)" in table
    assert not report.ok


def test_every_rule_is_documented_and_tested():
    import ildtrial.exports.conformance as conformance

    tested = [name.removeprefix("test_rule_").upper() for name in globals() if name.startswith("test_rule_")]
    for rule in RULES:
        assert rule in conformance.__doc__
        assert any(t == rule or t.startswith(f"{rule}_") for t in tested), rule
