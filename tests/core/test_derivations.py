"""Derived values of SPIRO, DLCO and SIXMWT against the GLI test vectors of
``shared/domain/lung-function.md``, the ATS/ERS 2017 Hb correction and Enright–Sherrill."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ildtrial.core import lungfunction as lf
from ildtrial.core.crf import validate_form
from ildtrial.core.derivations import (
    DerivationContext,
    DerivedValue,
    derive,
    hb_corrected_dlco,
    hb_correction_factor,
)
from ildtrial.core.protocol import load_protocol

PROTOCOL = load_protocol().protocol
TEST_DATE = date(2024, 3, 1)
# Tolerances stated with the vectors.
M_REL_TOL, PERCENT_ABS_TOL, Z_ABS_TOL, LLN_REL_TOL = 1e-3, 0.01, 2e-3, 1e-3


def context(
    sex: str | None = "M",
    age: int | None = 65,
    height: Any = Decimal("175.0"),
    weight: Any = Decimal("80.0"),
    ethnicity: str | None = "caucasian",
    **equations: str,
) -> DerivationContext:
    """Demographics whose exact age on TEST_DATE is ``age`` whole years."""
    birth = None if age is None else TEST_DATE.replace(year=TEST_DATE.year - age)
    return DerivationContext(sex, birth, height, weight, ethnicity, **equations)


def spiro(fev1: str = "2.10", fvc: str = "2.50") -> dict[str, Any]:
    return {"test_date": TEST_DATE, "fev1_l": Decimal(fev1), "fvc_l": Decimal(fvc)}


def dlco_form(value: str, unit: str = "mL/min/mmHg", hb: str | None = None) -> dict[str, Any]:
    return {
        "test_date": TEST_DATE,
        "dlco": Decimal(value),
        "dlco_unit": unit,
        "haemoglobin_g_dl": None if hb is None else Decimal(hb),
    }


def assert_reference(
    out: dict[str, DerivedValue],
    prefix: str,
    predicted: float,
    percent: float,
    z: float,
    lln: float,
    suffix: str = "",
) -> None:
    assert out[f"{prefix}_predicted{suffix}"].value == pytest.approx(predicted, rel=M_REL_TOL)
    assert out[f"{prefix}_percent_predicted"].value == pytest.approx(percent, abs=PERCENT_ABS_TOL)
    assert out[f"{prefix}_z_score"].value == pytest.approx(z, abs=Z_ABS_TOL)
    assert out[f"{prefix}_lln{suffix}"].value == pytest.approx(lln, rel=LLN_REL_TOL)


# =========================================================================== SPIRO vectors
@pytest.mark.parametrize(
    "sex, age, height, field, value, equations, predicted, percent, z, lln",
    [
        ("M", 65, 175, "fvc_l", "2.50", "gli2012", 4.27804, 58.44, -2.779, 3.2197),
        ("M", 65, 175, "fev1_l", "2.10", "gli2012", 3.28271, 63.97, -2.234, 2.4247),
        ("M", 65, 175, "fvc_l", "2.50", "gli_global_2022", 4.02230, 62.15, -2.4848, 3.0091),
        ("F", 60, 162, "fvc_l", "1.90", "gli2012", 3.14327, 60.45, -2.737, 2.3826),
        ("M", 60, 175, "fvc_l", "2.50", "gli2012", 4.4685, 55.95, -3.077, 3.409),
    ],
)
def test_spiro_percent_predicted_z_and_lln_match_the_gli_test_vectors(
    sex: str,
    age: int,
    height: int,
    field: str,
    value: str,
    equations: str,
    predicted: float,
    percent: float,
    z: float,
    lln: float,
) -> None:
    cleaned = spiro(fev1="1.00", fvc="3.00")
    cleaned[field] = Decimal(value)
    out = derive(
        "SPIRO",
        cleaned,
        context(sex, age, Decimal(height), reference_equations=equations),
    )
    prefix = field.removesuffix("_l")
    assert_reference(out, prefix, predicted, percent, z, lln, suffix="_l")
    assert out[f"{prefix}_percent_predicted"].unit == "%"
    assert out[f"{prefix}_predicted_l"].unit == "L"
    assert out[f"{prefix}_z_score"].unit is None


def test_spiro_method_names_the_equation_set_and_the_inputs_used() -> None:
    out = derive("SPIRO", spiro(), context())
    fvc = out["fvc_percent_predicted"]
    assert fvc.method == "GLI-2012 (Quanjer 2012)"
    assert fvc.inputs == {
        "equations": "gli2012",
        "sex": "M",
        "height_cm": 175.0,
        "ethnicity": "caucasian",
        "fvc_l": 2.5,
        "test_date": "2024-03-01",
        "age_years": 65.0,
    }
    global_2022 = derive("SPIRO", spiro(), context(reference_equations="gli_global_2022"))
    assert global_2022["fvc_percent_predicted"].method == "GLI Global 2022 (Bowerman 2023)"


def test_spiro_gli_global_2022_needs_no_ethnicity() -> None:
    out = derive("SPIRO", spiro(), context(ethnicity=None, reference_equations="gli_global_2022"))
    assert out["fvc_percent_predicted"].value == pytest.approx(62.15, abs=PERCENT_ABS_TOL)
    gli2012 = derive("SPIRO", spiro(), context(ethnicity=None))
    assert gli2012["fvc_percent_predicted"].value is None
    assert "ethnic group" in (gli2012["fvc_percent_predicted"].reason or "")


def test_spiro_age_is_the_exact_decimal_age_on_the_test_date() -> None:
    birth = date(1959, 9, 1)  # 64.5 years on 2024-03-01, not 64
    ctx = DerivationContext("M", birth, 175, 80, "caucasian")
    out = derive("SPIRO", spiro(), ctx)
    age = lf.decimal_age(birth, TEST_DATE)
    assert 64.49 < age < 64.51
    assert out["age_years"].value == age
    expected = lf.spirometry("M", age, 175, "FVC", 2.5)
    assert out["fvc_percent_predicted"].value == pytest.approx(expected.percent_predicted)
    truncated = lf.spirometry("M", 64.0, 175, "FVC", 2.5)
    assert out["fvc_percent_predicted"].value != pytest.approx(truncated.percent_predicted)


# =========================================================================== FEV1/FVC
def test_fev1_fvc_ratio_is_exact_so_0_70_is_not_below_0_70() -> None:
    out = derive("SPIRO", spiro(fev1="1.75", fvc="2.50"), context())
    assert out["fev1_fvc_ratio"].value == pytest.approx(0.70)
    assert out["fev1_fvc_ratio"].unit == "ratio"
    assert out["fev1_fvc_below_0_70"].value is False


def test_fev1_fvc_below_0_70_flag_set_just_below_the_threshold() -> None:
    out = derive("SPIRO", spiro(fev1="1.74", fvc="2.50"), context())
    assert out["fev1_fvc_below_0_70"].value is True
    assert out["fev1_fvc_below_0_70"].method == "FEV1/FVC < 0.70 (protocol fixed ratio, EX2)"


def test_fev1_fvc_ratio_and_fixed_flag_need_no_demographics() -> None:
    out = derive("SPIRO", spiro(fev1="1.40", fvc="2.50"), context(sex=None, age=None))
    assert out["fev1_fvc_ratio"].value == pytest.approx(0.56)
    assert out["fev1_fvc_below_0_70"].value is True
    assert out["fev1_fvc_below_lln"].value is None


def test_fev1_fvc_z_lln_and_below_lln_flag_follow_gli() -> None:
    out = derive("SPIRO", spiro(fev1="2.10", fvc="2.50"), context())
    ref = lf.spirometry("M", 65.0, 175, "FEV1FVC", 0.84)
    assert out["fev1_fvc_predicted"].value == pytest.approx(ref.predicted)
    assert out["fev1_fvc_z_score"].value == pytest.approx(ref.z_score)
    assert out["fev1_fvc_lln"].value == pytest.approx(ref.lln)
    assert out["fev1_fvc_below_lln"].value is False
    low = derive("SPIRO", spiro(fev1="1.50", fvc="2.50"), context())  # 0.60 < LLN 0.642
    assert low["fev1_fvc_below_lln"].value is True
    assert low["fev1_fvc_below_0_70"].value is True


def test_fev1_fvc_between_lln_and_0_70_shows_the_two_rules_disagree() -> None:
    out = derive("SPIRO", spiro(fev1="1.65", fvc="2.50"), context())  # 0.66
    assert out["fev1_fvc_below_0_70"].value is True
    assert out["fev1_fvc_below_lln"].value is False


# =========================================================================== DLCO
@pytest.mark.parametrize(
    "sex, age, height, value, predicted, percent, z, lln",
    [
        ("M", 65, 175, "14.0", 25.8889, 54.08, -3.2005, 19.230),
        ("F", 60, 162, "10.0", 19.6525, 50.88, -3.9901, 15.073),
    ],
)
def test_dlco_percent_predicted_z_and_lln_match_the_gli_2017_vectors(
    sex: str,
    age: int,
    height: int,
    value: str,
    predicted: float,
    percent: float,
    z: float,
    lln: float,
) -> None:
    out = derive("DLCO", dlco_form(value), context(sex, age, height))
    assert_reference(out, "dlco", predicted, percent, z, lln)
    assert out["dlco_percent_predicted"].method == "GLI-2017 (Stanojevic 2017)"
    assert out["dlco_predicted"].unit == "mL/min/mmHg"


def test_dlco_in_si_units_reports_predicted_and_lln_in_the_entered_unit() -> None:
    si = str(round(14.0 / lf.ML_MIN_MMHG_PER_MMOL_MIN_KPA, 4))
    out = derive("DLCO", dlco_form(si, "mmol/min/kPa"), context())
    assert out["dlco_predicted"].unit == "mmol/min/kPa"
    assert out["dlco_predicted"].value == pytest.approx(25.8889 / 2.987, rel=M_REL_TOL)
    assert out["dlco_lln"].value == pytest.approx(19.230 / 2.987, rel=LLN_REL_TOL)
    assert out["dlco_percent_predicted"].value == pytest.approx(54.08, abs=PERCENT_ABS_TOL)


def test_hb_correction_factor_is_one_at_the_reference_haemoglobin() -> None:
    assert hb_correction_factor(14.6, "M", 65) == pytest.approx(1.0)
    assert hb_correction_factor(13.4, "F", 60) == pytest.approx(1.0)
    assert hb_correction_factor(13.4, "M", 10) == pytest.approx(1.0)  # child: female factor


def test_hb_correction_adult_male_uses_10_22() -> None:
    # 14.0 × (10.22 + 12.0) / (1.7 × 12.0) = 14.0 × 22.22 / 20.4
    assert hb_corrected_dlco(14.0, 12.0, "M", 65) == pytest.approx(15.249019607843, rel=1e-12)


def test_hb_correction_adult_female_and_child_use_9_38() -> None:
    # 10.0 × (9.38 + 12.0) / (1.7 × 12.0) = 10.0 × 21.38 / 20.4
    assert hb_corrected_dlco(10.0, 12.0, "F", 60) == pytest.approx(10.480392156863, rel=1e-12)
    assert hb_corrected_dlco(10.0, 12.0, "M", 14.99) == pytest.approx(10.480392156863, rel=1e-12)
    assert hb_corrected_dlco(10.0, 12.0, "M", 15.0) == pytest.approx(10.0 * 22.22 / 20.4)


def test_hb_correction_refuses_a_non_positive_haemoglobin() -> None:
    with pytest.raises(lf.LungFunctionInputError, match="haemoglobin_g_dl"):
        hb_correction_factor(0.0, "M", 65)


def test_dlco_hb_corrected_value_and_its_percent_predicted_are_derived() -> None:
    out = derive("DLCO", dlco_form("14.0", hb="12.0"), context())
    corrected = out["dlco_hb_corrected"]
    assert corrected.value == pytest.approx(15.249019607843)
    assert corrected.unit == "mL/min/mmHg"
    assert corrected.method == "ATS/ERS 2017 (Graham) haemoglobin correction"
    assert corrected.inputs["haemoglobin_g_dl"] == 12.0
    percent = out["dlco_hb_corrected_percent_predicted"]
    assert percent.value == pytest.approx(100 * 15.249019607843 / 25.8889, abs=0.01)
    assert percent.value == pytest.approx(58.90, abs=0.01)


def test_dlco_without_haemoglobin_has_no_corrected_value_and_says_why() -> None:
    out = derive("DLCO", dlco_form("14.0"), context())
    assert out["dlco_percent_predicted"].value is not None
    assert out["dlco_hb_corrected"].value is None
    assert out["dlco_hb_corrected"].reason == "not computed: haemoglobin missing"
    assert out["dlco_hb_corrected"].reason_ru == "не рассчитано: нет данных (гемоглобин)"


# =========================================================================== SIXMWT
def test_sixmwt_enright_sherrill_man_check_value() -> None:
    cleaned = {"test_date": TEST_DATE, "distance_m": 400, "spo2_rest": 95, "spo2_nadir": 86}
    out = derive("SIXMWT", cleaned, context("M", 65, 175, 80))
    assert out["sixmwd_predicted_m"].value == pytest.approx(548.65)
    assert out["sixmwd_lln_m"].value == pytest.approx(395.65)
    assert out["sixmwd_predicted_m"].method == "Enright & Sherrill 1998"
    assert out["sixmwd_percent_predicted"].value == pytest.approx(100 * 400 / 548.65)
    assert out["spo2_drop"].value == 9


def test_sixmwt_enright_sherrill_woman_check_value() -> None:
    out = derive("SIXMWT", {"test_date": TEST_DATE, "distance_m": 450}, context("F", 60, 162, 65))
    assert out["sixmwd_predicted_m"].value == pytest.approx(513.17)
    assert out["sixmwd_lln_m"].value == pytest.approx(374.17)
    assert out["spo2_drop"].value is None
    assert "SpO2 at rest" in (out["spo2_drop"].reason or "")


def test_sixmwt_without_weight_has_no_prediction_and_says_why() -> None:
    out = derive("SIXMWT", {"test_date": TEST_DATE, "distance_m": 450}, context(weight=None))
    assert out["sixmwd_predicted_m"].value is None
    assert out["sixmwd_percent_predicted"].reason == "not computed: weight missing"


# =========================================================================== robustness
def test_missing_demographics_give_reasons_in_both_languages_not_exceptions() -> None:
    empty = DerivationContext(None, None, None, None, None)
    out = derive("SPIRO", spiro(), empty)
    fvc = out["fvc_percent_predicted"]
    assert fvc.value is None and not fvc.available
    assert fvc.reason == "not computed: sex, date of birth, height, ethnic group missing"
    assert fvc.reason_ru == (
        "не рассчитано: нет данных (пол, дата рождения, рост, этническая группа)"
    )
    for form_code, cleaned in (("DLCO", dlco_form("14.0", hb="12.0")), ("SIXMWT", {})):
        for value in derive(form_code, cleaned, empty).values():
            assert value.value is None and value.reason and value.reason_ru


def test_every_key_is_present_whether_or_not_it_could_be_derived() -> None:
    full = derive("SPIRO", spiro(), context())
    empty = derive("SPIRO", {}, DerivationContext(None, None, None, None, None))
    assert set(full) == set(empty)


def test_test_date_before_birth_gives_a_reason() -> None:
    ctx = DerivationContext("M", date(2030, 1, 1), 175, 80, "caucasian")
    out = derive("SPIRO", spiro(), ctx)
    assert "before birth_date" in (out["fvc_percent_predicted"].reason or "")


def test_age_outside_the_equation_range_gives_a_reason() -> None:
    out = derive("DLCO", dlco_form("14.0"), context(age=95))
    assert out["dlco_percent_predicted"].value is None
    assert "GLI-2017" in (out["dlco_percent_predicted"].reason or "")


def test_forms_without_derivations_give_nothing() -> None:
    assert derive("VS", {"heart_rate": 70}, context()) == {}


def test_context_from_demographics_and_protocol_uses_the_protocol_equations() -> None:
    dm = validate_form(
        PROTOCOL.form("DM"),
        {
            "birth_date": "1959-03-01",
            "sex": "M",
            "height_cm": "175,0",
            "weight_kg": "80",
            "ethnicity": "caucasian",
        },
        today=TEST_DATE,
    )
    ctx = DerivationContext.from_demographics(dm.cleaned, PROTOCOL)
    assert (ctx.reference_equations, ctx.dlco_equations) == ("gli2012", "gli2017")
    out = derive("SPIRO", spiro(), ctx)
    assert out["fvc_percent_predicted"].value == pytest.approx(58.44, abs=PERCENT_ABS_TOL)


def test_stored_json_values_derive_the_same_and_results_serialise() -> None:
    stored = {"test_date": "2024-03-01", "fev1_l": 2.1, "fvc_l": 2.5}
    from_json = derive("SPIRO", stored, context())
    from_cleaned = derive("SPIRO", spiro(), context())
    assert {k: v.value for k, v in from_json.items()} == {
        k: v.value for k, v in from_cleaned.items()
    }
    json.dumps({k: v.to_dict() for k, v in from_json.items()})


_ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.dates(),
    st.sampled_from(["M", "F", "caucasian", "other", "mL/min/mmHg", "mmol/min/kPa", "2024-03-01"]),
)


@settings(max_examples=200, deadline=None, database=None)
@given(
    form_code=st.sampled_from(["SPIRO", "DLCO", "SIXMWT"]),
    cleaned=st.dictionaries(
        st.sampled_from(
            [
                "test_date",
                "fev1_l",
                "fvc_l",
                "dlco",
                "dlco_unit",
                "haemoglobin_g_dl",
                "distance_m",
                "spo2_rest",
                "spo2_nadir",
            ]
        ),
        _ODD,
    ),
    demographics=st.tuples(_ODD, _ODD, _ODD, _ODD, _ODD),
    equations=st.sampled_from(["gli2012", "gli_global_2022", "nonsense"]),
)
def test_derive_never_raises_on_odd_data(
    form_code: str, cleaned: dict[str, Any], demographics: tuple[Any, ...], equations: str
) -> None:
    ctx = DerivationContext(*demographics, reference_equations=equations)
    out = derive(form_code, cleaned, ctx)
    assert out
    for value in out.values():
        assert (value.value is None) == (value.reason is not None)
        json.dumps(value.to_dict())
