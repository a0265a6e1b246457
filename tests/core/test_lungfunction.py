"""Reference values for lung function (GLI spirometry and DLCO, Enright 6MWD) and the CLI.

The test vectors are those of ``shared/domain/lung-function.md`` (computed there by two
independent implementations), copied here because they are the specification.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import date, datetime
from typing import Any

import pytest

from ildtrial.cli import main
from ildtrial.core import lungfunction as lf
from ildtrial.core.lungfunction import (
    LungFunctionInputError,
    ReferenceValue,
    decimal_age,
    dlco,
    six_minute_walk_predicted,
    spirometry,
)

# Tolerances stated with the vectors.
M_REL_TOL = 1e-3
PERCENT_ABS_TOL = 0.01
Z_ABS_TOL = 2e-3
LLN_REL_TOL = 1e-3

# (sex, age, height_cm, measure, equations, value, predicted M, % predicted, z, LLN, label)
VECTORS: list[tuple[str, float, float, str, str, float, float, float, float, float, str]] = [
    ("M", 65.0, 175, "FVC", "gli2012", 2.50, 4.27804, 58.44, -2.779, 3.2197, "GLI-2012"),
    ("M", 65.0, 175, "FEV1", "gli2012", 2.10, 3.28271, 63.97, -2.234, 2.4247, "GLI-2012"),
    (
        "M",
        65.0,
        175,
        "FVC",
        "gli_global_2022",
        2.50,
        4.02230,
        62.15,
        -2.4848,
        3.0091,
        "GLI Global 2022",
    ),
    ("M", 65.0, 175, "DLCO", "gli2017", 14.0, 25.8889, 54.08, -3.2005, 19.230, "GLI-2017"),
    ("F", 60.0, 162, "FVC", "gli2012", 1.90, 3.14327, 60.45, -2.737, 2.3826, "GLI-2012"),
    ("F", 60.0, 162, "DLCO", "gli2017", 10.0, 19.6525, 50.88, -3.9901, 15.073, "GLI-2017"),
    ("M", 60.0, 175, "FVC", "gli2012", 2.50, 4.4685, 55.95, -3.077, 3.409, "GLI-2012"),
]


def _vector_id(vector: tuple[Any, ...]) -> str:
    sex, age, height, measure, equations = vector[:5]
    return f"{sex}-{age:g}y-{height}cm-{measure}-{equations}"


def _compute(sex: str, age: float, height: float, measure: str, equations: str, value: float):
    if measure == "DLCO":
        return dlco(sex, age, height, value, equations=equations)
    return spirometry(sex, age, height, measure, value, equations=equations)


def assert_matches(result: ReferenceValue, predicted: float, percent: float, z: float, lln: float):
    assert result.predicted == pytest.approx(predicted, rel=M_REL_TOL)
    assert result.percent_predicted == pytest.approx(percent, abs=PERCENT_ABS_TOL)
    assert result.z_score == pytest.approx(z, abs=Z_ABS_TOL)
    assert result.lln == pytest.approx(lln, rel=LLN_REL_TOL)


# --- Test vectors ----------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=_vector_id)
def test_reference_values_match_published_test_vectors(vector: tuple[Any, ...]) -> None:
    sex, age, height, measure, equations, value, predicted, percent, z, lln, label = vector
    result = _compute(sex, age, height, measure, equations, value)
    assert_matches(result, predicted, percent, z, lln)
    assert result.measure == measure
    assert result.value == value
    assert result.equations == label


def test_percent_predicted_is_100_times_value_over_median() -> None:
    result = spirometry("M", 65.0, 175, "FVC", 2.5)
    assert result.percent_predicted == pytest.approx(100 * 2.5 / result.predicted, rel=1e-12)


def test_value_at_lln_has_z_of_minus_1_645() -> None:
    at_lln = spirometry("M", 65.0, 175, "FVC", spirometry("M", 65.0, 175, "FVC", 2.5).lln)
    assert at_lln.z_score == pytest.approx(-1.645, abs=1e-9)


def test_value_at_median_has_z_zero_and_100_percent() -> None:
    median = dlco("F", 60.0, 162, 10.0).predicted
    result = dlco("F", 60.0, 162, median)
    assert result.z_score == pytest.approx(0.0, abs=1e-9)
    assert result.percent_predicted == pytest.approx(100.0)


def test_fev1fvc_is_a_fraction_with_unit_ratio() -> None:
    result = spirometry("M", 65.0, 175, "FEV1FVC", 0.84)
    assert result.unit == "ratio"
    assert 0.6 < result.predicted < 0.9
    assert result.lln < result.predicted


def test_default_spirometry_equations_are_gli2012_caucasian() -> None:
    default = spirometry("M", 65.0, 175, "FVC", 2.5)
    explicit = spirometry("M", 65.0, 175, "FVC", 2.5, equations="gli2012", ethnicity="caucasian")
    assert default == explicit
    assert default.equations == "GLI-2012"


def test_gli2012_ethnicity_changes_the_prediction() -> None:
    caucasian = spirometry("M", 65.0, 175, "FVC", 2.5, ethnicity="caucasian")
    african_american = spirometry("M", 65.0, 175, "FVC", 2.5, ethnicity="african_american")
    assert african_american.predicted < caucasian.predicted


@pytest.mark.parametrize("ethnicity", list(lf.ETHNICITIES))
def test_gli_global_2022_ignores_ethnicity(ethnicity: str) -> None:
    result = spirometry("M", 65.0, 175, "FVC", 2.5, "gli_global_2022", ethnicity)
    assert result == spirometry("M", 65.0, 175, "FVC", 2.5, "gli_global_2022", "caucasian")


def test_ethnicity_vocabulary_maps_to_pyspiro_gli2012_codes() -> None:
    from pyspiro import GLI_2012

    codes = {name: GLI_2012.Ethnicity[member].value for name, member in lf.ETHNICITIES.items()}
    assert codes == {
        "caucasian": 1,
        "african_american": 2,
        "ne_asian": 3,
        "se_asian": 4,
        "other": 5,
    }
    for ethnicity in lf.ETHNICITIES:
        assert spirometry("F", 60.0, 162, "FVC", 1.9, ethnicity=ethnicity).predicted > 0


def test_equation_sets_carry_human_labels() -> None:
    assert {key: eq.label for key, eq in lf.EQUATION_SETS.items()} == {
        "gli2012": "GLI-2012",
        "gli_global_2022": "GLI Global 2022",
        "gli2017": "GLI-2017",
    }
    assert all(key == eq.id for key, eq in lf.EQUATION_SETS.items())


def test_reference_value_is_immutable() -> None:
    result = spirometry("M", 65.0, 175, "FVC", 2.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.predicted = 1.0  # type: ignore[misc]


def test_reference_value_to_dict_is_json_ready() -> None:
    result = dlco("M", 65.0, 175, 14.0)
    data = json.loads(json.dumps(result.to_dict()))
    assert data == {
        "measure": "DLCO",
        "value": 14.0,
        "unit": "mL/min/mmHg",
        "predicted": result.predicted,
        "percent_predicted": result.percent_predicted,
        "z_score": result.z_score,
        "lln": result.lln,
        "equations": "GLI-2017",
    }
    assert all(type(data[k]) is float for k in ("predicted", "percent_predicted", "z_score"))


def test_age_range_bounds_of_the_equations_are_accepted() -> None:
    assert spirometry("M", 3.0, 100, "FVC", 1.0).predicted > 0
    assert spirometry("M", 95.0, 175, "FVC", 2.5).predicted > 0
    assert spirometry("F", 95.0, 160, "FEV1", 1.5, equations="gli_global_2022").predicted > 0
    assert dlco("M", 5.0, 110, 8.0).predicted > 0
    assert dlco("M", 90.0, 175, 14.0).predicted > 0


def test_exact_decimal_age_is_used_not_whole_years() -> None:
    at_65 = spirometry("M", 65.0, 175, "FVC", 2.5)
    at_65_and_a_half = spirometry("M", 65.5, 175, "FVC", 2.5)
    at_66 = spirometry("M", 66.0, 175, "FVC", 2.5)
    assert at_66.predicted < at_65_and_a_half.predicted < at_65.predicted


# --- DLCO units --------------------------------------------------------------------------------


def test_dlco_conversion_factor_is_2_987() -> None:
    assert lf.ML_MIN_MMHG_PER_MMOL_MIN_KPA == 2.987


def test_dlco_in_si_units_gives_same_percent_and_z_and_converted_predicted() -> None:
    traditional = dlco("M", 65.0, 175, 14.0, unit="mL/min/mmHg")
    si = dlco("M", 65.0, 175, 14.0 / 2.987, unit="mmol/min/kPa")
    assert si.unit == "mmol/min/kPa"
    assert si.value == pytest.approx(14.0 / 2.987)
    assert si.percent_predicted == pytest.approx(traditional.percent_predicted, rel=1e-12)
    assert si.z_score == pytest.approx(traditional.z_score, rel=1e-12)
    assert si.predicted == pytest.approx(traditional.predicted / 2.987, rel=1e-12)
    assert si.lln == pytest.approx(traditional.lln / 2.987, rel=1e-12)


def test_dlco_from_si_to_traditional_units_gives_same_percent_and_z() -> None:
    si = dlco("F", 60.0, 162, 3.2, unit="mmol/min/kPa")
    traditional = dlco("F", 60.0, 162, 3.2 * 2.987, unit="mL/min/mmHg")
    assert traditional.percent_predicted == pytest.approx(si.percent_predicted, rel=1e-12)
    assert traditional.z_score == pytest.approx(si.z_score, rel=1e-12)
    assert traditional.predicted == pytest.approx(si.predicted * 2.987, rel=1e-12)
    assert traditional.lln == pytest.approx(si.lln * 2.987, rel=1e-12)
    # GLI-2017 vector, expressed in SI units: M = 19.6525 / 2.987
    assert si.predicted == pytest.approx(19.6525 / 2.987, rel=M_REL_TOL)


def test_dlco_unit_spelling_is_normalised() -> None:
    assert dlco("M", 65.0, 175, 4.7, unit=" MMOL/MIN/KPA ").unit == "mmol/min/kPa"


def test_dlco_unknown_unit_is_rejected_naming_field_and_accepted_units() -> None:
    with pytest.raises(LungFunctionInputError) as excinfo:
        dlco("M", 65.0, 175, 14.0, unit="ml/s/kPa")
    assert excinfo.value.field == "unit"
    message = str(excinfo.value)
    assert message.startswith("unit:")
    assert "mL/min/mmHg" in message and "mmol/min/kPa" in message


# --- 6-minute walk -----------------------------------------------------------------------------


def test_six_minute_walk_enright_man() -> None:
    predicted, lln = six_minute_walk_predicted("M", 65.0, 175, 80)
    assert predicted == pytest.approx(548.65, abs=1e-9)
    assert lln == pytest.approx(395.65, abs=1e-9)


def test_six_minute_walk_enright_woman() -> None:
    result = six_minute_walk_predicted("F", 60.0, 162, 65)
    assert result.predicted_m == pytest.approx(513.17, abs=1e-9)
    assert result.lln_m == pytest.approx(374.17, abs=1e-9)


def test_six_minute_walk_lln_is_not_below_zero() -> None:
    result = six_minute_walk_predicted("M", 85.0, 140, 130)
    assert 0 < result.predicted_m < 153
    assert result.lln_m == 0.0


def test_six_minute_walk_without_positive_prediction_is_rejected() -> None:
    with pytest.raises(LungFunctionInputError, match="predicts no positive distance"):
        six_minute_walk_predicted("M", 100.0, 100, 300)


@pytest.mark.parametrize("age", [17.9, 100.1])
def test_six_minute_walk_age_must_be_adult(age: float) -> None:
    with pytest.raises(LungFunctionInputError, match=r"^age: must be between 18 and 100 years"):
        six_minute_walk_predicted("F", age, 162, 65)


@pytest.mark.parametrize("weight", [19.9, 300.1, 0, -5])
def test_weight_kg_must_be_between_20_and_300(weight: float) -> None:
    with pytest.raises(LungFunctionInputError, match=r"^weight_kg: must be between 20 and 300 kg"):
        six_minute_walk_predicted("M", 65.0, 175, weight)


# --- Decimal age -------------------------------------------------------------------------------


def test_decimal_age_is_whole_on_birthday() -> None:
    assert decimal_age(date(1955, 6, 15), date(2020, 6, 15)) == 65.0


def test_decimal_age_adds_elapsed_fraction_of_year_of_life() -> None:
    # 2020-06-15 -> 2021-06-15 is 365 days; 2020-12-14 is 182 days after the birthday
    assert decimal_age(date(1955, 6, 15), date(2020, 12, 14)) == pytest.approx(65 + 182 / 365)


def test_decimal_age_day_before_birthday_is_just_below_next_year() -> None:
    age = decimal_age(date(1955, 6, 15), date(2021, 6, 14))
    assert 65.99 < age < 66.0


def test_decimal_age_leap_day_birthday_falls_on_28_february() -> None:
    assert decimal_age(date(1960, 2, 29), date(2021, 2, 28)) == 61.0
    assert decimal_age(date(1960, 2, 29), date(2020, 2, 29)) == 60.0


def test_decimal_age_is_zero_on_birth_date() -> None:
    assert decimal_age(date(2000, 1, 1), date(2000, 1, 1)) == 0.0


def test_decimal_age_accepts_datetimes_by_their_day() -> None:
    assert decimal_age(datetime(1955, 6, 15, 8, 0), datetime(2020, 6, 15, 23, 59)) == 65.0


def test_decimal_age_rejects_test_date_before_birth_date() -> None:
    with pytest.raises(ValueError, match=r"^test_date: must not be before birth_date"):
        decimal_age(date(1960, 5, 1), date(1960, 4, 30))


def test_decimal_age_rejects_non_dates() -> None:
    with pytest.raises(LungFunctionInputError, match=r"^birth_date: must be a date"):
        decimal_age("1960-05-01", date(2020, 1, 1))  # type: ignore[arg-type]


# --- Bad input -----------------------------------------------------------------------------------


def test_input_error_is_a_value_error_with_field_and_rule() -> None:
    with pytest.raises(ValueError) as excinfo:
        spirometry("M", 65.0, 99, "FVC", 2.5)
    error = excinfo.value
    assert isinstance(error, LungFunctionInputError)
    assert error.field == "height_cm"
    assert error.rule == "must be between 100 and 250 cm (got 99)"
    assert str(error) == "height_cm: must be between 100 and 250 cm (got 99)"


def test_hard_limits_are_module_constants() -> None:
    assert (lf.HEIGHT_CM_MIN, lf.HEIGHT_CM_MAX) == (100.0, 250.0)
    assert (lf.WEIGHT_KG_MIN, lf.WEIGHT_KG_MAX) == (20.0, 300.0)
    assert lf.VOLUME_L_MAX == 15.0
    assert lf.FEV1FVC_MAX == 1.0
    assert lf.DLCO_ML_MIN_MMHG_MAX == 100.0


@pytest.mark.parametrize("height", [99.9, 250.1, 0, -175])
def test_height_cm_must_be_between_100_and_250(height: float) -> None:
    with pytest.raises(LungFunctionInputError, match=r"^height_cm: must be between 100 and 250 cm"):
        spirometry("M", 65.0, height, "FVC", 2.5)
    with pytest.raises(LungFunctionInputError, match=r"^height_cm: must be between 100 and 250 cm"):
        dlco("M", 65.0, height, 14.0)


def test_height_cm_limits_are_inclusive() -> None:
    assert spirometry("M", 10.0, 100, "FVC", 1.0).predicted > 0
    assert spirometry("M", 30.0, 250, "FVC", 8.0).predicted > 0


@pytest.mark.parametrize("bad", [math.nan, math.inf, "175", None, True])
def test_numbers_must_be_finite_numbers(bad: object) -> None:
    with pytest.raises(LungFunctionInputError, match=r"^height_cm: must be a (finite )?number"):
        spirometry("M", 65.0, bad, "FVC", 2.5)  # type: ignore[arg-type]
    with pytest.raises(LungFunctionInputError, match=r"^age: must be a (finite )?number"):
        dlco("M", bad, 175, 14.0)  # type: ignore[arg-type]
    with pytest.raises(LungFunctionInputError, match=r"^FVC: must be a (finite )?number"):
        spirometry("M", 65.0, 175, "FVC", bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("sex", ["X", "", "male", None, 1])
def test_sex_must_be_m_or_f(sex: object) -> None:
    with pytest.raises(LungFunctionInputError, match=r"^sex: must be 'M' or 'F'"):
        spirometry(sex, 65.0, 175, "FVC", 2.5)  # type: ignore[arg-type]
    with pytest.raises(LungFunctionInputError, match=r"^sex: must be 'M' or 'F'"):
        dlco(sex, 65.0, 175, 14.0)  # type: ignore[arg-type]
    with pytest.raises(LungFunctionInputError, match=r"^sex: must be 'M' or 'F'"):
        six_minute_walk_predicted(sex, 65.0, 175, 80)  # type: ignore[arg-type]


def test_sex_code_is_case_insensitive() -> None:
    assert spirometry("m", 65.0, 175, "FVC", 2.5) == spirometry("M", 65.0, 175, "FVC", 2.5)


@pytest.mark.parametrize(
    ("equations", "age"), [("gli2012", 2.99), ("gli2012", 95.01), ("gli_global_2022", 96)]
)
def test_spirometry_age_must_be_within_3_to_95_years(equations: str, age: float) -> None:
    with pytest.raises(
        LungFunctionInputError, match=r"^age: must be between 3 and 95 years for GLI"
    ):
        spirometry("M", age, 175, "FVC", 2.5, equations=equations)


@pytest.mark.parametrize("age", [4.99, 90.01, -1])
def test_dlco_age_must_be_within_5_to_90_years(age: float) -> None:
    with pytest.raises(
        LungFunctionInputError, match=r"^age: must be between 5 and 90 years for GLI-2017"
    ):
        dlco("M", age, 175, 14.0)


@pytest.mark.parametrize("equations", ["gli2017", "gli2022", "GLI-2012", None])
def test_spirometry_equations_must_be_a_spirometry_set(equations: object) -> None:
    with pytest.raises(LungFunctionInputError) as excinfo:
        spirometry("M", 65.0, 175, "FVC", 2.5, equations=equations)  # type: ignore[arg-type]
    assert excinfo.value.field == "equations"
    assert "gli2012, gli_global_2022" in str(excinfo.value)


def test_dlco_equations_must_be_a_transfer_factor_set() -> None:
    with pytest.raises(LungFunctionInputError, match=r"^equations: must be one of gli2017"):
        dlco("M", 65.0, 175, 14.0, equations="gli2012")


@pytest.mark.parametrize("ethnicity", ["white", "Caucasian", "", None])
def test_ethnicity_must_be_in_the_vocabulary(ethnicity: object) -> None:
    with pytest.raises(LungFunctionInputError) as excinfo:
        spirometry("M", 65.0, 175, "FVC", 2.5, ethnicity=ethnicity)  # type: ignore[arg-type]
    assert excinfo.value.field == "ethnicity"
    assert "caucasian, african_american, ne_asian, se_asian, other" in str(excinfo.value)


@pytest.mark.parametrize("measure", ["DLCO", "fvc", "PEF", ""])
def test_spirometry_measure_must_be_fev1_fvc_or_fev1fvc(measure: str) -> None:
    with pytest.raises(
        LungFunctionInputError, match=r"^measure: must be one of FEV1, FVC, FEV1FVC"
    ):
        spirometry("M", 65.0, 175, measure, 2.5)


@pytest.mark.parametrize("measure", ["FEV1", "FVC"])
@pytest.mark.parametrize("value", [0, -2.5])
def test_volumes_must_be_positive(measure: str, value: float) -> None:
    with pytest.raises(LungFunctionInputError, match=rf"^{measure}: must be greater than 0 L"):
        spirometry("M", 65.0, 175, measure, value)


@pytest.mark.parametrize("measure", ["FEV1", "FVC"])
def test_volumes_must_be_at_most_15_litres(measure: str) -> None:
    with pytest.raises(LungFunctionInputError, match=rf"^{measure}: must be at most 15 L"):
        spirometry("M", 65.0, 175, measure, 2500)


@pytest.mark.parametrize("ratio", [0, -0.5, 1.01, 70])
def test_fev1fvc_must_be_a_fraction_between_0_and_1(ratio: float) -> None:
    with pytest.raises(
        LungFunctionInputError, match=r"^FEV1FVC: must be a fraction greater than 0 and at most 1"
    ):
        spirometry("M", 65.0, 175, "FEV1FVC", ratio)


def test_fev1fvc_of_exactly_1_is_accepted() -> None:
    assert spirometry("M", 65.0, 175, "FEV1FVC", 1.0).z_score > 0


@pytest.mark.parametrize("value", [0, -14])
def test_dlco_must_be_positive(value: float) -> None:
    with pytest.raises(LungFunctionInputError, match=r"^DLCO: must be greater than 0 mL/min/mmHg"):
        dlco("M", 65.0, 175, value)


def test_dlco_must_be_at_most_100_ml_min_mmhg() -> None:
    with pytest.raises(LungFunctionInputError, match=r"^DLCO: must be at most 100 mL/min/mmHg"):
        dlco("M", 65.0, 175, 100.1)
    assert dlco("M", 65.0, 175, 100.0).value == 100.0


def test_dlco_limit_applies_in_si_units_too() -> None:
    with pytest.raises(
        LungFunctionInputError, match=r"^DLCO: must be at most 33.47\d* mmol/min/kPa"
    ):
        dlco("M", 65.0, 175, 34.0, unit="mmol/min/kPa")
    assert dlco("M", 65.0, 175, 33.4, unit="mmol/min/kPa").value == 33.4


# --- Command line ----------------------------------------------------------------------------------

BASE = ["lungfunction", "--sex", "M", "--age", "65", "--height", "175"]


def run_cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_prints_reference_values_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*BASE, "--ethnicity", "caucasian", "--equations", "gli2012", "--fvc", "2.5"]
    argv += ["--fev1", "2.1", "--dlco", "14", "--dlco-unit", "mL/min/mmHg", "--weight", "80"]
    code, out, err = run_cli(capsys, argv)
    assert code == 0, err
    report = json.loads(out)
    assert report["age"] == 65.0
    results = report["results"]
    assert list(results) == ["FVC", "FEV1", "FEV1FVC", "DLCO", "SIX_MINUTE_WALK"]
    for key, predicted, percent, z, lln in [
        ("FVC", 4.27804, 58.44, -2.779, 3.2197),
        ("FEV1", 3.28271, 63.97, -2.234, 2.4247),
        ("DLCO", 25.8889, 54.08, -3.2005, 19.230),
    ]:
        assert_matches(ReferenceValue(**results[key]), predicted, percent, z, lln)
    assert results["FVC"]["equations"] == "GLI-2012"
    assert results["FVC"]["unit"] == "L"
    assert results["DLCO"]["equations"] == "GLI-2017"
    assert results["DLCO"]["unit"] == "mL/min/mmHg"
    assert results["FEV1FVC"]["value"] == pytest.approx(2.1 / 2.5)
    assert results["FEV1FVC"]["unit"] == "ratio"
    walk = results["SIX_MINUTE_WALK"]
    assert walk["predicted"] == pytest.approx(548.65)
    assert walk["lln"] == pytest.approx(395.65)
    assert walk["unit"] == "m"
    assert walk["equations"] == "Enright & Sherrill 1998"


def test_cli_prints_only_the_measures_given(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, [*BASE, "--fvc", "2.5", "--equations", "gli_global_2022"])
    assert code == 0
    results = json.loads(out)["results"]
    assert list(results) == ["FVC"]
    assert results["FVC"]["equations"] == "GLI Global 2022"
    assert_matches(ReferenceValue(**results["FVC"]), 4.02230, 62.15, -2.4848, 3.0091)


def test_cli_birth_and_test_date_replace_age(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["lungfunction", "--sex", "F", "--birth-date", "1960-03-01", "--test-date"]
    argv += ["2020-03-01", "--height", "162", "--fvc", "1.9"]
    code, out, _ = run_cli(capsys, argv)
    assert code == 0
    report = json.loads(out)
    assert report["age"] == 60.0
    assert_matches(ReferenceValue(**report["results"]["FVC"]), 3.14327, 60.45, -2.737, 2.3826)


def test_cli_dlco_in_si_units_reports_si_predicted(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*BASE, "--dlco", str(14.0 / 2.987), "--dlco-unit", "mmol/min/kPa"]
    code, out, _ = run_cli(capsys, argv)
    assert code == 0
    result = json.loads(out)["results"]["DLCO"]
    assert result["unit"] == "mmol/min/kPa"
    assert_matches(ReferenceValue(**result), 25.8889 / 2.987, 54.08, -3.2005, 19.230 / 2.987)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--height", "75", "--fvc", "2.5"], "height_cm: must be between 100 and 250 cm"),
        (["--fvc", "2.5", "--equations", "gli2017"], "equations: must be one of"),
        (["--fvc", "2.5", "--ethnicity", "white"], "ethnicity: must be one of"),
        (["--dlco", "14", "--dlco-unit", "ml/s"], "unit: DLCO unit must be one of"),
        (["--fvc", "2.0", "--fev1", "2.5"], "FEV1FVC: must be a fraction"),
        (["--fvc", "-1"], "FVC: must be greater than 0 L"),
        (["--weight", "10"], "weight_kg: must be between 20 and 300 kg"),
        ([], "measures: give at least one of --fvc, --fev1, --dlco, --weight"),
    ],
)
def test_cli_bad_input_names_field_and_rule_and_exits_2(
    capsys: pytest.CaptureFixture[str], extra: list[str], expected: str
) -> None:
    code, out, err = run_cli(capsys, [*BASE, *extra])
    assert code == 2
    assert out == ""
    assert err.startswith("ildtrial lungfunction: error: ")
    assert expected in err


def test_cli_sex_must_be_m_or_f(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["lungfunction", "--sex", "X", "--age", "65", "--height", "175", "--fvc", "2.5"]
    code, _, err = run_cli(capsys, argv)
    assert code == 2
    assert "sex: must be 'M' or 'F'" in err


def test_cli_age_outside_equations_range_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["lungfunction", "--sex", "M", "--age", "92", "--height", "175", "--dlco", "14"]
    code, _, err = run_cli(capsys, argv)
    assert code == 2
    assert "age: must be between 5 and 90 years for GLI-2017" in err


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        ([], "age: required: give --age or --birth-date with --test-date"),
        (["--birth-date", "1960-01-01"], "test_date: required with --birth-date"),
        (["--test-date", "2020-01-01"], "birth_date: required with --test-date"),
        (
            ["--birth-date", "2020-01-02", "--test-date", "2020-01-01"],
            "test_date: must not be before birth_date",
        ),
    ],
)
def test_cli_age_needs_age_or_both_dates(
    capsys: pytest.CaptureFixture[str], dates: list[str], expected: str
) -> None:
    argv = ["lungfunction", "--sex", "M", "--height", "175", "--fvc", "2.5", *dates]
    code, _, err = run_cli(capsys, argv)
    assert code == 2
    assert expected in err


def test_cli_age_and_dates_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*BASE, "--birth-date", "1955-01-01", "--test-date", "2020-01-01", "--fvc", "2.5"]
    code, _, err = run_cli(capsys, argv)
    assert code == 2
    assert "age: give either --age or --birth-date with --test-date, not both" in err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--height", "tall"], "argument --height: invalid float value"),
        (["--birth-date", "01/02/1960"], "argument --birth-date: must be a date YYYY-MM-DD"),
    ],
)
def test_cli_unparseable_values_exit_2(
    capsys: pytest.CaptureFixture[str], extra: list[str], expected: str
) -> None:
    argv = ["lungfunction", "--sex", "M", "--height", "175", "--fvc", "2.5", *extra]
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == 2
    assert expected in capsys.readouterr().err
