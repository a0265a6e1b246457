"""SAS transport v5: every dataset reads back identical; what v5 cannot hold is refused."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from ildtrial.exports.xpt import XptError, normalise, read_xpt, write_xpt

pytestmark = pytest.mark.django_db


def _round_trip(frame, spec, path):
    write_xpt(frame, path, name=spec.name, labels=spec.labels, file_label=spec.label)
    return read_xpt(path), normalise(frame)[0]


def test_every_sdtm_dataset_round_trips_identically(sdtm, tmp_path):
    for name, frame in sdtm.frames.items():
        back, expected = _round_trip(frame, sdtm.specs[name], tmp_path / f"{name.lower()}.xpt")
        pd.testing.assert_frame_equal(back, expected, check_dtype=True, obj=name)


def test_every_adam_dataset_round_trips_identically(adam, adam_blinded, tmp_path):
    for datasets in (adam, adam_blinded):
        for name, frame in datasets.frames.items():
            back, expected = _round_trip(frame, datasets.specs[name], tmp_path / f"{name.lower()}.xpt")
            pd.testing.assert_frame_equal(back, expected, check_dtype=True, obj=name)


def test_file_is_version_5_with_table_name_and_labels(sdtm, tmp_path):
    spec = sdtm.specs["DM"]
    path = write_xpt(sdtm.frames["DM"], tmp_path / "dm.xpt", name="DM", labels=spec.labels, file_label=spec.label)
    assert path.read_bytes().startswith(b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!")
    _data, meta = pyreadstat.read_xport(str(path), metadataonly=True)
    assert meta.table_name == "DM"
    assert meta.file_label == "Demographics"
    assert meta.column_names_to_labels["USUBJID"] == "Unique Subject Identifier"
    assert meta.column_names_to_labels["RFSTDTC"] == "Subject Reference Start Date/Time"


def test_adam_dates_are_sas_dates_with_date9_format(adam, tmp_path):
    frame, spec = adam.frames["ADSL"], adam.specs["ADSL"]
    path = write_xpt(frame, tmp_path / "adsl.xpt", name="ADSL", labels=spec.labels, file_label=spec.label)
    _data, meta = pyreadstat.read_xport(str(path), metadataonly=True)
    assert meta.original_variable_types["TRTSDT"] == "DATE9"
    back = read_xpt(path)
    first = frame["TRTSDT"].dropna().iloc[0].date()
    assert (date(1960, 1, 1) + pd.Timedelta(days=int(back["TRTSDT"].dropna().iloc[0]))) == first


def test_empty_dataset_round_trips_with_its_columns(sdtm, tmp_path):
    frame, spec = sdtm.frames["AE"].iloc[0:0], sdtm.specs["AE"]
    back, expected = _round_trip(frame, spec, tmp_path / "ae.xpt")
    assert list(back.columns) == list(frame.columns) and back.empty
    assert back["AESEQ"].dtype == "float64" and back["AETERM"].dtype == object


def test_normalise_keeps_character_and_numeric_types():
    frame = pd.DataFrame({"C": pd.Series(["a", None], dtype=object), "N": [1, 2], "F": [1.5, np.nan],
                          "B": [True, False], "D": pd.to_datetime(["2025-01-02", None])})
    data, dates = normalise(frame)
    assert list(data["C"]) == ["a", ""]
    assert data["N"].dtype == data["F"].dtype == data["B"].dtype == data["D"].dtype == "float64"
    assert dates == {"D"} and data["D"].iloc[0] == float((date(2025, 1, 2) - date(1960, 1, 1)).days)


def test_non_ascii_text_round_trips(tmp_path):
    frame = pd.DataFrame({"TERM": pd.Series(["Одышка", "fever"], dtype=object)})
    path = write_xpt(frame, tmp_path / "t.xpt", name="T", labels={"TERM": "Term"})
    assert list(read_xpt(path)["TERM"]) == ["Одышка", "fever"]


@pytest.mark.parametrize(
    ("frame", "name", "labels", "message"),
    [
        (pd.DataFrame({"A": ["x"]}), "TOOLONGNAME", {}, "dataset name"),
        (pd.DataFrame({"LONGNAME9": ["x"]}), "T", {}, "variable name"),
        (pd.DataFrame({"A": ["x"]}), "T", {"A": "L" * 41}, "label of A"),
        (pd.DataFrame({"A": ["x" * 201]}), "T", {}, "201 bytes"),
        (pd.DataFrame({"A": ["ж" * 101]}), "T", {}, "202 bytes"),
    ],
)
def test_writer_refuses_what_version_5_cannot_hold(tmp_path, frame, name, labels, message):
    with pytest.raises(XptError, match=message):
        write_xpt(frame, tmp_path / "x.xpt", name=name, labels=labels)
    assert not (tmp_path / "x.xpt").exists()
