"""Cross-visit edit checks: rules that look at more than one form or visit.

A single form cannot know that FVC fell by a third since the last visit, that a visit
was done outside its window, or that a prohibited drug was started after the first
infusion; these checks do. Each is a pure function of values already stored, returns
issues in the same :class:`~ildtrial.core.crf.FieldIssue` shape as the form engine
(severity ``warning``, a stable rule id, messages in English and Russian, a key for
confirmation), and raises nothing on the data it is built for, so a page or a nightly
job can run them over everything.

They are warnings, not errors: each finding may be true (a patient does decline, a visit
does slip) and becomes a data query or a protocol deviation for a person to judge.

Thresholds are compared in decimal arithmetic on the values as entered, so a change of
exactly 20 % is exactly 20 % (no issue) and never 20.000000000000004 %.

No Django import.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from ildtrial.core.crf import FieldIssue, format_value, ru_plural
from ildtrial.core.protocol import LoadedProtocol, Protocol, WashoutRule
from ildtrial.core.schedule import PlannedVisit

__all__ = [
    "CM_PROHIBITED_DURING_TRIAL",
    "VISIT_OUT_OF_WINDOW",
    "InfusionWindow",
    "fvc_change_rule_id",
    "fvc_change_since_previous",
    "infusion_reaction_window",
    "prohibited_classes_from_protocol",
    "prohibited_medication_started",
    "visit_date_outside_window",
]

VISIT_OUT_OF_WINDOW: Final = "VISIT_OUT_OF_WINDOW"
CM_PROHIBITED_DURING_TRIAL: Final = "CM_PROHIBITED_DURING_TRIAL"

Measurement = tuple[date, float | int | Decimal]


def _decimal(value: Any) -> Decimal | None:
    """A finite number as Decimal from the digits as entered (floats via their repr)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float) and math.isfinite(value):
        return Decimal(repr(value))
    return None


def _day(value: Any) -> date | None:
    """A date from a date, a datetime or ISO text (stored JSON); None otherwise."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def _days(n: int) -> tuple[str, str]:
    return (f"{n} day{'s' if n != 1 else ''}", f"{n} {ru_plural(n, 'день', 'дня', 'дней')}")


# =========================================================================== FVC change
def _beyond(change: Decimal, threshold: Decimal) -> str:
    """The size of the change with one decimal, or more when one decimal would show it on
    the threshold (a change of 20.04 % is shown as 20.04, not as the "20.0" it exceeds)."""
    size = abs(change)
    for places in range(1, 7):
        shown = round(size, places)
        if shown > threshold:
            return f"{shown:.{places}f}"
    return f"{size:f}"


def fvc_change_rule_id(threshold_percent: float | int | Decimal = 20) -> str:
    """The rule id for a threshold: ``FVC_CHANGE_GT_20`` (``12.5`` -> ``FVC_CHANGE_GT_12_5``)."""
    threshold = _decimal(threshold_percent)
    text = format(threshold.normalize(), "f") if threshold is not None else str(threshold_percent)
    return f"FVC_CHANGE_GT_{text.replace('.', '_').replace('-', 'MINUS_')}"


def fvc_change_since_previous(
    previous: Measurement | None,
    current: Measurement,
    threshold_percent: float | int | Decimal = 20,
) -> list[FieldIssue]:
    """Warn when FVC changed by more than ``threshold_percent`` % since the previous visit.

    The relative change is (current − previous) / previous × 100, in either direction: a
    fall that large is unusual even in rapidly progressive ILD and a rise that large is
    more often a unit or transcription slip than a real gain. Exactly the threshold is
    not "more than". No previous value (or a non-positive one) gives no issue.
    """
    if previous is None:
        return []
    prev_value, cur_value = _decimal(previous[1]), _decimal(current[1])
    threshold = _decimal(threshold_percent)
    if prev_value is None or cur_value is None or threshold is None or prev_value <= 0:
        return []
    change = (cur_value - prev_value) / prev_value * 100
    if abs(change) <= threshold:
        return []
    rule = fvc_change_rule_id(threshold_percent)
    change_shown = _beyond(change, threshold)
    threshold_shown = format_value(threshold.normalize())
    prev_shown, cur_shown = format_value(prev_value, "L"), format_value(cur_value, "L")
    prev_date = format_value(_day(previous[0]) or previous[0])
    direction = ("fell", "снизилась") if change < 0 else ("rose", "выросла")
    return [
        FieldIssue(
            field="fvc_l",
            rule=rule,
            severity="warning",
            message=(
                f"FVC {direction[0]} by {change_shown} % since {prev_date[0]} "
                f"({prev_shown[0]} → {cur_shown[0]}), more than {threshold_shown[0]} %; "
                "please confirm the value"
            ),
            message_ru=(
                f"ФЖЕЛ {direction[1]} на {change_shown.replace('.', ',')} % с {prev_date[1]} "
                f"({prev_shown[1]} → {cur_shown[1]}), более чем на {threshold_shown[1]} %; "
                "подтвердите значение"
            ),
            key=f"fvc_l:{rule}",
        )
    ]


# =========================================================================== visit window
def visit_date_outside_window(
    planned_visit: PlannedVisit | tuple[date, date],
    actual_date: date,
    *,
    visit_code: str | None = None,
) -> list[FieldIssue]:
    """Warn when a visit was done outside its window (edges inclusive), naming by how
    many days, so the deviation can be filed with the right number.

    ``planned_visit`` is a :class:`~ildtrial.core.schedule.PlannedVisit` or the window as
    ``(earliest, latest)``. A visit without a window yet (day 0 unknown) gives no issue.
    """
    if isinstance(planned_visit, PlannedVisit):
        earliest, latest = planned_visit.earliest, planned_visit.latest
        code = visit_code or planned_visit.code
    else:
        earliest, latest = planned_visit
        code = visit_code
    actual = _day(actual_date)
    if earliest is None or latest is None or actual is None:
        return []
    if actual < earliest:
        days, side = (earliest - actual).days, ("before", "до начала")
    elif actual > latest:
        days, side = (actual - latest).days, ("after", "после окончания")
    else:
        return []
    name = (f"Visit {code}", f"Визит {code}") if code else ("The visit", "Визит")
    shown = format_value(actual)
    window = format_value(earliest), format_value(latest)
    n = _days(days)
    return [
        FieldIssue(
            field=None,
            rule=VISIT_OUT_OF_WINDOW,
            severity="warning",
            message=(
                f"{name[0]} on {shown[0]} is {n[0]} {side[0]} its window "
                f"{window[0][0]} to {window[1][0]}"
            ),
            message_ru=(
                f"{name[1]} {shown[1]} проведен на {n[1]} {side[1]} окна "
                f"{window[0][1]}–{window[1][1]}"
            ),
            key=f"{code}:{VISIT_OUT_OF_WINDOW}" if code else VISIT_OUT_OF_WINDOW,
        )
    ]


# =========================================================================== medications
def prohibited_classes_from_protocol(protocol: Protocol | LoadedProtocol) -> frozenset[str]:
    """The medication classes the protocol prohibits: those of its washout criteria
    (EX8), which the trial keeps prohibited after randomization too."""
    p = protocol.protocol if isinstance(protocol, LoadedProtocol) else protocol
    return frozenset(
        cls
        for criterion in p.eligibility.criteria
        if isinstance(criterion.rule, WashoutRule)
        for cls in criterion.rule.medication_classes
    )


def prohibited_medication_started(
    cm_rows: Iterable[Mapping[str, Any]],
    day0: date,
    prohibited_classes: Collection[str],
) -> list[FieldIssue]:
    """Warn for each concomitant medication of a prohibited class started on or after
    day 0 (the first infusion): a protocol deviation the investigator must explain.

    Rows are CM form values (``medication``, ``medication_class``, ``start_date``; dates as
    ``date`` or ISO text). A row is identified in the key by its ``instance`` (the form
    instance number) when present, else by its 1-based position. Rows without a start
    date or class are skipped: the CM form's own rules ask for them.
    """
    issues: list[FieldIssue] = []
    start_day = _day(day0)
    if start_day is None:
        return []
    for position, row in enumerate(cm_rows, start=1):
        if not isinstance(row, Mapping):
            continue
        cls = row.get("medication_class")
        started = _day(row.get("start_date"))
        if not isinstance(cls, str) or cls not in prohibited_classes or started is None:
            continue
        if started < start_day:
            continue
        instance = row.get("instance", position)
        medication = row.get("medication")
        what = f"'{medication}' ({cls})" if isinstance(medication, str) and medication else cls
        what_ru = f"«{medication}» ({cls})" if isinstance(medication, str) and medication else cls
        shown, d0 = format_value(started), format_value(start_day)
        issues.append(
            FieldIssue(
                field="medication_class",
                rule=CM_PROHIBITED_DURING_TRIAL,
                severity="warning",
                message=(
                    f"Concomitant medication {what}, a prohibited class, was started on "
                    f"{shown[0]}, on or after day 0 ({d0[0]})"
                ),
                message_ru=(
                    f"Сопутствующий препарат {what_ru} запрещенного класса начат {shown[1]}, "
                    f"в день 0 ({d0[1]}) или позже"
                ),
                key=f"CM[{instance}]:medication_class:{CM_PROHIBITED_DURING_TRIAL}",
            )
        )
    return issues


# =========================================================================== infusion reactions
@dataclass(frozen=True)
class InfusionWindow:
    """Whether an adverse event began within the reaction window of an infusion.

    Truthy when it did. ``infusion_index`` (0-based, in the order given) and
    ``infusion_start`` name the infusion, the latest one that started at or before the
    onset; ``hours_after`` is the delay from it (None for a date-only onset).
    """

    within: bool
    infusion_index: int | None = None
    infusion_start: datetime | None = None
    hours_after: float | None = None

    def __bool__(self) -> bool:
        return self.within


def infusion_reaction_window(
    infusion_datetimes: Iterable[datetime],
    ae_onset: datetime | date,
    hours: float = 24,
) -> InfusionWindow:
    """Whether an AE with onset ``ae_onset`` began within ``hours`` after an infusion
    start (edges inclusive), to flag it as potentially infusion-related.

    The most recent infusion that started at or before the onset is the candidate (an
    AE before every infusion is not infusion-related). An onset known only to the day
    counts as within when that day falls between the infusion's day and the day the
    window ends: "potentially" related errs towards asking. Naive and aware date-times
    cannot be mixed (a ValueError says so), because the answer would depend on a guess
    of the time zone.
    """
    window = timedelta(hours=hours)
    starts = list(infusion_datetimes)
    best: tuple[int, datetime] | None = None
    for index, start in enumerate(starts):
        if not isinstance(start, datetime):
            continue
        try:
            if isinstance(ae_onset, datetime):
                started_before = start <= ae_onset
            else:
                started_before = start.date() <= ae_onset
            later = best is None or start >= best[1]
        except TypeError:
            raise ValueError(
                "infusion and onset date-times must all be naive or all timezone-aware"
            ) from None
        if started_before and later:
            best = (index, start)
    if best is None:
        return InfusionWindow(False)
    index, start = best
    if isinstance(ae_onset, datetime):
        delay = ae_onset - start
        return InfusionWindow(delay <= window, index, start, delay.total_seconds() / 3600)
    within = start.date() <= ae_onset <= (start + window).date()
    return InfusionWindow(within, index, start, None)
