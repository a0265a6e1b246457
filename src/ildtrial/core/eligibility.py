"""The eligibility engine: a candidate's screening data against the protocol's criteria.

The protocol file decides which criteria exist; this module only knows how to evaluate
each *kind* of rule (``age_range``, ``diagnosis``, ``relative_decline``, ...), so an
amendment that adds, drops or re-parameterises a criterion needs no code change.

Every criterion yields one of three outcomes:

* ``met``: the condition holds. For an exclusion criterion this means the exclusion
  APPLIES (the candidate is excluded); ``passes`` on the result says it plainly.
* ``not_met``: the condition does not hold.
* ``unknown``: the data needed to decide are missing or unusable. Unknown is never
  treated as passing: a candidate with any unknown criterion cannot be ``eligible``.

Each outcome carries the evidence an investigator needs to confirm it by signing: the
values and dates used, the reference equation, the computed numbers (structured, for the
eCRF and the audit trail) and one sentence in English or Russian.

Input is a :class:`CandidateData`, built from a plain dict (the JSON the CLI reads, or
what a screening view gathers) by :meth:`CandidateData.from_dict`, which types every
value by the protocol's form definitions and refuses malformed input with a message that
names the field and the rule. ``docs/eligibility-input.md`` documents the format.

Threshold comparisons avoid binary floating-point noise, because boundary cases decide
eligibility: relative declines and the FEV1/FVC ratio are computed in decimal arithmetic
from the values as entered (a fall from 3.0 L to 2.7 L is exactly 10 %, which is not
"more than 10 %"), and % predicted is rounded to 6 decimals before it is compared. A
displayed number is shown with as many decimals as needed for it to stand on the same
side of the threshold as the exact value, so the sentence never contradicts the outcome.

No Django import: the web app, the CLI and the simulator call the same function.
"""

from __future__ import annotations

import calendar
import math
import numbers
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Any, Final, Literal

from ildtrial.core import lungfunction as lf
from ildtrial.core.protocol import (
    AgeRangeRule,
    AnswerRule,
    ConsentRule,
    Criterion,
    DiagnosisExcludedRule,
    DiagnosisRule,
    EventWithinRule,
    FormField,
    LoadedProtocol,
    PercentPredictedRule,
    Protocol,
    RatioBelowRule,
    RelativeDeclineRule,
    WashoutRule,
    load_protocol,
)

__all__ = [
    "DAYS_PER_MONTH",
    "LANGUAGES",
    "META_KEYS",
    "CandidateData",
    "CandidateDataError",
    "Consent",
    "CriterionResult",
    "EligibilityVerdict",
    "FormRecord",
    "add_months",
    "evaluate",
]

Outcome = Literal["met", "not_met", "unknown"]
Status = Literal["eligible", "not_eligible", "incomplete"]
FieldValue = date | datetime | time | bool | int | float | str

DAYS_PER_MONTH: Final = 30.4375
"""Mean Gregorian month in days; converts an interval in days to months for look-back windows."""

PERCENT_COMPARE_DECIMALS: Final = 6
"""% predicted is rounded to this many decimals before comparison: removes float noise only."""

LANGUAGES: Final = ("en", "ru")
"""Languages of the evidence sentences."""

META_KEYS: Final = (
    "candidate_id",
    "screening_date",
    "consent",
    "enrolment_date",
    "randomization_date",
)
"""Top-level keys of the input dict that are not form codes."""

_CONSENT_KEYS: Final = ("signed", "first_procedure")
_DLCO_FACTOR: Final = Decimal(str(lf.ML_MIN_MMHG_PER_MMOL_MIN_KPA))
_DLCO_BASE_UNIT: Final = lf.DLCO_UNITS[0]

# The screening forms the lung-function rules read. The rules of those kinds do not name
# their forms in the protocol file, so the form and field codes are fixed here.
_DM, _DX, _SPIRO, _DLCO, _PRIOR, _PROHIB = "DM", "DX", "SPIRO", "DLCO", "PRIORLF", "PROHIB"


# =========================================================================== messages
@dataclass(frozen=True)
class _Msg:
    """A sentence in both languages; rendered in one of them at the end."""

    en: str
    ru: str

    def get(self, language: str) -> str:
        return self.ru if language == "ru" else self.en


def _msg(en: str, ru: str, **values: object) -> _Msg:
    """Format the two templates; ``_Msg`` arguments are rendered in the matching language."""

    def render(template: str, language: str) -> str:
        return template.format(
            **{k: v.get(language) if isinstance(v, _Msg) else v for k, v in values.items()}
        )

    return _Msg(render(en, "en"), render(ru, "ru"))


def _join(parts: Iterable[_Msg], sep: str = "; ") -> _Msg:
    items = list(parts)
    return _Msg(sep.join(p.en for p in items), sep.join(p.ru for p in items))


def _text(s: str) -> _Msg:
    """The same text in both languages (codes, dates, names)."""
    return _Msg(s, s)


def _num(x: float | Decimal, decimals: int) -> _Msg:
    """A number with fixed decimals; Russian uses the decimal comma."""
    s = f"{x:.{decimals}f}"
    if s.startswith("-") and not s.strip("-0.,"):
        s = s[1:]  # no "-0.0"
    return _Msg(s, s.replace(".", ","))


def _num_vs(x: float | Decimal, threshold: float | Decimal, decimals: int = 1) -> _Msg:
    """``x`` with at least ``decimals`` decimals, and more if needed for the shown number
    to lie on the same side of ``threshold`` as ``x`` (39.96 is not shown as "40.0")."""
    exact = x if isinstance(x, Decimal) else Decimal(repr(float(x)))
    bound = threshold if isinstance(threshold, Decimal) else Decimal(repr(float(threshold)))
    want = (exact > bound) - (exact < bound)
    for d in range(decimals, 10):
        shown = exact.quantize(Decimal(1).scaleb(-d), rounding=ROUND_HALF_UP)
        if (shown > bound) - (shown < bound) == want:
            return _num(shown, d)
    return _num(exact, 10)


def _as_entered(x: float, min_decimals: int) -> _Msg:
    """A measured value with at least ``min_decimals`` decimals, never fewer than entered."""
    exponent = Decimal(repr(float(x))).normalize().as_tuple().exponent
    decimals = max(min_decimals, -exponent if isinstance(exponent, int) else 0)
    return _num(x, decimals)


def _dlco_shown(value: float, unit: str) -> _Msg:
    """DLCO as entered: 1 decimal in mL/min/mmHg, 2 in mmol/min/kPa (values 3 times smaller)."""
    return _msg(
        "{v} {u}", "{v} {u}", v=_as_entered(value, 1 if unit == _DLCO_BASE_UNIT else 2), u=unit
    )


def _bound(x: float) -> _Msg:
    """A protocol threshold as written (40, 0.7, 12)."""
    s = f"{x:g}"
    return _Msg(s, s.replace(".", ","))


def _ru_plural(n: int, one: str, few: str, many: str) -> str:
    n = abs(n)
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def _years(n: int) -> _Msg:
    return _Msg(f"{n} year" + ("" if n == 1 else "s"), f"{n} {_ru_plural(n, 'год', 'года', 'лет')}")


def _days(n: int) -> _Msg:
    return _Msg(f"{n} day" + ("" if n == 1 else "s"), f"{n} {_ru_plural(n, 'день', 'дня', 'дней')}")


def _months(n: int) -> _Msg:
    return _Msg(
        f"{n} month" + ("" if n == 1 else "s"),
        f"{n} {_ru_plural(n, 'месяц', 'месяца', 'месяцев')}",
    )


def _yes_no(value: bool) -> _Msg:
    return _Msg("yes", "да") if value else _Msg("no", "нет")


_MEASURE: Final = {
    "FVC": _Msg("FVC", "ФЖЕЛ"),
    "FEV1": _Msg("FEV1", "ОФВ1"),
    "DLCO": _Msg("DLCO", "DLCO"),
}
_LITRES: Final = _Msg("L", "л")

_REFERENCE_EVENT: Final = {
    "screening": _Msg("screening", "скрининга"),
    "enrolment": _Msg("enrolment", "включения"),
    "randomization": _Msg("randomization", "рандомизации"),
}


# =========================================================================== dates
def add_months(day: date, months: int) -> date:
    """``day`` shifted by ``months`` calendar months (negative: earlier), clamped to the
    month's last day (31 August - 6 months = 28/29 February).

    Calendar arithmetic is what "6 months before randomization" means to an investigator;
    dateutil is not a dependency, and this is all of it that is needed.
    """
    total = day.year * 12 + (day.month - 1) + months
    year, month0 = divmod(total, 12)
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last_day))


def _day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _when(value: date | datetime) -> str:
    """A date, or a date-time to the minute unless seconds were recorded."""
    if isinstance(value, datetime) and not value.second and not value.microsecond:
        return value.isoformat(timespec="minutes")
    return value.isoformat()


def _months_between(earlier: date, later: date) -> float:
    return (later - earlier).days / DAYS_PER_MONTH


# =========================================================================== input model
class CandidateDataError(ValueError):
    """The candidate dict was refused. ``issues`` lists every problem as (path, rule), e.g.
    ``("DM.sex", "must be one of M, F (got 'male')")``, so all can be fixed at once."""

    def __init__(self, issues: Sequence[tuple[str, str]]) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(f"{path}: {rule}" for path, rule in self.issues))


class _Bad(Exception):
    """One malformed value (internal; collected into CandidateDataError)."""


@dataclass(frozen=True)
class FormRecord:
    """One completed form (or one row of a repeating form): typed values by field code.

    A field left empty (absent or ``null``) is not in ``values``: to the engine it is
    missing, which makes a criterion that needs it ``unknown``.
    """

    form: str
    values: Mapping[str, FieldValue]
    row: int | None = None

    def get(self, field_code: str) -> FieldValue | None:
        return self.values.get(field_code)

    def path(self, field_code: str) -> str:
        """``DM.sex`` or, for a repeating form, ``PRIORLF[2].test_date``."""
        where = self.form if self.row is None else f"{self.form}[{self.row}]"
        return f"{where}.{field_code}"


@dataclass(frozen=True)
class Consent:
    """Informed consent as recorded. ``signed`` is None when the candidate has not signed.

    ``first_procedure`` is the date (or date and time) of the earliest study procedure,
    so that "consent before any procedure" can be checked beyond the screening date.
    """

    signed: date | datetime | None
    first_procedure: date | datetime | None = None


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class CandidateData:
    """Everything the engine reads about one candidate.

    ``forms`` holds the non-repeating forms, ``repeating`` the repeating ones as tuples of
    rows. A form that is absent is unknown; a repeating form given as an empty tuple was
    asked and has no rows (e.g. no prior anti-inflammatory treatment). ``consent`` None
    means consent was not recorded (unknown); ``Consent(signed=None)`` means not signed.
    ``enrolment_date`` / ``randomization_date`` are planned dates; when absent the
    screening date stands in for them, and the evidence says so.
    """

    screening_date: date
    forms: Mapping[str, FormRecord] = field(default_factory=_empty)
    repeating: Mapping[str, tuple[FormRecord, ...]] = field(default_factory=_empty)
    consent: Consent | None = None
    enrolment_date: date | None = None
    randomization_date: date | None = None
    candidate_id: str | None = None

    def form(self, code: str) -> FormRecord | None:
        return self.forms.get(code)

    def rows(self, code: str) -> tuple[FormRecord, ...] | None:
        return self.repeating.get(code)

    def value(self, item: str) -> FieldValue | None:
        """The value of ``FORM.field`` on a non-repeating form, None when missing."""
        form_code, _, field_code = item.partition(".")
        record = self.form(form_code)
        return None if record is None else record.get(field_code)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], protocol: Protocol | LoadedProtocol | None = None
    ) -> CandidateData:
        """Build and type a candidate from a plain dict (see ``docs/eligibility-input.md``).

        Keys: ``screening_date`` (required, ``YYYY-MM-DD``), optional ``candidate_id``,
        ``consent``, ``enrolment_date``, ``randomization_date``, and form codes of the
        protocol (the packaged one when ``protocol`` is None) holding an object of field
        values, or a list of them for a repeating form. Keys starting with ``_`` are
        comments and ignored. Values are typed by the protocol's field definitions (type,
        choices, hard min/max); every problem is collected and raised together as
        :class:`CandidateDataError`, each naming its field and the rule it breaks.
        """
        proto = _unwrap(protocol) if protocol is not None else load_protocol().protocol
        if not isinstance(data, Mapping):
            raise CandidateDataError([("candidate", f"must be an object (got {_kind(data)})")])
        issues: list[tuple[str, str]] = []
        forms_by_code = {f.code: f for f in proto.forms}

        def parse(path: str, parser: Callable[[Any], Any], raw: Any) -> Any:
            try:
                return parser(raw)
            except _Bad as bad:
                issues.append((path, str(bad)))
                return None

        screening: date | None = None
        if data.get("screening_date") is None:
            issues.append(
                ("screening_date", "is required (YYYY-MM-DD): every rule is dated from it")
            )
        else:
            screening = parse("screening_date", _parse_date, data["screening_date"])
        enrolment = parse("enrolment_date", _parse_optional_date, data.get("enrolment_date"))
        randomization = parse(
            "randomization_date", _parse_optional_date, data.get("randomization_date")
        )
        candidate_id = parse("candidate_id", _parse_id, data.get("candidate_id"))
        consent = parse("consent", _parse_consent, data["consent"]) if "consent" in data else None

        forms: dict[str, FormRecord] = {}
        repeating: dict[str, tuple[FormRecord, ...]] = {}
        for key, raw in data.items():
            if not isinstance(key, str):
                issues.append((repr(key), "keys must be strings"))
                continue
            if key in META_KEYS or key.startswith("_"):
                continue
            spec = forms_by_code.get(key)
            if spec is None:
                issues.append(
                    (
                        key,
                        f"is neither a form of protocol {proto.version} "
                        f"({', '.join(forms_by_code)}) nor one of {', '.join(META_KEYS)}",
                    )
                )
                continue
            fields = {f.code: f for f in spec.fields}
            if spec.repeating:
                if not isinstance(raw, list):
                    issues.append(
                        (
                            key,
                            f"is a repeating form: give a list of rows ([] for none), not {_kind(raw)}",
                        )
                    )
                    continue
                rows = []
                for i, row in enumerate(raw):
                    record = _parse_record(key, fields, row, i, issues)
                    if record is not None:
                        rows.append(record)
                repeating[key] = tuple(rows)
            else:
                if not isinstance(raw, Mapping):
                    issues.append((key, f"must be an object of field values, not {_kind(raw)}"))
                    continue
                record = _parse_record(key, fields, raw, None, issues)
                if record is not None:
                    forms[key] = record
        if issues or screening is None:
            raise CandidateDataError(issues)
        return cls(
            screening_date=screening,
            forms=MappingProxyType(forms),
            repeating=MappingProxyType(repeating),
            consent=consent,
            enrolment_date=enrolment,
            randomization_date=randomization,
            candidate_id=candidate_id,
        )


def _unwrap(protocol: Protocol | LoadedProtocol) -> Protocol:
    return protocol.protocol if isinstance(protocol, LoadedProtocol) else protocol


def _kind(raw: object) -> str:
    """How a JSON value is called in an error message."""
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return f"boolean {str(raw).lower()}"
    if isinstance(raw, str):
        return f"text {raw!r}"
    if isinstance(raw, numbers.Real):
        return f"number {raw!r}"
    if isinstance(raw, list):
        return "a list"
    if isinstance(raw, Mapping):
        return "an object"
    return type(raw).__name__


_DATE_RE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME_RE: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$"
)


def _parse_date(raw: Any) -> date:
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw
    if isinstance(raw, str) and _DATE_RE.match(raw.strip()):
        try:
            return date.fromisoformat(raw.strip())
        except ValueError:
            pass
    raise _Bad(f"must be a date YYYY-MM-DD (got {_kind(raw)})")


def _parse_optional_date(raw: Any) -> date | None:
    return None if raw is None else _parse_date(raw)


def _parse_date_or_datetime(raw: Any) -> date | datetime:
    if isinstance(raw, date):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        if _DATE_RE.match(text):
            return _parse_date(text)
        if _DATETIME_RE.match(text):
            try:
                return datetime.fromisoformat(text)
            except ValueError:
                pass
    raise _Bad(f"must be a date YYYY-MM-DD or a date-time YYYY-MM-DDTHH:MM (got {_kind(raw)})")


def _parse_id(raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, str) and raw.strip():
        return raw.strip()
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    raise _Bad(f"must be a non-empty text (got {_kind(raw)})")


def _parse_consent(raw: Any) -> Consent:
    """``null`` = not signed; a date/date-time = signed then; or an object with
    ``signed`` and ``first_procedure``."""
    if raw is None:
        return Consent(signed=None)
    if isinstance(raw, str | date):
        return Consent(signed=_parse_date_or_datetime(raw))
    if not isinstance(raw, Mapping):
        raise _Bad(
            f"must be null (not signed), a date, or an object with {', '.join(_CONSENT_KEYS)} "
            f"(got {_kind(raw)})"
        )
    unknown = [k for k in raw if k not in _CONSENT_KEYS]
    if unknown:
        raise _Bad(
            f"unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(_CONSENT_KEYS)}"
        )
    parts: dict[str, date | datetime | None] = {}
    for key in _CONSENT_KEYS:
        value = raw.get(key)
        try:
            parts[key] = None if value is None else _parse_date_or_datetime(value)
        except _Bad as bad:
            raise _Bad(f"{key}: {bad}") from None
    return Consent(signed=parts["signed"], first_procedure=parts["first_procedure"])


def _parse_record(
    form_code: str,
    fields: Mapping[str, FormField],
    raw: Any,
    row: int | None,
    issues: list[tuple[str, str]],
) -> FormRecord | None:
    where = form_code if row is None else f"{form_code}[{row}]"
    if not isinstance(raw, Mapping):
        issues.append((where, f"must be an object of field values, not {_kind(raw)}"))
        return None
    values: dict[str, FieldValue] = {}
    for key, value in raw.items():
        if isinstance(key, str) and key.startswith("_"):
            continue
        spec = fields.get(key)
        if spec is None:
            issues.append(
                (f"{where}.{key}", f"is not a field of form {form_code} ({', '.join(fields)})")
            )
            continue
        if value is None or (isinstance(value, str) and not value.strip() and spec.type != "text"):
            continue  # left empty: missing, not malformed
        try:
            values[key] = _parse_value(spec, value)
        except _Bad as bad:
            issues.append((f"{where}.{key}", str(bad)))
    return FormRecord(form=form_code, values=MappingProxyType(values), row=row)


def _parse_value(spec: FormField, raw: Any) -> FieldValue:
    """Type one value by its field definition and check its hard limits."""
    kind = spec.type
    if kind == "date":
        return _parse_date(raw)
    if kind == "datetime":
        value = _parse_date_or_datetime(raw)
        return value if isinstance(value, datetime) else datetime.combine(value, time())
    if kind == "time":
        if isinstance(raw, time):
            return raw
        try:
            return time.fromisoformat(raw)
        except (TypeError, ValueError):
            raise _Bad(f"must be a time HH:MM (got {_kind(raw)})") from None
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw
        raise _Bad(f"must be true or false (got {_kind(raw)})")
    if kind == "choice":
        codes = [c.code for c in spec.choices or []]
        if isinstance(raw, str):
            for code in codes:
                if raw.strip().lower() == code.lower():
                    return code
        raise _Bad(f"must be one of {', '.join(codes)} (got {_kind(raw)})")
    if kind == "text":
        if not isinstance(raw, str):
            raise _Bad(f"must be text (got {_kind(raw)})")
        if spec.max_length is not None and len(raw) > spec.max_length:
            raise _Bad(f"must be at most {spec.max_length} characters (got {len(raw)})")
        return raw
    # integer / decimal
    if isinstance(raw, bool) or not isinstance(raw, numbers.Real) or not math.isfinite(float(raw)):
        raise _Bad(f"must be a number (got {_kind(raw)})")
    number: int | float = float(raw)
    if kind == "integer":
        if not float(raw).is_integer():
            raise _Bad(f"must be a whole number (got {raw!r})")
        number = int(raw)
    unit = f" {spec.unit}" if spec.unit else ""
    low, high = spec.min, spec.max
    if (low is not None and number < low) or (high is not None and number > high):
        if low is not None and high is not None:
            rule = f"must be between {low:g} and {high:g}{unit}"
        elif low is not None:
            rule = f"must be at least {low:g}{unit}"
        else:
            rule = f"must be at most {high:g}{unit}"
        raise _Bad(f"{rule} (got {raw!r})")
    return number


# =========================================================================== results
@dataclass(frozen=True)
class CriterionResult:
    """The outcome of one criterion with its evidence.

    For an exclusion ``met`` means the exclusion applies; ``passes`` is True when the
    criterion does not stand in the candidate's way, False when it does, None if unknown.
    ``missing`` names the items (``FORM.field``) whose absence made the outcome unknown.
    """

    id: str
    type: Literal["inclusion", "exclusion"]
    rule: str
    summary: str
    protocol_text: str
    outcome: Outcome
    sentence: str
    evidence: Mapping[str, Any]
    missing: tuple[str, ...] = ()

    @property
    def passes(self) -> bool | None:
        if self.outcome == "unknown":
            return None
        return (self.outcome == "met") == (self.type == "inclusion")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "rule": self.rule,
            "summary": self.summary,
            "protocol_text": self.protocol_text,
            "outcome": self.outcome,
            "passes": self.passes,
            "sentence": self.sentence,
            "missing": list(self.missing),
            "evidence": _jsonable(self.evidence),
        }


@dataclass(frozen=True)
class EligibilityVerdict:
    """The overall verdict with one result per criterion of the protocol.

    ``eligible``: every inclusion met, no exclusion applies, nothing unknown.
    ``not_eligible``: an inclusion not met or an exclusion applies (``reasons``).
    ``incomplete``: otherwise; ``missing`` says what is needed to decide. The verdict is a
    proposal: the investigator confirms it by signing.
    """

    status: Status
    summary: str
    criteria: tuple[CriterionResult, ...]
    reasons: tuple[tuple[str, str], ...]
    missing: tuple[tuple[str, str, tuple[str, ...]], ...]
    assumptions: tuple[str, ...]
    screening_date: date
    candidate_id: str | None
    protocol_registration: str
    protocol_version: str
    protocol_sha256: str | None
    language: str

    def criterion(self, criterion_id: str) -> CriterionResult:
        for result in self.criteria:
            if result.id == criterion_id:
                return result
        raise KeyError(f"verdict has no criterion {criterion_id!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (dates as ISO strings)."""
        return {
            "candidate_id": self.candidate_id,
            "status": self.status,
            "summary": self.summary,
            "screening_date": self.screening_date.isoformat(),
            "protocol": {
                "registration": self.protocol_registration,
                "version": self.protocol_version,
                "sha256": self.protocol_sha256,
            },
            "language": self.language,
            "reasons": [{"criterion": cid, "sentence": s} for cid, s in self.reasons],
            "missing": [
                {"criterion": cid, "items": list(items), "sentence": s}
                for cid, s, items in self.missing
            ],
            "assumptions": list(self.assumptions),
            "criteria": [c.to_dict() for c in self.criteria],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


@dataclass
class _Result:
    """What a rule evaluator returns (internal)."""

    outcome: Outcome
    sentence: _Msg
    evidence: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def _all_of(outcomes: Iterable[Outcome]) -> Outcome:
    """Three-valued AND: one definite failure decides, otherwise any unknown stays unknown."""
    items = list(outcomes)
    if "not_met" in items:
        return "not_met"
    if "unknown" in items:
        return "unknown"
    return "met"


def _any_of(outcomes: Iterable[Outcome]) -> Outcome:
    """Three-valued OR."""
    items = list(outcomes)
    if "met" in items:
        return "met"
    if "unknown" in items:
        return "unknown"
    return "not_met"


def _missing_sentence(missing: Sequence[str]) -> _Msg:
    return _msg("missing: {items}", "нет данных: {items}", items=", ".join(missing))


# =========================================================================== context
class _Context:
    """The protocol, the candidate, and the dates every rule is anchored on."""

    def __init__(self, protocol: Protocol, candidate: CandidateData) -> None:
        self.protocol = protocol
        self.candidate = candidate
        self.assumptions: dict[str, _Msg] = {}

    def label(self, item: str) -> _Msg:
        """The protocol's label of ``FORM.field`` in both languages (the code if unknown)."""
        form_code, _, field_code = item.partition(".")
        try:
            text = self.protocol.form(form_code).field(field_code).label
        except KeyError:
            return _text(item)
        return _Msg(text.en, text.ru)

    def reference_date(self, before: str) -> tuple[date, _Msg, dict[str, Any]]:
        """The date a look-back period ends on, a phrase naming it ("enrolment on
        2025-04-28"; Russian in the genitive, after "до"), and how it was obtained."""
        c = self.candidate
        given = {"enrolment": c.enrolment_date, "randomization": c.randomization_date}
        event = _REFERENCE_EVENT[before]
        if before == "screening":
            return (
                c.screening_date,
                _msg("{e} on {d}", "{e} {d}", e=event, d=c.screening_date.isoformat()),
                {"reference": "screening", "reference_date": c.screening_date},
            )
        value = given[before]
        if value is not None:
            phrase = _msg("{e} on {d}", "{e} {d}", e=event, d=value.isoformat())
            return value, phrase, {"reference": before, "reference_date": value}
        note = _msg(
            "Planned {event} date not given: the screening date {d} was used instead.",
            "Плановая дата {event} не указана: вместо неё использована дата скрининга {d}.",
            event=event,
            d=c.screening_date.isoformat(),
        )
        self.assumptions[f"{before}_date"] = note
        return (
            c.screening_date,
            _msg(
                "the screening date {d}, used as no {event} date was given",
                "даты скрининга {d}, так как дата {event} не указана",
                event=event,
                d=c.screening_date.isoformat(),
            ),
            {
                "reference": before,
                "reference_date": c.screening_date,
                "reference_date_defaulted": True,
                "note": f"planned {before} date not given: screening date used",
            },
        )


# =========================================================================== rules
def _age_range(rule: AgeRangeRule, ctx: _Context) -> _Result:
    """Age in completed years at consent (an 80-year-old qualifies until the 81st birthday)."""
    birth = ctx.candidate.value(f"{_DM}.birth_date")
    if not isinstance(birth, date):
        return _Result(
            "unknown", _missing_sentence([f"{_DM}.birth_date"]), {}, [f"{_DM}.birth_date"]
        )
    consent = ctx.candidate.consent
    if consent is not None and consent.signed is not None:
        on, basis = _day(consent.signed), _Msg("the consent date", "дата согласия")
        evidence: dict[str, Any] = {"age_on": "consent"}
    else:
        on, basis = (
            ctx.candidate.screening_date,
            _Msg(
                "the screening date, as the consent date is not given",
                "дата скрининга, так как дата согласия не указана",
            ),
        )
        evidence = {
            "age_on": "screening",
            "note": "consent date not given: age at the screening date",
        }
        ctx.assumptions["age_date"] = _msg(
            "Consent date not given: age was computed on the screening date {d}.",
            "Дата согласия не указана: возраст рассчитан на дату скрининга {d}.",
            d=on.isoformat(),
        )
    if on < birth:
        return _Result(
            "unknown",
            _msg(
                "Birth date {b} is after {d}: check {item}",
                "Дата рождения {b} позже {d}: проверьте {item}",
                b=birth.isoformat(),
                d=on.isoformat(),
                item=f"{_DM}.birth_date",
            ),
            {"birth_date": birth, "date": on},
            [f"{_DM}.birth_date"],
        )
    exact = lf.decimal_age(birth, on)
    completed = math.floor(exact + 1e-9)
    ok = exact >= rule.min_years and completed <= rule.max_years
    evidence.update(
        birth_date=birth,
        date=on,
        age_completed_years=completed,
        age_decimal_years=round(exact, 4),
        min_years=rule.min_years,
        max_years=rule.max_years,
        met=ok,
    )
    sentence = _msg(
        "Age {age} (exact {exact}) on {d}, {basis}; needs {lo} to {hi} years inclusive",
        "Возраст {age} (точно {exact}) на {d}, {basis}; требуется от {lo} до {hi} лет включительно",
        age=_years(completed),
        exact=_num(exact, 2),
        d=on.isoformat(),
        basis=basis,
        lo=_bound(rule.min_years),
        hi=_bound(rule.max_years),
    )
    return _Result("met" if ok else "not_met", sentence, evidence)


def _diagnosis(rule: DiagnosisRule, ctx: _Context) -> _Result:
    """Allowed group AND symptoms long enough AND (diagnostic HRCT OR histology)."""
    c = ctx.candidate
    parts: list[_Msg] = []
    outcomes: list[Outcome] = []
    missing: list[str] = []
    evidence: dict[str, Any] = {"allowed_groups": list(rule.allowed_groups)}

    group = c.value(f"{_DX}.diagnosis_group")
    evidence["diagnosis_group"] = group
    evidence["diagnosis_detail"] = c.value(f"{_DX}.diagnosis_detail")
    if group is None:
        outcomes.append("unknown")
        missing.append(f"{_DX}.diagnosis_group")
    else:
        allowed = group in rule.allowed_groups
        outcomes.append("met" if allowed else "not_met")
        parts.append(
            _msg(
                "diagnosis group {g} is {neg}one of {allowed}",
                "группа диагноза {g} {neg}входит в {allowed}",
                g=str(group),
                neg=_Msg("", "") if allowed else _Msg("not ", "не "),
                allowed=", ".join(rule.allowed_groups),
            )
        )

    onset = c.value(f"{_DX}.symptom_onset_date")
    if not isinstance(onset, date):
        outcomes.append("unknown")
        missing.append(f"{_DX}.symptom_onset_date")
    else:
        latest_onset = add_months(c.screening_date, -rule.min_symptom_months)
        long_enough = onset <= latest_onset
        duration = _months_between(onset, c.screening_date)
        outcomes.append("met" if long_enough else "not_met")
        evidence.update(
            symptom_onset_date=onset,
            screening_date=c.screening_date,
            symptom_months=round(duration, 2),
            min_symptom_months=rule.min_symptom_months,
            latest_onset_allowed=latest_onset,
            symptom_duration_met=long_enough,
        )
        parts.append(
            _msg(
                "symptoms since {onset}, {dur} months before screening on {s} "
                "(needs at least {need}: onset on or before {latest})",
                "симптомы с {onset}, за {dur} мес. до скрининга {s} "
                "(требуется не менее {need}: начало не позднее {latest})",
                onset=onset.isoformat(),
                dur=_num(duration, 1),
                s=c.screening_date.isoformat(),
                need=_months(rule.min_symptom_months),
                latest=latest_onset.isoformat(),
            )
        )

    names = {
        "hrct": _Msg("diagnostic HRCT", "диагностическая КТВР"),
        "histology": _Msg("histology", "гистология"),
    }
    support: list[Outcome] = []
    support_parts: list[_Msg] = []
    support_missing: list[str] = []
    for source in rule.evidence_any_of:
        flag = c.value(f"{_DX}.{source}_diagnostic")
        when = c.value(f"{_DX}.{source}_date")
        evidence[f"{source}_diagnostic"] = flag
        evidence[f"{source}_date"] = when
        if flag is None:
            support.append("unknown")
            support_missing.append(f"{_DX}.{source}_diagnostic")
            continue
        support.append("met" if flag else "not_met")
        dated = f" ({when.isoformat()})" if isinstance(when, date) else ""
        support_parts.append(
            _msg(
                "{name}: {yn}{dated}",
                "{name}: {yn}{dated}",
                name=names[source],
                yn=_yes_no(bool(flag)),
                dated=dated,
            )
        )
    support_outcome = _any_of(support)
    if support_outcome != "met":
        missing.extend(support_missing)
    evidence["diagnostic_evidence_met"] = {"met": True, "not_met": False}.get(support_outcome)
    outcomes.append(support_outcome)
    if support_parts:
        parts.append(_join(support_parts, ", "))

    outcome = _all_of(outcomes)
    if outcome != "unknown":
        missing = []
    if missing:
        parts.append(_missing_sentence(missing))
    return _Result(outcome, _join(parts), evidence, missing)


def _diagnosis_excluded(rule: DiagnosisExcludedRule, ctx: _Context) -> _Result:
    group = ctx.candidate.value(f"{_DX}.diagnosis_group")
    evidence: dict[str, Any] = {
        "diagnosis_group": group,
        "diagnosis_detail": ctx.candidate.value(f"{_DX}.diagnosis_detail"),
        "excluded_groups": list(rule.excluded_groups),
    }
    if group is None:
        item = f"{_DX}.diagnosis_group"
        return _Result("unknown", _missing_sentence([item]), evidence, [item])
    applies = group in rule.excluded_groups
    sentence = _msg(
        "Diagnosis group {g} is {neg}an excluded group ({groups})",
        "Группа диагноза {g} {neg}относится к исключаемым ({groups})",
        g=str(group),
        neg=_Msg("", "") if applies else _Msg("not ", "не "),
        groups=", ".join(rule.excluded_groups),
    )
    return _Result("met" if applies else "not_met", sentence, evidence)


def _demographics(ctx: _Context, needs_ethnicity: bool) -> tuple[dict[str, Any], list[str]]:
    """Sex, birth date, height (and ethnicity for GLI-2012) from DM, with what is missing."""
    values: dict[str, Any] = {}
    missing: list[str] = []
    wanted = ["sex", "birth_date", "height_cm"] + (["ethnicity"] if needs_ethnicity else [])
    for code in wanted:
        value = ctx.candidate.value(f"{_DM}.{code}")
        if value is None:
            missing.append(f"{_DM}.{code}")
        values[code] = value
    return values, missing


def _screening_measurement(ctx: _Context, measure: str) -> tuple[dict[str, Any], list[str]]:
    """The screening value of FVC/FEV1 (SPIRO) or DLCO (DLCO form), its date and unit."""
    if measure == "DLCO":
        items = {
            "value": f"{_DLCO}.dlco",
            "unit": f"{_DLCO}.dlco_unit",
            "test_date": f"{_DLCO}.test_date",
        }
    else:
        field_code = "fvc_l" if measure == "FVC" else "fev1_l"
        items = {"value": f"{_SPIRO}.{field_code}", "test_date": f"{_SPIRO}.test_date"}
    out: dict[str, Any] = {"unit": "L"}
    missing: list[str] = []
    for key, item in items.items():
        value = ctx.candidate.value(item)
        if value is None:
            missing.append(item)
        out[key] = value
    out["source"] = items["value"]
    return out, missing


def _percent_predicted(rule: PercentPredictedRule, ctx: _Context) -> _Result:
    """Each measure's % predicted at screening against its minimum (inclusive)."""
    spiro_eq = ctx.protocol.eligibility.reference_equations
    dlco_eq = ctx.protocol.eligibility.dlco_equations
    outcomes: list[Outcome] = []
    parts: list[_Msg] = []
    missing: list[str] = []
    evidence: dict[str, Any] = {
        "spirometry_equations": spiro_eq,
        "dlco_equations": dlco_eq,
        "measures": {},
    }
    for measure, minimum in rule.minimum_percent.items():
        is_dlco = measure == "DLCO"
        uses_eth = (not is_dlco) and lf.EQUATION_SETS[spiro_eq].uses_ethnicity
        demo, demo_missing = _demographics(ctx, uses_eth)
        meas, meas_missing = _screening_measurement(ctx, measure)
        gaps = demo_missing + [m for m in meas_missing if m not in demo_missing]
        if gaps:
            outcomes.append("unknown")
            missing.extend(g for g in gaps if g not in missing)
            parts.append(
                _msg(
                    "{m}: {missing}",
                    "{m}: {missing}",
                    m=_MEASURE[measure],
                    missing=_missing_sentence(gaps),
                )
            )
            evidence["measures"][measure] = {"minimum_percent": minimum, "missing": gaps}
            continue
        try:
            age = lf.decimal_age(demo["birth_date"], meas["test_date"])
            if is_dlco:
                ref = lf.dlco(
                    demo["sex"],
                    age,
                    demo["height_cm"],
                    meas["value"],
                    unit=meas["unit"],
                    equations=dlco_eq,
                )
            else:
                ref = lf.spirometry(
                    demo["sex"],
                    age,
                    demo["height_cm"],
                    measure,
                    meas["value"],
                    equations=spiro_eq,
                    ethnicity=demo.get("ethnicity") or "other",
                )
        except lf.LungFunctionInputError as error:
            outcomes.append("unknown")
            problem = f"{meas['source']}: cannot compute % predicted ({error})"
            missing.append(problem)
            parts.append(
                _msg(
                    "{m}: cannot compute % predicted ({e})",
                    "{m}: невозможно рассчитать % от должного ({e})",
                    m=_MEASURE[measure],
                    e=str(error),
                )
            )
            evidence["measures"][measure] = {"minimum_percent": minimum, "problem": str(error)}
            continue
        compared = round(ref.percent_predicted, PERCENT_COMPARE_DECIMALS)
        ok = compared >= minimum
        outcomes.append("met" if ok else "not_met")
        evidence["measures"][measure] = {
            "test_date": meas["test_date"],
            "value": ref.value,
            "unit": ref.unit,
            "sex": demo["sex"],
            "height_cm": demo["height_cm"],
            "ethnicity": demo.get("ethnicity"),
            "age_decimal_years": round(age, 4),
            "equations": ref.equations,
            "predicted": ref.predicted,
            "percent_predicted": ref.percent_predicted,
            "z_score": ref.z_score,
            "lln": ref.lln,
            "minimum_percent": minimum,
            "met": ok,
        }
        if is_dlco and ctx.candidate.value(f"{_DLCO}.haemoglobin_g_dl") is not None:
            evidence["measures"][measure]["haemoglobin_g_dl"] = ctx.candidate.value(
                f"{_DLCO}.haemoglobin_g_dl"
            )
            evidence["measures"][measure]["note"] = (
                "DLCO as entered; no haemoglobin correction applied"
            )
        shown = (
            _dlco_shown(ref.value, ref.unit)
            if is_dlco
            else _msg("{v} {u}", "{v} {u}", v=_as_entered(ref.value, 2), u=_LITRES)
        )
        parts.append(
            _msg(
                "{m} {v} on {d} = {p} % predicted ({eq}); needs ≥ {t}",
                "{m} {v} на {d} = {p} % от должного ({eq}); требуется ≥ {t}",
                m=_MEASURE[measure],
                v=shown,
                d=meas["test_date"].isoformat(),
                p=_num_vs(compared, minimum, 1),
                eq=ref.equations,
                t=_bound(minimum),
            )
        )
    outcome = _all_of(outcomes)
    return _Result(outcome, _join(parts), evidence, missing if outcome == "unknown" else [])


def _to_base_dlco(value: float, unit: str) -> Decimal:
    """DLCO as an exact decimal in mL/min/mmHg (1 mmol/min/kPa = 2.987 mL/min/mmHg)."""
    exact = Decimal(repr(float(value)))
    return exact if unit == _DLCO_BASE_UNIT else exact * _DLCO_FACTOR


def _relative_decline(rule: RelativeDeclineRule, ctx: _Context) -> _Result:
    """Decline = (reference - screening) / reference x 100, strictly more than the threshold.

    The reference is the prior measurement nearest to ``lookback_months`` before the
    screening test, inside [window_months_min, window_months_max] (months = days/30.4375;
    ties go to the earlier measurement). No qualifying measurement: unknown.
    """
    threshold = Decimal(repr(float(rule.more_than_percent)))
    outcomes: list[Outcome] = []
    parts: list[_Msg] = []
    missing: list[str] = []
    evidence: dict[str, Any] = {
        "more_than_percent": rule.more_than_percent,
        "lookback_months": rule.lookback_months,
        "window_months": [rule.window_months_min, rule.window_months_max],
        "days_per_month": DAYS_PER_MONTH,
        "measures": {},
    }
    rows = ctx.candidate.rows(_PRIOR)
    for measure in rule.measures:
        meas, meas_missing = _screening_measurement(ctx, measure)
        if meas_missing:
            outcomes.append("unknown")
            missing.extend(meas_missing)
            parts.append(
                _msg("{m}: {x}", "{m}: {x}", m=_MEASURE[measure], x=_missing_sentence(meas_missing))
            )
            evidence["measures"][measure] = {"missing": meas_missing}
            continue
        test_date: date = meas["test_date"]
        earliest = test_date - timedelta(days=math.floor(rule.window_months_max * DAYS_PER_MONTH))
        latest = test_date - timedelta(days=math.ceil(rule.window_months_min * DAYS_PER_MONTH))
        window = {"from": earliest, "to": latest}
        m_ev: dict[str, Any] = {
            "screening": {
                "test_date": test_date,
                "value": meas["value"],
                "unit": meas["unit"],
                "source": meas["source"],
            },
            "window_dates": window,
        }
        evidence["measures"][measure] = m_ev
        if rows is None:
            outcomes.append("unknown")
            item = f"{_PRIOR} ({measure} {rule.window_months_min:g}-{rule.window_months_max:g} months before {test_date.isoformat()})"
            missing.append(item)
            parts.append(
                _msg(
                    "{m}: no prior measurements recorded ({form} missing)",
                    "{m}: предшествующие измерения не внесены (нет формы {form})",
                    m=_MEASURE[measure],
                    form=_PRIOR,
                )
            )
            continue
        value_field = "fvc_l" if measure == "FVC" else "dlco"
        candidates: list[dict[str, Any]] = []
        unusable: list[str] = []
        for row in rows:
            when = row.get("test_date")
            value = row.get(value_field)
            if value is None:
                continue
            if not isinstance(when, date):
                unusable.append(row.path("test_date"))
                continue
            months = _months_between(when, test_date)
            in_window = rule.window_months_min <= months <= rule.window_months_max
            unit = "L"
            if measure == "DLCO":
                unit = row.get("dlco_unit")
                if unit is None:
                    if in_window:
                        unusable.append(row.path("dlco_unit"))
                    continue
            candidates.append(
                {
                    "row": row.row,
                    "test_date": when,
                    "value": value,
                    "unit": unit,
                    "source": row.get("source"),
                    "months_before": round(months, 2),
                    "in_window": in_window,
                    "_months": months,
                }
            )
        m_ev["prior_measurements"] = [
            {k: v for k, v in cand.items() if k != "_months"} for cand in candidates
        ]
        qualifying = [cand for cand in candidates if cand["in_window"]]
        if not qualifying:
            outcomes.append("unknown")
            item = f"{_PRIOR}.{value_field} ({rule.window_months_min:g}-{rule.window_months_max:g} months before {test_date.isoformat()})"
            missing.append(item)
            missing.extend(u for u in unusable if u not in missing)
            found = _join(
                (
                    _msg(
                        "{d} ({mo} months before)",
                        "{d} (за {mo} мес.)",
                        d=cand["test_date"].isoformat(),
                        mo=_num(cand["_months"], 1),
                    )
                    for cand in candidates
                ),
                ", ",
            )
            parts.append(
                _msg(
                    "{m}: no prior measurement between {lo} and {hi} months before the screening test of {d} "
                    "(searched {a} to {b}){found}",
                    "{m}: нет предшествующего измерения за {lo}–{hi} мес. до исследования при скрининге {d} "
                    "(искали с {a} по {b}){found}",
                    m=_MEASURE[measure],
                    lo=_bound(rule.window_months_min),
                    hi=_bound(rule.window_months_max),
                    d=test_date.isoformat(),
                    a=earliest.isoformat(),
                    b=latest.isoformat(),
                    found=_msg("; found only {f}", "; есть только {f}", f=found)
                    if candidates
                    else _text(""),
                )
            )
            continue
        ref = min(
            qualifying,
            key=lambda cand: (abs(cand["_months"] - rule.lookback_months), -cand["_months"]),
        )
        if measure == "DLCO":
            ref_base = _to_base_dlco(ref["value"], ref["unit"])
            scr_base = _to_base_dlco(meas["value"], meas["unit"])
            compared_unit = _DLCO_BASE_UNIT
        else:
            ref_base = Decimal(repr(float(ref["value"])))
            scr_base = Decimal(repr(float(meas["value"])))
            compared_unit = "L"
        decline = (ref_base - scr_base) / ref_base * 100
        ok = decline > threshold
        outcomes.append("met" if ok else "not_met")
        m_ev.update(
            reference={k: v for k, v in ref.items() if k not in ("_months", "in_window")},
            compared_in=compared_unit,
            reference_value_compared=ref_base,
            screening_value_compared=scr_base,
            decline_percent=decline,
            met=ok,
        )

        verb = (
            _Msg("fell", "снизилась на")
            if decline > 0
            else _Msg("rose", "выросла на")
            if decline < 0
            else _Msg("did not change", "не изменилась")
        )
        amount = (
            _text("")
            if decline == 0
            else _msg(
                " {p} %", " {p} %", p=_num_vs(abs(decline), threshold if decline > 0 else 0, 1)
            )
        )
        parts.append(
            _msg(
                "{m} {verb}{amount} from {rv} on {rd} ({mo} months earlier) to {sv} on {sd}; needs a fall of more than {t} %",
                "{m} {verb}{amount}: с {rv} на {rd} ({mo} мес. ранее) до {sv} на {sd}; требуется снижение более чем на {t} %",
                m=_MEASURE[measure],
                verb=verb,
                amount=amount,
                rv=_decline_value(ref["value"], ref["unit"], ref_base, compared_unit),
                rd=ref["test_date"].isoformat(),
                mo=_num(ref["_months"], 1),
                sv=_decline_value(meas["value"], meas["unit"], scr_base, compared_unit),
                sd=test_date.isoformat(),
                t=_bound(rule.more_than_percent),
            )
        )
    outcome = _all_of(outcomes)
    return _Result(outcome, _join(parts), evidence, missing if outcome == "unknown" else [])


def _decline_value(value: float, unit: str, base: Decimal, compared_unit: str) -> _Msg:
    """A value as entered, with its converted value when it was compared in another unit."""
    if unit == "L":
        return _msg("{v} L", "{v} л", v=_as_entered(value, 2))
    text = _dlco_shown(value, unit)
    if unit != compared_unit:
        return _msg("{t} ({b} {u})", "{t} ({b} {u})", t=text, b=_num(base, 2), u=compared_unit)
    return text


def _ratio_below(rule: RatioBelowRule, ctx: _Context) -> _Result:
    """FEV1/FVC from screening spirometry below the fixed threshold; LLN result shown too."""
    fev1 = ctx.candidate.value(f"{_SPIRO}.fev1_l")
    fvc = ctx.candidate.value(f"{_SPIRO}.fvc_l")
    test_date = ctx.candidate.value(f"{_SPIRO}.test_date")
    gaps = [
        f"{_SPIRO}.{code}"
        for code, v in (("fev1_l", fev1), ("fvc_l", fvc))
        if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0
    ]
    if gaps or not isinstance(fev1, int | float) or not isinstance(fvc, int | float):
        return _Result("unknown", _missing_sentence(gaps), {"threshold": rule.threshold}, gaps)
    exact = Decimal(repr(float(fev1))) / Decimal(repr(float(fvc)))
    threshold = Decimal(repr(float(rule.threshold)))
    evidence: dict[str, Any] = {
        "test_date": test_date,
        "fev1_l": fev1,
        "fvc_l": fvc,
        "ratio": exact,
        "threshold": rule.threshold,
    }
    if exact > 1:
        return _Result(
            "unknown",
            _msg(
                "FEV1 {a} L exceeds FVC {b} L: check the spirometry entry",
                "ОФВ1 {a} л больше ФЖЕЛ {b} л: проверьте данные спирометрии",
                a=_as_entered(fev1, 2),
                b=_as_entered(fvc, 2),
            ),
            evidence,
            [f"{_SPIRO}.fev1_l", f"{_SPIRO}.fvc_l"],
        )
    below = exact < threshold
    evidence["below_threshold"] = below
    parts = [
        _msg(
            "FEV1/FVC {a}/{b} L = {r}, {neg}below {t}",
            "ОФВ1/ФЖЕЛ {a}/{b} л = {r}, {neg}ниже {t}",
            a=_as_entered(fev1, 2),
            b=_as_entered(fvc, 2),
            r=_num_vs(exact, threshold, 2),
            neg=_Msg("", "") if below else _Msg("not ", "не "),
            t=_num(threshold, 2),
        )
    ]
    if rule.show_lln:
        equations = ctx.protocol.eligibility.reference_equations
        demo, demo_missing = _demographics(ctx, lf.EQUATION_SETS[equations].uses_ethnicity)
        if not isinstance(test_date, date):
            demo_missing.append(f"{_SPIRO}.test_date")
        if demo_missing:
            evidence["lln"] = {"computed": False, "missing": demo_missing}
            parts.append(
                _msg(
                    "LLN not computed ({x})",
                    "НГН не рассчитана ({x})",
                    x=_missing_sentence(demo_missing),
                )
            )
        else:
            try:
                age = lf.decimal_age(demo["birth_date"], test_date)
                ref = lf.spirometry(
                    demo["sex"],
                    age,
                    demo["height_cm"],
                    "FEV1FVC",
                    float(exact),
                    equations=equations,
                    ethnicity=demo.get("ethnicity") or "other",
                )
            except lf.LungFunctionInputError as error:
                evidence["lln"] = {"computed": False, "problem": str(error)}
                parts.append(
                    _msg("LLN not computed ({e})", "НГН не рассчитана ({e})", e=str(error))
                )
            else:
                below_lln = float(exact) < ref.lln
                evidence["lln"] = {
                    "computed": True,
                    "equations": ref.equations,
                    "lln": ref.lln,
                    "predicted": ref.predicted,
                    "z_score": ref.z_score,
                    "age_decimal_years": round(age, 4),
                    "below_lln": below_lln,
                    "note": "shown for information; the protocol decides on the fixed ratio",
                }
                parts.append(
                    _msg(
                        "{neg}below its LLN {lln} ({eq}, z {z}; for information)",
                        "{neg}ниже НГН {lln} ({eq}, z {z}; для сведения)",
                        neg=_Msg("", "") if below_lln else _Msg("not ", "не "),
                        lln=_num_vs(ref.lln, float(exact), 2),
                        eq=ref.equations,
                        z=_num(ref.z_score, 2),
                    )
                )
    return _Result("met" if below else "not_met", _join(parts), evidence)


def _consent_signed(rule: ConsentRule, ctx: _Context) -> _Result:
    """Consent signed on or before the screening date and before the first procedure."""
    c = ctx.candidate
    if c.consent is None:
        return _Result("unknown", _missing_sentence(["consent"]), {}, ["consent"])
    signed, first = c.consent.signed, c.consent.first_procedure
    evidence: dict[str, Any] = {
        "signed": signed,
        "first_procedure": first,
        "screening_date": c.screening_date,
    }
    if signed is None:
        return _Result(
            "not_met",
            _Msg("Informed consent not signed", "Информированное согласие не подписано"),
            evidence,
        )
    problems: list[_Msg] = []
    if _day(signed) > c.screening_date:
        problems.append(
            _msg(
                "consent signed {s}, after screening on {d}",
                "согласие подписано {s}, после скрининга {d}",
                s=_when(signed),
                d=c.screening_date.isoformat(),
            )
        )
    if first is not None and _after(signed, first):
        problems.append(
            _msg(
                "consent signed {s}, after the first study procedure on {p}",
                "согласие подписано {s}, после первой процедуры исследования {p}",
                s=_when(signed),
                p=_when(first),
            )
        )
    evidence["before_screening"] = _day(signed) <= c.screening_date
    evidence["before_first_procedure"] = None if first is None else not _after(signed, first)
    if problems:
        return _Result("not_met", _join(problems), evidence)
    if first is None:
        evidence["note"] = "first procedure date not given: checked against the screening date only"
        sentence = _msg(
            "Consent signed {s}, on or before screening on {d} (first procedure date not given)",
            "Согласие подписано {s}, не позднее скрининга {d} (дата первой процедуры не указана)",
            s=_when(signed),
            d=c.screening_date.isoformat(),
        )
    else:
        sentence = _msg(
            "Consent signed {s}, on or before screening on {d} and the first procedure on {p}",
            "Согласие подписано {s}, не позднее скрининга {d} и первой процедуры {p}",
            s=_when(signed),
            d=c.screening_date.isoformat(),
            p=_when(first),
        )
    return _Result("met", sentence, evidence)


def _after(a: date | datetime, b: date | datetime) -> bool:
    """``a`` strictly after ``b``; by the clock when both have one, else by the day."""
    if (
        isinstance(a, datetime)
        and isinstance(b, datetime)
        and (a.tzinfo is None) == (b.tzinfo is None)
    ):
        return a > b
    return _day(a) > _day(b)


def _answer(rule: AnswerRule, ctx: _Context) -> _Result:
    value = ctx.candidate.value(rule.item)
    evidence: dict[str, Any] = {
        "item": rule.item,
        "value": value,
        "applies_when": rule.applies_when,
    }
    if not isinstance(value, bool):
        return _Result("unknown", _missing_sentence([rule.item]), evidence, [rule.item])
    sentence = _msg("{label}: {yn}", "{label}: {yn}", label=ctx.label(rule.item), yn=_yes_no(value))
    return _Result("met" if value == rule.applies_when else "not_met", sentence, evidence)


def _event_within(rule: EventWithinRule, ctx: _Context) -> _Result:
    """Present and dated on or after (reference date - period): the boundary day counts as
    within ("within 4 weeks": an infection exactly 28 days before enrolment applies)."""
    ref, ref_name, ref_ev = ctx.reference_date(rule.before)
    present = ctx.candidate.value(rule.present_item)
    when = ctx.candidate.value(rule.date_item)
    if rule.days is not None:
        start, period = ref - timedelta(days=rule.days), _days(rule.days)
    elif rule.months is not None:
        start, period = add_months(ref, -rule.months), _months(rule.months)
    else:
        years = rule.years or 0
        start, period = add_months(ref, -12 * years), _years(years)
    evidence: dict[str, Any] = {
        "present_item": rule.present_item,
        "present": present,
        "date_item": rule.date_item,
        "event_date": when,
        "period": {"days": rule.days, "months": rule.months, "years": rule.years},
        "window_start": start,
        **ref_ev,
    }
    label = ctx.label(rule.present_item)
    if not isinstance(present, bool):
        return _Result(
            "unknown", _missing_sentence([rule.present_item]), evidence, [rule.present_item]
        )
    if not present:
        return _Result("not_met", _msg("{l}: no", "{l}: нет", l=label), evidence)
    if not isinstance(when, date):
        return _Result(
            "unknown",
            _msg(
                "{l}: yes, but {x}",
                "{l}: да, но {x}",
                l=label,
                x=_missing_sentence([rule.date_item]),
            ),
            evidence,
            [rule.date_item],
        )
    within = when >= start
    elapsed = (ref - when).days
    evidence.update(days_before_reference=elapsed, within=within)
    if elapsed >= 0:
        gap = _msg("{n} before {e}", "за {n} до {e}", n=_days(elapsed), e=ref_name)
    else:
        gap = _msg("{n} after {e}", "через {n} после {e}", n=_days(-elapsed), e=ref_name)
    sentence = _msg(
        "{l}: yes, on {w}, {gap}; {inside} the period of {p} (from {s})",
        "{l}: да, {w}, {gap}; {inside} периода {p} (с {s})",
        l=label,
        w=when.isoformat(),
        gap=gap,
        inside=_Msg("within", "в пределах") if within else _Msg("outside", "вне"),
        p=period,
        s=start.isoformat(),
    )
    return _Result("met" if within else "not_met", sentence, evidence)


def _washout(rule: WashoutRule, ctx: _Context) -> _Result:
    """A listed medication ongoing, or stopped less than ``months`` before the reference
    date, applies. Stopped exactly ``months`` before (to the calendar day) is washed out.

    ``PROHIB`` absent = not asked (unknown); ``PROHIB: []`` = asked, none taken.
    """
    ref, ref_name, ref_ev = ctx.reference_date(rule.before)
    cutoff = add_months(ref, -rule.months)
    rows = ctx.candidate.rows(_PROHIB)
    evidence: dict[str, Any] = {
        "medication_classes": list(rule.medication_classes),
        "months": rule.months,
        "stopped_on_or_before_is_washed_out": cutoff,
        **ref_ev,
    }
    if rows is None:
        item = _PROHIB
        return _Result(
            "unknown",
            _msg(
                "{x} (record each treatment, or [] when there was none)",
                "{x} (внесите каждый препарат или [] если их не было)",
                x=_missing_sentence([item]),
            ),
            evidence,
            [item],
        )
    if not rows:
        evidence["medications"] = []
        return _Result(
            "not_met",
            _Msg(
                "No prior anti-inflammatory or antifibrotic treatment (recorded as none)",
                "Противовоспалительной или антифибротической терапии не было (внесено: нет)",
            ),
            evidence,
        )
    outcomes: list[Outcome] = []
    applying: list[_Msg] = []
    washed: list[_Msg] = []
    missing: list[str] = []
    meds: list[dict[str, Any]] = []
    for row in rows:
        cls = row.get("medication_class")
        name = row.get("medication_name") or cls or "?"
        stop = row.get("stop_date")
        entry: dict[str, Any] = {
            "row": row.row,
            "medication_class": cls,
            "medication_name": row.get("medication_name"),
            "stop_date": stop,
        }
        meds.append(entry)
        if cls is None:
            outcomes.append("unknown")
            missing.append(row.path("medication_class"))
            entry["applies"] = None
            continue
        if cls not in rule.medication_classes:
            entry["applies"] = False
            entry["note"] = "class not in the washout list"
            continue
        med = _text(f"{name} ({cls})")
        if stop is None:
            entry.update(applies=True, ongoing=True)
            outcomes.append("met")
            applying.append(_msg("{m} ongoing", "{m} продолжается", m=med))
            continue
        if not isinstance(stop, date):  # only a hand-built CandidateData can get here
            outcomes.append("unknown")
            missing.append(row.path("stop_date"))
            entry["applies"] = None
            continue
        applies = stop > cutoff
        entry.update(
            applies=applies,
            ongoing=False,
            months_before_reference=round(_months_between(stop, ref), 2),
        )
        outcomes.append("met" if applies else "not_met")
        line = _msg(
            "{m} stopped {s} ({mo} months before {e})",
            "{m} отменён {s} (за {mo} мес. до {e})",
            m=med,
            s=stop.isoformat(),
            mo=_num(_months_between(stop, ref), 1),
            e=ref_name,
        )
        (applying if applies else washed).append(line)
    evidence["medications"] = meds
    outcome = _any_of(outcomes)
    rule_text = _msg(
        "needs every listed treatment stopped on or before {c} ({n} before {r})",
        "требуется отмена каждого препарата из списка не позднее {c} (за {n} до {r})",
        c=cutoff.isoformat(),
        n=_months(rule.months),
        r=ref.isoformat(),
    )
    if outcome == "met":
        return _Result("met", _join([*applying, rule_text]), evidence)
    if outcome == "unknown":
        return _Result("unknown", _join([*washed, _missing_sentence(missing)]), evidence, missing)
    if not washed:
        return _Result(
            "not_met",
            _Msg(
                "No treatment from the washout list recorded (only other classes)",
                "Препаратов из списка не внесено (только другие классы)",
            ),
            evidence,
        )
    return _Result("not_met", _join([*washed, rule_text]), evidence)


_EVALUATORS: Final[dict[str, Callable[[Any, _Context], _Result]]] = {
    "age_range": _age_range,
    "diagnosis": _diagnosis,
    "diagnosis_excluded": _diagnosis_excluded,
    "percent_predicted_min": _percent_predicted,
    "relative_decline": _relative_decline,
    "ratio_below": _ratio_below,
    "consent_signed": _consent_signed,
    "answer": _answer,
    "event_within": _event_within,
    "washout": _washout,
}


# =========================================================================== evaluate
def evaluate(
    protocol: Protocol | LoadedProtocol,
    candidate: CandidateData,
    language: str = "en",
) -> EligibilityVerdict:
    """Evaluate every criterion of ``protocol`` for ``candidate``; sentences in ``language``.

    The criteria and their parameters come from the protocol file; the outcome of each is
    ``met`` / ``not_met`` / ``unknown`` (for an exclusion, ``met`` = it applies). The
    overall status is ``not_eligible`` as soon as one criterion decides against the
    candidate, ``eligible`` only when all are decided in the candidate's favour, and
    ``incomplete`` otherwise: an unknown never counts as passing.
    """
    if language not in LANGUAGES:
        raise ValueError(f"language: must be one of {', '.join(LANGUAGES)} (got {language!r})")
    proto = _unwrap(protocol)
    sha256 = protocol.sha256 if isinstance(protocol, LoadedProtocol) else None
    ctx = _Context(proto, candidate)
    results = tuple(
        _evaluate_criterion(criterion, ctx, language) for criterion in proto.eligibility.criteria
    )

    against = [r for r in results if r.passes is False]
    undecided = [r for r in results if r.passes is None]
    reasons = tuple((r.id, r.sentence) for r in against)
    missing = tuple((r.id, r.sentence, r.missing) for r in undecided)
    n_in = sum(r.type == "inclusion" for r in results)
    n_ex = len(results) - n_in
    if against:
        status: Status = "not_eligible"
        summary = _msg(
            "Not eligible: {ids}.{more}",
            "Не соответствует критериям: {ids}.{more}",
            ids=", ".join(f"{r.id} ({r.summary})" for r in against),
            more=_msg(
                " Also undecided: {u}.",
                " Также не решено: {u}.",
                u=", ".join(r.id for r in undecided),
            )
            if undecided
            else _text(""),
        )
    elif undecided:
        status = "incomplete"
        summary = _msg(
            "Incomplete: {n} criteria cannot be decided yet ({ids}).",
            "Неполные данные: невозможно оценить критерии ({n}): {ids}.",
            n=len(undecided),
            ids=", ".join(r.id for r in undecided),
        )
    else:
        status = "eligible"
        summary = _msg(
            "Eligible: all {i} inclusion criteria are met and none of the {e} exclusion criteria applies; "
            "to be confirmed by the investigator.",
            "Соответствует: все критерии включения ({i}) выполнены, ни один из критериев исключения ({e}) "
            "не применим; требуется подтверждение исследователя.",
            i=n_in,
            e=n_ex,
        )
    return EligibilityVerdict(
        status=status,
        summary=summary.get(language),
        criteria=results,
        reasons=reasons,
        missing=missing,
        assumptions=tuple(note.get(language) for note in ctx.assumptions.values()),
        screening_date=candidate.screening_date,
        candidate_id=candidate.candidate_id,
        protocol_registration=proto.identity.registration,
        protocol_version=proto.version,
        protocol_sha256=sha256,
        language=language,
    )


def _capitalised(sentence: str) -> str:
    """Sentences are assembled from lower-case parts; the first letter starts the sentence."""
    return sentence[:1].upper() + sentence[1:]


def _evaluate_criterion(criterion: Criterion, ctx: _Context, language: str) -> CriterionResult:
    evaluator = _EVALUATORS[criterion.rule.kind]
    result = evaluator(criterion.rule, ctx)
    return CriterionResult(
        id=criterion.id,
        type=criterion.type,
        rule=criterion.rule.kind,
        summary=criterion.summary.get(language),
        protocol_text=criterion.protocol_text,
        outcome=result.outcome,
        sentence=_capitalised(result.sentence.get(language)),
        evidence=result.evidence,
        missing=tuple(dict.fromkeys(result.missing)),
    )
