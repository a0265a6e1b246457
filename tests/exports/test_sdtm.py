"""SDTM mappings on a small simulated trial (4 randomized participants plus screen failures)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pandas as pd
import pytest

from ildtrial.datasets.raw import form_frame, raw_frame
from ildtrial.exports.sdtm import DOMAINS, build_sdtm
from ildtrial.exports.sdtm_domains._common import DTC_PATTERN, Context, dtc, fit
from ildtrial.exports.spec import SDTM_SPECS

pytestmark = pytest.mark.django_db

SUBJECT_LEVEL = ("DM", "IE", "EX", "AE", "RE", "FT", "VS", "CM", "MH", "DS", "SV")


def _infusions(source) -> pd.DataFrame:
    inf = form_frame(source.forms, "INF")
    return inf.loc[inf["infusion_date"].notna()]


def test_every_domain_is_built_with_its_variables_in_spec_order(sdtm):
    assert tuple(sdtm.frames) == DOMAINS
    for name, frame in sdtm.frames.items():
        spec_order = [v for v in SDTM_SPECS[name].names if v in frame.columns]
        assert list(frame.columns) == spec_order, name
        if "DOMAIN" in frame.columns and len(frame):
            assert set(frame["DOMAIN"]) == {name}
        if len(frame):
            assert set(frame["STUDYID"]) == {"NCT02594839"}


def test_every_variable_is_labelled(sdtm):
    for name, spec in sdtm.specs.items():
        assert [v.name for v in spec.variables] == list(sdtm.frames[name].columns)
        for v in spec.variables:
            assert 0 < len(v.label) <= 40, (name, v.name)


def test_dm_has_every_participant_including_screen_failures(sdtm, simulated_source):
    dm = sdtm.frames["DM"]
    raw = simulated_source.raw.participants
    assert len(dm) == len(raw) == dm["USUBJID"].nunique()
    assert set(dm["SUBJID"]) == set(raw["subject"])
    assert all(u == f"NCT02594839-{s}" for u, s in zip(dm["USUBJID"], dm["SUBJID"], strict=True))
    failed = set(raw.loc[raw["status"] == "screen_failed", "subject"])
    assert failed, "the simulated trial should have screen failures"
    fails = dm.loc[dm["SUBJID"].isin(failed)]
    assert set(fails["ARMCD"]) == {"SCRNFAIL"} and set(fails["ARM"]) == {"Screen Failure"}
    assert set(fails["ACTARMCD"]) == {"SCRNFAIL"}
    assert fails["RFSTDTC"].isna().all()


def test_dm_arm_is_the_allocation_and_rfstdtc_the_first_infusion(sdtm, simulated_source):
    dm = sdtm.frames["DM"].set_index("SUBJID")
    allocation = dict(zip(simulated_source.raw.allocations["subject"], simulated_source.raw.allocations["arm"],
                          strict=True))
    names = {a.code: a.name.en for a in simulated_source.protocol.arms}
    first = _infusions(simulated_source).groupby("subject")["infusion_date"].min()
    for subject, arm in allocation.items():
        assert dm.at[subject, "ARMCD"] == arm and dm.at[subject, "ARM"] == names[arm]
        assert dm.at[subject, "ACTARMCD"] == arm
        assert dm.at[subject, "RFSTDTC"] == dm.at[subject, "RFXSTDTC"] == first[subject]
        assert dm.at[subject, "COUNTRY"] == "RUS" and dm.at[subject, "SITEID"] == "MOW01"
        assert dm.at[subject, "AGEU"] == "YEARS" and dm.at[subject, "AGE"] >= 18
    assert set(dm["SEX"]) <= {"M", "F"}


def test_dm_death_flag_matches_end_of_study(sdtm, simulated_source):
    dm = sdtm.frames["DM"].set_index("SUBJID")
    died = set(simulated_source.raw.participants.query("status == 'died'")["subject"])
    assert set(dm.index[dm["DTHFL"].eq("Y").fillna(False).astype(bool)]) == died
    for s in died:
        assert DTC_PATTERN.match(dm.at[s, "DTHDTC"])


def test_ex_has_one_record_per_infusion_given_with_protocol_dose(sdtm, simulated_source):
    ex = sdtm.frames["EX"]
    given = _infusions(simulated_source)
    assert len(ex) == len(given)
    dm = sdtm.frames["DM"].set_index("USUBJID")
    arm = ex["USUBJID"].map(dm["ARMCD"])
    msc, pbo = ex.loc[arm == "MSC"], ex.loc[arm == "PBO"]
    assert len(msc) and len(pbo)
    assert set(msc["EXDOSE"]) == {200.0} and set(msc["EXDOSU"]) == {"10^6 cells"}
    assert set(msc["EXDOSFRM"]) == {"SUSPENSION"}
    assert set(pbo["EXDOSE"]) == {400.0} and set(pbo["EXDOSU"]) == {"mL"} and set(pbo["EXTRT"]) == {"PLACEBO"}
    assert set(ex["EXROUTE"]) == {"INTRAVENOUS"}
    assert msc["EXLOT"].notna().all()
    # the start date/time comes from the INF form
    starts = {(f"NCT02594839-{s}", f"{d}T{t[:5]}") for s, d, t in
              zip(given["subject"], given["infusion_date"], given["start_time"], strict=True)}
    assert set(zip(ex["USUBJID"], ex["EXSTDTC"], strict=True)) == starts
    assert set(ex["EPOCH"]) == {"TREATMENT"}


def test_study_day_one_is_the_first_infusion_and_there_is_no_day_zero(sdtm):
    ex = sdtm.frames["EX"]
    first = ex.groupby("USUBJID")["EXSTDY"].min()
    assert set(first) == {1.0}
    for name, frame in sdtm.frames.items():
        for column in [c for c in frame.columns if c.endswith("DY") and c != "VISITDY"]:
            assert not (frame[column] == 0).any(), (name, column)
    sv = sdtm.frames["SV"]
    screening = sv.loc[sv["VISITNUM"] == 1.0].dropna(subset=["SVSTDY"])
    assert (screening["SVSTDY"] < 0).all()


def test_study_day_rule_on_known_dates(simulated_source):
    ctx = Context.build(simulated_source)
    subject = next(iter(ctx.first_infusion))
    first = ctx.first_infusion[subject]
    assert ctx.study_day(subject, first.isoformat()) == 1.0
    assert ctx.study_day(subject, (first - pd.Timedelta(days=1)).isoformat()) == -1.0
    assert ctx.study_day(subject, (first + pd.Timedelta(days=91)).isoformat()) == 92.0
    assert pd.isna(ctx.study_day(subject, first.isoformat()[:7]))  # partial date: no study day


def test_partial_dates_stay_partial():
    assert dtc("2019-06") == "2019-06"
    assert dtc("2019") == "2019"
    assert dtc("2025-03-07", "10:00:00") == "2025-03-07T10:00"
    assert dtc("2019-06", "10:00") == "2019-06"  # no time on a partial date
    assert dtc("not a date") is None
    assert dtc(date(2025, 1, 2).isoformat()) == "2025-01-02"


def test_partial_history_start_date_is_exported_partial(simulated_source):
    subject = simulated_source.raw.participants["subject"].iloc[0]
    extra = [{"subject": subject, "visit": "SCR", "visit_date": "2025-01-01", "unscheduled": False, "form": "MH",
              "instance": 1, "status": "complete", "source": "data", "field": f, "value": v}
             for f, v in (("condition", "Hypertension"), ("start_date", "2019-06"), ("ongoing", True))]
    forms = raw_frame("forms", simulated_source.forms.to_dict("records") + extra)
    mh = build_sdtm(replace(simulated_source, forms=forms)).frames["MH"]
    row = mh.loc[mh["MHTERM"] == "Hypertension"].iloc[0]
    assert row["MHSTDTC"] == "2019-06" and row["MHCAT"] == "GENERAL MEDICAL HISTORY"
    assert row["MHENRTPT"] == "ONGOING"


def test_seq_is_unique_within_usubjid_in_every_domain(sdtm):
    for name, frame in sdtm.frames.items():
        seq = f"{name}SEQ"
        if seq in frame.columns and "USUBJID" in frame.columns:
            assert not frame.duplicated(["USUBJID", seq]).any(), name
            assert (frame.groupby("USUBJID")[seq].min() == 1).all(), name


def test_epoch_is_screening_treatment_or_follow_up(sdtm):
    seen = set()
    for name in SUBJECT_LEVEL:
        frame = sdtm.frames[name]
        if "EPOCH" in frame.columns:
            seen |= set(frame["EPOCH"].dropna())
    assert seen == {"SCREENING", "TREATMENT", "FOLLOW-UP"}
    re_ = sdtm.frames["RE"]
    assert set(re_.loc[re_["VISITNUM"] == 1.0, "EPOCH"]) == {"SCREENING"}


def test_re_maps_lung_function_with_cdisc_test_codes_and_units(sdtm, simulated_source):
    re_ = sdtm.frames["RE"]
    assert {"FVC", "FEV1", "FVCPP", "FEV1PP", "FEV1FVC", "DLCO", "DLCOPP"} <= set(re_["RETESTCD"])
    units = re_.groupby("RETESTCD")["RESTRESU"].agg(set).to_dict()
    assert units["FVC"] == units["FEV1"] == {"L"}
    assert units["FVCPP"] == units["DLCOPP"] == units["FEV1FVC"] == {"%"}
    assert units["DLCO"] == {"mL/min/mmHg"}
    derived = re_.loc[re_["RETESTCD"].isin(["FVCPP", "FEV1PP", "FEV1FVC", "DLCOPP"])]
    assert set(derived["REDRVFL"]) == {"Y"}
    spiro = form_frame(simulated_source.forms, "SPIRO")
    fvc = re_.loc[re_["RETESTCD"] == "FVC"]
    assert len(fvc) == spiro["fvc_l"].notna().sum()
    assert (fvc["RESTRESN"] == pd.to_numeric(fvc["REORRES"])).all()
    assert fvc["VISITNUM"].notna().all() and fvc["VISIT"].notna().all()
    ratio = re_.loc[re_["RETESTCD"] == "FEV1FVC", "RESTRESN"]
    assert ratio.between(30, 100).all()  # FEV1/FVC in percent


def test_last_observation_before_exposure_is_one_per_test_and_subject(sdtm):
    for name, test in (("RE", "RETESTCD"), ("FT", "FTTESTCD"), ("VS", "VSTESTCD")):
        frame = sdtm.frames[name]
        flagged = frame.loc[frame[f"{name}LOBXFL"].eq("Y").fillna(False).astype(bool)]
        assert len(flagged)
        assert not flagged.duplicated(["USUBJID", test]).any(), name
        assert (flagged[f"{name}DY"] <= 1).all(), name


def test_ft_has_the_six_minute_walk_distance(sdtm, simulated_source):
    ft = sdtm.frames["FT"]
    assert set(ft["FTTESTCD"]) == {"SIXMW106"} and set(ft["FTCAT"]) == {"SIX MINUTE WALK"}
    assert set(ft["FTSTRESU"]) == {"m"}
    walks = form_frame(simulated_source.forms, "SIXMWT")
    assert len(ft) == walks["distance_m"].notna().sum()


def test_vs_includes_pre_and_post_infusion_time_points(sdtm):
    vs = sdtm.frames["VS"]
    assert {"TEMP", "HR", "SYSBP", "DIABP", "RESP", "OXYSAT", "HEIGHT", "WEIGHT"} <= set(vs["VSTESTCD"])
    timed = vs.loc[vs["VSTPT"].notna()]
    assert set(timed["VSTPT"]) == {"PRE-INFUSION", "POST-INFUSION"}
    assert set(timed["VSTPTNUM"]) == {1.0, 2.0}
    assert timed["VSRFTDTC"].str.contains("T").all()
    units = vs.groupby("VSTESTCD")["VSSTRESU"].first().to_dict()
    assert units["TEMP"] == "C" and units["HR"] == "beats/min" and units["SYSBP"] == "mmHg"


def test_ae_maps_seriousness_criteria_grade_relatedness_and_outcome(sdtm, simulated_source):
    ae = sdtm.frames["AE"]
    raw = simulated_source.raw.aes
    assert len(ae) == len(raw)
    for flag in ("AESER", "AESDTH", "AESLIFE", "AESHOSP", "AESDISAB", "AESCONG", "AESMIE"):
        assert set(ae[flag]) <= {"Y", "N"}, flag
    serious = ae.loc[ae["AESER"] == "Y"]
    assert len(serious) == int(raw["serious"].sum())
    assert (serious[["AESDTH", "AESLIFE", "AESHOSP", "AESDISAB", "AESCONG", "AESMIE"]] == "Y").any(axis=1).all()
    assert set(ae["AETOXGR"]) <= {"1", "2", "3", "4", "5"}
    assert set(ae["AEOUT"]) <= {"RECOVERED/RESOLVED", "RECOVERING/RESOLVING", "NOT RECOVERED/NOT RESOLVED",
                                "RECOVERED/RESOLVED WITH SEQUELAE", "FATAL", "UNKNOWN"}
    assert set(ae["AEREL"]) <= {"NOT RELATED", "UNLIKELY RELATED", "POSSIBLY RELATED", "PROBABLY RELATED",
                                "DEFINITELY RELATED"}
    fatal = ae.loc[ae["AEOUT"] == "FATAL"]
    assert (fatal["AESDTH"] == "Y").all()
    assert ae["AESTDTC"].map(lambda v: bool(DTC_PATTERN.match(v))).all()


def test_ie_lists_the_criteria_not_met(sdtm, simulated_source):
    ie = sdtm.frames["IE"]
    expected = set()
    for s, failed in zip(simulated_source.raw.screening["subject"],
                         simulated_source.raw.screening["failed_criteria"], strict=True):
        for c in (failed or "").split(";"):
            if c:
                expected.add((f"NCT02594839-{s}", c))
    assert set(zip(ie["USUBJID"], ie["IETESTCD"], strict=True)) == expected
    inclusion = ie.loc[ie["IECAT"] == "INCLUSION"]
    exclusion = ie.loc[ie["IECAT"] == "EXCLUSION"]
    assert set(inclusion["IEORRES"]) <= {"N"} and set(exclusion["IEORRES"]) <= {"Y"}


def test_ds_records_consent_randomization_and_disposition(sdtm, simulated_source):
    ds = sdtm.frames["DS"]
    raw = simulated_source.raw.participants
    consent = ds.loc[ds["DSDECOD"] == "INFORMED CONSENT OBTAINED"]
    assert len(consent) == len(simulated_source.raw.consents)
    randomized = ds.loc[ds["DSDECOD"] == "RANDOMIZED"]
    assert len(randomized) == raw["randomized_date"].notna().sum()
    fails = ds.loc[ds["DSDECOD"] == "SCREEN FAILURE"]
    assert len(fails) == (raw["status"] == "screen_failed").sum()
    assert set(ds["DSCAT"]) == {"PROTOCOL MILESTONE", "DISPOSITION EVENT"}
    assert (ds["DSTERM"].str.encode("utf-8").str.len() <= 200).all()


def test_sv_has_one_record_per_visit_done_and_numbers_unscheduled_visits(sdtm, simulated_source):
    sv = sdtm.frames["SV"]
    visits = simulated_source.visits
    assert len(sv) == ((visits["state"] == "done") & visits["actual_date"].notna()).sum()
    assert not sv.duplicated(["USUBJID", "VISITNUM"]).any()
    unscheduled = sv.loc[sv["VISIT"].str.startswith("UNSCHEDULED")]
    assert len(unscheduled)
    assert (unscheduled["VISITNUM"] % 1 > 0).all() and unscheduled["VISITDY"].isna().all()


def test_trial_design_domains_follow_the_protocol(sdtm):
    ta, te, tv, ti, ts = (sdtm.frames[n] for n in ("TA", "TE", "TV", "TI", "TS"))
    assert set(ta["ARMCD"]) == {"MSC", "PBO"}
    assert list(ta.loc[ta["ARMCD"] == "MSC", "EPOCH"]) == ["SCREENING", "TREATMENT", "FOLLOW-UP"]
    assert set(te["ETCD"]) == {"SCRN", "MSC", "PBO", "FU"}
    assert set(ta["ETCD"]) <= set(te["ETCD"])
    # weeks 0, 1, 13, 14, 26, 27, 39, 40, 52 after screening: SDTM day = protocol day + 1
    assert list(tv["VISITDY"]) == [-1.0, 1.0, 8.0, 92.0, 99.0, 183.0, 190.0, 274.0, 281.0, 365.0]
    assert len(ti) == 16 and set(ti["IECAT"]) == {"INCLUSION", "EXCLUSION"}
    params = dict(zip(ts["TSPARMCD"], ts["TSVAL"], strict=False))
    for code in ("TITLE", "TPHASE", "TTYPE", "RANDOM", "TBLIND", "TCNTRL", "AGEMIN", "AGEMAX", "PLANSUB", "NARMS",
                 "TRT", "ROUTE", "DOSE", "DOSU", "DOSFRQ", "INDIC", "STYPE", "SEXPOP"):
        assert code in params, code
    assert params["AGEMIN"] == "P20Y" and params["AGEMAX"] == "P80Y"
    assert params["PLANSUB"] == "20" and params["NARMS"] == "2" and params["ROUTE"] == "INTRAVENOUS"
    assert ts.loc[ts["TSPARMCD"] == "ROUTE", "TSVALCD"].iloc[0] == "C38276"
    assert not ts.duplicated(["TSPARMCD", "TSSEQ"]).any()


def test_every_usubjid_is_in_dm(sdtm):
    known = set(sdtm.frames["DM"]["USUBJID"])
    for name in SUBJECT_LEVEL:
        assert set(sdtm.frames[name]["USUBJID"]) <= known, name


def test_blinded_sdtm_contains_no_arm(sdtm_blinded, simulated_source):
    protocol = simulated_source.protocol
    revealing = {a.code for a in protocol.arms} | {a.name.en for a in protocol.arms}
    revealing |= {a.intervention.name.en.upper() for a in protocol.arms} | {"PLACEBO"}
    revealing |= set(simulated_source.preparations["lot"].dropna()) | set(
        simulated_source.preparations["saline_batch"].dropna())
    for name in SUBJECT_LEVEL:
        frame = sdtm_blinded.frames[name]
        cells = {str(v) for column in frame.columns for v in frame[column].dropna()}
        assert not cells & revealing, (name, cells & revealing)
    dm = sdtm_blinded.frames["DM"]
    randomized = dm.loc[~dm["ARMCD"].isin(["SCRNFAIL"]) & dm["ARMCD"].notna()]
    assert set(randomized["ARMCD"]) == {"BLINDED"} and set(randomized["ARM"]) == {"BLINDED"}
    ex = sdtm_blinded.frames["EX"]
    assert set(ex["EXTRT"]) == {"BLINDED"}
    assert "EXDOSE" not in ex.columns or ex["EXDOSE"].isna().all()
    assert sdtm_blinded.blinded


def test_blinded_and_unblinded_exports_differ_only_in_arm_content(sdtm, sdtm_blinded):
    for name in ("RE", "FT", "VS", "AE", "SV", "DS", "IE", "MH", "CM"):
        pd.testing.assert_frame_equal(sdtm.frames[name], sdtm_blinded.frames[name], check_dtype=False)


def test_long_free_text_is_shortened_to_200_bytes():
    text = "word " * 100
    short = fit(text)
    assert len(short.encode("utf-8")) <= 200 and short.endswith("...")
    assert fit("Лёгкое " * 60).encode("utf-8").__len__() <= 200
