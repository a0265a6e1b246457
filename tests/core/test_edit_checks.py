"""Cross-visit edit checks, each at its boundary: exactly the threshold gives no issue,
just past it gives one."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from ildtrial.core.edit_checks import (
    CM_PROHIBITED_DURING_TRIAL,
    VISIT_OUT_OF_WINDOW,
    InfusionWindow,
    fvc_change_rule_id,
    fvc_change_since_previous,
    infusion_reaction_window,
    prohibited_classes_from_protocol,
    prohibited_medication_started,
    visit_date_outside_window,
)
from ildtrial.core.protocol import load_protocol
from ildtrial.core.schedule import plan

PROTOCOL = load_protocol().protocol
DAY0 = date(2024, 1, 15)
BEFORE, AFTER = date(2024, 1, 1), date(2024, 4, 15)


# =========================================================================== FVC_CHANGE_GT_20
def test_FVC_CHANGE_GT_20_exactly_20_percent_fall_gives_no_issue() -> None:
    assert fvc_change_since_previous((BEFORE, Decimal("2.50")), (AFTER, Decimal("2.00"))) == []


def test_FVC_CHANGE_GT_20_exactly_20_percent_in_floats_gives_no_issue() -> None:
    assert fvc_change_since_previous((BEFORE, 2.5), (AFTER, 2.0)) == []
    assert fvc_change_since_previous((BEFORE, 3.3), (AFTER, 3.96)) == []  # +20 %


def test_FVC_CHANGE_GT_20_a_20_1_percent_fall_gives_a_warning() -> None:
    issues = fvc_change_since_previous((BEFORE, Decimal("10.00")), (AFTER, Decimal("7.99")))
    assert len(issues) == 1
    issue = issues[0]
    assert issue.rule == "FVC_CHANGE_GT_20"
    assert issue.severity == "warning"
    assert issue.field == "fvc_l"
    assert issue.key == "fvc_l:FVC_CHANGE_GT_20"
    assert issue.message == (
        "FVC fell by 20.1 % since 2024-01-01 (10.00 L → 7.99 L), more than 20 %; "
        "please confirm the value"
    )
    assert issue.message_ru == (
        "ФЖЕЛ снизилась на 20,1 % с 01.01.2024 (10,00 л → 7,99 л), более чем на 20 %; "
        "подтвердите значение"
    )


def test_FVC_CHANGE_GT_20_a_rise_beyond_20_percent_also_warns() -> None:
    issues = fvc_change_since_previous((BEFORE, Decimal("10.00")), (AFTER, Decimal("12.01")))
    assert [i.rule for i in issues] == ["FVC_CHANGE_GT_20"]
    assert "rose by 20.1 %" in issues[0].message and "выросла" in issues[0].message_ru


def test_FVC_CHANGE_GT_20_shows_enough_decimals_to_be_past_the_threshold() -> None:
    issues = fvc_change_since_previous((BEFORE, Decimal("100.00")), (AFTER, Decimal("79.96")))
    assert "fell by 20.04 %" in issues[0].message


def test_FVC_CHANGE_GT_20_no_previous_value_gives_no_issue() -> None:
    assert fvc_change_since_previous(None, (AFTER, Decimal("1.0"))) == []


def test_FVC_CHANGE_threshold_is_a_parameter_and_names_the_rule() -> None:
    previous, current = (BEFORE, Decimal("2.50")), (AFTER, Decimal("2.20"))  # -12 %
    assert fvc_change_since_previous(previous, current) == []
    issues = fvc_change_since_previous(previous, current, threshold_percent=10)
    assert [i.rule for i in issues] == ["FVC_CHANGE_GT_10"]
    assert fvc_change_rule_id(12.5) == "FVC_CHANGE_GT_12_5"
    assert fvc_change_rule_id() == "FVC_CHANGE_GT_20"


# =========================================================================== VISIT_OUT_OF_WINDOW
def w13():
    """Week 13 (day 91, ±7): window 2024-04-08 to 2024-04-22 for day 0 = 2024-01-15."""
    return next(v for v in plan(PROTOCOL, DAY0, {}) if v.code == "W13")


def test_VISIT_OUT_OF_WINDOW_on_the_window_edges_gives_no_issue() -> None:
    visit = w13()
    assert (visit.earliest, visit.latest) == (date(2024, 4, 8), date(2024, 4, 22))
    assert visit_date_outside_window(visit, visit.earliest) == []
    assert visit_date_outside_window(visit, visit.latest) == []


def test_VISIT_OUT_OF_WINDOW_one_day_late_names_the_days_outside() -> None:
    issues = visit_date_outside_window(w13(), date(2024, 4, 23))
    assert len(issues) == 1
    issue = issues[0]
    assert issue.rule == VISIT_OUT_OF_WINDOW == "VISIT_OUT_OF_WINDOW"
    assert issue.severity == "warning"
    assert issue.key == "W13:VISIT_OUT_OF_WINDOW"
    assert issue.message == (
        "Visit W13 on 2024-04-23 is 1 day after its window 2024-04-08 to 2024-04-22"
    )
    assert issue.message_ru == (
        "Визит W13 23.04.2024 проведен на 1 день после окончания окна 08.04.2024–22.04.2024"
    )


def test_VISIT_OUT_OF_WINDOW_early_visit_counts_days_before_the_window() -> None:
    issue = visit_date_outside_window(w13(), date(2024, 4, 5))[0]
    assert "3 days before its window" in issue.message
    assert "3 дня до начала окна" in issue.message_ru


def test_VISIT_OUT_OF_WINDOW_accepts_earliest_and_latest_dates() -> None:
    window = (date(2024, 4, 8), date(2024, 4, 22))
    assert visit_date_outside_window(window, date(2024, 4, 22)) == []
    issue = visit_date_outside_window(window, date(2024, 5, 2), visit_code="W13")[0]
    assert "10 days after" in issue.message and "10 дней" in issue.message_ru


def test_VISIT_OUT_OF_WINDOW_no_window_yet_gives_no_issue() -> None:
    undated = next(v for v in plan(PROTOCOL, None, {}) if v.code == "W13")
    assert visit_date_outside_window(undated, date(2024, 4, 23)) == []


# =========================================================================== CM_PROHIBITED_DURING_TRIAL
PROHIBITED = prohibited_classes_from_protocol(PROTOCOL)


def test_prohibited_classes_come_from_the_protocol_washout_criterion() -> None:
    assert "oral_steroid" in PROHIBITED and "nintedanib" in PROHIBITED
    assert "none" not in PROHIBITED
    assert len(PROHIBITED) == 10


def test_CM_PROHIBITED_DURING_TRIAL_started_on_day0_gives_a_warning() -> None:
    rows = [{"medication": "Prednisolone", "medication_class": "oral_steroid", "start_date": DAY0}]
    issues = prohibited_medication_started(rows, DAY0, PROHIBITED)
    assert len(issues) == 1
    issue = issues[0]
    assert issue.rule == CM_PROHIBITED_DURING_TRIAL == "CM_PROHIBITED_DURING_TRIAL"
    assert issue.severity == "warning"
    assert issue.field == "medication_class"
    assert issue.key == "CM[1]:medication_class:CM_PROHIBITED_DURING_TRIAL"
    assert "'Prednisolone' (oral_steroid)" in issue.message and "2024-01-15" in issue.message
    assert "«Prednisolone»" in issue.message_ru and "15.01.2024" in issue.message_ru


def test_CM_PROHIBITED_DURING_TRIAL_started_the_day_before_day0_gives_no_issue() -> None:
    rows = [
        {
            "medication": "Prednisolone",
            "medication_class": "oral_steroid",
            "start_date": DAY0 - timedelta(days=1),
        }
    ]
    assert prohibited_medication_started(rows, DAY0, PROHIBITED) == []


def test_CM_PROHIBITED_DURING_TRIAL_ignores_allowed_classes_and_reads_stored_json() -> None:
    rows = [
        {"medication": "Omeprazole", "medication_class": "none", "start_date": "2024-02-01"},
        {"medication": "Paracetamol", "start_date": "2024-02-01"},
        {
            "medication": "Nintedanib",
            "medication_class": "nintedanib",
            "start_date": "2024-02-01",
            "instance": 7,
        },
        {"medication": "No date", "medication_class": "nintedanib"},
    ]
    issues = prohibited_medication_started(rows, DAY0, PROHIBITED)
    assert [i.key for i in issues] == ["CM[7]:medication_class:CM_PROHIBITED_DURING_TRIAL"]


# =========================================================================== infusion window
INFUSIONS = [datetime(2024, 1, 15, 10, 0), datetime(2024, 1, 22, 10, 0)]


def test_infusion_reaction_window_exactly_24_hours_after_is_within() -> None:
    result = infusion_reaction_window(INFUSIONS, datetime(2024, 1, 23, 10, 0))
    assert result
    assert result == InfusionWindow(True, 1, INFUSIONS[1], 24.0)


def test_infusion_reaction_window_one_minute_past_24_hours_is_outside() -> None:
    result = infusion_reaction_window(INFUSIONS, datetime(2024, 1, 23, 10, 1))
    assert not result
    assert result.infusion_index == 1  # the candidate infusion is still named


def test_infusion_reaction_window_onset_before_any_infusion_is_not_related() -> None:
    result = infusion_reaction_window(INFUSIONS, datetime(2024, 1, 15, 9, 59))
    assert not result and result.infusion_index is None


def test_infusion_reaction_window_picks_the_most_recent_infusion_before_onset() -> None:
    result = infusion_reaction_window(INFUSIONS, datetime(2024, 1, 15, 18, 0))
    assert result and result.infusion_index == 0 and result.hours_after == 8.0


def test_infusion_reaction_window_hours_is_a_parameter() -> None:
    assert not infusion_reaction_window(INFUSIONS, datetime(2024, 1, 15, 23, 0), hours=12)


def test_infusion_reaction_window_date_only_onset_counts_the_days_the_window_touches() -> None:
    assert infusion_reaction_window(INFUSIONS, date(2024, 1, 23))
    assert not infusion_reaction_window(INFUSIONS, date(2024, 1, 24))


def test_infusion_reaction_window_refuses_naive_and_aware_mixed() -> None:
    with pytest.raises(ValueError, match="naive"):
        infusion_reaction_window(INFUSIONS, datetime(2024, 1, 23, 9, 0, tzinfo=UTC))
