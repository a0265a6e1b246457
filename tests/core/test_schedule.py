"""The visit calendar against the protocol table (protocol-notes.md, "Schedule").

Day 0 = first infusion (C1A). Quarterly visits run from day 0; each second infusion runs
from the actual date of the first infusion of its cycle.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from ildtrial.core.protocol import Protocol, load_protocol
from ildtrial.core.schedule import (
    PlannedVisit,
    UnscheduledVisit,
    VisitStatus,
    day0_window,
    deviations,
    due_between,
    plan,
    to_icalendar,
    unscheduled_visit,
    visit_status,
)

DAY0 = date(2024, 1, 15)


def d(day: int) -> date:
    """The date of study day ``day`` (day 0 = DAY0)."""
    return DAY0 + timedelta(days=day)


@pytest.fixture(scope="module")
def protocol() -> Protocol:
    return load_protocol().protocol


def by_code(plans: list[PlannedVisit]) -> dict[str, PlannedVisit]:
    return {p.code: p for p in plans}


# --------------------------------------------------------------------------- the table
# (code, planned study day, window before, window after) with every first infusion on time
PROTOCOL_TABLE = [
    ("SCR", -1, 27, 0),
    ("C1A", 0, 0, 0),
    ("C1B", 7, 1, 1),
    ("W13", 91, 7, 7),
    ("C2B", 98, 1, 1),
    ("W26", 182, 7, 7),
    ("C3B", 189, 1, 1),
    ("W39", 273, 7, 7),
    ("C4B", 280, 1, 1),
    ("W52", 364, 7, 7),
]


def test_calendar_matches_the_protocol_table_when_every_visit_is_on_time(
    protocol: Protocol,
) -> None:
    actual = {"C1A": d(0), "W13": d(91), "W26": d(182), "W39": d(273)}
    plans = plan(protocol, DAY0, actual)
    assert [p.code for p in plans] == [row[0] for row in PROTOCOL_TABLE]
    for p, (code, day, before, after) in zip(plans, PROTOCOL_TABLE, strict=True):
        assert (p.planned, p.study_day) == (d(day), day), code
        assert (p.earliest, p.latest) == (d(day - before), d(day + after)), code


def test_screening_is_the_window_from_day_minus_28_to_day_minus_1(protocol: Protocol) -> None:
    scr = by_code(plan(protocol, DAY0, {}))["SCR"]
    assert (scr.earliest, scr.latest) == (d(-28), d(-1))


def test_second_infusion_runs_from_the_actual_first_infusion_of_its_cycle(
    protocol: Protocol,
) -> None:
    plans = by_code(plan(protocol, DAY0, {"C1A": DAY0}))
    assert plans["C1B"].planned == d(7) and plans["C1B"].anchor_is_actual
    assert (plans["C1B"].earliest, plans["C1B"].latest) == (d(6), d(8))


def test_second_infusion_falls_back_to_the_planned_first_infusion_and_says_so(
    protocol: Protocol,
) -> None:
    plans = by_code(plan(protocol, DAY0, {"C1A": DAY0}))
    assert plans["C2B"].planned == d(98)
    assert plans["C2B"].anchor_is_actual is False
    assert plans["W13"].anchor_is_actual is True  # day 0 itself is actual once C1A is done


def test_slipped_first_infusion_moves_its_second_infusion_but_not_the_next_quarter(
    protocol: Protocol,
) -> None:
    plans = by_code(plan(protocol, DAY0, {"C1A": d(0), "C1B": d(8), "W13": d(96)}))
    c2b = plans["C2B"]
    assert (c2b.study_day, c2b.earliest, c2b.latest) == (103, d(102), d(104))
    assert c2b.anchor_is_actual
    assert plans["W26"].planned == d(182) and plans["W26"].study_day == 182
    assert plans["W13"].status(d(120)) is VisitStatus.DONE  # day 96 is inside 84..98
    assert plans["C1B"].status(d(120)) is VisitStatus.DONE  # day 8 is inside 6..8


def test_missed_anchor_visit_plans_the_second_infusion_from_its_planned_date(
    protocol: Protocol,
) -> None:
    plans = by_code(plan(protocol, DAY0, {"C1A": DAY0}, missed={"W13"}))
    assert plans["C2B"].planned == d(98) and not plans["C2B"].anchor_is_actual


def test_before_day0_is_known_only_screening_can_be_placed(protocol: Protocol) -> None:
    plans = plan(protocol, None, {"SCR": date(2024, 1, 2)})
    assert all(p.planned is None and p.earliest is None for p in plans)
    assert by_code(plans)["SCR"].status(date(2024, 1, 3)) is VisitStatus.DONE
    assert all(p.status(date(2024, 1, 3)) is VisitStatus.NOT_PLANNED for p in plans[1:])
    assert day0_window(protocol, date(2024, 1, 2)) == (date(2024, 1, 3), date(2024, 1, 30))


def test_day0_is_taken_from_the_actual_first_infusion_when_not_given(protocol: Protocol) -> None:
    assert plan(protocol, None, {"C1A": DAY0}) == plan(protocol, DAY0, {"C1A": DAY0})


def test_day0_that_contradicts_the_first_infusion_is_refused(protocol: Protocol) -> None:
    with pytest.raises(ValueError, match="day 0 is the date of the first infusion"):
        plan(protocol, DAY0, {"C1A": d(1)})


def test_unknown_visit_codes_and_done_plus_missed_are_refused(protocol: Protocol) -> None:
    with pytest.raises(ValueError, match="unknown visit code"):
        plan(protocol, DAY0, {"W12": d(84)})
    with pytest.raises(ValueError, match="both done and marked missed"):
        plan(protocol, DAY0, {"W13": d(91)}, missed={"W13"})


# --------------------------------------------------------------------------- statuses
@pytest.fixture()
def w13(protocol: Protocol) -> PlannedVisit:
    """W13 with C1A done on day 0: planned day 91, window 84..98."""
    return by_code(plan(protocol, DAY0, {"C1A": DAY0}))["W13"]


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (83, VisitStatus.UPCOMING),  # the day before the window opens
        (84, VisitStatus.IN_WINDOW),  # first day of the window (inclusive)
        (90, VisitStatus.IN_WINDOW),
        (91, VisitStatus.DUE_TODAY),
        (92, VisitStatus.IN_WINDOW),
        (98, VisitStatus.IN_WINDOW),  # last day of the window (inclusive)
        (99, VisitStatus.OVERDUE),  # window passed, not done, not marked missed
    ],
)
def test_status_follows_the_window_with_inclusive_edges(
    w13: PlannedVisit, today: int, expected: VisitStatus
) -> None:
    assert visit_status(w13, d(today)) is expected
    assert w13.status(d(today)) is expected


@pytest.mark.parametrize("done_on", [84, 91, 98])
def test_visit_done_inside_the_window_edges_is_done_without_deviation(
    protocol: Protocol, done_on: int
) -> None:
    p = by_code(plan(protocol, DAY0, {"C1A": DAY0, "W13": d(done_on)}))["W13"]
    assert p.status(d(200)) is VisitStatus.DONE
    assert p.deviation is None


@pytest.mark.parametrize(("done_on", "days", "timing"), [(83, 1, "early"), (101, 3, "late")])
def test_visit_done_outside_the_window_is_a_protocol_deviation(
    protocol: Protocol, done_on: int, days: int, timing: str
) -> None:
    plans = plan(protocol, DAY0, {"C1A": DAY0, "W13": d(done_on)})
    p = by_code(plans)["W13"]
    assert p.status(d(done_on)) is VisitStatus.DONE_OUT_OF_WINDOW
    dev = p.deviation
    assert dev is not None
    assert (dev.visit_code, dev.planned, dev.earliest, dev.latest, dev.actual) == (
        "W13",
        d(91),
        d(84),
        d(98),
        d(done_on),
    )
    assert (dev.days_outside, dev.timing) == (days, timing)
    assert "W13" in dev.describe() and f"{days} day(s)" in dev.describe()
    assert deviations(plans) == [dev]


def test_second_infusion_one_day_outside_its_window_is_a_deviation(protocol: Protocol) -> None:
    p = by_code(plan(protocol, DAY0, {"C1A": DAY0, "C1B": d(9)}))["C1B"]
    assert p.status(d(9)) is VisitStatus.DONE_OUT_OF_WINDOW
    assert p.deviation is not None and p.deviation.days_outside == 1


def test_missed_visit_is_missed_not_overdue(protocol: Protocol) -> None:
    p = by_code(plan(protocol, DAY0, {"C1A": DAY0}, missed={"W13"}))["W13"]
    assert p.status(d(120)) is VisitStatus.MISSED
    assert p.status(d(50)) is VisitStatus.MISSED


def test_day0_visit_is_due_on_day0_with_a_zero_window(protocol: Protocol) -> None:
    c1a = by_code(plan(protocol, DAY0, {}))["C1A"]
    assert [c1a.status(d(n)) for n in (-1, 0, 1)] == [
        VisitStatus.UPCOMING,
        VisitStatus.DUE_TODAY,
        VisitStatus.OVERDUE,
    ]


# --------------------------------------------------------------------------- unscheduled
def test_unscheduled_visits_are_numbered_in_sequence_and_never_reuse_a_code() -> None:
    first = unscheduled_visit([], date(2024, 2, 1), "cough")
    second = unscheduled_visit([first], date(2024, 2, 3), "fever")
    assert (first.code, second.code) == ("UNS1", "UNS2")
    assert unscheduled_visit(["UNS1", "UNS3"], date(2024, 3, 1), "rash").code == "UNS4"
    assert second == UnscheduledVisit("UNS2", date(2024, 2, 3), "fever")


def test_unscheduled_visit_needs_a_reason_and_valid_codes() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        unscheduled_visit([], date(2024, 2, 1), "  ")
    with pytest.raises(ValueError, match="not an unscheduled visit code"):
        unscheduled_visit(["W13"], date(2024, 2, 1), "cough")


def test_unscheduled_visit_does_not_affect_the_plan(protocol: Protocol) -> None:
    before = plan(protocol, DAY0, {"C1A": DAY0})
    uns = unscheduled_visit([], d(50), "dyspnoea")
    after = plan(protocol, DAY0, {"C1A": DAY0})
    assert before == after and uns.code not in {p.code for p in after}


# --------------------------------------------------------------------------- due list
def test_due_between_lists_open_windows_overlapping_the_range_not_done_not_missed(
    protocol: Protocol,
) -> None:
    plans = {
        # W13 window 84..98: overlaps the week 95..101
        "P-002": plan(protocol, DAY0, {"C1A": DAY0, "C1B": d(7)}),
        # W13 done on day 95: only C2B is left, from the actual W13: 101..103
        "P-001": plan(protocol, DAY0, {"C1A": DAY0, "C1B": d(7), "W13": d(95)}),
        # W13 missed: C2B then runs from the planned W13: 97..99
        "P-003": plan(protocol, DAY0, {"C1A": DAY0, "C1B": d(7)}, missed={"W13"}),
    }
    due = due_between(plans, d(95), d(101))
    assert [(row.participant, row.visit.code) for row in due] == [
        ("P-002", "W13"),  # window opened on day 84
        ("P-002", "C2B"),  # 97, then participant order on a tie
        ("P-003", "C2B"),  # 97
        ("P-001", "C2B"),  # 101: the range's last day
    ]


def test_due_between_includes_windows_touching_either_edge_of_the_range(protocol: Protocol) -> None:
    plans = {"P-001": plan(protocol, DAY0, {"C1A": DAY0, "C1B": d(7)})}
    assert [r.visit.code for r in due_between(plans, d(99), d(100))] == ["C2B"]  # W13 ended 98
    assert [r.visit.code for r in due_between(plans, d(96), d(96))] == ["W13"]  # C2B opens 97
    assert [r.visit.code for r in due_between(plans, d(98), d(98))] == ["W13", "C2B"]
    assert [r.visit.code for r in due_between(plans, d(70), d(84))] == ["W13"]  # opens on 84


def test_due_between_skips_undated_visits_and_refuses_a_reversed_range(protocol: Protocol) -> None:
    assert due_between({"P-009": plan(protocol, None, {})}, d(0), d(400)) == []
    with pytest.raises(ValueError, match="before it starts"):
        due_between({}, d(10), d(9))


# --------------------------------------------------------------------------- iCalendar
STAMP = datetime(2024, 1, 10, 9, 30, tzinfo=UTC)


def unfold(text: str) -> list[str]:
    """RFC 5545 §3.1 unfolding: a CRLF followed by one space or tab is removed."""
    return text.replace("\r\n ", "").replace("\r\n\t", "").split("\r\n")[:-1]


def test_icalendar_has_one_all_day_event_per_dated_visit(protocol: Protocol) -> None:
    plans = plan(protocol, DAY0, {"C1A": DAY0, "W13": d(96)}, missed={"C1B"})
    text = to_icalendar("MOS-001", plans, "Europe/Moscow", now=STAMP)
    lines = unfold(text)
    assert lines[0] == "BEGIN:VCALENDAR" and lines[-1] == "END:VCALENDAR"
    assert "VERSION:2.0" in lines and any(line.startswith("PRODID:") for line in lines)
    assert lines.count("BEGIN:VEVENT") == lines.count("END:VEVENT") == len(plans)
    assert "DTSTART;VALUE=DATE:20240420" in lines  # W13 done on day 96 shows on that day
    assert "DTSTART;VALUE=DATE:20240427" in lines  # C2B planned day 103
    assert "DTEND;VALUE=DATE:20240428" in lines
    assert lines.count("DTSTAMP:20240110T093000Z") == len(plans)
    assert "STATUS:CANCELLED" in lines  # the missed C1B
    uids = [line for line in lines if line.startswith("UID:")]
    assert len(set(uids)) == len(plans)
    assert "X-WR-TIMEZONE:Europe/Moscow" in lines


def test_icalendar_skips_visits_without_a_date(protocol: Protocol) -> None:
    text = to_icalendar("MOS-001", plan(protocol, None, {}), "Europe/Moscow", now=STAMP)
    assert "BEGIN:VEVENT" not in text
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.endswith("END:VCALENDAR\r\n")


def test_icalendar_lines_end_in_crlf_and_are_folded_at_75_octets(protocol: Protocol) -> None:
    plans = plan(protocol, DAY0, {"C1A": DAY0})
    text = to_icalendar("MOS-001", plans, "Europe/Moscow", language="ru", now=STAMP)
    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", "") and "\r" not in text.replace("\r\n", "")
    physical = text.split("\r\n")[:-1]
    assert all(len(line.encode("utf-8")) <= 75 for line in physical)
    assert any(line.startswith(" ") for line in physical)  # long descriptions were folded
    for line in physical:  # folding never cuts a Cyrillic character in two
        line.encode("utf-8").decode("utf-8")
    summaries = [line for line in unfold(text) if line.startswith("SUMMARY:")]
    assert "SUMMARY:MOS-001: Неделя 13 (цикл 2\\, инфузия A) (W13)" in summaries


def test_icalendar_escapes_text_values(protocol: Protocol) -> None:
    label = "Ivanov, I.; ward\\3"
    text = to_icalendar(label, plan(protocol, DAY0, {"C1A": DAY0}), "Europe/Moscow", now=STAMP)
    lines = unfold(text)
    assert "SUMMARY:Ivanov\\, I.\\; ward\\\\3: Screening (SCR)" in lines
    description = next(line for line in lines if line.startswith("DESCRIPTION:"))
    assert "\\n" in description  # the newlines of the description, escaped
    assert "2023-12-18 to 2024-01-14 (-27/+0 days)" in description


def test_icalendar_refuses_an_unknown_time_zone_and_a_naive_stamp(protocol: Protocol) -> None:
    plans = plan(protocol, DAY0, {})
    with pytest.raises(ValueError, match="unknown time zone"):
        to_icalendar("MOS-001", plans, "Mars/Olympus", now=STAMP)
    with pytest.raises(ValueError, match="timezone-aware"):
        to_icalendar("MOS-001", plans, "Europe/Moscow", now=datetime(2024, 1, 1))
