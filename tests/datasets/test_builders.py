"""Dataset builders on hand-made frames, with the answers worked out by hand."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pandas as pd
import pytest

from ildtrial.datasets import (
    ARM_COLUMNS,
    DERIVATIONS,
    SAFETY_COLUMNS,
    RawData,
    Snapshot,
    build_datasets,
)
from ildtrial.datasets.adae import ADAE_COLUMNS
from ildtrial.datasets.adsl import ADSL_COLUMNS
from ildtrial.datasets.bds import ADLF_COLUMNS, assign_windows
from ildtrial.datasets.raw import canonical_json, data_sha256, form_frame
from ildtrial.stats.safety_tables import ae_summary_tables, primary_sae_analysis
from tests.datasets.factory import ae, config, form_rows, participant, small_trial

S1 = "MOW01-S001"
DAY0 = date(2025, 1, 10)  # first infusion
CUT = date(2026, 6, 1)


def vals(series: pd.Series) -> list:
    """Values with every kind of missing (None, NaN, NaT) as None: pandas picks the marker."""
    return [None if pd.isna(v) else v for v in series]


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def spiro(d: int, fvc: float, visit: str = "UNS", instance: int = 1, subject: str = S1) -> list[dict]:
    return form_rows(subject, visit, day(d), "SPIRO", {"test_date": day(d).isoformat(), "fev1_l": 1.0, "fvc_l": fvc},
                     {"fvc_percent_predicted": fvc * 30}, instance=instance)


def one_participant(forms: list[dict], *, aes: list[dict] = (), infused: bool = True, cut: date = CUT,
                    arm: str = "MSC", extra_forms: list[dict] = ()) -> Snapshot:
    base = form_rows(S1, "SCR", day(-9), "DM", {"birth_date": "1960-01-10", "sex": "F", "height_cm": 160,
                                                "weight_kg": 64})
    if infused:
        base += form_rows(S1, "C1A", DAY0, "INF", {"infusion_date": DAY0.isoformat()})
        base += form_rows(S1, "C1B", day(7), "INF", {"infusion_date": day(7).isoformat()})
    raw = RawData.from_rows(
        participants=[participant(S1, screening=day(-9), randomized=day(-2), number="R001", stratum="CTD_ILD")],
        allocations=[{"subject": S1, "arm": arm}],
        forms=[*base, *forms, *extra_forms],
        aes=list(aes),
    )
    return Snapshot(raw, config(), cut)


def adlf_of(snapshot: Snapshot, paramcd: str = "FVC") -> pd.DataFrame:
    adlf = build_datasets(snapshot).adlf
    return adlf.loc[adlf["PARAMCD"] == paramcd].reset_index(drop=True)


# --------------------------------------------------------------------------- baseline


def test_baseline_is_the_last_value_on_or_before_day0():
    snap = one_participant([*spiro(-30, 2.50, "SCR"), *spiro(-9, 2.40, "SCR2"), *spiro(0, 2.30, "C1A"),
                            *spiro(91, 2.20, "W13")])
    fvc = adlf_of(snap)
    assert fvc["ADY"].tolist() == [-30, -9, 0, 91]
    assert vals(fvc["ABLFL"]) == [None, None, "Y", None]
    assert vals(fvc["AVISIT"]) == [None, None, "Baseline", "Week 13"]
    assert set(fvc["BASE"]) == {2300.0}
    row = fvc.iloc[3]
    assert row["AVAL"] == 2200.0 and row["CHG"] == -100.0
    assert row["PCHG"] == pytest.approx(-100 / 2300 * 100)
    # no change on baseline or pre-baseline records
    assert fvc["CHG"].iloc[:3].isna().all()


def test_a_missing_value_is_skipped_for_baseline():
    missing = form_rows(S1, "SCR2", day(-3), "SPIRO", {"test_date": day(-3).isoformat(), "fvc_l": None})
    snap = one_participant([*spiro(-9, 2.40, "SCR"), *missing, *spiro(91, 2.52, "W13")])
    fvc = adlf_of(snap)
    assert fvc["ADY"].tolist() == [-9, 91]  # no record without a value
    assert fvc.loc[fvc["ABLFL"] == "Y", "AVAL"].tolist() == [2400.0]
    assert fvc["CHG"].iloc[1] == pytest.approx(120.0)
    assert fvc["PCHG"].iloc[1] == pytest.approx(5.0)


def test_without_a_pre_dose_value_there_is_no_baseline_nor_change():
    fvc = adlf_of(one_participant(spiro(91, 2.2, "W13")))
    assert fvc["ABLFL"].isna().all() and fvc["BASE"].isna().all() and fvc["CHG"].isna().all()
    assert vals(fvc["AVISIT"]) == ["Week 13"]


# --------------------------------------------------------------------------- windows


def test_window_assignment_by_study_day():
    days = pd.Series([45, 46, 95, 136, 137, 227, 228, 318, 319, 409, 410, 0, -5], dtype=float)
    got = vals(assign_windows(days, config().windows)["AVISIT"])
    assert got == [None, "Week 13", "Week 13", "Week 13", "Week 26", "Week 26", "Week 39", "Week 39",
                   "Week 52", "Week 52", None, None, None]


def test_day_95_unscheduled_value_is_the_week13_value():
    fvc = adlf_of(one_participant([*spiro(-9, 2.4, "SCR"), *spiro(95, 2.3, "UNS1")]))
    row = fvc.iloc[1]
    assert (row["AVISIT"], row["AVISITN"], row["AWTARGET"], row["ANL01FL"]) == ("Week 13", 13.0, 91.0, "Y")
    assert row["SRCVIS"] == "UNS1"


def test_two_values_in_a_window_the_nearest_to_target_is_analysed():
    # target 91: day 85 is 6 away, day 95 is 4 away -> day 95
    fvc = adlf_of(one_participant([*spiro(-9, 2.4, "SCR"), *spiro(85, 2.1, "W13"), *spiro(95, 2.2, "UNS1")]))
    chosen = fvc.loc[fvc["ANL01FL"] == "Y"]
    assert chosen["ADY"].tolist() == [-9, 95]
    assert vals(fvc["AVISIT"]) == ["Baseline", "Week 13", "Week 13"]  # both in the window


def test_tie_in_a_window_the_later_value_is_analysed():
    # days 89 and 93 are both 2 away from target 91 -> the later one
    fvc = adlf_of(one_participant([*spiro(-9, 2.4, "SCR"), *spiro(93, 2.2, "UNS1"), *spiro(89, 2.1, "W13")]))
    chosen = fvc.loc[(fvc["ANL01FL"] == "Y") & (fvc["AVISIT"] == "Week 13")]
    assert chosen["ADY"].tolist() == [93] and chosen["AVAL"].tolist() == [2200.0]


def test_one_analysed_record_per_window_and_time_in_years():
    forms = [*spiro(-9, 2.4, "SCR"), *spiro(91, 2.3, "W13"), *spiro(182, 2.2, "W26"), *spiro(190, 2.1, "UNS"),
             *spiro(273, 2.0, "W39"), *spiro(364, 1.9, "W52")]
    fvc = adlf_of(one_participant(forms))
    anl = fvc.loc[fvc["ANL01FL"] == "Y"]
    assert anl["AVISIT"].tolist() == ["Baseline", "Week 13", "Week 26", "Week 39", "Week 52"]
    assert anl["AVISITN"].tolist() == [0, 13, 26, 39, 52]
    assert anl["TIME"].iloc[-1] == pytest.approx(364 / 365.25)


def test_percent_predicted_dlco_and_walk_parameters():
    dlco = form_rows(S1, "SCR", day(-9), "DLCO", {"test_date": day(-9).isoformat(), "dlco": 9.8},
                     {"dlco_percent_predicted": 45.5})
    walk = form_rows(S1, "SCR", day(-9), "SIXMWT", {"test_date": day(-9).isoformat(), "distance_m": 310})
    walk13 = form_rows(S1, "W13", day(91), "SIXMWT", {"test_date": day(91).isoformat(), "distance_m": "352"})
    snap = one_participant([*spiro(-9, 2.4, "SCR"), *dlco, *walk, *walk13])
    adlf = build_datasets(snap).adlf
    assert adlf["PARAMCD"].tolist() == ["FVC", "FVCPP", "DLCOPP", "SIXMWD", "SIXMWD"]
    assert adlf.loc[adlf["PARAMCD"] == "FVCPP", "AVAL"].iloc[0] == pytest.approx(72.0)
    assert adlf.loc[adlf["PARAMCD"] == "SIXMWD", "CHG"].iloc[1] == 42.0
    adsl = build_datasets(snap).adsl
    assert adsl.loc[0, ["FVCBL", "FVCPPBL", "DLCOPPBL", "SIXMWDBL"]].tolist() == [2400.0, 72.0, 45.5, 310.0]


def test_not_done_forms_hold_no_values():
    nd = form_rows(S1, "W13", day(91), "SPIRO", {}, status="not_done")
    fvc = adlf_of(one_participant([*spiro(-9, 2.4, "SCR"), *nd]))
    assert fvc["ADY"].tolist() == [-9]


# --------------------------------------------------------------------------- ADSL


def test_trtdurd_runs_to_the_data_cut_inclusive():
    # 2025-01-10 .. 2025-06-01: 142 days later, 143 days at risk
    adsl = build_datasets(one_participant([], cut=date(2025, 6, 1))).adsl
    assert adsl.loc[0, "TRTDURD"] == 143
    assert adsl.loc[0, "EOSSTT"] == "ONGOING" and adsl.loc[0, "DTHFL"] == "N"


def test_trtdurd_is_capped_at_the_week52_day():
    adsl = build_datasets(one_participant([], cut=date(2027, 1, 1))).adsl
    assert adsl.loc[0, "TRTDURD"] == 365  # TRTSDT + 364 - TRTSDT + 1


def test_trtdurd_ends_at_death_and_death_is_derived_from_eos():
    eos = form_rows(S1, "W52", day(150), "EOS", {"end_date": day(152).isoformat(), "status": "DEATH",
                                                 "death_date": day(150).isoformat()})
    adsl = build_datasets(one_participant(eos)).adsl
    row = adsl.iloc[0]
    assert row["TRTDURD"] == 151
    assert (row["DTHFL"], row["DTHDY"], row["EOSSTT"], row["DCSREAS"]) == ("Y", 150.0, "DISCONTINUED", "DEATH")
    assert row["DTHDT"] == pd.Timestamp(day(150))


def test_trtdurd_ends_at_withdrawal():
    eos = form_rows(S1, "W52", day(60), "EOS", {"end_date": day(60).isoformat(), "status": "WITHDRAWN"})
    row = build_datasets(one_participant(eos)).adsl.iloc[0]
    assert row["TRTDURD"] == 61
    assert (row["EOSSTT"], row["DCSREAS"], row["DTHFL"]) == ("DISCONTINUED", "WITHDRAWAL BY SUBJECT", "N")


def test_death_from_a_fatal_adverse_event_when_no_eos_form():
    fatal = ae(S1, 1, "Respiratory failure", day(95), grade=5, serious=True, death=True, outcome="fatal",
               resolution=day(100))
    row = build_datasets(one_participant([], aes=[fatal])).adsl.iloc[0]
    assert (row["DTHFL"], row["DTHDY"], row["TRTDURD"]) == ("Y", 100.0, 101)


def test_adsl_populations_arms_and_demographics():
    row = build_datasets(one_participant([])).adsl.iloc[0]
    assert list(build_datasets(one_participant([])).adsl.columns) == list(ADSL_COLUMNS)
    assert row["USUBJID"] == "NCT02594839-MOW01-S001" and row["SITEID"] == "MOW01"
    assert (row["ARMCD"], row["TRT01P"], row["TRT01A"], row["ACTARMCD"]) == ("MSC", "MSC", "MSC", "MSC")
    assert (row["FASFL"], row["SAFFL"], row["NINF"]) == ("Y", "Y", 2)
    assert row["TRTSDT"] == pd.Timestamp(DAY0) and row["TRTEDT"] == pd.Timestamp(day(7))
    assert row["AGE"] == 64  # born 1960-01-10, randomized 2025-01-08: birthday not yet reached
    assert row["BMI"] == pytest.approx(25.0) and row["DIAGGRP"] == "CTD_ILD" and row["SEX"] == "F"


def test_never_infused_participant_is_in_fas_not_in_safety():
    row = build_datasets(one_participant([], infused=False)).adsl.iloc[0]
    assert (row["FASFL"], row["SAFFL"], row["ACTARMCD"], row["ACTARM"]) == ("Y", "N", "NOTTRT", "Not Treated")
    assert pd.isna(row["TRT01A"]) and math.isnan(row["TRTDURD"])


def test_screen_failures_are_not_in_adsl():
    raw = small_trial(2).raw
    adsl = build_datasets(Snapshot(raw, config(), CUT)).adsl
    assert adsl["SUBJID"].tolist() == ["MOW01-S001", "MOW01-S002", "MOW01-S003", "MOW01-S004"]


# --------------------------------------------------------------------------- ADAE


def test_treatment_emergence_study_days_and_flags():
    events = [
        ae(S1, 1, "Fever", day(-1)),  # before the first infusion
        ae(S1, 2, "Fever", DAY0, infusion=True, related="probable"),  # day of first infusion: day 1
        ae(S1, 3, "Chills", day(1), infusion=True, related="possible", resolution=day(2)),
        ae(S1, 4, "Lung infection", day(364), grade=3, serious=True, hospitalisation=True),  # last day at risk
        ae(S1, 5, "Lung infection", day(365), grade=3, serious=True, hospitalisation=True),  # after the period
        ae(S1, 6, "Dyspnea", None, grade=2),  # onset missing: imputed to TRTSDT
    ]
    adae = build_datasets(one_participant([], aes=events, cut=date(2027, 1, 1))).adae
    assert list(adae.columns) == list(ADAE_COLUMNS)
    by = adae.set_index("AESPID").sort_index()
    assert by["ASTDY"].tolist() == [-1, 1, 2, 365, 366, 1]
    assert vals(by["TRTEMFL"]) == [None, "Y", "Y", "Y", None, "Y"]
    assert by.loc[6, "ASTDTF"] == "Y" and by.loc[6, "ASTDT"] == pd.Timestamp(DAY0)
    assert by["INFREL"].tolist() == ["N", "Y", "Y", "N", "N", "N"]
    assert by.loc[2, "INFVIS"] == "C1A"
    assert by.loc[3, "AEREL"] == "POSSIBLY RELATED" and by.loc[2, "AEREL"] == "PROBABLY RELATED"
    assert by.loc[4, "AESER"] == "Y" and by.loc[4, "AESHOSP"] == "Y" and by.loc[4, "AESDTH"] == "N"
    assert by.loc[3, "AETOXGR"] == "1" and by.loc[3, "AEOUT"] == "RECOVERED/RESOLVED"
    assert by.loc[3, "AENDY"] == 3
    # AESEQ follows onset (ties by event number): the imputed event 6 comes right after event 2
    assert adae["AESPID"].tolist() == [1, 2, 6, 3, 4, 5]
    assert adae["AESEQ"].tolist() == [1, 2, 3, 4, 5, 6]


def test_no_treatment_emergent_events_without_an_infusion():
    adae = build_datasets(one_participant([], aes=[ae(S1, 1, "Fever", day(3))], infused=False)).adae
    assert adae["TRTEMFL"].isna().all() and adae["ASTDY"].isna().all()


def test_adae_and_adsl_feed_the_safety_tables_as_built():
    ds = build_datasets(small_trial(2))
    sae = primary_sae_analysis(ds.adsl, ds.adae, ("MSC", "PBO"), columns=SAFETY_COLUMNS)
    # S001 (MSC) and S002 (PBO): lung infection; S003 (MSC) and S004 (PBO) die of respiratory failure
    assert sae.group("MSC").n_with_event == 2 and sae.group("PBO").n_with_event == 2
    assert sae.comparison is not None and sae.comparison.fisher.p_value == pytest.approx(1.0)
    tables = ae_summary_tables(ds.adsl, ds.adae, ("MSC", "PBO"), columns=SAFETY_COLUMNS)
    assert tables.infusion_related.loc["Any infusion-related reaction", "MSC n"] == 2
    assert tables.deaths.loc["Deaths (all causes)", "Total n"] == 2


# --------------------------------------------------------------------------- blinding, determinism, docs


def test_blinded_datasets_carry_no_allocation():
    snap = small_trial(2)
    ds = build_datasets(snap, blinded=True)
    for name, frame in ds.frames().items():
        assert not (set(frame.columns) & ARM_COLUMNS), name
    assert ds.adsl["TRT01P"].isna().all() and ds.adae["TRT01A"].isna().all()
    assert snap.blinded_data_sha256 == data_sha256(snap.raw.without_allocation())
    assert snap.blinded_data_sha256 != snap.data_sha256


def test_same_data_in_any_row_order_give_the_same_digest_and_datasets():
    snap = small_trial(2)
    shuffled = RawData.from_rows(**{name: frame.sample(frac=1.0, random_state=3).to_dict("records")
                                    for name, frame in snap.raw.frames().items()})
    assert canonical_json(shuffled) == canonical_json(snap.raw)
    a = build_datasets(snap)
    b = build_datasets(Snapshot(shuffled, snap.config, snap.data_cut))
    for name in ("adsl", "adae", "adlf"):
        pd.testing.assert_frame_equal(a.frames()[name], b.frames()[name])
        assert a.to_csv(name) == b.to_csv(name)


def test_every_derived_column_is_documented():
    undocumented_ok = {"STUDYID", "SUBJID", "SITEID", "AGEU", "PARAM", "AVALU"}
    for dataset, columns in (("ADSL", ADSL_COLUMNS), ("ADAE", ADAE_COLUMNS), ("ADLF", ADLF_COLUMNS)):
        missing = [c for c in columns if c not in DERIVATIONS[dataset] and c not in undocumented_ok]
        # SDTM copies documented once in ADSL are allowed in the other datasets
        missing = [c for c in missing if c not in DERIVATIONS["ADSL"]]
        assert not missing, (dataset, missing)


def test_form_frame_pivots_one_row_per_instance():
    forms = RawData.from_rows(forms=[*spiro(91, 2.2, "W13"), *spiro(95, 2.3, "W13", instance=2)]).forms
    frame = form_frame(forms, "SPIRO")
    assert frame["instance"].tolist() == [1, 2]
    assert frame["fvc_l"].tolist() == [2.2, 2.3]
    assert "derived:fvc_percent_predicted" in frame.columns
