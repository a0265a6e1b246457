"""The eligibility engine (``ildtrial.core.eligibility``) and ``ildtrial eligibility evaluate``.

The base candidate is a 67-year-old man with idiopathic NSIP (an IIP). Symptoms started
two years before screening, and HRCT is diagnostic. FVC fell from 3.25 to 2.80 L and
DLCO from 14.6 to 12.4 mL/min/mmHg over the last 12 months. He has had no
anti-inflammatory treatment and no exclusion. Each test changes one thing and names the
criterion it is about. For exclusions, ``met`` means the exclusion applies.
"""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ildtrial.cli import main
from ildtrial.core import lungfunction as lf
from ildtrial.core.eligibility import (
    CandidateData,
    CandidateDataError,
    EligibilityVerdict,
    add_months,
    evaluate,
)
from ildtrial.core.protocol import load_protocol

PROTOCOL = load_protocol()
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "candidate.json"
ABSENT = object()  # marks a key to remove in make()

BASE: dict[str, Any] = {
    "candidate_id": "SCR-010",
    "screening_date": "2025-04-07",
    "consent": {"signed": "2025-04-07T08:30", "first_procedure": "2025-04-07T09:00"},
    "enrolment_date": "2025-04-28",
    "randomization_date": "2025-04-28",
    "DM": {
        "birth_date": "1957-06-02",
        "sex": "M",
        "height_cm": 176,
        "weight_kg": 84,
        "ethnicity": "caucasian",
    },
    "DX": {
        "diagnosis_group": "IIP",
        "diagnosis_detail": "Idiopathic NSIP",
        "symptom_onset_date": "2023-01-15",
        "hrct_diagnostic": True,
        "hrct_date": "2023-06-20",
        "histology_diagnostic": False,
    },
    "SPIRO": {"test_date": "2025-04-07", "fev1_l": 2.30, "fvc_l": 2.80},
    "DLCO": {"test_date": "2025-04-07", "dlco": 12.4, "dlco_unit": "mL/min/mmHg"},
    "PRIORLF": [
        {"test_date": "2024-04-08", "fvc_l": 3.25, "dlco": 14.6, "dlco_unit": "mL/min/mmHg"},
    ],
    "EXCL": {
        "significant_condition": False,
        "active_infection": False,
        "malignancy_history": False,
        "unable_to_cooperate": False,
        "pregnant_or_breastfeeding": False,
        "transplant_listing": False,
        "alcohol_abuse": False,
        "other_trial": False,
    },
    "PROHIB": [],
}


def make(**updates: Any) -> dict[str, Any]:
    """The base candidate with changes. A dict given for a form is merged into it, a
    field set to None becomes missing, and ``ABSENT`` removes a top-level key."""
    data = copy.deepcopy(BASE)
    for key, value in updates.items():
        if value is ABSENT:
            data.pop(key, None)
        elif isinstance(value, dict) and isinstance(data.get(key), dict) and key != "consent":
            data[key].update(value)
        else:
            data[key] = value
    return data


def verdict(
    data: dict[str, Any], language: str = "en", protocol: Any = PROTOCOL
) -> EligibilityVerdict:
    return evaluate(protocol, CandidateData.from_dict(data, protocol), language=language)


def result(data: dict[str, Any], criterion: str, language: str = "en") -> Any:
    return verdict(data, language).criterion(criterion)


def birthday(years: int, on: str) -> str:
    """A birth date exactly ``years`` before ``on``."""
    day = date.fromisoformat(on)
    return add_months(day, -12 * years).isoformat()


# --------------------------------------------------------------------------- base case
def test_base_candidate_is_eligible() -> None:
    v = verdict(BASE)
    assert v.status == "eligible", [(r.id, r.outcome, r.sentence) for r in v.criteria]
    assert [r.id for r in v.criteria] == [c.id for c in PROTOCOL.protocol.eligibility.criteria]
    assert all(r.passes for r in v.criteria)
    assert v.reasons == () and v.missing == () and v.assumptions == ()


# --------------------------------------------------------------------------- IN1 age
def test_IN1_age_exactly_20_on_consent_date_is_met() -> None:
    r = result(make(DM={"birth_date": birthday(20, "2025-04-07")}), "IN1")
    assert r.outcome == "met"
    assert r.evidence["age_completed_years"] == 20
    assert r.evidence["age_on"] == "consent"


def test_IN1_one_day_before_20th_birthday_is_not_met() -> None:
    r = result(make(DM={"birth_date": "2005-04-08"}), "IN1")
    assert r.outcome == "not_met"
    assert r.evidence["age_completed_years"] == 19


def test_IN1_age_exactly_80_is_met() -> None:
    assert result(make(DM={"birth_date": birthday(80, "2025-04-07")}), "IN1").outcome == "met"


def test_IN1_day_before_81st_birthday_is_still_80_and_met() -> None:
    r = result(make(DM={"birth_date": "1944-04-08"}), "IN1")
    assert r.outcome == "met"
    assert r.evidence["age_completed_years"] == 80
    assert "needs 20 to 80 years inclusive" in r.sentence


def test_IN1_81st_birthday_is_not_met() -> None:
    r = result(make(DM={"birth_date": birthday(81, "2025-04-07")}), "IN1")
    assert r.outcome == "not_met"


def test_IN1_age_is_taken_at_consent_not_screening() -> None:
    # 20th birthday on 2025-04-06: 19 when consenting on 2025-04-05, 20 at screening
    data = make(DM={"birth_date": "2005-04-06"}, consent={"signed": "2025-04-05"})
    assert result(data, "IN1").outcome == "not_met"


def test_IN1_without_consent_date_uses_screening_date_and_says_so() -> None:
    v = verdict(make(consent=ABSENT))
    r = v.criterion("IN1")
    assert r.outcome == "met"
    assert r.evidence["age_on"] == "screening"
    assert "screening date" in r.sentence
    assert any("age was computed on the screening date" in a for a in v.assumptions)


def test_IN1_missing_birth_date_is_unknown() -> None:
    r = result(make(DM={"birth_date": None}), "IN1")
    assert r.outcome == "unknown"
    assert r.missing == ("DM.birth_date",)
    assert "Missing: DM.birth_date" in r.sentence


# --------------------------------------------------------------------------- IN2 diagnosis
def test_IN2_iip_with_diagnostic_hrct_and_two_years_of_symptoms_is_met() -> None:
    r = result(BASE, "IN2")
    assert r.outcome == "met"
    assert "diagnostic HRCT: yes (2023-06-20)" in r.sentence


def test_IN2_symptoms_for_less_than_12_months_is_not_met() -> None:
    r = result(make(DX={"symptom_onset_date": "2024-06-01"}), "IN2")
    assert r.outcome == "not_met"
    assert r.evidence["symptom_duration_met"] is False


def test_IN2_symptom_onset_exactly_12_months_before_screening_is_met() -> None:
    assert result(make(DX={"symptom_onset_date": "2024-04-07"}), "IN2").outcome == "met"
    assert result(make(DX={"symptom_onset_date": "2024-04-08"}), "IN2").outcome == "not_met"


def test_IN2_neither_hrct_nor_histology_diagnostic_is_not_met() -> None:
    assert result(make(DX={"hrct_diagnostic": False}), "IN2").outcome == "not_met"


def test_IN2_histology_alone_is_enough() -> None:
    data = make(
        DX={"hrct_diagnostic": False, "histology_diagnostic": True, "histology_date": "2023-09-01"}
    )
    assert result(data, "IN2").outcome == "met"


def test_IN2_ctd_ild_is_allowed_and_sarcoidosis_is_not() -> None:
    assert result(make(DX={"diagnosis_group": "CTD_ILD"}), "IN2").outcome == "met"
    assert result(make(DX={"diagnosis_group": "SARCOIDOSIS"}), "IN2").outcome == "not_met"


def test_IN2_unanswered_hrct_is_unknown_unless_histology_decides() -> None:
    r = result(make(DX={"hrct_diagnostic": None}), "IN2")
    assert r.outcome == "unknown"
    assert r.missing == ("DX.hrct_diagnostic",)
    both = make(DX={"hrct_diagnostic": None, "histology_diagnostic": True})
    assert result(both, "IN2").outcome == "met"


def test_IN2_a_definite_failure_wins_over_a_missing_item() -> None:
    data = make(DX={"diagnosis_group": "LAM", "symptom_onset_date": None})
    assert result(data, "IN2").outcome == "not_met"


# --------------------------------------------------------------------------- IN3 % predicted
def test_IN3_reference_vector_fvc_and_dlco_percent_predicted() -> None:
    # lung-function.md: man 65.0 y, 175 cm: FVC 2.50 L = 58.44 %, DLCO 14.0 = 54.08 %
    data = make(
        DM={"birth_date": "1960-04-07", "height_cm": 175},
        SPIRO={"fvc_l": 2.50, "fev1_l": 2.10},
        DLCO={"dlco": 14.0},
    )
    r = result(data, "IN3")
    assert r.outcome == "met"
    fvc = r.evidence["measures"]["FVC"]
    assert fvc["age_decimal_years"] == 65.0
    assert fvc["percent_predicted"] == pytest.approx(58.44, abs=0.01)
    assert fvc["equations"] == "GLI-2012"
    assert r.evidence["measures"]["DLCO"]["percent_predicted"] == pytest.approx(54.08, abs=0.01)
    assert "FVC 2.50 L on 2025-04-07 = 58.4 % predicted (GLI-2012); needs ≥ 40" in r.sentence
    assert (
        "DLCO 14.0 mL/min/mmHg on 2025-04-07 = 54.1 % predicted (GLI-2017); needs ≥ 20"
        in r.sentence
    )


def test_IN3_fvc_below_40_percent_predicted_is_not_met() -> None:
    r = result(make(SPIRO={"fvc_l": 1.55, "fev1_l": 1.30}), "IN3")
    assert r.outcome == "not_met"
    assert r.evidence["measures"]["FVC"]["met"] is False
    assert r.evidence["measures"]["DLCO"]["met"] is True


def _predicted(measure: str) -> float:
    age = lf.decimal_age(date(1957, 6, 2), date(2025, 4, 7))
    if measure == "DLCO":
        return lf.dlco("M", age, 176, 10.0).predicted
    return lf.spirometry("M", age, 176, "FVC", 3.0).predicted


def test_IN3_fvc_exactly_40_percent_predicted_is_met() -> None:
    m = _predicted("FVC")
    r = result(make(SPIRO={"fvc_l": 0.40 * m, "fev1_l": 0.30 * m}), "IN3")
    assert r.outcome == "met"
    assert "= 40.0 % predicted" in r.sentence
    below = result(make(SPIRO={"fvc_l": 0.3999 * m, "fev1_l": 0.30 * m}), "IN3")
    assert below.outcome == "not_met"
    assert "= 39.99 % predicted" in below.sentence  # never shown as "40.0" when it fails


def test_IN3_dlco_exactly_20_percent_is_met_and_below_is_not() -> None:
    m = _predicted("DLCO")
    assert result(make(DLCO={"dlco": 0.20 * m}), "IN3").outcome == "met"
    assert result(make(DLCO={"dlco": 0.19 * m}), "IN3").outcome == "not_met"


def test_IN3_dlco_in_si_units_gives_the_same_percent_predicted() -> None:
    traditional = result(BASE, "IN3").evidence["measures"]["DLCO"]["percent_predicted"]
    si = result(make(DLCO={"dlco": 12.4 / 2.987, "dlco_unit": "mmol/min/kPa"}), "IN3")
    assert si.evidence["measures"]["DLCO"]["percent_predicted"] == pytest.approx(traditional)


def test_IN3_missing_height_is_unknown() -> None:
    r = result(make(DM={"height_cm": None}), "IN3")
    assert r.outcome == "unknown"
    assert "DM.height_cm" in r.missing


def test_IN3_uses_the_equations_of_the_protocol_file() -> None:
    proto = PROTOCOL.protocol
    global_2022 = proto.model_copy(
        update={
            "eligibility": proto.eligibility.model_copy(
                update={"reference_equations": "gli_global_2022"}
            )
        }
    )
    data = make(DM={"birth_date": "1960-04-07", "height_cm": 175}, SPIRO={"fvc_l": 2.50})
    r = verdict(data, protocol=global_2022).criterion("IN3")
    assert r.evidence["measures"]["FVC"]["equations"] == "GLI Global 2022"
    assert r.evidence["measures"]["FVC"]["percent_predicted"] == pytest.approx(62.15, abs=0.01)


# --------------------------------------------------------------------------- IN4 decline
def test_IN4_fvc_and_dlco_both_fell_more_than_10_percent_is_met() -> None:
    r = result(BASE, "IN4")
    assert r.outcome == "met"
    fvc = r.evidence["measures"]["FVC"]
    assert float(fvc["decline_percent"]) == pytest.approx(13.846, abs=1e-3)
    assert fvc["reference"]["test_date"] == date(2024, 4, 8)
    assert "FVC fell 13.8 % from 3.25 L on 2024-04-08 (12.0 months earlier) to 2.80 L" in r.sentence


def test_IN4_decline_exactly_10_percent_is_not_met() -> None:
    # 3.00 -> 2.70 L is exactly 10 %; in binary floating point it would be 10.000000000000002
    data = make(
        SPIRO={"fvc_l": 2.70, "fev1_l": 2.20},
        PRIORLF=[
            {"test_date": "2024-04-08", "fvc_l": 3.00, "dlco": 14.6, "dlco_unit": "mL/min/mmHg"}
        ],
    )
    r = result(data, "IN4")
    assert r.outcome == "not_met"
    assert float(r.evidence["measures"]["FVC"]["decline_percent"]) == 10.0
    assert "FVC fell 10.0 %" in r.sentence


def test_IN4_decline_just_over_10_percent_is_met() -> None:
    data = make(
        SPIRO={"fvc_l": 2.69, "fev1_l": 2.20},
        PRIORLF=[
            {"test_date": "2024-04-08", "fvc_l": 3.00, "dlco": 14.6, "dlco_unit": "mL/min/mmHg"}
        ],
    )
    assert result(data, "IN4").outcome == "met"


def test_IN4_decline_reference_outside_9_to_15_months_is_unknown() -> None:
    data = make(
        PRIORLF=[
            {"test_date": "2024-10-07", "fvc_l": 3.00, "dlco": 13.5, "dlco_unit": "mL/min/mmHg"},
            {"test_date": "2023-09-01", "fvc_l": 3.40, "dlco": 15.0, "dlco_unit": "mL/min/mmHg"},
        ]
    )
    v = verdict(data)
    r = v.criterion("IN4")
    assert r.outcome == "unknown"
    assert (
        "no prior measurement between 9 and 15 months before the screening test of 2025-04-07"
        in r.sentence
    )
    assert "(searched 2024-01-07 to 2024-07-07)" in r.sentence
    assert any(m.startswith("PRIORLF.fvc_l (9-15 months") for m in r.missing)
    assert v.status == "incomplete"


def test_IN4_window_edges_are_inclusive_in_days_per_30_4375() -> None:
    # 9 months = 273.9 days: 274 days qualifies, 273 days does not
    def row(days: int) -> dict[str, Any]:
        day = date(2025, 4, 7).toordinal() - days
        return {
            "test_date": date.fromordinal(day).isoformat(),
            "fvc_l": 3.25,
            "dlco": 14.6,
            "dlco_unit": "mL/min/mmHg",
        }

    assert result(make(PRIORLF=[row(274)]), "IN4").outcome == "met"
    assert result(make(PRIORLF=[row(273)]), "IN4").outcome == "unknown"
    assert result(make(PRIORLF=[row(456)]), "IN4").outcome == "met"
    assert result(make(PRIORLF=[row(457)]), "IN4").outcome == "unknown"


def test_IN4_the_measurement_nearest_to_12_months_is_the_reference() -> None:
    data = make(
        PRIORLF=[
            {"test_date": "2024-07-01", "fvc_l": 2.90, "dlco": 13.0, "dlco_unit": "mL/min/mmHg"},
            {"test_date": "2024-03-20", "fvc_l": 3.25, "dlco": 14.6, "dlco_unit": "mL/min/mmHg"},
            {"test_date": "2024-01-15", "fvc_l": 3.40, "dlco": 15.0, "dlco_unit": "mL/min/mmHg"},
        ]
    )
    r = result(data, "IN4")
    assert r.evidence["measures"]["FVC"]["reference"]["test_date"] == date(2024, 3, 20)
    assert r.outcome == "met"


def test_IN4_dlco_in_different_units_is_converted_before_comparing() -> None:
    # 14.6 mL/min/mmHg = 4.888 mmol/min/kPa; screening 12.4 mL/min/mmHg
    data = make(
        PRIORLF=[
            {"test_date": "2024-04-08", "fvc_l": 3.25, "dlco": 4.888, "dlco_unit": "mmol/min/kPa"}
        ]
    )
    r = result(data, "IN4")
    dl = r.evidence["measures"]["DLCO"]
    assert dl["compared_in"] == "mL/min/mmHg"
    assert float(dl["reference_value_compared"]) == pytest.approx(4.888 * 2.987)
    assert float(dl["decline_percent"]) == pytest.approx(
        (4.888 * 2.987 - 12.4) / (4.888 * 2.987) * 100
    )
    assert "4.888 mmol/min/kPa (14.60 mL/min/mmHg)" in r.sentence
    assert r.outcome == "met"


def test_IN4_fvc_fell_but_dlco_did_not_is_not_met() -> None:
    data = make(
        PRIORLF=[
            {"test_date": "2024-04-08", "fvc_l": 3.25, "dlco": 12.0, "dlco_unit": "mL/min/mmHg"}
        ]
    )
    r = result(data, "IN4")
    assert r.outcome == "not_met"
    assert "DLCO rose" in r.sentence


def test_IN4_prior_measurements_not_entered_or_none_is_unknown() -> None:
    assert result(make(PRIORLF=ABSENT), "IN4").outcome == "unknown"
    assert result(make(PRIORLF=[]), "IN4").outcome == "unknown"


def test_IN4_prior_dlco_without_unit_is_named_as_missing() -> None:
    data = make(PRIORLF=[{"test_date": "2024-04-08", "fvc_l": 3.25, "dlco": 14.6}])
    r = result(data, "IN4")
    assert r.outcome == "unknown"
    assert "PRIORLF[0].dlco_unit" in r.missing


# --------------------------------------------------------------------------- IN5 consent
def test_IN5_consent_signed_before_the_first_procedure_is_met() -> None:
    r = result(BASE, "IN5")
    assert r.outcome == "met"
    assert "2025-04-07T08:30" in r.sentence


def test_IN5_consent_after_the_first_procedure_is_not_met() -> None:
    data = make(consent={"signed": "2025-04-07T10:15", "first_procedure": "2025-04-07T09:00"})
    r = result(data, "IN5")
    assert r.outcome == "not_met"
    assert "after the first study procedure on 2025-04-07T09:00" in r.sentence
    assert r.evidence["before_first_procedure"] is False


def test_IN5_consent_dated_after_screening_is_not_met() -> None:
    r = result(make(consent="2025-04-09"), "IN5")
    assert r.outcome == "not_met"
    assert "after screening on 2025-04-07" in r.sentence


def test_IN5_not_signed_is_not_met_and_not_recorded_is_unknown() -> None:
    assert result(make(consent=None), "IN5").outcome == "not_met"
    assert result(make(consent={"signed": None}), "IN5").outcome == "not_met"
    unknown = result(make(consent=ABSENT), "IN5")
    assert unknown.outcome == "unknown"
    assert unknown.missing == ("consent",)


def test_IN5_same_day_without_times_is_met() -> None:
    data = make(consent={"signed": "2025-04-07", "first_procedure": "2025-04-07T09:00"})
    assert result(data, "IN5").outcome == "met"


# --------------------------------------------------------------------------- EX1 diagnosis
def test_EX1_sarcoidosis_excludes_and_iip_does_not() -> None:
    assert result(make(DX={"diagnosis_group": "SARCOIDOSIS"}), "EX1").outcome == "met"
    assert result(BASE, "EX1").outcome == "not_met"
    assert result(make(DX={"diagnosis_group": None}), "EX1").outcome == "unknown"


# --------------------------------------------------------------------------- EX2 obstruction
def test_EX2_fev1_fvc_below_0_70_excludes_and_shows_the_lln_result() -> None:
    # 1.90/2.80 = 0.679: below the fixed ratio, but above the GLI LLN of a 67-year-old man
    v = verdict(make(SPIRO={"fev1_l": 1.90}))
    r = v.criterion("EX2")
    assert r.outcome == "met"
    assert r.evidence["lln"]["computed"] is True
    assert r.evidence["lln"]["below_lln"] is False
    assert r.evidence["lln"]["lln"] == pytest.approx(0.633, abs=1e-3)
    assert "FEV1/FVC 1.90/2.80 L = 0.68, below 0.70" in r.sentence
    assert "not below its LLN 0.63 (GLI-2012" in r.sentence
    assert v.status == "not_eligible"


def test_EX2_ratio_exactly_0_70_does_not_exclude() -> None:
    r = result(make(SPIRO={"fev1_l": 1.96, "fvc_l": 2.80}), "EX2")
    assert r.outcome == "not_met"
    assert float(r.evidence["ratio"]) == 0.7


def test_EX2_fev1_above_fvc_is_unknown() -> None:
    r = result(make(SPIRO={"fev1_l": 3.10}), "EX2")
    assert r.outcome == "unknown"
    assert "check the spirometry entry" in r.sentence


# --------------------------------------------------------------------------- answers
def test_EX3_clinically_significant_condition_excludes() -> None:
    r = result(make(EXCL={"significant_condition": True}), "EX3")
    assert r.outcome == "met"
    assert r.sentence == "Clinically significant condition that may compromise the results: yes"


def test_EX6_unable_to_cooperate_excludes() -> None:
    assert result(make(EXCL={"unable_to_cooperate": True}), "EX6").outcome == "met"


def test_EX7_pregnant_or_breastfeeding_excludes() -> None:
    assert result(make(EXCL={"pregnant_or_breastfeeding": True}), "EX7").outcome == "met"


def test_EX9_active_transplant_listing_excludes() -> None:
    assert result(make(EXCL={"transplant_listing": True}), "EX9").outcome == "met"


def test_EX11_participation_in_another_trial_excludes() -> None:
    assert result(make(EXCL={"other_trial": True}), "EX11").outcome == "met"


@pytest.mark.parametrize(
    ("criterion", "item"),
    [
        ("EX3", "significant_condition"),
        ("EX6", "unable_to_cooperate"),
        ("EX7", "pregnant_or_breastfeeding"),
        ("EX9", "transplant_listing"),
        ("EX11", "other_trial"),
    ],
)
def test_unanswered_exclusion_question_is_unknown(criterion: str, item: str) -> None:
    r = result(make(EXCL={item: None}), criterion)
    assert r.outcome == "unknown"
    assert r.missing == (f"EXCL.{item}",)


# --------------------------------------------------------------------------- EX4 infection
def test_EX4_infection_28_days_before_enrolment_excludes() -> None:
    r = result(make(EXCL={"active_infection": True, "infection_date": "2025-03-31"}), "EX4")
    assert r.outcome == "met"
    assert r.evidence["days_before_reference"] == 28
    assert "28 days before enrolment on 2025-04-28" in r.sentence


def test_EX4_infection_29_days_before_enrolment_does_not_exclude() -> None:
    r = result(make(EXCL={"active_infection": True, "infection_date": "2025-03-30"}), "EX4")
    assert r.outcome == "not_met"
    assert "outside the period of 28 days (from 2025-03-31)" in r.sentence


def test_EX4_infection_without_a_date_is_unknown() -> None:
    r = result(make(EXCL={"active_infection": True}), "EX4")
    assert r.outcome == "unknown"
    assert r.missing == ("EXCL.infection_date",)


def test_EX4_without_enrolment_date_uses_screening_date_and_says_so() -> None:
    # 30 days before the planned enrolment, but 9 days before screening
    data = make(
        enrolment_date=ABSENT, EXCL={"active_infection": True, "infection_date": "2025-03-29"}
    )
    v = verdict(data)
    r = v.criterion("EX4")
    assert r.outcome == "met"
    assert r.evidence["reference_date_defaulted"] is True
    assert "before the screening date 2025-04-07, used as no enrolment date was given" in r.sentence
    assert any("enrolment date not given" in a for a in v.assumptions)


# --------------------------------------------------------------------------- EX5 malignancy
def test_EX5_malignancy_within_5_years_before_enrolment_excludes() -> None:
    data = make(EXCL={"malignancy_history": True, "malignancy_date": "2020-04-28"})
    assert result(data, "EX5").outcome == "met"  # 5 years to the day: within
    older = make(EXCL={"malignancy_history": True, "malignancy_date": "2020-04-27"})
    assert result(older, "EX5").outcome == "not_met"


# --------------------------------------------------------------------------- EX8 washout
def test_EX8_ongoing_oral_steroid_excludes() -> None:
    data = make(PROHIB=[{"medication_class": "oral_steroid", "medication_name": "prednisolone"}])
    r = result(data, "EX8")
    assert r.outcome == "met"
    assert "Prednisolone (oral_steroid) ongoing" in r.sentence


def test_EX8_stopped_6_months_to_the_day_before_randomization_does_not_exclude() -> None:
    row = {
        "medication_class": "pirfenidone",
        "medication_name": "pirfenidone",
        "stop_date": "2024-10-28",
    }
    r = result(make(PROHIB=[row]), "EX8")
    assert r.outcome == "not_met"
    assert r.evidence["stopped_on_or_before_is_washed_out"] == date(2024, 10, 28)


def test_EX8_stopped_one_day_less_than_6_months_before_randomization_excludes() -> None:
    row = {
        "medication_class": "cytostatic",
        "medication_name": "mycophenolate",
        "stop_date": "2024-10-29",
    }
    r = result(make(PROHIB=[row]), "EX8")
    assert r.outcome == "met"
    assert "Mycophenolate (cytostatic) stopped 2024-10-29" in r.sentence


def test_EX8_empty_list_means_none_and_absent_means_unknown() -> None:
    assert result(make(PROHIB=[]), "EX8").outcome == "not_met"
    r = result(make(PROHIB=ABSENT), "EX8")
    assert r.outcome == "unknown"
    assert r.missing == ("PROHIB",)


def test_EX8_counts_from_randomization_else_from_screening() -> None:
    # stopped 6.4 months before the planned randomization, 5.7 months before screening
    row = {
        "medication_class": "tnf_blocker",
        "medication_name": "infliximab",
        "stop_date": "2024-10-15",
    }
    assert result(make(PROHIB=[row]), "EX8").outcome == "not_met"
    v = verdict(make(PROHIB=[row], randomization_date=ABSENT))
    assert v.criterion("EX8").outcome == "met"
    assert v.criterion("EX8").evidence["reference_date"] == date(2025, 4, 7)
    assert any("randomization date not given" in a for a in v.assumptions)


# --------------------------------------------------------------------------- EX10 alcohol
def test_EX10_alcohol_abuse_within_1_year_before_enrolment_excludes() -> None:
    recent = make(EXCL={"alcohol_abuse": True, "alcohol_abuse_date": "2024-06-01"})
    assert result(recent, "EX10").outcome == "met"
    remote = make(EXCL={"alcohol_abuse": True, "alcohol_abuse_date": "2024-03-01"})
    assert result(remote, "EX10").outcome == "not_met"


# --------------------------------------------------------------------------- verdicts
def test_unknown_is_never_counted_as_met() -> None:
    v = verdict({"screening_date": "2025-04-07"})
    assert v.status == "incomplete"
    assert {r.outcome for r in v.criteria} == {"unknown"}
    assert all(r.passes is None for r in v.criteria)
    assert len(v.missing) == len(v.criteria)


def test_a_single_unanswered_exclusion_makes_the_verdict_incomplete() -> None:
    v = verdict(make(EXCL={"other_trial": None}))
    assert v.status == "incomplete"
    assert [m[0] for m in v.missing] == ["EX11"]
    assert "EX11" in v.summary


def test_not_eligible_lists_every_reason_and_the_undecided() -> None:
    data = make(
        SPIRO={"fvc_l": 1.55, "fev1_l": 1.30},
        EXCL={"transplant_listing": True, "other_trial": None},
    )
    v = verdict(data)
    assert v.status == "not_eligible"
    assert [cid for cid, _ in v.reasons] == ["IN3", "EX9"]
    assert "Also undecided: EX11" in v.summary


def test_criteria_come_from_the_protocol_file() -> None:
    proto = PROTOCOL.protocol
    criteria = [c for c in proto.eligibility.criteria if c.id != "EX11"]
    fewer = proto.model_copy(
        update={"eligibility": proto.eligibility.model_copy(update={"criteria": criteria})}
    )
    v = verdict(make(EXCL={"other_trial": None}), protocol=fewer)
    assert "EX11" not in [r.id for r in v.criteria]
    assert v.status == "eligible"


def test_verdict_to_dict_is_json_serialisable() -> None:
    d = verdict(BASE).to_dict()
    text = json.dumps(d)
    assert json.loads(text)["status"] == "eligible"
    assert d["protocol"]["registration"] == "NCT02594839"
    assert d["criteria"][3]["evidence"]["measures"]["FVC"]["reference"]["test_date"] == "2024-04-08"


def test_russian_sentences() -> None:
    v = verdict(BASE, language="ru")
    assert v.summary.startswith("Соответствует")
    assert "ФЖЕЛ снизилась на 13,8 %" in v.criterion("IN4").sentence
    assert v.criterion("IN1").summary == "Возраст от 20 до 80 лет на дату согласия"
    infection = result(
        make(EXCL={"active_infection": True, "infection_date": "2025-03-31"}), "EX4", "ru"
    )
    assert "за 28 дней до включения 2025-04-28" in infection.sentence


def test_evaluate_refuses_an_unknown_language() -> None:
    with pytest.raises(ValueError, match="language"):
        verdict(BASE, language="de")


def test_add_months_clamps_to_the_end_of_the_month() -> None:
    assert add_months(date(2025, 8, 31), -6) == date(2025, 2, 28)
    assert add_months(date(2024, 8, 31), -6) == date(2024, 2, 29)
    assert add_months(date(2025, 1, 15), -13) == date(2023, 12, 15)


# --------------------------------------------------------------------------- from_dict
@pytest.mark.parametrize(
    ("changes", "path", "rule"),
    [
        ({"DM": {"birth_date": "1957-02-30"}}, "DM.birth_date", "must be a date YYYY-MM-DD"),
        ({"DM": {"sex": "male"}}, "DM.sex", "must be one of M, F"),
        ({"DM": {"height_cm": 17.6}}, "DM.height_cm", "must be between 100 and 250 cm"),
        ({"SPIRO": {"fvc_l": "2.8"}}, "SPIRO.fvc_l", "must be a number"),
        ({"EXCL": {"other_trial": "no"}}, "EXCL.other_trial", "must be true or false"),
        ({"DM": {"heigth_cm": 176}}, "DM.heigth_cm", "is not a field of form DM"),
        ({"SPIROMETRY": {"fvc_l": 2.8}}, "SPIROMETRY", "is neither a form of protocol"),
        ({"PROHIB": {"medication_class": "oral_steroid"}}, "PROHIB", "repeating form"),
        (
            {"PROHIB": [{"medication_class": "aspirin"}]},
            "PROHIB[0].medication_class",
            "must be one of",
        ),
        ({"consent": {"signed": "yesterday"}}, "consent", "signed: must be a date"),
        ({"screening_date": None}, "screening_date", "is required"),
    ],
)
def test_from_dict_names_the_field_and_the_rule(
    changes: dict[str, Any], path: str, rule: str
) -> None:
    data = copy.deepcopy(BASE)
    data.update(changes)
    with pytest.raises(CandidateDataError) as caught:
        CandidateData.from_dict(data, PROTOCOL)
    assert any(p == path and rule in r for p, r in caught.value.issues), caught.value.issues
    assert f"{path}: " in str(caught.value)


def test_from_dict_reports_every_problem_at_once() -> None:
    data = make(DM={"sex": "X", "birth_date": "02.06.1957"}, SPIRO={"fvc_l": 25})
    with pytest.raises(CandidateDataError) as caught:
        CandidateData.from_dict(data, PROTOCOL)
    assert [p for p, _ in caught.value.issues] == ["DM.birth_date", "DM.sex", "SPIRO.fvc_l"]


def test_from_dict_types_values_and_accepts_comments_and_case() -> None:
    data = make(_note="ignored", DM={"sex": "m", "ethnicity": "Caucasian"})
    c = CandidateData.from_dict(data, PROTOCOL)
    assert c.value("DM.sex") == "M" and c.value("DM.ethnicity") == "caucasian"
    assert c.value("DM.birth_date") == date(1957, 6, 2)
    assert c.rows("PROHIB") == () and c.rows("MH") is None
    assert c.consent is not None and c.consent.first_procedure is not None
    with pytest.raises(CandidateDataError, match="must be an object"):
        CandidateData.from_dict(["not", "a", "dict"], PROTOCOL)  # type: ignore[arg-type]


def test_from_dict_uses_the_packaged_protocol_by_default() -> None:
    assert CandidateData.from_dict(BASE).candidate_id == "SCR-010"


# --------------------------------------------------------------------------- example + CLI
def test_example_file_is_an_eligible_candidate() -> None:
    data = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    v = verdict(data)
    assert v.status == "eligible", [(r.id, r.outcome, r.sentence) for r in v.criteria]
    assert v.criterion("IN2").evidence["diagnosis_group"] in ("IIP", "CTD_ILD")


def test_cli_evaluates_one_candidate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eligibility", "evaluate", str(EXAMPLE)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "eligible"
    assert len(out["criteria"]) == 16


def test_cli_evaluates_a_prescreening_list_in_russian(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "list.json"
    path.write_text(json.dumps([BASE, make(candidate_id="SCR-011", DX={"diagnosis_group": "PAP"})]))
    assert main(["eligibility", "evaluate", str(path), "--language", "ru"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [v["status"] for v in out] == ["eligible", "not_eligible"]
    assert out[1]["candidate_id"] == "SCR-011"
    assert out[1]["language"] == "ru"


def test_cli_bad_candidate_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([BASE, make(candidate_id="SCR-012", DM={"sex": "unknown"})]))
    assert main(["eligibility", "evaluate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "candidate[1] (SCR-012): DM.sex: must be one of M, F" in captured.err
    assert "docs/eligibility-input.md" in captured.err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON (line 1"),
        ('"a string"', "must hold a candidate object or a list"),
        ("[]", "the list of candidates is empty"),
    ],
)
def test_cli_unusable_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "c.json"
    path.write_text(content)
    assert main(["eligibility", "evaluate", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_cli_missing_file_and_bad_protocol_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eligibility", "evaluate", str(tmp_path / "nope.json")]) == 2
    assert "cannot read the file" in capsys.readouterr().err
    bad = tmp_path / "protocol.yaml"
    bad.write_text("protocol: [")
    assert main(["eligibility", "evaluate", str(EXAMPLE), "--protocol", str(bad)]) == 2
    assert "is invalid" in capsys.readouterr().err
