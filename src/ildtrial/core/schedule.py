"""The visit calendar of one participant: planned dates, windows, status, deviations.

The protocol places every visit relative to an *anchor*. Quarterly visits (W13, W26, W39,
W52) and screening run from day 0, the date of the first infusion (C1A). The second
infusion of each cycle runs from the *actual* date of the first infusion of that cycle:
if W13 slips to day 96, C2B moves to day 103 while W26 stays on day 182. Until the anchor
visit has happened its planned date is used instead, and each planned visit says which one
it used (``anchor_is_actual``) so the page can show a date as provisional.

Day 0 here is the protocol's day 0 (first infusion = day 0, the day before = day −1).
SDTM study days (no day 0) are computed by the export, not here.

Before day 0 is known only screening can take place; the other visits carry no date
(status ``NOT_PLANNED``). :func:`day0_window` gives the dates on which day 0 may fall once
screening is done, so that screening stays inside its window (day −28 to −1).

Everything here is pure: dates in, dates out. "Today" is always passed in, in the site's
time zone, so that the same code answers for the pages, the reminders and the tests.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ildtrial.core.protocol import Protocol, Text

DAY0 = "day0"


class VisitStatus(StrEnum):
    """Where a visit stands on a given day.

    ``OVERDUE`` is a visit whose window has passed and that nobody has yet recorded as done
    or missed: it asks for an action. ``MISSED`` is the recorded answer. A visit done
    outside its window is ``DONE_OUT_OF_WINDOW`` and yields a :class:`ProtocolDeviation`.
    """

    NOT_PLANNED = "not_planned"  # no date yet: day 0 is not known
    UPCOMING = "upcoming"  # window not yet open
    DUE_TODAY = "due_today"  # today is the planned date
    IN_WINDOW = "in_window"  # window open, today is not the planned date
    OVERDUE = "overdue"  # window passed, not done, not marked missed
    DONE = "done"
    DONE_OUT_OF_WINDOW = "done_out_of_window"
    MISSED = "missed"


#: The statuses that need nothing more from the site.
CLOSED_STATUSES = frozenset({VisitStatus.DONE, VisitStatus.DONE_OUT_OF_WINDOW, VisitStatus.MISSED})


@dataclass(frozen=True)
class ProtocolDeviation:
    """A visit done outside its window: what the monitor needs to file the deviation.

    ``days_outside`` is always positive; ``timing`` says on which side of the window.
    """

    visit_code: str
    planned: date
    earliest: date
    latest: date
    actual: date
    days_outside: int
    timing: Literal["early", "late"]

    def describe(self) -> str:
        """One line for the deviation log, in the words of a monitor."""
        return (
            f"Visit {self.visit_code} done on {self.actual.isoformat()}, {self.days_outside} "
            f"day(s) {'before' if self.timing == 'early' else 'after'} its window "
            f"{self.earliest.isoformat()} to {self.latest.isoformat()} "
            f"(planned {self.planned.isoformat()})"
        )


@dataclass(frozen=True)
class PlannedVisit:
    """One protocol visit of one participant, with its plan and what has happened.

    ``planned``, ``earliest`` and ``latest`` are None until day 0 is known. ``study_day`` is
    the planned day relative to day 0 (day 0 = first infusion). ``anchor_is_actual`` is True
    when the date runs from the anchor visit's actual date, False when from a planned date
    (day 0 itself counts as actual only when the day-0 visit has been done).
    """

    code: str
    name: Text
    kind: str
    cycle: int | None
    infusion: bool
    anchor: str
    offset_days: int
    window_before: int
    window_after: int
    planned: date | None
    earliest: date | None
    latest: date | None
    study_day: int | None
    anchor_is_actual: bool
    actual: date | None = None
    missed: bool = False

    @property
    def is_dated(self) -> bool:
        return self.planned is not None

    @property
    def is_done(self) -> bool:
        return self.actual is not None

    def in_window(self, day: date) -> bool:
        """Window edges are inclusive: W13 (day 91 ±7) may be done on day 84 or day 98."""
        if self.earliest is None or self.latest is None:
            raise ValueError(f"visit {self.code} has no window yet: day 0 is not known")
        return self.earliest <= day <= self.latest

    def status(self, today: date) -> VisitStatus:
        return visit_status(self, today)

    @property
    def deviation(self) -> ProtocolDeviation | None:
        """The deviation record if the visit was done outside its window, else None."""
        if self.actual is None or self.planned is None:
            return None
        assert self.earliest is not None and self.latest is not None
        if self.actual < self.earliest:
            days, timing = (self.earliest - self.actual).days, "early"
        elif self.actual > self.latest:
            days, timing = (self.actual - self.latest).days, "late"
        else:
            return None
        return ProtocolDeviation(
            visit_code=self.code,
            planned=self.planned,
            earliest=self.earliest,
            latest=self.latest,
            actual=self.actual,
            days_outside=days,
            timing=timing,
        )

    def window_text(self) -> str:
        """The window as a person reads it: '2024-04-08 to 2024-04-22 (-7/+7 days)'."""
        if self.earliest is None or self.latest is None:
            return "no date yet (day 0 is not known)"
        if self.earliest == self.latest:
            return f"{self.earliest.isoformat()} (no window)"
        return (
            f"{self.earliest.isoformat()} to {self.latest.isoformat()} "
            f"(-{self.window_before}/+{self.window_after} days)"
        )


def visit_status(visit: PlannedVisit, today: date) -> VisitStatus:
    """The status of ``visit`` on ``today``; window edges are inclusive.

    A recorded actual date wins over everything (the visit happened); a missed flag comes
    next; only then does the calendar decide. The planned day itself is ``DUE_TODAY`` even
    when the window is wider, so the day list puts it first.
    """
    if visit.actual is not None:
        return VisitStatus.DONE_OUT_OF_WINDOW if visit.deviation else VisitStatus.DONE
    if visit.missed:
        return VisitStatus.MISSED
    if visit.planned is None or visit.earliest is None or visit.latest is None:
        return VisitStatus.NOT_PLANNED
    if today < visit.earliest:
        return VisitStatus.UPCOMING
    if today == visit.planned:
        return VisitStatus.DUE_TODAY
    if today <= visit.latest:
        return VisitStatus.IN_WINDOW
    return VisitStatus.OVERDUE


def plan(
    protocol: Protocol,
    day0: date | None,
    actual: Mapping[str, date],
    *,
    missed: Collection[str] = frozenset(),
) -> list[PlannedVisit]:
    """Plan every protocol visit of one participant, in protocol order.

    ``day0`` is the date of the first infusion (planned, or actual once done). When it is
    None the actual date of the day-0 visit (C1A) is used if there is one; when both are
    given they must agree, because day 0 *is* the first infusion. ``actual`` maps visit codes
    to the dates they were done; ``missed`` names visits recorded as missed. Unknown codes
    are refused: a typo must not silently leave a visit undone.
    """
    visits = protocol.schedule.visits
    codes = [v.code for v in visits]
    unknown = sorted(set(actual) - set(codes)) + sorted(set(missed) - set(codes))
    if unknown:
        raise ValueError(f"unknown visit code(s) {unknown}; protocol visits are {codes}")
    both = sorted(set(actual) & set(missed))
    if both:
        raise ValueError(f"visit(s) {both} are both done and marked missed")

    day_zero_code = protocol.schedule.day_zero
    first_infusion = actual.get(day_zero_code)
    if day0 is None:
        day0 = first_infusion
    elif first_infusion is not None and first_infusion != day0:
        raise ValueError(
            f"day 0 {day0.isoformat()} differs from the actual date of {day_zero_code} "
            f"{first_infusion.isoformat()}: day 0 is the date of the first infusion"
        )
    day0_is_actual = first_infusion is not None

    planned_by_code: dict[str, date | None] = {}
    result: list[PlannedVisit] = []
    for v in visits:
        base: date | None
        if v.anchor == DAY0:
            base, base_actual = day0, day0_is_actual
        else:
            anchor_actual = actual.get(v.anchor)
            if anchor_actual is not None:
                base, base_actual = anchor_actual, True
            else:
                base, base_actual = planned_by_code[v.anchor], False
        planned = None if base is None else base + timedelta(days=v.day)
        planned_by_code[v.code] = planned
        result.append(
            PlannedVisit(
                code=v.code,
                name=v.name,
                kind=v.kind,
                cycle=v.cycle,
                infusion=v.infusion,
                anchor=v.anchor,
                offset_days=v.day,
                window_before=v.window.before,
                window_after=v.window.after,
                planned=planned,
                earliest=None if planned is None else planned - timedelta(days=v.window.before),
                latest=None if planned is None else planned + timedelta(days=v.window.after),
                study_day=None if planned is None or day0 is None else (planned - day0).days,
                anchor_is_actual=planned is not None and base_actual,
                actual=actual.get(v.code),
                missed=v.code in missed,
            )
        )
    return result


def day0_window(protocol: Protocol, screening_date: date) -> tuple[date, date]:
    """The dates on which day 0 may fall so that screening on ``screening_date`` stays inside
    the screening window (day −28 to −1 in this protocol): (earliest, latest) inclusive."""
    scr = next((v for v in protocol.schedule.visits if v.kind == "screening"), None)
    if scr is None or scr.anchor != DAY0:
        raise ValueError("the protocol has no screening visit anchored on day 0")
    first_day = scr.day - scr.window.before  # e.g. -28
    last_day = scr.day + scr.window.after  # e.g. -1
    return screening_date - timedelta(days=last_day), screening_date - timedelta(days=first_day)


def deviations(plans: Iterable[PlannedVisit]) -> list[ProtocolDeviation]:
    """Every out-of-window visit of one participant, in protocol order."""
    return [d for p in plans if (d := p.deviation) is not None]


# --------------------------------------------------------------------------- unscheduled
_UNS = re.compile(r"^UNS(\d+)$")


@dataclass(frozen=True)
class UnscheduledVisit:
    """A visit outside the plan (allowed at any time). It never moves a planned visit."""

    code: str
    date: date
    reason: str


def unscheduled_visit(
    existing: Iterable[UnscheduledVisit | str], on: date, reason: str
) -> UnscheduledVisit:
    """The next unscheduled visit of a participant: ``UNS1``, ``UNS2``, … after the highest
    code already used (not the count, so a deleted entry's code is never reused and a code
    always means the same visit in the audit trail). A reason is required."""
    reason = reason.strip()
    if not reason:
        raise ValueError("an unscheduled visit needs a reason")
    highest = 0
    for item in existing:
        code = item.code if isinstance(item, UnscheduledVisit) else item
        match = _UNS.match(code)
        if match is None:
            raise ValueError(f"{code!r} is not an unscheduled visit code (UNS1, UNS2, …)")
        highest = max(highest, int(match.group(1)))
    return UnscheduledVisit(code=f"UNS{highest + 1}", date=on, reason=reason)


# --------------------------------------------------------------------------- site lists
@dataclass(frozen=True)
class DueVisit:
    """One line of the site's "due this week" list."""

    participant: str
    visit: PlannedVisit


def due_between(
    plans_by_participant: Mapping[str, Sequence[PlannedVisit]], start: date, end: date
) -> list[DueVisit]:
    """Visits whose window overlaps ``start``..``end`` (inclusive) and that are neither done
    nor marked missed, ordered by window opening, then participant, then protocol order.

    Overlap rather than planned date, because a visit planned next Monday with a ±7 window
    can already be done this week, and one planned last Friday may still be done today.
    """
    if end < start:
        raise ValueError(
            f"the range ends ({end.isoformat()}) before it starts ({start.isoformat()})"
        )
    rows: list[tuple[date, str, int, DueVisit]] = []
    for participant, plans in plans_by_participant.items():
        for order, p in enumerate(plans):
            if p.is_done or p.missed or p.earliest is None or p.latest is None:
                continue
            if p.earliest <= end and p.latest >= start:
                rows.append((p.earliest, participant, order, DueVisit(participant, p)))
    rows.sort(key=lambda r: r[:3])
    return [r[3] for r in rows]


# --------------------------------------------------------------------------- iCalendar
_FOLD_OCTETS = 75
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _escape_text(value: str) -> str:
    """RFC 5545 §3.3.11 TEXT: backslash, semicolon, comma escaped; newlines as ``\\n``."""
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return _CONTROL.sub(" ", value)


def _fold(line: str) -> str:
    """RFC 5545 §3.1: at most 75 octets per line, continuation lines start with one space.

    Counted in UTF-8 octets and split only between characters, so Russian visit names are
    never cut inside a multi-byte sequence."""
    parts: list[str] = []
    current, size = "", 0
    for ch in line:
        n = len(ch.encode("utf-8"))
        if size + n > _FOLD_OCTETS:
            parts.append(current)
            current, size = " ", 1
        current += ch
        size += n
    parts.append(current)
    return "\r\n".join(parts) + "\r\n"


def _ics_date(d: date) -> str:
    return d.strftime("%Y%m%d")


def _uid(participant_label: str, code: str) -> str:
    """Stable per participant and visit, so a re-imported calendar updates its events
    instead of duplicating them; hashed so the label's characters cannot break the UID."""
    digest = hashlib.sha256(participant_label.encode("utf-8")).hexdigest()[:20]
    return f"{code}-{digest}@ildtrial"


def to_icalendar(
    participant_label: str,
    plans: Sequence[PlannedVisit],
    site_timezone: str,
    *,
    language: str = "en",
    now: datetime | None = None,
) -> str:
    """The participant's dated visits as RFC 5545 text, one all-day VEVENT per dated visit.

    Events are all-day (``VALUE=DATE``) because a visit is planned for a day, not an hour;
    such dates are "floating" and read as the site's local dates, which the calendar names
    (``X-WR-TIMEZONE``) and each description states. A done visit is shown on the day it
    happened, a missed one is ``STATUS:CANCELLED``. ``now`` fixes DTSTAMP (for tests).
    """
    try:
        ZoneInfo(site_timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {site_timezone!r}") from exc
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ValueError("now must be timezone-aware (DTSTAMP is in UTC)")
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")

    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//ildtrial//visit schedule//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{_escape_text(participant_label)}",
        f"X-WR-TIMEZONE:{site_timezone}",
    ]
    for p in plans:
        if p.planned is None:
            continue
        day = p.actual or p.planned
        name = p.name.get(language)
        description = [
            f"Visit {p.code}: {name}",
            f"Planned {p.planned.isoformat()} (day {p.study_day}), window {p.window_text()}",
            (
                "Planned from day 0"
                if p.anchor == DAY0
                else f"Planned from the {'actual' if p.anchor_is_actual else 'planned'} date of {p.anchor}"
            ),
        ]
        if p.actual is not None:
            description.append(f"Done on {p.actual.isoformat()}")
            if p.deviation is not None:
                description.append(f"Protocol deviation: {p.deviation.describe()}")
        if p.missed:
            description.append("Marked missed")
        description.append(f"Dates are local to the site ({site_timezone})")
        lines += [
            "BEGIN:VEVENT",
            f"UID:{_uid(participant_label, p.code)}",
            f"DTSTAMP:{stamp}",
            f"DTSTART;VALUE=DATE:{_ics_date(day)}",
            f"DTEND;VALUE=DATE:{_ics_date(day + timedelta(days=1))}",
            f"SUMMARY:{_escape_text(f'{participant_label}: {name} ({p.code})')}",
            f"DESCRIPTION:{_escape_text(chr(10).join(description))}",
            "TRANSP:TRANSPARENT",
            f"STATUS:{'CANCELLED' if p.missed else 'CONFIRMED'}",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "".join(_fold(line) for line in lines)


__all__ = [
    "CLOSED_STATUSES",
    "DueVisit",
    "PlannedVisit",
    "ProtocolDeviation",
    "UnscheduledVisit",
    "VisitStatus",
    "day0_window",
    "deviations",
    "due_between",
    "plan",
    "to_icalendar",
    "unscheduled_visit",
    "visit_status",
]
