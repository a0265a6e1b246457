"""The safety core: seriousness, attribution, adverse-event checks, reporting clocks,
infusion-reaction flags, stopping rules and the adverse-event term dictionary.

Pure Python, no Django import: the eCRF, the API, the CLI, the simulator and the DSMB
reports call the same functions, so a clock or a stopping rule cannot mean one thing on
a page and another in a report. The numbers (24 h, 7/8/15 days, the infusion window, the
stopping-rule threshold) come from the protocol file; only the rules are coded here.

Definitions (``/work/shared/domain/safety.md``; ICH E2A):

* **Seriousness is not severity.** The six ICH E2A criteria are recorded separately;
  an event is serious if any one holds. The CTCAE grade is intensity: a grade 3 event
  may be non-serious and a grade 2 event serious. The one link between them is death:
  CTCAE grade 5 means "death related to the AE", so **grade 5 ⇔ outcome fatal ⇔ the
  death criterion is ticked on this event**. A participant who dies of something else
  while this event is ongoing gets a separate, fatal event; this one keeps its grade
  and an outcome such as "not recovered".
* **Attribution** is judged twice, to the investigational product and to the infusion
  procedure, on the scale not related / unlikely / possible / probable / definite. An
  event is *suspected related* (an adverse reaction in the ICH E2A sense, "a
  reasonable possibility") when the judgement is possible or stronger. Only relatedness
  to the *product* makes a SUSAR; relatedness to the procedure alone does not.
* **Expectedness** is judged against the reference safety information (RSI). A listed
  term is expected only up to the grade the RSI lists; a fatal outcome is unexpected
  unless the RSI lists it (ICH E2A; EU CT-3 §7.2.3.2).

Clocks. Every time is an *aware* datetime; a naive one is refused with a ValueError
naming the argument, because a clock read in the wrong zone is silently hours wrong.

* The site → sponsor clock (24 h) runs in **absolute time**: deadline = awareness +
  24 h computed in UTC, so a daylight-saving change in the site's zone neither shortens
  nor lengthens it (awareness 12:00 CET on the Saturday before the spring change is due
  at 13:00 CEST on Sunday, exactly 24 h later).
* The SUSAR clocks count **calendar days**: the deadline is the same local clock time
  N days later in the site's time zone, so a 7-day clock across a spring change lasts
  167 real hours and across an autumn change 169. Regulators count calendar days (ICH
  E2A; EU Regulation 536/2014 Art. 42; 21 CFR 312.32), and a deadline that drifted off
  the wall-clock time of first knowledge would confuse the people meeting it. If the
  local time does not exist on the due day (it falls in the hour skipped in spring) or
  occurs twice (the hour repeated in autumn), it is resolved as PEP 495 ``fold=0`` does:
  a skipped time moves forward by the length of the gap (02:30 → 03:30 CEST), a repeated
  time takes its first occurrence (the earlier instant). This is the "compatible"
  disambiguation of RFC 5545 and of JavaScript Temporal. In Europe/Moscow (no DST since
  2014) calendar days and 24 h × N coincide.
* The "complete" report of a fatal or life-threatening SUSAR is due 8 calendar days after
  the 7-day deadline, i.e. 15 calendar days after first knowledge (ICH E2A, "within 8
  additional calendar days").
* Boundaries: a report submitted exactly at the deadline is on time; one microsecond
  later it is late.

All comparisons convert to UTC first: Python compares two datetimes that share a tzinfo
object by their wall-clock fields and ignores ``fold``, which would misorder the two
02:30s of an autumn night.

The term dictionary: ``ildtrial/data/ctcae_terms.csv`` is a curated list of CTCAE v5.0
terms relevant to ILD and cell infusions, with system organ class, Russian name and the
MedDRA LLT code CTCAE v5.0 gives for the term. A code is filled only where it was
corroborated by a published CTCAE v5.0 term-to-MedDRA mapping (or by CTCAE v6.0 for a
term unchanged between versions); it is empty otherwise, because a wrong code in a
safety database is worse than a missing one. Note that CTCAE uses the LLT in US spelling
(Dyspnea 10013963), not the PT (Dyspnoea 10013968). The full CTCAE/MedDRA dictionaries
are licensed or large: a site imports the file it holds with :func:`import_dictionary`.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Final, TypeVar
from zoneinfo import ZoneInfo

from ildtrial.core.protocol import LoadedProtocol, Protocol, StoppingRule, Text, load_protocol

__all__ = [
    "CTCAE_GRADES",
    "SUSPECTED_RELATEDNESS",
    "AdverseEventInput",
    "ClockState",
    "ClockStatus",
    "DictionaryImportError",
    "ExpectedReaction",
    "Expectedness",
    "Issue",
    "IssueCode",
    "Outcome",
    "ReferenceSafetyInformation",
    "Relatedness",
    "SaeSummary",
    "Seriousness",
    "SeriousnessCriterion",
    "Severity",
    "StoppingRuleResult",
    "SusarDeadlines",
    "Term",
    "add_calendar_days",
    "clock_status",
    "evaluate_stopping_rules",
    "import_dictionary",
    "infusion_window_match",
    "is_potentially_infusion_related",
    "is_susar",
    "is_suspected_related",
    "load_terms",
    "sponsor_deadline",
    "susar_deadlines",
    "validate_adverse_event",
]

CTCAE_GRADES: Final = (1, 2, 3, 4, 5)
"""CTCAE v5.0 grades: 1 mild, 2 moderate, 3 severe, 4 life-threatening, 5 death related to the AE."""

FATAL_GRADE: Final = 5

_E = TypeVar("_E", bound=StrEnum)


# =========================================================================== helpers
def _unwrap(protocol: Protocol | LoadedProtocol | None) -> Protocol:
    """The protocol object; the packaged NCT02594839 protocol when none is given."""
    if protocol is None:
        return _default_protocol()
    return protocol.protocol if isinstance(protocol, LoadedProtocol) else protocol


@lru_cache(maxsize=1)
def _default_protocol() -> Protocol:
    return load_protocol().protocol


def _require_aware(value: datetime, name: str) -> datetime:
    """``value`` as UTC; ValueError naming ``name`` if it is not an aware datetime.

    Naive datetimes are refused rather than assumed to be UTC or local time: a clock
    read in the wrong zone is wrong by hours without any visible sign.
    """
    if not isinstance(value, datetime):
        raise TypeError(f"{name}: expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: must be timezone-aware (got naive datetime {value.isoformat()})")
    return value.astimezone(UTC)


def _zone(tz: str | tzinfo) -> tzinfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _site_zone(protocol: Protocol, site_tz: str | tzinfo | None) -> tzinfo:
    """The site's zone; defaults to the protocol's site when the trial has exactly one."""
    if site_tz is not None:
        return _zone(site_tz)
    sites = protocol.identity.sites
    if len(sites) != 1:
        raise ValueError(
            f"site_tz: required, the protocol has {len(sites)} sites "
            f"({', '.join(s.code for s in sites)})"
        )
    return ZoneInfo(sites[0].timezone)


# =========================================================================== messages
class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class IssueCode(StrEnum):
    """Machine-readable names of the adverse-event and dictionary rules."""

    REQUIRED = "required"
    TIMEZONE_MISSING = "timezone_missing"
    ONSET_IN_FUTURE = "onset_in_future"
    RESOLUTION_IN_FUTURE = "resolution_in_future"
    RESOLUTION_BEFORE_ONSET = "resolution_before_onset"
    OUTCOME_INVALID = "outcome_invalid"
    OUTCOME_NEEDS_RESOLUTION = "outcome_needs_resolution"
    OUTCOME_EXCLUDES_RESOLUTION = "outcome_excludes_resolution"
    FATAL_WITHOUT_DATE_OF_DEATH = "fatal_without_date_of_death"
    GRADE_OUT_OF_RANGE = "grade_out_of_range"
    FATAL_GRADE_MISMATCH = "fatal_grade_mismatch"
    DEATH_CRITERION_MISMATCH = "death_criterion_mismatch"
    SERIOUS_WITHOUT_CRITERION = "serious_without_criterion"
    CRITERION_WITHOUT_SERIOUS = "criterion_without_serious"
    RELATEDNESS_INVALID = "relatedness_invalid"
    EXPECTEDNESS_INVALID = "expectedness_invalid"
    EXPECTEDNESS_REQUIRED = "expectedness_required"
    AWARENESS_REQUIRED = "awareness_required"
    AWARENESS_BEFORE_ONSET = "awareness_before_onset"
    AWARENESS_IN_FUTURE = "awareness_in_future"
    # dictionary import
    FILE_TYPE = "file_type"
    FILE_TOO_LARGE = "file_too_large"
    FILE_EMPTY = "file_empty"
    FILE_ENCODING = "file_encoding"
    FILE_MALFORMED = "file_malformed"
    COLUMN_MISSING = "column_missing"
    COLUMN_DUPLICATE = "column_duplicate"
    ROW_LENGTH = "row_length"
    CELL_EMPTY = "cell_empty"
    CELL_FORMULA = "cell_formula"
    CODE_FORMAT = "code_format"
    CODE_DUPLICATE = "code_duplicate"
    TERM_DUPLICATE = "term_duplicate"
    TERM_TOO_LONG = "term_too_long"
    TOO_MANY_PROBLEMS = "too_many_problems"


@dataclass(frozen=True)
class Issue:
    """One problem: the field (or file location) it concerns, the rule, and what to do,
    in English and Russian, so the eCRF can show it next to the field in either language."""

    field: str
    code: IssueCode
    en: str
    ru: str
    severity: Severity = Severity.ERROR

    def message(self, language: str = "en") -> str:
        return self.ru if language.startswith("ru") else self.en

    def __str__(self) -> str:
        return f"{self.field}: {self.en}" if self.field else self.en


# =========================================================================== seriousness
class SeriousnessCriterion(StrEnum):
    """The six ICH E2A seriousness criteria."""

    DEATH = "death"
    LIFE_THREATENING = "life_threatening"
    HOSPITALISATION = "hospitalisation"
    DISABILITY = "disability"
    CONGENITAL_ANOMALY = "congenital_anomaly"
    IMPORTANT_MEDICAL_EVENT = "important_medical_event"


_CRITERION_LABELS: Final = {
    SeriousnessCriterion.DEATH: ("results in death", "привело к смерти"),
    SeriousnessCriterion.LIFE_THREATENING: ("life-threatening", "угрожает жизни"),
    SeriousnessCriterion.HOSPITALISATION: (
        "requires or prolongs inpatient hospitalisation",
        "потребовало госпитализации или ее продления",
    ),
    SeriousnessCriterion.DISABILITY: (
        "persistent or significant disability/incapacity",
        "стойкая или значительная нетрудоспособность/инвалидность",
    ),
    SeriousnessCriterion.CONGENITAL_ANOMALY: (
        "congenital anomaly/birth defect",
        "врожденная аномалия/порок развития",
    ),
    SeriousnessCriterion.IMPORTANT_MEDICAL_EVENT: (
        "important medical event",
        "важное с медицинской точки зрения событие",
    ),
}


@dataclass(frozen=True)
class Seriousness:
    """The ICH E2A seriousness criteria, each recorded on its own.

    Kept as six booleans rather than one "serious" flag because regulators ask which
    criteria applied, and because "death" must agree with the outcome and the grade.
    Values must be real booleans: a string such as ``"no"`` is truthy and would make an
    event serious by accident, so it is refused.
    """

    death: bool = False
    life_threatening: bool = False
    hospitalisation: bool = False
    disability: bool = False
    congenital_anomaly: bool = False
    important_medical_event: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, bool):
                raise TypeError(f"seriousness.{f.name}: expected True or False, got {value!r}")

    @classmethod
    def from_criteria(cls, criteria: Iterable[SeriousnessCriterion | str]) -> Seriousness:
        """Build from the list of criteria that apply (unknown names raise ValueError)."""
        chosen = {SeriousnessCriterion(c) for c in criteria}
        return cls(**{c.value: True for c in chosen})

    @property
    def criteria(self) -> tuple[SeriousnessCriterion, ...]:
        """The criteria that apply, in ICH E2A order."""
        return tuple(c for c in SeriousnessCriterion if getattr(self, c.value))

    @property
    def is_serious(self) -> bool:
        """Serious if any criterion applies (ICH E2A); the grade plays no part."""
        return bool(self.criteria)


# =========================================================================== attribution
class Relatedness(StrEnum):
    """Causality scale, weakest to strongest. Judged separately for product and procedure."""

    NOT_RELATED = "not_related"
    UNLIKELY = "unlikely"
    POSSIBLE = "possible"
    PROBABLE = "probable"
    DEFINITE = "definite"


SUSPECTED_RELATEDNESS: Final = frozenset(
    {Relatedness.POSSIBLE, Relatedness.PROBABLE, Relatedness.DEFINITE}
)
"""Judgements that make an event a suspected adverse reaction.

ICH E2A calls an event a reaction when a causal relationship is "at least a reasonable
possibility". On a five-point scale that is ``possible`` and stronger; ``unlikely`` says
the possibility is not reasonable. The protocol's stopping rule counts the same set.
"""

_RELATEDNESS_RU: Final = {
    Relatedness.NOT_RELATED: "не связано",
    Relatedness.UNLIKELY: "маловероятно",
    Relatedness.POSSIBLE: "возможно",
    Relatedness.PROBABLE: "вероятно",
    Relatedness.DEFINITE: "определенно",
}


def is_suspected_related(relatedness: Relatedness | str) -> bool:
    """True for possible, probable or definite (see :data:`SUSPECTED_RELATEDNESS`)."""
    return Relatedness(relatedness) in SUSPECTED_RELATEDNESS


class Expectedness(StrEnum):
    EXPECTED = "expected"
    UNEXPECTED = "unexpected"


@dataclass(frozen=True)
class ExpectedReaction:
    """One reaction listed in the reference safety information, up to ``max_grade``.

    ``max_grade`` defaults to 4: a fatal outcome is unexpected unless the RSI lists it
    (ICH E2A), so "Fever" listed without a grade does not make a fatal fever expected.
    """

    term: str
    max_grade: int = 4
    code: str | None = None

    def __post_init__(self) -> None:
        if self.max_grade not in CTCAE_GRADES:
            raise ValueError(f"max_grade: must be 1-5, got {self.max_grade!r}")


@dataclass(frozen=True)
class ReferenceSafetyInformation:
    """The RSI in force (investigator's brochure section), by version.

    The version goes on every expectedness judgement so that a later RSI update cannot
    silently change how an old SUSAR was classified.
    """

    version: str
    reactions: tuple[ExpectedReaction, ...]

    def expectedness(self, term: str, grade: int, code: str | None = None) -> Expectedness:
        """Expected only if the term (or its code) is listed and ``grade`` is within the listed grade."""
        wanted = term.strip().casefold()
        for r in self.reactions:
            same = (code is not None and r.code is not None and r.code == code) or (
                r.term.strip().casefold() == wanted
            )
            if same and grade <= r.max_grade:
                return Expectedness.EXPECTED
        return Expectedness.UNEXPECTED


def is_susar(
    serious: bool,
    related_to_product: Relatedness | str | bool,
    expected: Expectedness | str | bool | None,
) -> bool:
    """Suspected unexpected serious adverse reaction: serious, suspected related to the
    product (possible or stronger, or ``True``) and not expected.

    ``expected=None`` (not yet assessed) counts as unexpected: a missing assessment must
    start the clock rather than hide a SUSAR. Relatedness to the infusion procedure is
    not an argument on purpose: it does not make a SUSAR.
    """
    if isinstance(related_to_product, bool):
        suspected = related_to_product
    else:
        suspected = is_suspected_related(related_to_product)
    if expected is None:
        is_expected = False
    elif isinstance(expected, bool):
        is_expected = expected
    else:
        is_expected = Expectedness(expected) is Expectedness.EXPECTED
    return bool(serious) and suspected and not is_expected


# =========================================================================== AE validation
class Outcome(StrEnum):
    """Outcome of the event (the CDISC AEOUT values)."""

    RECOVERED = "recovered"
    RECOVERED_WITH_SEQUELAE = "recovered_with_sequelae"
    RECOVERING = "recovering"
    NOT_RECOVERED = "not_recovered"
    FATAL = "fatal"
    UNKNOWN = "unknown"


#: outcomes that say the event has ended, so they need its end date
_ENDED: Final = frozenset({Outcome.RECOVERED, Outcome.RECOVERED_WITH_SEQUELAE})
#: outcomes that say the event has not ended (or that nobody knows), so no end date
_ONGOING: Final = frozenset({Outcome.RECOVERING, Outcome.NOT_RECOVERED, Outcome.UNKNOWN})


@dataclass(frozen=True)
class AdverseEventInput:
    """An adverse event as entered, before it is trusted.

    Coded values (grade, outcome, relatedness, expectedness) are accepted as plain
    strings or numbers because they arrive from forms and files; checking them is the
    job of :func:`validate_adverse_event`. Dates may be dates or aware datetimes (onset
    is often known to the day only). ``resolution`` is the end date; for a fatal
    outcome it is the date of death.
    """

    term: str | None
    onset: date | datetime | None
    grade: int | None
    serious: bool | None
    outcome: Outcome | str | None
    relatedness_product: Relatedness | str | None
    relatedness_procedure: Relatedness | str | None
    seriousness: Seriousness = Seriousness()
    resolution: date | datetime | None = None
    expectedness: Expectedness | str | None = None
    awareness: datetime | None = None


def _day(value: date | datetime, tz: tzinfo) -> date:
    """The calendar day of ``value`` at the site (a date is already a site date)."""
    return value.astimezone(tz).date() if isinstance(value, datetime) else value


def _before(a: date | datetime, b: date | datetime, tz: tzinfo) -> bool:
    """``a`` strictly before ``b``: to the instant if both have times, else to the day."""
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a.astimezone(UTC) < b.astimezone(UTC)
    return _day(a, tz) < _day(b, tz)


def _is_naive(value: object) -> bool:
    return isinstance(value, datetime) and (value.tzinfo is None or value.utcoffset() is None)


def _enum_or_none(kind: type[_E], value: object) -> _E | None:
    try:
        return kind(value)
    except ValueError:
        return None


def validate_adverse_event(
    ae: AdverseEventInput, now: datetime, *, site_tz: str | tzinfo | None = None
) -> list[Issue]:
    """Every problem with ``ae``, each naming its field, in English and Russian.

    ``now`` must be aware. Date-only values are compared with today's date *at the site*
    (``site_tz``; by default the zone of ``now``), so pass the site zone when ``now`` is
    UTC: otherwise an event entered at 01:00 in Moscow would look a day in the future.
    The rules: required fields; no naive datetimes; onset, resolution and awareness not
    in the future; resolution not before onset and awareness not before onset; outcome
    consistent with the end date; grade 1-5; grade 5 ⇔ outcome fatal ⇔ death criterion;
    the ``serious`` flag agrees with the criteria; relatedness and expectedness from
    their scales; awareness and (when suspected related to the product) expectedness
    required for a serious event, since they start and decide the reporting clocks.
    """
    now_utc = _require_aware(now, "now")
    tz = _zone(site_tz) if site_tz is not None else now.tzinfo
    assert tz is not None
    today = now_utc.astimezone(tz).date()
    issues: list[Issue] = []

    def add(
        field: str, code: IssueCode, en: str, ru: str, severity: Severity = Severity.ERROR
    ) -> None:
        issues.append(Issue(field, code, en, ru, severity))

    def required(field: str) -> None:
        add(field, IssueCode.REQUIRED, "is required", "обязательное поле")

    def in_future(value: date | datetime) -> bool:
        if isinstance(value, datetime):
            return value.astimezone(UTC) > now_utc
        return value > today

    # ---------------------------------------------------------------- term
    if ae.term is None or not str(ae.term).strip():
        required("term")

    # ---------------------------------------------------------------- dates
    dates: dict[str, date | datetime | None] = {
        "onset": ae.onset,
        "resolution": ae.resolution,
        "awareness": ae.awareness,
    }
    for name, value in dates.items():
        if _is_naive(value):
            add(
                name,
                IssueCode.TIMEZONE_MISSING,
                "the date-time has no time zone; enter it with the site's time zone",
                "дата и время указаны без часового пояса; укажите их с часовым поясом центра",
            )
            dates[name] = None
    onset, resolution, awareness = dates["onset"], dates["resolution"], dates["awareness"]

    if ae.onset is None:
        required("onset")
    elif onset is not None and in_future(onset):
        add(
            "onset",
            IssueCode.ONSET_IN_FUTURE,
            "must not be in the future",
            "не может быть в будущем",
        )
    if resolution is not None:
        if in_future(resolution):
            add(
                "resolution",
                IssueCode.RESOLUTION_IN_FUTURE,
                "must not be in the future",
                "не может быть в будущем",
            )
        if onset is not None and _before(resolution, onset, tz):
            add(
                "resolution",
                IssueCode.RESOLUTION_BEFORE_ONSET,
                "must not be before the onset",
                "не может быть раньше даты начала",
            )

    # ---------------------------------------------------------------- outcome
    outcome = _enum_or_none(Outcome, ae.outcome) if ae.outcome is not None else None
    if ae.outcome is None:
        required("outcome")
    elif outcome is None:
        add(
            "outcome",
            IssueCode.OUTCOME_INVALID,
            f"{ae.outcome!r} is not an outcome; use one of {', '.join(o.value for o in Outcome)}",
            f"{ae.outcome!r} не является исходом; допустимо: {', '.join(o.value for o in Outcome)}",
        )
    elif outcome in _ENDED and ae.resolution is None:
        add(
            "resolution",
            IssueCode.OUTCOME_NEEDS_RESOLUTION,
            f"is required when the outcome is {outcome.value}",
            f"обязательна при исходе {outcome.value}",
        )
    elif outcome in _ONGOING and ae.resolution is not None:
        add(
            "resolution",
            IssueCode.OUTCOME_EXCLUDES_RESOLUTION,
            f"must be empty when the outcome is {outcome.value} (the event has not ended)",
            f"должна быть пустой при исходе {outcome.value} (явление не завершилось)",
        )
    elif outcome is Outcome.FATAL and ae.resolution is None:
        add(
            "resolution",
            IssueCode.FATAL_WITHOUT_DATE_OF_DEATH,
            "enter the date of death as the end date as soon as it is known",
            "укажите дату смерти как дату окончания, как только она станет известна",
            Severity.WARNING,
        )

    # ---------------------------------------------------------------- grade
    grade: int | None = None
    if ae.grade is None:
        required("grade")
    elif (
        isinstance(ae.grade, bool) or not isinstance(ae.grade, int) or ae.grade not in CTCAE_GRADES
    ):
        add(
            "grade",
            IssueCode.GRADE_OUT_OF_RANGE,
            f"must be a CTCAE grade 1-5, got {ae.grade!r}",
            f"должна быть степенью CTCAE от 1 до 5, указано {ae.grade!r}",
        )
    else:
        grade = ae.grade

    fatal = outcome is Outcome.FATAL
    if grade is not None and outcome is not None and (grade == FATAL_GRADE) != fatal:
        if fatal:
            en = f"must be 5 when the outcome is fatal (CTCAE grade 5 = death), got {grade}"
            ru = f"должна быть 5 при смертельном исходе (степень 5 по CTCAE = смерть), указано {grade}"
        else:
            en = f"grade 5 means death related to the event; the outcome is {outcome.value}"
            ru = f"степень 5 означает смерть, связанную с явлением; указан исход {outcome.value}"
        add("grade", IssueCode.FATAL_GRADE_MISMATCH, en, ru)
    if outcome is not None and ae.seriousness.death != fatal:
        if fatal:
            en = "must be ticked: the outcome is fatal"
            ru = "должен быть отмечен: исход смертельный"
        else:
            en = "is ticked but the outcome is not fatal; a death from another cause is a separate fatal event"
            ru = (
                "отмечен, но исход не смертельный; смерть по другой причине "
                "регистрируется как отдельное явление со смертельным исходом"
            )
        add("seriousness.death", IssueCode.DEATH_CRITERION_MISMATCH, en, ru)

    # ---------------------------------------------------------------- seriousness
    criteria = ae.seriousness.is_serious
    if ae.serious is None:
        required("serious")
    elif ae.serious and not criteria:
        add(
            "seriousness",
            IssueCode.SERIOUS_WITHOUT_CRITERION,
            "the event is marked serious: tick at least one seriousness criterion",
            "явление отмечено как серьезное: отметьте хотя бы один критерий серьезности",
        )
    elif not ae.serious and criteria:
        names_en = ", ".join(_CRITERION_LABELS[c][0] for c in ae.seriousness.criteria)
        names_ru = ", ".join(_CRITERION_LABELS[c][1] for c in ae.seriousness.criteria)
        add(
            "serious",
            IssueCode.CRITERION_WITHOUT_SERIOUS,
            f"must be yes: seriousness criteria are ticked ({names_en})",
            f"должно быть «да»: отмечены критерии серьезности ({names_ru})",
        )

    # ---------------------------------------------------------------- attribution
    related: dict[str, Relatedness | None] = {}
    scale = ", ".join(r.value for r in Relatedness)
    for name in ("relatedness_product", "relatedness_procedure"):
        raw = getattr(ae, name)
        related[name] = None
        if raw is None:
            required(name)
        elif (value := _enum_or_none(Relatedness, raw)) is None:
            add(
                name,
                IssueCode.RELATEDNESS_INVALID,
                f"{raw!r} is not on the relatedness scale ({scale})",
                f"{raw!r} отсутствует в шкале связи ({scale})",
            )
        else:
            related[name] = value

    expectedness = None
    if ae.expectedness is not None:
        expectedness = _enum_or_none(Expectedness, ae.expectedness)
        if expectedness is None:
            add(
                "expectedness",
                IssueCode.EXPECTEDNESS_INVALID,
                f"{ae.expectedness!r} is not expected or unexpected",
                f"{ae.expectedness!r}: допустимо только expected или unexpected",
            )
    product = related["relatedness_product"]
    if ae.serious and product in SUSPECTED_RELATEDNESS and ae.expectedness is None:
        add(
            "expectedness",
            IssueCode.EXPECTEDNESS_REQUIRED,
            "is required for a serious event suspected to be related to the product "
            "(it decides whether the event is a SUSAR)",
            "обязательна для серьезного явления с подозреваемой связью с препаратом "
            "(определяет, является ли явление SUSAR)",
        )

    # ---------------------------------------------------------------- awareness
    if ae.serious and ae.awareness is None:
        add(
            "awareness",
            IssueCode.AWARENESS_REQUIRED,
            "is required for a serious event: the 24-hour reporting clock starts there",
            "обязательна для серьезного явления: с нее начинается 24-часовой срок сообщения",
        )
    if awareness is not None:
        if in_future(awareness):
            add(
                "awareness",
                IssueCode.AWARENESS_IN_FUTURE,
                "must not be in the future",
                "не может быть в будущем",
            )
        if onset is not None and _before(awareness, onset, tz):
            add(
                "awareness",
                IssueCode.AWARENESS_BEFORE_ONSET,
                "must not be before the onset",
                "не может быть раньше даты начала",
            )
    return issues


# =========================================================================== clocks
def sponsor_deadline(
    awareness: datetime, protocol: Protocol | LoadedProtocol | None = None
) -> datetime:
    """When the site's SAE report is due at the sponsor: awareness + ``sponsor_report_hours``.

    Absolute time, in UTC (show it in the site zone with ``.astimezone``): 24 h are 24 real
    hours whatever the clocks do in between. Naive ``awareness`` raises ValueError.
    """
    start = _require_aware(awareness, "awareness")
    return start + timedelta(hours=_unwrap(protocol).safety.sponsor_report_hours)


def add_calendar_days(moment: datetime, days: int, tz: str | tzinfo) -> datetime:
    """The same local clock time ``days`` days after ``moment`` in ``tz``, as UTC.

    A local time skipped by a spring change moves forward by the gap; a time repeated in
    autumn takes its first occurrence (PEP 495 ``fold=0``; see the module docstring).
    """
    zone = _zone(tz)
    local = _require_aware(moment, "moment").astimezone(zone)
    wall = local.replace(tzinfo=None) + timedelta(days=days)
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


@dataclass(frozen=True)
class SusarDeadlines:
    """The expedited-reporting deadlines of one SUSAR, in UTC.

    ``complete`` is set for fatal or life-threatening SUSARs only (the follow-up report
    due 8 calendar days after the 7-day deadline).
    """

    first_knowledge: datetime
    fatal_or_life_threatening: bool
    initial: datetime
    initial_days: int
    complete: datetime | None
    complete_days: int | None
    site_tz: str


def susar_deadlines(
    first_knowledge: datetime,
    fatal_or_life_threatening: bool,
    *,
    site_tz: str | tzinfo | None = None,
    protocol: Protocol | LoadedProtocol | None = None,
) -> SusarDeadlines:
    """SUSAR deadlines in calendar days of the site's zone: 7 (+8 to complete) or 15.

    ``site_tz`` defaults to the protocol's site when the trial has one site (Moscow
    here); pass it explicitly for a multi-site trial. Naive ``first_knowledge`` raises.
    """
    p = _unwrap(protocol)
    start = _require_aware(first_knowledge, "first_knowledge")
    zone = _site_zone(p, site_tz)
    s = p.safety
    if fatal_or_life_threatening:
        initial_days = s.susar_fatal_or_life_threatening_days
        complete_days: int | None = initial_days + s.susar_fatal_or_life_threatening_complete_days
    else:
        initial_days, complete_days = s.susar_other_days, None
    return SusarDeadlines(
        first_knowledge=start,
        fatal_or_life_threatening=fatal_or_life_threatening,
        initial=add_calendar_days(start, initial_days, zone),
        initial_days=initial_days,
        # counted from first knowledge, not from the initial deadline, so a deadline
        # moved by a DST gap does not carry its shift into the next one
        complete=None if complete_days is None else add_calendar_days(start, complete_days, zone),
        complete_days=complete_days,
        site_tz=str(zone),
    )


class ClockState(StrEnum):
    ON_TIME = "on_time"  # submitted at or before the deadline
    DUE = "due"  # not submitted, deadline not passed
    OVERDUE = "overdue"  # not submitted, deadline passed
    SUBMITTED_LATE = "submitted_late"  # submitted after the deadline


@dataclass(frozen=True)
class ClockStatus:
    """Where a reporting clock stands. ``remaining`` is set when due (zero exactly at the
    deadline); ``late_by`` when overdue or submitted late."""

    state: ClockState
    deadline: datetime
    remaining: timedelta | None = None
    late_by: timedelta | None = None


def clock_status(deadline: datetime, submitted_at: datetime | None, now: datetime) -> ClockStatus:
    """The state of a clock. Submitted exactly at the deadline is on time; any later is late.

    Everything is compared in UTC (see the module docstring); naive values raise.
    """
    due = _require_aware(deadline, "deadline")
    current = _require_aware(now, "now")
    if submitted_at is not None:
        sent = _require_aware(submitted_at, "submitted_at")
        if sent <= due:
            return ClockStatus(ClockState.ON_TIME, due)
        return ClockStatus(ClockState.SUBMITTED_LATE, due, late_by=sent - due)
    if current <= due:
        return ClockStatus(ClockState.DUE, due, remaining=due - current)
    return ClockStatus(ClockState.OVERDUE, due, late_by=current - due)


# =========================================================================== infusion window
def infusion_window_match(
    onset: datetime,
    infusion_starts: Iterable[datetime],
    *,
    window_hours: int | None = None,
    protocol: Protocol | LoadedProtocol | None = None,
) -> datetime | None:
    """The latest infusion start whose reaction window contains ``onset``, else None.

    The window is ``[start, start + reaction_window_hours]``, both ends included: an onset
    at the very start (during the infusion) or exactly 24 h later is flagged, since the
    flag only asks the investigator to look, and a missed reaction costs more than a
    needless look. An onset before every infusion is not related. Measured in absolute
    time, so a DST change does not stretch the window. Needs an onset *time*: a date-only
    onset cannot be placed in a 24 h window and should be flagged by the caller.
    """
    hours = (
        window_hours
        if window_hours is not None
        else _unwrap(protocol).regimen.reaction_window_hours
    )
    window = timedelta(hours=hours)
    at = _require_aware(onset, "onset")
    best: datetime | None = None
    for i, start in enumerate(infusion_starts):
        s = _require_aware(start, f"infusion_starts[{i}]")
        if s <= at <= s + window and (best is None or s > best):
            best = s
    return best


def is_potentially_infusion_related(
    onset: datetime,
    infusion_starts: Iterable[datetime],
    *,
    window_hours: int | None = None,
    protocol: Protocol | LoadedProtocol | None = None,
) -> bool:
    """True when the onset lies in the reaction window of any infusion (see :func:`infusion_window_match`)."""
    match = infusion_window_match(
        onset, infusion_starts, window_hours=window_hours, protocol=protocol
    )
    return match is not None


# =========================================================================== stopping rules
@dataclass(frozen=True)
class SaeSummary:
    """One serious adverse event as the stopping rules see it: one row per SAE, not per
    report, so follow-up reports of the same event are not counted twice."""

    sae_id: str
    relatedness_product: Relatedness | str
    subject_id: str | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "relatedness_product", Relatedness(self.relatedness_product))
        except ValueError:
            raise ValueError(
                f"SAE {self.sae_id}: relatedness_product {self.relatedness_product!r} is not on the scale "
                f"({', '.join(r.value for r in Relatedness)})"
            ) from None


@dataclass(frozen=True)
class StoppingRuleResult:
    """The verdict of one stopping rule: triggered or not, the count, and which SAEs counted."""

    rule_id: str
    description: Text
    triggered: bool
    count: int
    threshold: int
    relatedness_counted: tuple[Relatedness, ...]
    counted_sae_ids: tuple[str, ...]

    def message(self, language: str = "en") -> str:
        ids = ", ".join(self.counted_sae_ids) or "-"
        if language.startswith("ru"):
            state = "СРАБОТАЛО" if self.triggered else "не сработало"
            return (
                f"{self.rule_id}: {state} — {self.count} из {self.threshold} СНЯ с учитываемой "
                f"связью с препаратом ({', '.join(_RELATEDNESS_RU[r] for r in self.relatedness_counted)}): {ids}"
            )
        state = "TRIGGERED" if self.triggered else "not triggered"
        return (
            f"{self.rule_id}: {state} — {self.count} of {self.threshold} SAEs with counted "
            f"relatedness to the product ({', '.join(self.relatedness_counted)}): {ids}"
        )


def _evaluate_rule(rule: StoppingRule, saes: Sequence[SaeSummary]) -> StoppingRuleResult:
    counted = tuple(Relatedness(r) for r in rule.relatedness_counted)
    ids = tuple(s.sae_id for s in saes if s.relatedness_product in counted)
    return StoppingRuleResult(
        rule_id=rule.id,
        description=rule.description,
        triggered=len(ids) >= rule.related_sae_count,
        count=len(ids),
        threshold=rule.related_sae_count,
        relatedness_counted=counted,
        counted_sae_ids=ids,
    )


def evaluate_stopping_rules(
    protocol: Protocol | LoadedProtocol, saes: Sequence[SaeSummary]
) -> list[StoppingRuleResult]:
    """Evaluate each stopping rule of the protocol against the trial's SAEs.

    A rule triggers when the number of SAEs whose relatedness to the product is in its
    ``relatedness_counted`` reaches ``related_sae_count`` (2 related SAEs → halt). The
    same SAE id twice raises ValueError: double counting would halt dosing falsely.
    """
    p = _unwrap(protocol)
    duplicates = sorted(k for k, n in Counter(s.sae_id for s in saes).items() if n > 1)
    if duplicates:
        raise ValueError(f"saes: SAE ids listed more than once: {', '.join(duplicates)}")
    return [_evaluate_rule(rule, saes) for rule in p.safety.stopping_rules]


# =========================================================================== term dictionary
TERMS_FILE: Final = "ctcae_terms.csv"
MAX_REPORTED_PROBLEMS: Final = 20
MAX_TERM_LENGTH: Final = 250
_CODE_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
#: leading characters that make a spreadsheet treat a cell as a formula (CSV injection)
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_TERM_COLUMNS: Final = ("term",)
_CODE_COLUMNS: Final = ("code", "meddra_code")


@dataclass(frozen=True)
class Term:
    """One dictionary term: name, code (None if not known), system organ class, Russian name."""

    term: str
    code: str | None
    soc: str | None = None
    term_ru: str | None = None


class DictionaryImportError(ValueError):
    """A dictionary file was refused; ``issues`` says every reason found (up to a limit)."""

    def __init__(self, filename: str, issues: list[Issue]):
        self.filename = filename
        self.issues = issues
        lines = "\n".join(f"  - {i}" for i in issues)
        super().__init__(
            f"dictionary file {filename} was refused ({len(issues)} problem(s)):\n{lines}"
        )


def _file_issue(code: IssueCode, en: str, ru: str, where: str = "file") -> Issue:
    return Issue(where, code, en, ru)


def _normalise_header(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().casefold())


def _looks_like_formula(cell: str) -> bool:
    return cell.startswith(("\t", "\r")) or cell.lstrip(" ").startswith(_FORMULA_START)


def _parse_terms(text: str, filename: str, *, require_codes: bool) -> list[Term]:
    """Parse dictionary CSV text; raise DictionaryImportError listing the problems."""
    problems: list[Issue] = []
    overflow = 0

    def problem(issue: Issue) -> None:
        nonlocal overflow
        if len(problems) < MAX_REPORTED_PROBLEMS:
            problems.append(issue)
        else:
            overflow += 1

    def refuse() -> DictionaryImportError:
        found = list(problems)
        if overflow:
            found.append(
                _file_issue(
                    IssueCode.TOO_MANY_PROBLEMS,
                    f"and {overflow} more problem(s) not listed",
                    f"и еще {overflow} проблем(ы), не показанных здесь",
                )
            )
        return DictionaryImportError(filename, found)

    first_line = text.split("\n", 1)[0]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            first_line, delimiters=",;\t"
        )
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise DictionaryImportError(
            filename,
            [
                _file_issue(
                    IssueCode.FILE_MALFORMED,
                    f"is not valid CSV near line {reader.line_num}: {exc}",
                    f"не является корректным CSV около строки {reader.line_num}: {exc}",
                )
            ],
        ) from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise DictionaryImportError(
            filename,
            [
                _file_issue(
                    IssueCode.FILE_EMPTY,
                    "has no header and no rows",
                    "не содержит заголовка и строк",
                )
            ],
        )

    header = [_normalise_header(h) for h in rows[0]]
    for col, raw in enumerate(rows[0], start=1):
        if _looks_like_formula(raw):
            problem(
                _file_issue(
                    IssueCode.CELL_FORMULA,
                    f"header cell {raw!r} looks like a spreadsheet formula",
                    f"ячейка заголовка {raw!r} похожа на формулу электронной таблицы",
                    f"row 1, column {col}",
                )
            )
    for name, n in Counter(h for h in header if h).items():
        if n > 1:
            problem(
                _file_issue(
                    IssueCode.COLUMN_DUPLICATE,
                    f"column {name!r} appears {n} times in the header",
                    f"столбец {name!r} встречается в заголовке {n} раз(а)",
                    "header",
                )
            )
    term_col = next((header.index(c) for c in _TERM_COLUMNS if c in header), None)
    code_col = next((header.index(c) for c in _CODE_COLUMNS if c in header), None)
    missing = [
        label
        for label, col in (("term", term_col), ("code (or meddra_code)", code_col))
        if col is None
    ]
    if missing:
        problem(
            _file_issue(
                IssueCode.COLUMN_MISSING,
                f"the header lacks the column(s) {', '.join(missing)}; found: {', '.join(rows[0])}",
                f"в заголовке нет столбца(ов) {', '.join(missing)}; найдены: {', '.join(rows[0])}",
                "header",
            )
        )
        raise refuse()
    assert term_col is not None and code_col is not None
    soc_col = header.index("soc") if "soc" in header else None
    ru_col = header.index("term_ru") if "term_ru" in header else None

    terms: list[Term] = []
    seen_codes: dict[str, int] = {}
    seen_terms: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        where = f"row {line}"
        if len(row) > len(header):
            problem(
                _file_issue(
                    IssueCode.ROW_LENGTH,
                    f"has {len(row)} cells but the header has {len(header)} columns (check quoting)",
                    f"содержит {len(row)} ячеек, а в заголовке {len(header)} столбцов (проверьте кавычки)",
                    where,
                )
            )
            continue
        cells = [c.strip() for c in row] + [""] * (len(header) - len(row))
        bad = False
        for col, raw in enumerate(row, start=1):
            if _looks_like_formula(raw):
                problem(
                    _file_issue(
                        IssueCode.CELL_FORMULA,
                        f"cell {raw!r} looks like a spreadsheet formula and is refused",
                        f"ячейка {raw!r} похожа на формулу электронной таблицы и не принимается",
                        f"{where}, column {col}",
                    )
                )
                bad = True
        if bad:
            continue
        name, code = cells[term_col], cells[code_col]
        if not name:
            problem(
                _file_issue(
                    IssueCode.CELL_EMPTY, "the term is empty", "термин не указан", f"{where}, term"
                )
            )
            continue
        if len(name) > MAX_TERM_LENGTH:
            problem(
                _file_issue(
                    IssueCode.TERM_TOO_LONG,
                    f"the term is longer than {MAX_TERM_LENGTH} characters",
                    f"термин длиннее {MAX_TERM_LENGTH} символов",
                    f"{where}, term",
                )
            )
            continue
        if not code:
            if require_codes:
                problem(
                    _file_issue(
                        IssueCode.CELL_EMPTY, "the code is empty", "код не указан", f"{where}, code"
                    )
                )
                continue
        elif not _CODE_RE.fullmatch(code):
            problem(
                _file_issue(
                    IssueCode.CODE_FORMAT,
                    f"code {code!r} is not a dictionary code (letters, digits, '.', '_' or '-', at most 32)",
                    f"код {code!r} не является кодом словаря (буквы, цифры, '.', '_' или '-', не более 32)",
                    f"{where}, code",
                )
            )
            continue
        if code:
            if code in seen_codes:
                problem(
                    _file_issue(
                        IssueCode.CODE_DUPLICATE,
                        f"code {code} is used again (first in row {seen_codes[code]})",
                        f"код {code} повторяется (впервые в строке {seen_codes[code]})",
                        f"{where}, code",
                    )
                )
                continue
            seen_codes[code] = line
        key = name.casefold()
        if key in seen_terms:
            problem(
                _file_issue(
                    IssueCode.TERM_DUPLICATE,
                    f"term {name!r} is listed again (first in row {seen_terms[key]})",
                    f"термин {name!r} повторяется (впервые в строке {seen_terms[key]})",
                    f"{where}, term",
                )
            )
            continue
        seen_terms[key] = line
        terms.append(
            Term(
                term=name,
                code=code or None,
                soc=(cells[soc_col] or None) if soc_col is not None else None,
                term_ru=(cells[ru_col] or None) if ru_col is not None else None,
            )
        )
    if problems or overflow:
        raise refuse()
    if not terms:
        raise DictionaryImportError(
            filename,
            [
                _file_issue(
                    IssueCode.FILE_EMPTY,
                    "has a header but no terms",
                    "содержит заголовок, но не содержит терминов",
                )
            ],
        )
    return terms


def load_terms(path: str | Path | None = None) -> list[Term]:
    """The curated CTCAE v5.0 term list shipped with the platform (or the file at ``path``).

    Goes through the same checks as an imported file, except that empty codes are
    allowed (see the module docstring on why some codes are left empty).
    """
    if path is None:
        text = resources.files("ildtrial.data").joinpath(TERMS_FILE).read_text(encoding="utf-8-sig")
        source = f"ildtrial/data/{TERMS_FILE}"
    else:
        text = Path(path).read_text(encoding="utf-8-sig")
        source = str(path)
    return _parse_terms(text, source, require_codes=False)


def import_dictionary(file_bytes: bytes, filename: str, max_bytes: int = 5_000_000) -> list[Term]:
    """A site's own dictionary file (full CTCAE or MedDRA extract) as terms, or a refusal.

    Accepted: a ``.csv`` file of at most ``max_bytes``, UTF-8 (a BOM is allowed; save from
    Excel as "CSV UTF-8"), comma-, semicolon- or tab-separated, with a header naming at
    least ``term`` and ``code`` (or ``meddra_code``); ``soc`` and ``term_ru`` are used when
    present, other columns ignored. Refused, with every reason found: another file type
    or binary content, over-size, other encodings, missing or repeated columns, empty or
    malformed codes, duplicate codes or terms, and cells that a spreadsheet would run as
    a formula (``=``, ``+``, ``-``, ``@`` ...), because the terms are exported again later
    and must not carry a CSV-injection payload into someone's Excel.
    """
    name = Path(filename or "").name or "<unnamed>"

    def refuse(code: IssueCode, en: str, ru: str) -> DictionaryImportError:
        return DictionaryImportError(name, [_file_issue(code, en, ru)])

    if not name.lower().endswith(".csv"):
        raise refuse(
            IssueCode.FILE_TYPE,
            f"{name!r} is not a .csv file; export the dictionary as CSV (UTF-8)",
            f"{name!r} не является файлом .csv; сохраните словарь в формате CSV (UTF-8)",
        )
    if len(file_bytes) > max_bytes:
        raise refuse(
            IssueCode.FILE_TOO_LARGE,
            f"is {len(file_bytes):,} bytes; the limit is {max_bytes:,}",
            f"имеет размер {len(file_bytes):,} байт; допустимо не более {max_bytes:,}",
        )
    if not file_bytes.strip():
        raise refuse(IssueCode.FILE_EMPTY, "is empty", "пуст")
    if file_bytes.startswith(b"PK\x03\x04") or b"\x00" in file_bytes:
        raise refuse(
            IssueCode.FILE_TYPE,
            "is not a text CSV file (it looks like a spreadsheet or binary file); save it as CSV UTF-8",
            "не является текстовым файлом CSV (похоже на электронную таблицу или двоичный файл); "
            "сохраните его как CSV UTF-8",
        )
    try:
        text = file_bytes.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise refuse(
            IssueCode.FILE_ENCODING,
            f"is not UTF-8 (invalid byte at position {exc.start}); save it as CSV UTF-8",
            f"не в кодировке UTF-8 (недопустимый байт в позиции {exc.start}); сохраните его как CSV UTF-8",
        ) from None
    return _parse_terms(text, name, require_codes=True)
