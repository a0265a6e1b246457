"""The safety core: each test is named after the rule it pins down."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ildtrial.core.protocol import Site, load_protocol
from ildtrial.core.safety import (
    AdverseEventInput,
    ClockState,
    DictionaryImportError,
    Expectedness,
    ExpectedReaction,
    IssueCode,
    Outcome,
    ReferenceSafetyInformation,
    Relatedness,
    SaeSummary,
    Seriousness,
    SeriousnessCriterion,
    Severity,
    add_calendar_days,
    clock_status,
    evaluate_stopping_rules,
    import_dictionary,
    infusion_window_match,
    is_potentially_infusion_related,
    is_susar,
    is_suspected_related,
    load_terms,
    sponsor_deadline,
    susar_deadlines,
    validate_adverse_event,
)

BERLIN = ZoneInfo("Europe/Berlin")
MOSCOW = ZoneInfo("Europe/Moscow")
H24 = timedelta(hours=24)
CYRILLIC = re.compile("[а-яА-ЯёЁ]")


@pytest.fixture(scope="module")
def protocol():
    return load_protocol().protocol


def with_safety(protocol, **changes):
    return protocol.model_copy(update={"safety": protocol.safety.model_copy(update=changes)})


# =========================================================================== seriousness
CRITERIA = [c.value for c in SeriousnessCriterion]


@pytest.mark.parametrize("combo", list(itertools.product([False, True], repeat=6)))
def test_serious_iff_any_ich_criterion(combo):
    flags = dict(zip(CRITERIA, combo, strict=True))
    s = Seriousness(**flags)
    assert s.is_serious is any(combo)
    assert [c.value for c in s.criteria] == [name for name, on in flags.items() if on]


def test_seriousness_has_the_six_ich_criteria_in_order():
    assert CRITERIA == [
        "death",
        "life_threatening",
        "hospitalisation",
        "disability",
        "congenital_anomaly",
        "important_medical_event",
    ]


@pytest.mark.parametrize("value", ["no", 1, None])
def test_seriousness_criteria_must_be_real_booleans(value):
    with pytest.raises(TypeError, match="seriousness.hospitalisation"):
        Seriousness(hospitalisation=value)


def test_seriousness_from_criteria():
    s = Seriousness.from_criteria(["hospitalisation", SeriousnessCriterion.DISABILITY])
    assert s == Seriousness(hospitalisation=True, disability=True)
    with pytest.raises(ValueError):
        Seriousness.from_criteria(["hospitalized"])


def test_seriousness_is_frozen():
    with pytest.raises(AttributeError):
        Seriousness().death = True  # type: ignore[misc]


# =========================================================================== AE validation
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def ae(**changes) -> AdverseEventInput:
    base = AdverseEventInput(
        term="Fever",
        onset=date(2025, 3, 1),
        grade=1,
        serious=False,
        outcome="recovered",
        resolution=date(2025, 3, 2),
        relatedness_product="possible",
        relatedness_procedure="not_related",
    )
    return replace(base, **changes)


def codes(issues):
    return [(i.field, i.code) for i in issues]


def check(event, now=NOW, **kw):
    return validate_adverse_event(event, now, site_tz=kw.pop("site_tz", MOSCOW), **kw)


def test_valid_adverse_event_has_no_issues():
    assert check(ae()) == []


def fatal_sae(**changes) -> AdverseEventInput:
    base = ae(
        term="Respiratory failure",
        grade=5,
        outcome="fatal",
        resolution=date(2025, 3, 5),
        serious=True,
        seriousness=Seriousness(death=True),
        relatedness_product="unlikely",
        awareness=datetime(2025, 3, 5, 9, 0, tzinfo=MOSCOW),
    )
    return replace(base, **changes)


def test_consistent_fatal_sae_has_no_issues():
    assert check(fatal_sae()) == []


@pytest.mark.parametrize(
    "field",
    [
        "term",
        "onset",
        "grade",
        "serious",
        "outcome",
        "relatedness_product",
        "relatedness_procedure",
    ],
)
def test_required_fields(field):
    issues = check(ae(**{field: None}))
    assert (field, IssueCode.REQUIRED) in codes(issues)


def test_blank_term_is_required():
    assert codes(check(ae(term="  "))) == [("term", IssueCode.REQUIRED)]


# ---- grade vs seriousness
@pytest.mark.parametrize("grade", [1, 2, 3, 4])
def test_grade_is_independent_of_seriousness_non_serious_any_grade(grade):
    assert check(ae(grade=grade, outcome="recovering", resolution=None)) == []


@pytest.mark.parametrize("grade", [1, 2, 3, 4])
def test_grade_is_independent_of_seriousness_serious_any_grade(grade):
    event = ae(
        grade=grade,
        serious=True,
        seriousness=Seriousness(important_medical_event=True),
        relatedness_product="not_related",
        awareness=datetime(2025, 3, 2, 10, 0, tzinfo=MOSCOW),
    )
    assert check(event) == []


@pytest.mark.parametrize("grade", [0, 6, -1, "3", 2.5, True])
def test_grade_must_be_ctcae_1_to_5(grade):
    assert codes(check(ae(grade=grade))) == [("grade", IssueCode.GRADE_OUT_OF_RANGE)]


def test_grade_5_requires_fatal_outcome():
    event = fatal_sae(
        outcome="recovered_with_sequelae", seriousness=Seriousness(hospitalisation=True)
    )
    assert codes(check(event)) == [("grade", IssueCode.FATAL_GRADE_MISMATCH)]


def test_fatal_outcome_requires_grade_5():
    assert codes(check(fatal_sae(grade=4))) == [("grade", IssueCode.FATAL_GRADE_MISMATCH)]


def test_fatal_outcome_requires_death_criterion():
    event = fatal_sae(seriousness=Seriousness(life_threatening=True))
    assert codes(check(event)) == [("seriousness.death", IssueCode.DEATH_CRITERION_MISMATCH)]


def test_death_criterion_requires_fatal_outcome():
    event = fatal_sae(grade=4, outcome="not_recovered", resolution=None)
    assert codes(check(event)) == [("seriousness.death", IssueCode.DEATH_CRITERION_MISMATCH)]


def test_grade_5_without_death_criterion_is_reported_once_on_death():
    event = fatal_sae(serious=False, seriousness=Seriousness(), awareness=None)
    assert codes(check(event)) == [
        ("seriousness.death", IssueCode.DEATH_CRITERION_MISMATCH),
    ]


# ---- serious flag vs criteria
def test_serious_flag_without_criterion():
    event = ae(
        serious=True,
        awareness=datetime(2025, 3, 2, 10, 0, tzinfo=MOSCOW),
        relatedness_product="unlikely",
    )
    assert codes(check(event)) == [("seriousness", IssueCode.SERIOUS_WITHOUT_CRITERION)]


def test_criterion_without_serious_flag():
    issues = check(ae(serious=False, seriousness=Seriousness(hospitalisation=True)))
    assert codes(issues) == [("serious", IssueCode.CRITERION_WITHOUT_SERIOUS)]
    assert "requires or prolongs inpatient hospitalisation" in issues[0].en
    assert "госпитализации" in issues[0].ru


# ---- dates
def test_onset_not_in_the_future_date():
    assert codes(check(ae(onset=date(2025, 3, 11), resolution=None, outcome="recovering"))) == [
        ("onset", IssueCode.ONSET_IN_FUTURE)
    ]


def test_onset_today_is_allowed():
    assert check(ae(onset=date(2025, 3, 10), resolution=None, outcome="recovering")) == []


def test_onset_not_in_the_future_datetime():
    soon = NOW + timedelta(minutes=1)
    assert codes(check(ae(onset=soon, resolution=None, outcome="recovering"))) == [
        ("onset", IssueCode.ONSET_IN_FUTURE)
    ]
    assert check(ae(onset=NOW, resolution=None, outcome="recovering")) == []


def test_onset_future_check_uses_the_site_date_not_utc():
    # 22:30 UTC on 10 March is 01:30 on 11 March in Moscow: "today" at the site is the 11th
    late = datetime(2025, 3, 10, 22, 30, tzinfo=UTC)
    event = ae(onset=date(2025, 3, 11), resolution=None, outcome="recovering")
    assert validate_adverse_event(event, late, site_tz="Europe/Moscow") == []
    assert codes(validate_adverse_event(event, late)) == [("onset", IssueCode.ONSET_IN_FUTURE)]


def test_naive_datetime_in_event_is_an_issue_naming_the_field():
    issues = check(ae(onset=datetime(2025, 3, 1, 10, 0)))
    assert codes(issues) == [("onset", IssueCode.TIMEZONE_MISSING)]


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="now"):
        validate_adverse_event(ae(), datetime(2025, 3, 10, 12, 0))


def test_resolution_not_before_onset():
    assert codes(check(ae(onset=date(2025, 3, 5), resolution=date(2025, 3, 4)))) == [
        ("resolution", IssueCode.RESOLUTION_BEFORE_ONSET)
    ]


def test_resolution_same_day_as_onset_is_allowed():
    assert check(ae(onset=date(2025, 3, 5), resolution=date(2025, 3, 5))) == []
    # a dated resolution on the day of a timed onset is the same day, not before it
    timed = datetime(2025, 3, 5, 18, 0, tzinfo=MOSCOW)
    assert check(ae(onset=timed, resolution=date(2025, 3, 5))) == []


def test_resolution_before_onset_to_the_minute():
    onset = datetime(2025, 3, 5, 18, 0, tzinfo=MOSCOW)
    assert codes(check(ae(onset=onset, resolution=onset - timedelta(minutes=1)))) == [
        ("resolution", IssueCode.RESOLUTION_BEFORE_ONSET)
    ]


def test_resolution_not_in_the_future():
    assert codes(check(ae(resolution=date(2025, 3, 11)))) == [
        ("resolution", IssueCode.RESOLUTION_IN_FUTURE)
    ]


@pytest.mark.parametrize("outcome", ["recovered", "recovered_with_sequelae"])
def test_ended_outcome_needs_resolution_date(outcome):
    assert codes(check(ae(outcome=outcome, resolution=None))) == [
        ("resolution", IssueCode.OUTCOME_NEEDS_RESOLUTION)
    ]


@pytest.mark.parametrize("outcome", ["recovering", "not_recovered", "unknown"])
def test_ongoing_outcome_excludes_resolution_date(outcome):
    assert codes(check(ae(outcome=outcome))) == [
        ("resolution", IssueCode.OUTCOME_EXCLUDES_RESOLUTION)
    ]
    assert check(ae(outcome=outcome, resolution=None)) == []


def test_fatal_without_date_of_death_is_a_warning():
    issues = check(fatal_sae(resolution=None))
    assert codes(issues) == [("resolution", IssueCode.FATAL_WITHOUT_DATE_OF_DEATH)]
    assert issues[0].severity is Severity.WARNING


def test_outcome_must_be_from_the_list():
    assert codes(check(ae(outcome="cured"))) == [("outcome", IssueCode.OUTCOME_INVALID)]


# ---- attribution
@pytest.mark.parametrize("field", ["relatedness_product", "relatedness_procedure"])
def test_relatedness_must_be_on_the_scale(field):
    issues = check(ae(**{field: "maybe"}))
    assert codes(issues) == [(field, IssueCode.RELATEDNESS_INVALID)]
    assert "not_related, unlikely, possible, probable, definite" in issues[0].en


def test_relatedness_accepts_enum_members():
    assert (
        check(
            ae(relatedness_product=Relatedness.DEFINITE, relatedness_procedure=Relatedness.UNLIKELY)
        )
        == []
    )


def test_expectedness_must_be_expected_or_unexpected():
    assert codes(check(ae(expectedness="listed"))) == [
        ("expectedness", IssueCode.EXPECTEDNESS_INVALID)
    ]


def serious_related(**changes) -> AdverseEventInput:
    base = ae(
        serious=True,
        seriousness=Seriousness(hospitalisation=True),
        grade=3,
        relatedness_product="probable",
        expectedness="unexpected",
        awareness=datetime(2025, 3, 2, 10, 0, tzinfo=MOSCOW),
    )
    return replace(base, **changes)


def test_expectedness_required_for_serious_suspected_related():
    assert check(serious_related()) == []
    assert codes(check(serious_related(expectedness=None))) == [
        ("expectedness", IssueCode.EXPECTEDNESS_REQUIRED)
    ]


def test_expectedness_not_required_when_not_suspected_related():
    assert check(serious_related(expectedness=None, relatedness_product="unlikely")) == []


# ---- awareness
def test_awareness_required_for_serious_event():
    assert codes(check(serious_related(awareness=None))) == [
        ("awareness", IssueCode.AWARENESS_REQUIRED)
    ]


def test_awareness_not_before_onset():
    event = serious_related(onset=date(2025, 3, 3), resolution=date(2025, 3, 4))
    assert codes(check(event)) == [("awareness", IssueCode.AWARENESS_BEFORE_ONSET)]


def test_awareness_not_in_the_future():
    assert codes(check(serious_related(awareness=NOW + timedelta(seconds=1)))) == [
        ("awareness", IssueCode.AWARENESS_IN_FUTURE)
    ]


def test_awareness_naive_is_an_issue():
    assert codes(check(serious_related(awareness=datetime(2025, 3, 2, 10, 0)))) == [
        ("awareness", IssueCode.TIMEZONE_MISSING)
    ]


def test_every_issue_has_an_english_and_a_russian_message():
    messy = AdverseEventInput(
        term="",
        onset=date(2025, 4, 1),
        grade=7,
        serious=True,
        outcome="fatal",
        relatedness_product="maybe",
        relatedness_procedure=None,
        seriousness=Seriousness(),
        resolution=date(2025, 3, 1),
        expectedness="listed",
        awareness=datetime(2025, 3, 2, 10, 0),
    )
    issues = check(messy)
    assert len(issues) >= 8
    for issue in issues:
        assert issue.en and issue.field
        assert CYRILLIC.search(issue.ru), issue
        assert issue.message("ru") == issue.ru and issue.message("en") == issue.en


# =========================================================================== attribution
@pytest.mark.parametrize(
    ("value", "suspected"),
    [
        ("not_related", False),
        ("unlikely", False),
        ("possible", True),
        ("probable", True),
        ("definite", True),
    ],
)
def test_suspected_related_is_possible_or_stronger(value, suspected):
    assert is_suspected_related(value) is suspected
    assert is_suspected_related(Relatedness(value)) is suspected


def test_suspected_related_refuses_values_off_the_scale():
    with pytest.raises(ValueError):
        is_suspected_related("likely")


RSI = ReferenceSafetyInformation(
    version="IB 3.0",
    reactions=(
        ExpectedReaction("Fever", max_grade=2),
        ExpectedReaction("Chills", max_grade=2),
        ExpectedReaction("Infusion related reaction", code="10051792"),
    ),
)


def test_expectedness_listed_term_up_to_listed_grade():
    assert RSI.expectedness("fever", 2) is Expectedness.EXPECTED
    assert RSI.expectedness("Fever", 3) is Expectedness.UNEXPECTED


def test_expectedness_unlisted_term_is_unexpected():
    assert RSI.expectedness("Pneumonitis", 1) is Expectedness.UNEXPECTED


def test_expectedness_fatal_outcome_unexpected_unless_listed():
    assert RSI.expectedness("Infusion related reaction", 4) is Expectedness.EXPECTED
    assert RSI.expectedness("Infusion related reaction", 5) is Expectedness.UNEXPECTED


def test_expectedness_matches_by_code():
    assert RSI.expectedness("IRR", 2, code="10051792") is Expectedness.EXPECTED


# =========================================================================== SUSAR
@pytest.mark.parametrize(
    ("serious", "related", "expected", "susar"),
    [
        (True, "possible", "unexpected", True),
        (True, "probable", "unexpected", True),
        (True, "definite", Expectedness.UNEXPECTED, True),
        (True, "unlikely", "unexpected", False),
        (True, "not_related", "unexpected", False),
        (True, "definite", "expected", False),
        (False, "definite", "unexpected", False),
        (True, True, False, True),
        (True, False, False, False),
        (True, "possible", None, True),  # not yet assessed counts as unexpected
        (True, "possible", True, False),
    ],
)
def test_susar_is_serious_suspected_and_unexpected(serious, related, expected, susar):
    assert is_susar(serious, related, expected) is susar


# =========================================================================== sponsor clock
AWARE = datetime(2025, 6, 10, 9, 15, tzinfo=MOSCOW)


def test_sponsor_deadline_is_24_hours_after_awareness(protocol):
    assert sponsor_deadline(AWARE, protocol) - AWARE == H24
    assert sponsor_deadline(AWARE).tzinfo is UTC


def test_sponsor_report_23h59_after_awareness_is_on_time():
    deadline = sponsor_deadline(AWARE)
    sent = AWARE + timedelta(hours=23, minutes=59)
    assert clock_status(deadline, sent, sent).state is ClockState.ON_TIME


def test_sponsor_report_exactly_24h_after_awareness_is_on_time():
    deadline = sponsor_deadline(AWARE)
    sent = AWARE + H24
    assert clock_status(deadline, sent, sent).state is ClockState.ON_TIME


def test_sponsor_report_24h01_after_awareness_is_late():
    deadline = sponsor_deadline(AWARE)
    sent = AWARE + timedelta(hours=24, minutes=1)
    status = clock_status(deadline, sent, sent)
    assert status.state is ClockState.SUBMITTED_LATE
    assert status.late_by == timedelta(minutes=1)


def test_sponsor_report_one_microsecond_late_is_late():
    deadline = sponsor_deadline(AWARE)
    sent = deadline + timedelta(microseconds=1)
    assert clock_status(deadline, sent, sent).state is ClockState.SUBMITTED_LATE


def test_sponsor_clock_is_absolute_across_spring_forward_berlin():
    # Saturday before the last Sunday of March 2025: clocks go 02:00 CET -> 03:00 CEST
    awareness = datetime(2025, 3, 29, 12, 0, tzinfo=BERLIN)
    deadline = sponsor_deadline(awareness)
    assert deadline - awareness == H24
    local = deadline.astimezone(BERLIN)
    assert (local.date(), local.hour, local.tzname()) == (date(2025, 3, 30), 13, "CEST")


def test_sponsor_clock_is_absolute_across_fall_back_berlin():
    # last Sunday of October 2025: clocks go 03:00 CEST -> 02:00 CET
    awareness = datetime(2025, 10, 25, 12, 0, tzinfo=BERLIN)
    deadline = sponsor_deadline(awareness)
    assert deadline - awareness == H24
    local = deadline.astimezone(BERLIN)
    assert (local.date(), local.hour, local.tzname()) == (date(2025, 10, 26), 11, "CET")


def test_sponsor_clock_respects_fold_of_the_repeated_hour():
    first = datetime(2025, 10, 26, 2, 30, tzinfo=BERLIN, fold=0)  # CEST, 00:30 UTC
    second = datetime(2025, 10, 26, 2, 30, tzinfo=BERLIN, fold=1)  # CET, 01:30 UTC
    assert sponsor_deadline(first) == datetime(2025, 10, 27, 0, 30, tzinfo=UTC)
    assert sponsor_deadline(second) == datetime(2025, 10, 27, 1, 30, tzinfo=UTC)


def test_sponsor_clock_refuses_naive_awareness():
    with pytest.raises(ValueError, match="awareness"):
        sponsor_deadline(datetime(2025, 6, 10, 9, 15))


def test_sponsor_clock_hours_come_from_the_protocol(protocol):
    p48 = with_safety(protocol, sponsor_report_hours=48)
    assert sponsor_deadline(AWARE, p48) - AWARE == timedelta(hours=48)


# =========================================================================== clock status
DEADLINE = datetime(2025, 6, 11, 6, 15, tzinfo=UTC)


def test_clock_due_with_time_remaining():
    status = clock_status(DEADLINE, None, DEADLINE - timedelta(hours=3))
    assert status.state is ClockState.DUE
    assert status.remaining == timedelta(hours=3)
    assert status.late_by is None


def test_clock_due_exactly_at_deadline_with_nothing_remaining():
    status = clock_status(DEADLINE, None, DEADLINE)
    assert (status.state, status.remaining) == (ClockState.DUE, timedelta(0))


def test_clock_overdue_after_deadline():
    status = clock_status(DEADLINE, None, DEADLINE + timedelta(minutes=1))
    assert (status.state, status.late_by) == (ClockState.OVERDUE, timedelta(minutes=1))


def test_clock_submitted_on_time_stays_on_time_later():
    sent = DEADLINE - timedelta(hours=1)
    assert clock_status(DEADLINE, sent, DEADLINE + timedelta(days=3)).state is ClockState.ON_TIME


def test_clock_compares_instants_not_wall_clock_in_the_repeated_hour():
    deadline = datetime(2025, 10, 26, 2, 30, tzinfo=BERLIN, fold=0)  # 00:30 UTC
    sent = datetime(2025, 10, 26, 2, 15, tzinfo=BERLIN, fold=1)  # 01:15 UTC: 45 min late
    status = clock_status(deadline, sent, sent)
    assert status.state is ClockState.SUBMITTED_LATE
    assert status.late_by == timedelta(minutes=45)


@pytest.mark.parametrize("arg", ["deadline", "submitted_at", "now"])
def test_clock_refuses_naive_datetimes(arg):
    values = {"deadline": DEADLINE, "submitted_at": DEADLINE, "now": DEADLINE}
    values[arg] = datetime(2025, 6, 11, 6, 15)
    with pytest.raises(ValueError, match=arg):
        clock_status(values["deadline"], values["submitted_at"], values["now"])


# =========================================================================== SUSAR clocks
def test_susar_fatal_or_life_threatening_7_days_then_8_more_moscow():
    first = datetime(2025, 3, 25, 10, 0, tzinfo=MOSCOW)
    d = susar_deadlines(first, True)
    assert d.site_tz == "Europe/Moscow"  # the protocol's only site by default
    assert (d.initial_days, d.complete_days) == (7, 15)
    # no DST in Moscow since 2014: calendar days are exactly 24 h each
    assert d.initial - first == 7 * H24
    assert d.complete - first == 15 * H24


def test_susar_other_15_days_and_no_complete_report():
    first = datetime(2025, 3, 25, 10, 0, tzinfo=MOSCOW)
    d = susar_deadlines(first, False)
    assert d.initial_days == 15 and d.initial - first == 15 * H24
    assert d.complete is None and d.complete_days is None


def test_susar_calendar_days_across_spring_forward_berlin():
    first = datetime(2025, 3, 25, 10, 0, tzinfo=BERLIN)  # CET
    d = susar_deadlines(first, True, site_tz="Europe/Berlin")
    local = d.initial.astimezone(BERLIN)
    assert (local.date(), local.hour, local.minute, local.tzname()) == (
        date(2025, 4, 1),
        10,
        0,
        "CEST",
    )
    assert d.initial - first == 7 * H24 - timedelta(hours=1)  # 167 real hours
    assert d.complete.astimezone(BERLIN).replace(tzinfo=None) == datetime(2025, 4, 9, 10, 0)


def test_susar_calendar_days_across_fall_back_berlin():
    first = datetime(2025, 10, 20, 10, 0, tzinfo=BERLIN)  # CEST
    d = susar_deadlines(first, False, site_tz=BERLIN)
    local = d.initial.astimezone(BERLIN)
    assert (local.date(), local.hour, local.tzname()) == (date(2025, 11, 4), 10, "CET")
    assert d.initial - first == 15 * H24 + timedelta(hours=1)


def test_susar_7_day_clock_across_fall_back_lasts_169_hours():
    first = datetime(2025, 10, 20, 10, 0, tzinfo=BERLIN)
    d = susar_deadlines(first, True, site_tz=BERLIN)
    assert d.initial - first == 7 * H24 + timedelta(hours=1)


def test_susar_deadline_in_the_skipped_hour_moves_forward_by_the_gap():
    first = datetime(2025, 3, 23, 2, 30, tzinfo=BERLIN)  # CET, 01:30 UTC
    d = susar_deadlines(first, True, site_tz=BERLIN)
    # 2025-03-30 02:30 does not exist in Berlin; read with the offset before the gap
    assert d.initial == datetime(2025, 3, 30, 1, 30, tzinfo=UTC)
    assert d.initial.astimezone(BERLIN).replace(tzinfo=None) == datetime(2025, 3, 30, 3, 30)


def test_susar_deadline_in_the_repeated_hour_takes_the_first_occurrence():
    first = datetime(2025, 10, 19, 2, 30, tzinfo=BERLIN)  # CEST
    d = susar_deadlines(first, True, site_tz=BERLIN)
    assert d.initial == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)  # 02:30 CEST, not 02:30 CET


def test_susar_clock_refuses_naive_first_knowledge():
    with pytest.raises(ValueError, match="first_knowledge"):
        susar_deadlines(datetime(2025, 3, 25, 10, 0), True)


def test_susar_clock_needs_site_tz_when_the_trial_has_several_sites(protocol):
    second = Site(
        code="SPB01", name="Site 2", city="Saint Petersburg", country="RU", timezone="Europe/Moscow"
    )
    identity = protocol.identity.model_copy(update={"sites": [*protocol.identity.sites, second]})
    two_sites = protocol.model_copy(update={"identity": identity})
    first = datetime(2025, 3, 25, 10, 0, tzinfo=MOSCOW)
    with pytest.raises(ValueError, match="site_tz"):
        susar_deadlines(first, True, protocol=two_sites)
    assert (
        susar_deadlines(first, True, protocol=two_sites, site_tz="Europe/Moscow").initial_days == 7
    )


def test_susar_days_come_from_the_protocol(protocol):
    custom = with_safety(protocol, susar_other_days=10)
    first = datetime(2025, 3, 25, 10, 0, tzinfo=MOSCOW)
    assert susar_deadlines(first, False, protocol=custom).initial - first == 10 * H24


def test_susar_report_at_deadline_on_time_after_it_late():
    first = datetime(2025, 3, 25, 10, 0, tzinfo=BERLIN)
    deadline = susar_deadlines(first, True, site_tz=BERLIN).initial
    assert clock_status(deadline, deadline, deadline).state is ClockState.ON_TIME
    late = deadline + timedelta(minutes=1)
    assert clock_status(deadline, late, late).state is ClockState.SUBMITTED_LATE


def test_add_calendar_days_keeps_local_clock_time():
    start = datetime(2025, 3, 29, 23, 45, tzinfo=BERLIN)
    result = add_calendar_days(start, 1, "Europe/Berlin").astimezone(BERLIN)
    assert result.replace(tzinfo=None) == datetime(2025, 3, 30, 23, 45)


# =========================================================================== infusion window
INFUSION = datetime(2025, 6, 10, 10, 0, tzinfo=MOSCOW)


def test_infusion_window_onset_at_infusion_start_is_related():
    assert is_potentially_infusion_related(INFUSION, [INFUSION])


def test_infusion_window_onset_exactly_24h_after_start_is_related():
    assert is_potentially_infusion_related(INFUSION + H24, [INFUSION])


def test_infusion_window_onset_one_second_after_24h_is_not_related():
    assert not is_potentially_infusion_related(INFUSION + H24 + timedelta(seconds=1), [INFUSION])


def test_infusion_window_onset_before_infusion_is_not_related():
    assert not is_potentially_infusion_related(INFUSION - timedelta(minutes=1), [INFUSION])


def test_infusion_window_no_infusions_is_not_related():
    assert not is_potentially_infusion_related(INFUSION, [])


def test_infusion_window_matches_the_latest_infusion_containing_onset():
    second = INFUSION + timedelta(days=7)
    onset = second + timedelta(hours=20)
    assert infusion_window_match(onset, [INFUSION, second]) == second.astimezone(UTC)
    assert infusion_window_match(INFUSION + timedelta(days=3), [INFUSION, second]) is None


def test_infusion_window_is_absolute_across_dst():
    # the wall clock shows 24.5 h between the two, but only 23.5 h have passed
    start = datetime(2025, 3, 29, 12, 0, tzinfo=BERLIN)  # 11:00 UTC
    onset = datetime(2025, 3, 30, 12, 30, tzinfo=BERLIN)  # 10:30 UTC
    assert is_potentially_infusion_related(onset, [start])


def test_infusion_window_hours_come_from_the_protocol(protocol):
    assert protocol.regimen.reaction_window_hours == 24
    assert is_potentially_infusion_related(
        INFUSION + timedelta(hours=30), [INFUSION], window_hours=36
    )


def test_infusion_window_refuses_naive_datetimes():
    with pytest.raises(ValueError, match="onset"):
        is_potentially_infusion_related(datetime(2025, 6, 10, 11, 0), [INFUSION])
    with pytest.raises(ValueError, match=r"infusion_starts\[1\]"):
        is_potentially_infusion_related(INFUSION, [INFUSION, datetime(2025, 6, 17, 10, 0)])


# =========================================================================== stopping rules
def rule_result(protocol, saes):
    (result,) = evaluate_stopping_rules(protocol, saes)
    assert result.rule_id == "RELATED_SAE_HALT"
    return result


def test_stopping_rule_fires_at_exactly_two_related_saes(protocol):
    saes = [
        SaeSummary("SAE-1", "possible", "MOW01-001"),
        SaeSummary("SAE-2", "definite", "MOW01-002"),
    ]
    result = rule_result(protocol, saes)
    assert result.triggered
    assert (result.count, result.threshold) == (2, 2)
    assert result.counted_sae_ids == ("SAE-1", "SAE-2")


def test_stopping_rule_does_not_fire_on_one_related_sae(protocol):
    result = rule_result(protocol, [SaeSummary("SAE-1", "probable")])
    assert not result.triggered and result.count == 1


def test_stopping_rule_ignores_unrelated_and_unlikely_saes(protocol):
    saes = [SaeSummary(f"SAE-{i}", r) for i, r in enumerate(["not_related", "unlikely"] * 3)]
    saes.append(SaeSummary("SAE-R", "possible"))
    result = rule_result(protocol, saes)
    assert not result.triggered
    assert result.counted_sae_ids == ("SAE-R",)


def test_stopping_rule_stays_triggered_above_threshold(protocol):
    saes = [SaeSummary(f"SAE-{i}", "probable") for i in range(3)]
    assert rule_result(protocol, saes).triggered


def test_stopping_rule_no_saes(protocol):
    result = rule_result(protocol, [])
    assert not result.triggered and result.count == 0 and result.counted_sae_ids == ()


def test_stopping_rule_refuses_duplicate_sae_ids(protocol):
    with pytest.raises(ValueError, match="SAE-1"):
        evaluate_stopping_rules(
            protocol, [SaeSummary("SAE-1", "possible"), SaeSummary("SAE-1", "possible")]
        )


def test_stopping_rule_refuses_relatedness_off_the_scale():
    with pytest.raises(ValueError, match="SAE-9"):
        SaeSummary("SAE-9", "likely")


def test_stopping_rule_accepts_loaded_protocol_and_explains_itself_in_both_languages():
    saes = [SaeSummary("SAE-1", "possible"), SaeSummary("SAE-2", "probable")]
    result = rule_result(load_protocol(), saes)
    assert "TRIGGERED" in result.message("en") and "SAE-1, SAE-2" in result.message("en")
    assert "СРАБОТАЛО" in result.message("ru")
    assert result.description.ru


# =========================================================================== term list
def test_term_list_loads_with_unique_terms_and_codes():
    terms = load_terms()
    assert 40 <= len(terms) <= 80
    names = [t.term.casefold() for t in terms]
    assert len(names) == len(set(names))
    codes_ = [t.code for t in terms if t.code]
    assert len(codes_) == len(set(codes_))
    assert all(re.fullmatch(r"100\d{5}", c) for c in codes_)
    assert all(t.soc and t.term_ru and CYRILLIC.search(t.term_ru) for t in terms)


def test_term_list_covers_ild_and_infusion_terms():
    names = {t.term for t in load_terms()}
    for term in [
        "Infusion related reaction",
        "Fever",
        "Chills",
        "Dyspnea",
        "Respiratory failure",
        "Lung infection",
        "Pneumonitis",
        "Pulmonary fibrosis",
        "Cough",
        "Hypoxia",
        "Anaphylaxis",
        "Allergic reaction",
        "Thromboembolic event",
        "Death NOS",
        "Adult respiratory distress syndrome",
    ]:
        assert term in names


def test_term_list_codes_are_ctcae_llt_codes():
    by_term = {t.term: t.code for t in load_terms()}
    assert by_term["Fever"] == "10016558"  # LLT Fever, not PT Pyrexia 10037660
    assert by_term["Chills"] == "10008531"
    assert by_term["Infusion related reaction"] == "10051792"
    assert by_term["Dyspnea"] == "10013963"  # LLT Dyspnea, not PT Dyspnoea 10013968


def test_term_list_loads_from_a_path(tmp_path):
    path = tmp_path / "terms.csv"
    path.write_text(
        "term,soc,meddra_code,term_ru\nFever,General,10016558,Лихорадка\nX,,,\n", encoding="utf-8"
    )
    assert load_terms(path)[1].code is None


# =========================================================================== dictionary import
GOOD = "term,code,soc\nFever,10016558,General disorders\nChills,10008531,General disorders\n"


def refused(data: bytes | str, filename: str = "dict.csv", **kw) -> DictionaryImportError:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with pytest.raises(DictionaryImportError) as exc:
        import_dictionary(raw, filename, **kw)
    for issue in exc.value.issues:
        assert CYRILLIC.search(issue.ru)
    return exc.value


def issue_codes(err: DictionaryImportError):
    return [i.code for i in err.issues]


def test_import_accepts_a_valid_csv():
    terms = import_dictionary(GOOD.encode(), "site_ctcae.csv")
    assert [(t.term, t.code, t.soc) for t in terms] == [
        ("Fever", "10016558", "General disorders"),
        ("Chills", "10008531", "General disorders"),
    ]


def test_import_accepts_bom_semicolons_meddra_code_column_and_extra_columns():
    text = "\ufeffTerm;MedDRA Code;Grade 1;term_ru\nFever;10016558;38.0 - 39.0 C;Лихорадка\n"
    (term,) = import_dictionary(text.encode("utf-8"), "CTCAE.CSV")
    assert (term.term, term.code, term.term_ru) == ("Fever", "10016558", "Лихорадка")


def test_import_refuses_non_csv_file_type():
    err = refused(GOOD, "ctcae.xlsx")
    assert issue_codes(err) == [IssueCode.FILE_TYPE]
    assert "not a .csv file" in err.issues[0].en


def test_import_refuses_spreadsheet_renamed_to_csv():
    err = refused(b"PK\x03\x04\x14\x00\x06\x00" + b"x" * 50)
    assert issue_codes(err) == [IssueCode.FILE_TYPE]
    assert "spreadsheet or binary" in err.issues[0].en


def test_import_refuses_binary_content():
    assert issue_codes(refused(b"term,code\nFever,1\x00\n")) == [IssueCode.FILE_TYPE]


def test_import_refuses_non_utf8():
    err = refused("term,code\nЛихорадка,10016558\n".encode("cp1251"))
    assert issue_codes(err) == [IssueCode.FILE_ENCODING]
    assert "not UTF-8" in err.issues[0].en


def test_import_refuses_oversize_file():
    err = refused(GOOD, max_bytes=10)
    assert issue_codes(err) == [IssueCode.FILE_TOO_LARGE]
    assert "limit is 10" in err.issues[0].en


def test_import_refuses_empty_file():
    assert issue_codes(refused(b"  \n")) == [IssueCode.FILE_EMPTY]
    assert issue_codes(refused("term,code\n")) == [IssueCode.FILE_EMPTY]


def test_import_refuses_missing_columns():
    err = refused("name,soc\nFever,General\n")
    assert issue_codes(err) == [IssueCode.COLUMN_MISSING]
    assert (
        "term, code (or meddra_code)" in err.issues[0].en and "found: name, soc" in err.issues[0].en
    )


def test_import_refuses_duplicate_codes():
    err = refused("term,code\nFever,10016558\nPyrexia,10016558\n")
    assert issue_codes(err) == [IssueCode.CODE_DUPLICATE]
    assert err.issues[0].field == "row 3, code"
    assert "first in row 2" in err.issues[0].en


def test_import_refuses_duplicate_terms():
    err = refused("term,code\nFever,10016558\nfever,10037660\n")
    assert issue_codes(err) == [IssueCode.TERM_DUPLICATE]


@pytest.mark.parametrize(
    "cell",
    [
        "=cmd|' /C calc'!A0",
        "+1+2",
        "-2+3",
        "@SUM(A1:A2)",
        "\t=1",
        ' =HYPERLINK("http://x")',
        "\uff1dcmd",
    ],
)
def test_import_refuses_formula_looking_cells(cell):
    text = f'term,code\n"{cell}",10016558\n'
    err = refused(text)
    assert issue_codes(err) == [IssueCode.CELL_FORMULA]
    assert err.issues[0].field == "row 2, column 1"
    assert "formula" in err.issues[0].en


def test_import_refuses_formula_in_code_column():
    err = refused("term,code\nFever,=1+1\n")
    assert issue_codes(err) == [IssueCode.CELL_FORMULA]


def test_import_refuses_empty_code():
    err = refused("term,code\nFever,\n")
    assert issue_codes(err) == [IssueCode.CELL_EMPTY]
    assert err.issues[0].field == "row 2, code"


def test_import_refuses_malformed_code():
    assert issue_codes(refused("term,code\nFever,100 16558\n")) == [IssueCode.CODE_FORMAT]


def test_import_refuses_duplicate_header_columns():
    assert IssueCode.COLUMN_DUPLICATE in issue_codes(refused("term,code,code\nFever,1,2\n"))


def test_import_refuses_rows_longer_than_header():
    assert issue_codes(refused("term,code\nFever,10016558,extra\n")) == [IssueCode.ROW_LENGTH]


def test_import_lists_many_problems_up_to_a_limit():
    rows = "".join(f"=bad{i},{i}\n" for i in range(30))
    err = refused("term,code\n" + rows)
    assert len(err.issues) == 21
    assert err.issues[-1].code is IssueCode.TOO_MANY_PROBLEMS
    assert "10 more" in err.issues[-1].en


def test_import_error_message_names_the_file():
    err = refused("term\nFever\n", "uploads/site.csv")
    assert "site.csv" in str(err)


def test_outcome_enum_values_are_the_cdisc_set():
    assert {o.value for o in Outcome} == {
        "recovered",
        "recovered_with_sequelae",
        "recovering",
        "not_recovered",
        "fatal",
        "unknown",
    }
