"""The eCRF engine: every rule kind with both outcomes, messages in both languages, and a
property test that no input of any protocol form makes validation raise."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ildtrial.core.crf import FieldIssue, FormValidation, format_value, validate_form
from ildtrial.core.protocol import Form, load_protocol
from ildtrial.core.protocol import FormField as FormFieldSpec

PROTOCOL = load_protocol().protocol
TODAY = date(2024, 5, 1)


def form(code: str) -> Form:
    return PROTOCOL.form(code)


def validate(code: str, raw: Any, **kwargs: Any) -> FormValidation:
    return validate_form(form(code), raw, today=TODAY, **kwargs)


def spiro(**values: Any) -> dict[str, Any]:
    return {"test_date": "2024-04-30", "fev1_l": "2.10", "fvc_l": "2.50", **values}


def only(result: FormValidation, field: str | None = None, rule: str | None = None) -> FieldIssue:
    """The one issue of ``field``/``rule``; fails when there is none or more than one."""
    found = [
        i
        for i in result.issues
        if (field is None or i.field == field) and (rule is None or i.rule == rule)
    ]
    assert len(found) == 1, [i.message for i in result.issues]
    return found[0]


def rules(result: FormValidation) -> set[tuple[str | None, str]]:
    return {(i.field, i.rule) for i in result.issues}


# A small synthetic form for the types and rules the trial's forms do not use
# (datetime, decimals 0, a warning-level compare, a choice-valued required_when).
SYNTHETIC = Form.model_validate(
    {
        "code": "TST",
        "name": {"en": "Test form", "ru": "Тестовая форма"},
        "version": 3,
        "sdv": "none",
        "fields": [
            {
                "code": "onset",
                "label": {"en": "Onset", "ru": "Начало"},
                "type": "datetime",
                "not_in_future": True,
            },
            {
                "code": "whole",
                "label": {"en": "Whole amount", "ru": "Целое количество"},
                "type": "decimal",
                "decimals": 0,
            },
            {
                "code": "free",
                "label": {"en": "Free number", "ru": "Свободное число"},
                "type": "decimal",
            },
            {
                "code": "kind",
                "label": {"en": "Kind", "ru": "Вид"},
                "type": "choice",
                "choices": [
                    {"code": "A", "label": {"en": "Alpha", "ru": "Альфа"}},
                    {"code": "B", "label": {"en": "Beta", "ru": "Бета"}},
                ],
            },
            {"code": "detail", "label": {"en": "Detail", "ru": "Подробности"}, "type": "text"},
        ],
        "checks": [
            {
                "id": "TST_DETAIL_FOR_B",
                "kind": "required_when",
                "field": "detail",
                "when_field": "kind",
                "values": ["B"],
                "severity": "warning",
                "message": {"en": "Usually described.", "ru": "Обычно описывается."},
            },
            {
                "id": "TST_WHOLE_LE_FREE",
                "kind": "compare",
                "left": "whole",
                "op": "<=",
                "right": "free",
                "severity": "warning",
                "message": {"en": "Whole is usually smaller.", "ru": "Обычно меньше."},
            },
        ],
    }
)


# =========================================================================== required
def test_required_missing_value_is_an_error_naming_the_field() -> None:
    result = validate("SPIRO", spiro(fvc_l=None))
    issue = only(result, "fvc_l", "required")
    assert issue.severity == "error"
    assert issue.message == "FVC: a value is required"
    assert issue.message_ru.startswith("ФЖЕЛ:") and "обязательно" in issue.message_ru
    assert issue.key == "fvc_l:required"
    assert not result.can_save


@pytest.mark.parametrize("missing", ["", "   ", None])
def test_required_empty_string_blank_and_none_all_mean_missing(missing: Any) -> None:
    result = validate("SPIRO", spiro(fvc_l=missing))
    assert result.cleaned["fvc_l"] is None
    assert ("fvc_l", "required") in rules(result)


def test_required_absent_key_is_missing_too() -> None:
    raw = spiro()
    del raw["test_date"]
    assert ("test_date", "required") in rules(validate("SPIRO", raw))


def test_required_satisfied_gives_no_issue_and_can_save() -> None:
    result = validate("SPIRO", spiro())
    assert result.issues == []
    assert result.can_save
    assert result.cleaned == {
        "test_date": date(2024, 4, 30),
        "fev1_l": Decimal("2.10"),
        "fvc_l": Decimal("2.50"),
    }


def test_required_optional_field_may_stay_empty() -> None:
    result = validate(
        "DLCO", {"test_date": "2024-04-01", "dlco": "14.0", "dlco_unit": "mL/min/mmHg"}
    )
    assert result.can_save
    assert result.cleaned["haemoglobin_g_dl"] is None


# =========================================================================== type
def test_decimal_comma_is_accepted_as_russians_type_it() -> None:
    result = validate("SPIRO", spiro(fev1_l="2,10", fvc_l=" 2,50 "))
    assert result.can_save
    assert result.cleaned["fev1_l"] == Decimal("2.10")
    assert result.cleaned["fvc_l"] == Decimal("2.50")


def test_decimal_keeps_exactly_what_was_typed() -> None:
    cleaned = validate("SPIRO", spiro(fvc_l="2.50")).cleaned["fvc_l"]
    assert isinstance(cleaned, Decimal)
    assert str(cleaned) == "2.50"


def test_decimal_json_numbers_are_accepted() -> None:
    result = validate("SPIRO", {"test_date": "2024-04-30", "fev1_l": 2.1, "fvc_l": 3})
    assert result.can_save
    assert result.cleaned["fev1_l"] == Decimal("2.1")
    assert result.cleaned["fvc_l"] == Decimal(3)


@pytest.mark.parametrize("typed", ["abc", "2.5.1", "2,5,0", "1e3", "NaN", "inf", "2 50", "٣"])
def test_type_decimal_refuses_what_is_not_a_number(typed: str) -> None:
    result = validate("SPIRO", spiro(fvc_l=typed))
    issue = only(result, "fvc_l", "type")
    assert issue.severity == "error"
    assert issue.message.startswith("FVC: ") and "not a number" in issue.message
    assert issue.message_ru.startswith("ФЖЕЛ: ") and "не число" in issue.message_ru
    assert result.cleaned["fvc_l"] is None


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, [2.5], {"v": 2.5}])
def test_type_decimal_refuses_json_values_that_are_not_finite_numbers(value: Any) -> None:
    assert ("fvc_l", "type") in rules(validate("SPIRO", spiro(fvc_l=value)))


@pytest.mark.parametrize("typed, expected", [("72", 72), (72, 72), (72.0, 72), (" +72 ", 72)])
def test_type_integer_accepts_whole_numbers(typed: Any, expected: int) -> None:
    result = validate("VS", {"assessment_date": "2024-04-30", "heart_rate": typed})
    assert result.cleaned["heart_rate"] == expected
    assert isinstance(result.cleaned["heart_rate"], int)


@pytest.mark.parametrize("typed", ["72.5", "72,0", "1,000", "seventy", 72.5, True, "9" * 30])
def test_type_integer_refuses_anything_but_digits(typed: Any) -> None:
    result = validate("VS", {"assessment_date": "2024-04-30", "heart_rate": typed})
    issue = only(result, "heart_rate", "type")
    assert "Heart rate" in issue.message
    assert "Частота сердечных сокращений" in issue.message_ru


@pytest.mark.parametrize("typed", ["2024-04-30", "30.04.2024", date(2024, 4, 30), " 2024-04-30 "])
def test_type_date_accepts_iso_and_russian_day_first(typed: Any) -> None:
    assert validate("SPIRO", spiro(test_date=typed)).cleaned["test_date"] == date(2024, 4, 30)


@pytest.mark.parametrize(
    "typed", ["2023-02-30", "04/30/2024", "yesterday", "2024-4-30", 20240430, datetime(2024, 4, 30)]
)
def test_type_date_refuses_what_is_not_a_date(typed: Any) -> None:
    issue = only(validate("SPIRO", spiro(test_date=typed)), "test_date", "type")
    assert issue.message.startswith("Test date: ") and "not a date" in issue.message
    assert issue.message_ru.startswith("Дата исследования: ") and "не дата" in issue.message_ru


def test_type_time_accepts_hh_mm_and_refuses_the_rest() -> None:
    ok = validate("INF", {"start_time": "9:05", "stop_time": "10:30:15"})
    assert ok.cleaned["start_time"] == time(9, 5)
    assert ok.cleaned["stop_time"] == time(10, 30, 15)
    bad = validate("INF", {"start_time": "25:00", "stop_time": "noon"})
    assert {("start_time", "type"), ("stop_time", "type")} <= rules(bad)
    assert "not a time" in only(bad, "stop_time", "type").message


def test_type_datetime_accepts_iso_and_russian_and_refuses_a_bare_date() -> None:
    for typed in ("2024-04-30T08:15", "2024-04-30 08:15:00", "30.04.2024 08:15"):
        result = validate_form(SYNTHETIC, {"onset": typed}, today=TODAY)
        assert result.cleaned["onset"] == datetime(2024, 4, 30, 8, 15), typed
    issue = only(validate_form(SYNTHETIC, {"onset": "2024-04-30"}, today=TODAY), "onset", "type")
    assert "not a date and time" in issue.message and "не дата и время" in issue.message_ru


@pytest.mark.parametrize(
    "typed, expected",
    [
        (True, True),
        (False, False),
        ("true", True),
        ("false", False),
        ("Yes", True),
        ("no", False),
        ("1", True),
        ("0", False),
        (1, True),
        (0, False),
        ("on", True),
        ("off", False),
        ("да", True),
        ("НЕТ", False),
    ],
)
def test_type_boolean_accepts_every_spelling(typed: Any, expected: bool) -> None:
    result = validate("MH", {"condition": "Hypertension", "ongoing": typed})
    assert result.cleaned["ongoing"] is expected


@pytest.mark.parametrize("typed", ["maybe", "2", 2, 1.0, "ja"])
def test_type_boolean_refuses_other_values(typed: Any) -> None:
    issue = only(validate("MH", {"condition": "x", "ongoing": typed}), "ongoing", "type")
    assert "Ongoing" in issue.message and "not yes or no" in issue.message
    assert "Продолжается" in issue.message_ru


def test_type_boolean_missing_is_not_false() -> None:
    result = validate("MH", {"condition": "x"})
    assert result.cleaned["ongoing"] is None
    assert ("ongoing", "required") in rules(result)


def test_type_text_is_stripped_and_control_characters_refused() -> None:
    ok = validate("MH", {"condition": "  Hypertension\r\nsince 2010 ", "ongoing": "no"})
    assert ok.cleaned["condition"] == "Hypertension\nsince 2010"
    bad = validate("MH", {"condition": "a\x00b", "ongoing": "no"})
    assert "control characters" in only(bad, "condition", "type").message
    not_text = validate("MH", {"condition": 12, "ongoing": "no"})
    assert ("condition", "type") in rules(not_text)


# =========================================================================== min / max
def test_max_impossible_value_is_refused_with_label_and_rule() -> None:
    result = validate("SPIRO", spiro(fvc_l="25"))
    issue = only(result, "fvc_l", "max")
    assert issue.severity == "error"
    assert issue.message == "FVC: 25 L is above the maximum of 12 L"
    assert issue.message_ru == "ФЖЕЛ: 25 л — больше максимума 12 л"
    assert result.cleaned["fvc_l"] is None
    assert not result.can_save


def test_max_boundary_value_is_accepted() -> None:
    result = validate(
        "DM",
        {
            "birth_date": "1960-01-01",
            "sex": "M",
            "height_cm": "250",
            "weight_kg": "80",
            "ethnicity": "caucasian",
        },
        confirmed_warnings=["height_cm:soft_max"],
    )
    assert not result.errors
    assert result.cleaned["height_cm"] == Decimal("250")


def test_min_impossible_value_is_refused_with_label_and_rule() -> None:
    issue = only(validate("SPIRO", spiro(fev1_l="0.05")), "fev1_l", "min")
    assert issue.message == "FEV1: 0.05 L is below the minimum of 0.1 L"
    assert issue.message_ru == "ОФВ1: 0,05 л — меньше минимума 0,1 л"


def test_min_boundary_value_is_accepted_as_a_possible_value() -> None:
    result = validate("SPIRO", spiro(fev1_l="0.10"))
    assert ("fev1_l", "min") not in rules(result)
    assert result.cleaned["fev1_l"] == Decimal("0.10")


def test_min_is_compared_exactly_not_in_binary_floating_point() -> None:
    # 0.1 as a float is 0.1000000000000000055...; the typed 0.1 must not fall below it
    assert ("fev1_l", "min") not in rules(validate("SPIRO", spiro(fev1_l="0.1")))


# =========================================================================== soft limits
def test_soft_max_warns_and_needs_confirmation() -> None:
    result = validate("SPIRO", spiro(fvc_l="7.50"))
    issue = only(result, "fvc_l", "soft_max")
    assert issue.severity == "warning"
    assert issue.key == "fvc_l:soft_max"
    assert "FVC" in issue.message and "above the expected range" in issue.message
    assert "ФЖЕЛ" in issue.message_ru and "выше ожидаемого диапазона" in issue.message_ru
    assert result.needs_confirmation == ["fvc_l:soft_max"]
    assert not result.can_save
    assert result.cleaned["fvc_l"] == Decimal("7.50")  # kept: possible, only unusual


def test_soft_max_passes_once_confirmed_and_then_opens_a_query() -> None:
    result = validate("SPIRO", spiro(fvc_l="7.50"), confirmed_warnings=["fvc_l:soft_max"])
    assert result.can_save
    assert result.needs_confirmation == []
    assert [i.key for i in result.queries] == ["fvc_l:soft_max"]
    assert result.issues[0].confirmed


def test_soft_min_warns_and_needs_confirmation() -> None:
    result = validate("SPIRO", spiro(fev1_l="0.35"))
    issue = only(result, "fev1_l", "soft_min")
    assert "below the expected range" in issue.message
    assert "ниже ожидаемого диапазона" in issue.message_ru
    assert result.needs_confirmation == ["fev1_l:soft_min"]


def test_soft_min_boundary_gives_no_warning() -> None:
    assert validate("SPIRO", spiro(fev1_l="0.40")).issues == []


def test_soft_confirmation_of_another_warning_does_not_confirm_this_one() -> None:
    result = validate("SPIRO", spiro(fvc_l="7.50"), confirmed_warnings=["fev1_l:soft_min"])
    assert result.needs_confirmation == ["fvc_l:soft_max"]
    assert not result.can_save


def test_soft_confirmation_never_lifts_an_error() -> None:
    result = validate("SPIRO", spiro(fvc_l="25"), confirmed_warnings=["fvc_l:max"])
    assert not result.can_save
    assert not only(result, "fvc_l", "max").confirmed


# =========================================================================== decimals
def test_decimals_too_many_places_are_refused_not_rounded() -> None:
    result = validate("SPIRO", spiro(fev1_l="2.105"))
    issue = only(result, "fev1_l", "decimals")
    assert issue.message == "FEV1: 2.105 has more than 2 decimal places"
    assert issue.message_ru == "ОФВ1: 2,105 — больше 2 знаков после запятой"
    assert result.cleaned["fev1_l"] is None


def test_decimals_trailing_zeros_beyond_the_limit_are_dropped() -> None:
    cleaned = validate("SPIRO", spiro(fev1_l="2.100")).cleaned["fev1_l"]
    assert str(cleaned) == "2.10"


def test_decimals_zero_means_a_whole_number() -> None:
    assert validate_form(SYNTHETIC, {"whole": "12"}, today=TODAY).cleaned["whole"] == 12
    issue = only(validate_form(SYNTHETIC, {"whole": "12.5"}, today=TODAY), "whole", "decimals")
    assert "Whole amount" in issue.message and "whole number" in issue.message
    assert "Целое количество" in issue.message_ru


def test_decimals_unlimited_when_the_field_sets_none() -> None:
    assert validate_form(SYNTHETIC, {"free": "1.23456"}, today=TODAY).cleaned["free"] == Decimal(
        "1.23456"
    )


# =========================================================================== choice
def test_choice_unknown_code_is_refused_listing_the_allowed_codes() -> None:
    raw = {
        "birth_date": "1960-01-01",
        "sex": "X",
        "height_cm": "175",
        "weight_kg": "80",
        "ethnicity": "caucasian",
    }
    issue = only(validate("DM", raw), "sex", "choice")
    assert issue.severity == "error"
    assert issue.message == "Sex: 'X' is not one of the allowed codes (M, F)"
    assert issue.message_ru == "Пол: «X» — недопустимый код (допустимые: M, F)"


def test_choice_known_code_is_accepted_in_any_case_and_stored_as_defined() -> None:
    result = validate("DLCO", {"test_date": "2024-04-01", "dlco": "14", "dlco_unit": "ml/min/mmhg"})
    assert result.cleaned["dlco_unit"] == "mL/min/mmHg"


# =========================================================================== max_length
def test_max_length_longer_text_is_refused() -> None:
    result = validate("MH", {"condition": "x" * 201, "ongoing": "no"})
    issue = only(result, "condition", "max_length")
    assert issue.message == "Condition: 201 characters is longer than the maximum of 200"
    assert issue.message_ru == "Заболевание: 201 символ — больше максимума 200"


def test_max_length_exact_length_is_accepted() -> None:
    assert validate("MH", {"condition": "x" * 200, "ongoing": "no"}).can_save


# =========================================================================== not_in_future
def test_not_in_future_refuses_a_future_date() -> None:
    result = validate("SPIRO", spiro(test_date=(TODAY + timedelta(days=1)).isoformat()))
    issue = only(result, "test_date", "not_in_future")
    assert issue.severity == "error"
    assert issue.message == "Test date: 2024-05-02 is in the future (today is 2024-05-01)"
    assert issue.message_ru == "Дата исследования: 02.05.2024 — дата в будущем (сегодня 01.05.2024)"


def test_not_in_future_accepts_today() -> None:
    assert validate("SPIRO", spiro(test_date=TODAY.isoformat())).can_save


def test_not_in_future_applies_to_the_day_of_a_datetime() -> None:
    later_today = validate_form(SYNTHETIC, {"onset": "2024-05-01T23:59"}, today=TODAY)
    assert later_today.can_save
    tomorrow = validate_form(SYNTHETIC, {"onset": "2024-05-02T00:01"}, today=TODAY)
    assert ("onset", "not_in_future") in rules(tomorrow)


# =========================================================================== compare checks
def test_SPIRO_FEV1_LE_FVC_fev1_above_fvc_is_refused() -> None:
    result = validate("SPIRO", spiro(fev1_l="2,60", fvc_l="2,50"))
    issue = only(result, rule="SPIRO_FEV1_LE_FVC")
    assert issue.severity == "error"
    assert issue.field == "fev1_l"
    assert "FEV1" in issue.message and "FVC" in issue.message
    assert "FEV1 cannot exceed FVC." in issue.message
    assert "ОФВ1" in issue.message_ru and "ОФВ1 не может превышать ФЖЕЛ." in issue.message_ru
    assert not result.can_save


def test_SPIRO_FEV1_LE_FVC_equal_values_pass() -> None:
    assert validate("SPIRO", spiro(fev1_l="2.50", fvc_l="2.5")).can_save


def test_SPIRO_FEV1_LE_FVC_is_skipped_when_a_side_is_missing_or_refused() -> None:
    assert "SPIRO_FEV1_LE_FVC" not in {r for _, r in rules(validate("SPIRO", spiro(fvc_l="")))}
    assert "SPIRO_FEV1_LE_FVC" not in {r for _, r in rules(validate("SPIRO", spiro(fvc_l="25")))}


def test_VS_SBP_GT_DBP_compares_integers() -> None:
    bad = validate("VS", {"assessment_date": "2024-04-30", "systolic_bp": 90, "diastolic_bp": "90"})
    assert only(bad, rule="VS_SBP_GT_DBP").severity == "error"
    good = validate("VS", {"assessment_date": "2024-04-30", "systolic_bp": 120, "diastolic_bp": 80})
    assert good.can_save


def test_INF_STOP_AFTER_START_compares_times() -> None:
    raw = {"start_time": "10:00", "stop_time": "09:30"}
    issue = only(validate("INF", raw), rule="INF_STOP_AFTER_START")
    assert "09:30" in issue.message and "10:00" in issue.message
    raw_ok = {"start_time": "10:00", "stop_time": "11:00"}
    assert "INF_STOP_AFTER_START" not in {r for _, r in rules(validate("INF", raw_ok))}


def test_CM_STOP_AFTER_START_compares_dates() -> None:
    raw = {"medication": "Omeprazole", "start_date": "2024-03-10", "stop_date": "2024-03-01"}
    assert only(validate("CM", raw), rule="CM_STOP_AFTER_START").severity == "error"
    raw["stop_date"] = "2024-03-10"
    assert validate("CM", raw).can_save


def test_SIXMWT_NADIR_LE_REST_is_a_warning_that_needs_confirmation() -> None:
    raw = {
        "test_date": "2024-04-30",
        "distance_m": "400",
        "oxygen_used": "no",
        "spo2_rest": "92",
        "spo2_nadir": "95",
    }
    result = validate("SIXMWT", raw)
    issue = only(result, rule="SIXMWT_NADIR_LE_REST")
    assert issue.severity == "warning"
    assert issue.key == "spo2_nadir:SIXMWT_NADIR_LE_REST"
    assert result.needs_confirmation == [issue.key] and not result.can_save
    confirmed = validate("SIXMWT", raw, confirmed_warnings=[issue.key])
    assert confirmed.can_save


def test_compare_warning_from_a_synthetic_form_uses_the_check_severity() -> None:
    result = validate_form(SYNTHETIC, {"whole": "5", "free": "4.5"}, today=TODAY)
    assert only(result, rule="TST_WHOLE_LE_FREE").severity == "warning"


# =========================================================================== required_when
def test_DX_HRCT_DATE_required_when_hrct_is_diagnostic() -> None:
    raw = {
        "diagnosis_group": "IIP",
        "symptom_onset_date": "2020-01-01",
        "hrct_diagnostic": "yes",
        "histology_diagnostic": "no",
    }
    issue = only(validate("DX", raw), rule="DX_HRCT_DATE")
    assert issue.field == "hrct_date"
    assert issue.severity == "error"
    assert issue.message == (
        "Date of diagnostic HRCT is required when Diagnostic HRCT features of interstitial "
        "pneumonia is yes. Give the date of the diagnostic HRCT."
    )
    assert issue.message_ru.startswith("Дата диагностической КТВР: обязательно")
    assert "— да." in issue.message_ru


def test_DX_HRCT_DATE_not_required_when_hrct_is_not_diagnostic_or_date_given() -> None:
    raw = {
        "diagnosis_group": "IIP",
        "symptom_onset_date": "2020-01-01",
        "hrct_diagnostic": "нет",
        "histology_diagnostic": "no",
    }
    assert validate("DX", raw).can_save
    raw.update(hrct_diagnostic="да", hrct_date="2021-05-01")
    assert validate("DX", raw).can_save


def test_EOS_DEATH_DATE_required_when_status_is_a_choice_value() -> None:
    issue = only(
        validate("EOS", {"end_date": "2024-04-01", "status": "DEATH"}), rule="EOS_DEATH_DATE"
    )
    assert "Date of death" in issue.message and "Died" in issue.message
    assert "Дата смерти" in issue.message_ru and "Умер" in issue.message_ru
    assert validate("EOS", {"end_date": "2024-04-01", "status": "COMPLETED"}).can_save


def test_PRIORLF_DLCO_UNIT_empty_values_means_whenever_the_other_field_is_given() -> None:
    issue = only(
        validate("PRIORLF", {"test_date": "2023-01-01", "dlco": "12"}), rule="PRIORLF_DLCO_UNIT"
    )
    assert issue.message.startswith("DLCO unit is required when DLCO is given")
    assert "указано «DLCO»" in issue.message_ru
    assert validate("PRIORLF", {"test_date": "2023-01-01", "fvc_l": "2.1"}).can_save


def test_required_when_is_silent_when_the_field_was_entered_but_refused() -> None:
    raw = {
        "diagnosis_group": "IIP",
        "symptom_onset_date": "2020-01-01",
        "hrct_diagnostic": "yes",
        "hrct_date": "not a date",
        "histology_diagnostic": "no",
    }
    assert rules(validate("DX", raw)) == {("hrct_date", "type")}


def test_required_when_warning_severity_from_the_check() -> None:
    result = validate_form(SYNTHETIC, {"kind": "B"}, today=TODAY)
    issue = only(result, rule="TST_DETAIL_FOR_B")
    assert issue.severity == "warning" and "Beta" in issue.message and "Бета" in issue.message_ru
    assert validate_form(SYNTHETIC, {"kind": "A"}, today=TODAY).issues == []


# =========================================================================== unknown fields / input
def test_unknown_field_is_a_form_level_error_naming_the_field() -> None:
    result = validate("SPIRO", spiro(fev_1="2.1"))
    issue = only(result, rule="unknown_field")
    assert issue.field is None
    assert issue.severity == "error"
    assert "fev_1" in issue.message and "Spirometry" in issue.message
    assert "fev_1" in issue.message_ru and "Спирометрия" in issue.message_ru
    assert not result.can_save
    assert result.cleaned["fev1_l"] == Decimal("2.10")  # the known fields are still read


def test_unknown_field_non_text_keys_are_refused_too() -> None:
    assert only(validate("SPIRO", {**spiro(), 7: "x"}), rule="unknown_field").field is None


@pytest.mark.parametrize("raw", [None, "text", 42, ["fvc_l"]])
def test_form_data_that_is_not_a_mapping_is_reported_not_raised(raw: Any) -> None:
    result = validate("SPIRO", raw)
    assert only(result, rule="form_data").field is None
    assert not result.can_save


# =========================================================================== messages & output
@pytest.mark.parametrize(
    "code, raw, field, rule, en_words, ru_words",
    [
        ("SPIRO", spiro(fvc_l=""), "fvc_l", "required", "required", "обязательно"),
        ("SPIRO", spiro(fvc_l="x"), "fvc_l", "type", "not a number", "не число"),
        ("SPIRO", spiro(fvc_l="0.01"), "fvc_l", "min", "minimum", "минимума"),
        ("SPIRO", spiro(fvc_l="13"), "fvc_l", "max", "maximum", "максимума"),
        ("SPIRO", spiro(fvc_l="0.45"), "fvc_l", "soft_min", "expected range", "ожидаемого"),
        ("SPIRO", spiro(fvc_l="7.1"), "fvc_l", "soft_max", "expected range", "ожидаемого"),
        ("SPIRO", spiro(fvc_l="2.501"), "fvc_l", "decimals", "decimal places", "знаков"),
        ("SPIRO", spiro(test_date="2099-01-01"), "test_date", "not_in_future", "future", "будущем"),
        ("DLCO", {"dlco_unit": "bar"}, "dlco_unit", "choice", "allowed codes", "допустимые"),
        ("MH", {"condition": "y" * 300}, "condition", "max_length", "maximum", "максимума"),
    ],
)
def test_messages_name_the_field_label_and_the_rule_in_both_languages(
    code: str, raw: dict[str, Any], field: str, rule: str, en_words: str, ru_words: str
) -> None:
    issue = only(validate(code, raw), field, rule)
    label = form(code).field(field).label
    assert issue.message.startswith(f"{label.en}: ") and en_words in issue.message
    assert issue.message_ru.startswith(f"{label.ru}: ") and ru_words in issue.message_ru
    assert issue.key == f"{field}:{rule}"
    assert issue.text("ru") == issue.message_ru and issue.text("en") == issue.message


def test_messages_follow_the_requested_language() -> None:
    result = validate("SPIRO", spiro(fvc_l="25"), language="ru")
    assert result.messages() == ["ФЖЕЛ: 25 л — больше максимума 12 л"]
    assert result.messages("fvc_l", language="en") == ["FVC: 25 L is above the maximum of 12 L"]


def test_cleaned_has_every_field_and_json_values_round_trip() -> None:
    raw = {
        "test_date": "2024-04-01",
        "dlco": "14,25",
        "dlco_unit": "mL/min/mmHg",
        "haemoglobin_g_dl": "12.5",
    }
    first = validate("DLCO", raw)
    assert set(first.cleaned) == {f.code for f in form("DLCO").fields}
    stored = json.loads(json.dumps(first.json_values()))
    assert stored == {
        "test_date": "2024-04-01",
        "dlco": 14.25,
        "dlco_unit": "mL/min/mmHg",
        "haemoglobin_g_dl": 12.5,
    }
    assert validate("DLCO", stored).cleaned == first.cleaned


def test_validation_records_form_code_version_and_issue_dicts() -> None:
    result = validate("SPIRO", spiro(fvc_l="7.5"), confirmed_warnings=["fvc_l:soft_max"])
    assert (result.form_code, result.form_version) == ("SPIRO", 1)
    assert result.confirmed_warnings == frozenset({"fvc_l:soft_max"})
    assert json.loads(json.dumps(result.issues[0].to_dict()))["confirmed"] is True


def test_format_value_uses_the_russian_decimal_comma_and_units() -> None:
    assert format_value(Decimal("2.50"), "L") == ("2.50 L", "2,50 л")
    assert format_value(72, "/min") == ("72/min", "72/мин")
    assert format_value(date(2024, 4, 30)) == ("2024-04-30", "30.04.2024")


# =========================================================================== property test
_ANY_VALUE = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(),
    st.datetimes(),
    st.times(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(places=2, min_value=-100, max_value=1000).map(str),
    st.decimals(places=2, min_value=0, max_value=100).map(lambda d: str(d).replace(".", ",")),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from(
        [
            "",
            " ",
            "да",
            "нет",
            "yes",
            "on",
            "2024-01-01",
            "31.12.2023",
            "2023-02-30",
            "10:30",
            "25:61",
            "1e5",
            "NaN",
            "−3",
            "\x00",
            "\ud800",
            "M",
            "F",
            "DEATH",
            "mL/min/mmHg",
        ]
    ),
)


def _typed_value(field: FormFieldSpec) -> st.SearchStrategy[Any]:
    """Values of the right type near the field's limits, so the cross-field checks and the
    soft limits are exercised too, not only the type errors."""
    low = field.min if field.min is not None else -1000
    high = field.max if field.max is not None else 1000
    if field.type == "integer":
        ints = st.integers(int(low) - 5, int(high) + 5)
        return st.one_of(ints, ints.map(str))
    if field.type == "decimal":
        places = field.decimals if field.decimals is not None else 3
        numbers = st.decimals(
            places=places + 1,
            min_value=Decimal(repr(float(low))) - 5,
            max_value=Decimal(repr(float(high))) + 5,
        )
        return st.one_of(numbers.map(str), numbers.map(lambda d: str(d).replace(".", ",")))
    if field.type == "date":
        return st.dates(min_value=date(1900, 1, 1), max_value=date(2101, 1, 1)).map(date.isoformat)
    if field.type == "datetime":
        return st.datetimes().map(datetime.isoformat)
    if field.type == "time":
        return st.times().map(lambda t: t.strftime("%H:%M"))
    if field.type == "choice":
        return st.sampled_from([c.code for c in field.choices or []] + ["??"])
    if field.type == "boolean":
        return st.sampled_from([True, False, "yes", "no", "да", "нет", ""])
    return st.text(max_size=(field.max_length or 50) + 5)


@pytest.mark.parametrize("form_code", [f.code for f in PROTOCOL.forms])
@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_validate_form_never_raises_on_any_input_of_any_protocol_form(
    form_code: str, data: st.DataObject
) -> None:
    spec = PROTOCOL.form(form_code)
    codes = [f.code for f in spec.fields]
    keys = st.one_of(st.sampled_from(codes), st.text(max_size=8), st.integers())
    typed = st.fixed_dictionaries(
        {}, optional={f.code: st.one_of(_typed_value(f), _ANY_VALUE) for f in spec.fields}
    )
    raw = data.draw(
        st.one_of(
            typed,
            st.dictionaries(keys, _ANY_VALUE, max_size=len(codes) + 2),
            _ANY_VALUE,
        )
    )
    confirmed = data.draw(
        st.lists(st.one_of(st.text(max_size=20), st.sampled_from([f"{c}:soft_max" for c in codes])))
    )
    today = data.draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)))

    result = validate_form(spec, raw, today=today, confirmed_warnings=confirmed)

    assert isinstance(result, FormValidation)
    assert list(result.cleaned) == codes
    for issue in result.issues:
        assert issue.severity in ("error", "warning")
        assert issue.message and issue.message_ru and issue.key and issue.rule
    assert result.can_save == (not result.errors and not result.needs_confirmation)
    expected_types = {
        "integer": int,
        "decimal": Decimal,
        "text": str,
        "choice": str,
        "boolean": bool,
        "date": date,
        "datetime": datetime,
        "time": time,
    }
    for field in spec.fields:
        value = result.cleaned[field.code]
        if value is not None:
            assert isinstance(value, expected_types[field.type]), (field.code, value)
    # what may be stored can be stored as JSON and reads back the same
    stored = json.loads(json.dumps(result.json_values()))
    again = validate_form(spec, stored, today=today)
    assert again.cleaned == result.cleaned


def test_the_pure_ecrf_engine_imports_no_django() -> None:
    code = (
        "import sys, ildtrial.core.crf, ildtrial.core.derivations, ildtrial.core.edit_checks; "
        "sys.exit(any(m == 'django' or m.startswith('django.') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
