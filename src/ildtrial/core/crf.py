"""The eCRF engine: one form's entered values checked against the protocol's definition.

The protocol file says what each field is (type, unit, limits, choices) and which
cross-field checks a form has; this module turns what a person typed (or what a JSON
client sent) into typed values and a list of issues. It knows no form by name, so an
amendment that adds a field or tightens a limit needs no code change here.

Two kinds of issue, because the trial needs both:

* **errors** (severity ``"error"``) are values that cannot be true or cannot be read: an
  FVC of 25 L, a date in the future, FEV1 above FVC, a choice code the form does not
  have. They block saving: a stored value must at least be possible.
* **warnings** (severity ``"warning"``) are values that are possible but implausible
  (``soft_min``/``soft_max``, warning-level checks). Refusing them would push a site to
  enter a false "usual" value for a genuinely unusual patient, so they are kept once the
  person confirms them, and the confirmation opens a data query for the monitor. Each
  warning carries a stable ``key`` (``"fvc_l:soft_max"``); the page sends back the keys
  the person ticked as ``confirmed_warnings``.

Typing rules, chosen for the people who enter the data:

* Decimal fields become :class:`decimal.Decimal`, not ``float``: ``Decimal("2.50")``
  keeps exactly what was typed (trailing zero included), limits are compared exactly
  (0.1 is 0.1, not 0.1000000000000000055), and the decimals rule can count places.
  A comma is accepted as the decimal separator ("2,50"), as Russians type it. Extra
  trailing zeros beyond ``decimals`` are dropped (``"2.500"`` -> ``2.50``); any other
  extra digit is an error, never silently rounded away.
* Integer fields become ``int`` and accept digits only: "1,000" is refused rather than
  guessed (it is 1000 in English and 1.000 in Russian).
* Dates accept ISO ``YYYY-MM-DD`` (HTML date inputs, JSON) and ``DD.MM.YYYY`` (how a
  Russian writes them); times ``HH:MM[:SS]``; date-times ISO with ``T`` or a space.
* Booleans accept ``true/false``, ``yes/no``, ``1/0``, ``on/off`` and ``да/нет``. A missing
  boolean stays missing: an unanswered yes/no question is not "no".
* An empty string, a blank string and ``None`` mean "not entered".
* Text is stripped of surrounding blanks and ``\\r\\n`` becomes ``\\n``; control characters
  (which PostgreSQL cannot store in JSON) are refused.

:func:`validate_form` never raises on bad input: whatever arrives, the answer is a
:class:`FormValidation` that says what is wrong, in English and Russian, naming the
field's label and the rule. Only a field that passes its hard rules appears in
``cleaned``; a refused or missing field is ``None`` there, so cross-field checks never
run on a value nobody may store.

No Django import: the web forms, the JSON API, the importer and the tests share it.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, time
from decimal import ROUND_DOWN, Context, Decimal, InvalidOperation
from typing import Any, Final, Literal

from ildtrial.core.protocol import FieldComparison, Form, FormField, RequiredWhen

__all__ = [
    "BOOLEAN_FALSE",
    "BOOLEAN_TRUE",
    "FieldIssue",
    "FormValidation",
    "Severity",
    "format_value",
    "json_value",
    "ru_plural",
    "unit_ru",
    "validate_form",
]

Severity = Literal["error", "warning"]

BOOLEAN_TRUE: Final = frozenset({"true", "yes", "1", "on", "да"})
"""Text accepted as "yes" (compared case-insensitively after stripping blanks)."""
BOOLEAN_FALSE: Final = frozenset({"false", "no", "0", "off", "нет"})
"""Text accepted as "no"."""

#: Longest numeric text accepted; beyond it the value is a paste accident, not a number.
_MAX_NUMBER_CHARS: Final = 40
#: Largest magnitude accepted from an integer field (int() of huge text is refused by Python).
_MAX_INTEGER: Final = 10**18
_WIDE: Final = Context(prec=200)

_INTEGER_RE: Final = re.compile(r"^[+-]?\d+$", re.ASCII)
_DECIMAL_RE: Final = re.compile(r"^[+-]?(?:\d+(?:[.,]\d+)?|[.,]\d+)$", re.ASCII)
_ISO_DATE_RE: Final = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$", re.ASCII)
_RU_DATE_RE: Final = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$", re.ASCII)
_ISO_DATETIME_RE: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?"
    r"(?:Z|[+-]\d{2}:?\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?$",
    re.ASCII,
)
_RU_DATETIME_RE: Final = re.compile(
    r"^(\d{1,2})\.(\d{1,2})\.(\d{4})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?$", re.ASCII
)
_TIME_RE: Final = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?$", re.ASCII)
#: What ``time.isoformat()`` writes for a time with a UTC offset (a stored value read back).
_ISO_TIME_TZ_RE: Final = re.compile(
    r"^\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)$",
    re.ASCII,
)
#: C0 controls except tab, line feed and carriage return; DEL too.
_CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_MINUS_SIGNS: Final = str.maketrans({"\u2212": "-", "\u2013": "-"})

#: Russian spelling of the units used in the protocol file; others are shown as written.
_UNITS_RU: Final = {
    "L": "л",
    "mL": "мл",
    "L/min": "л/мин",
    "cm": "см",
    "kg": "кг",
    "m": "м",
    "mmHg": "мм рт. ст.",
    "/min": "/мин",
    "g/dL": "г/дл",
    "mg/L": "мг/л",
    "U/L": "Ед/л",
    "umol/L": "мкмоль/л",
    "10^9/L": "×10⁹/л",
    "mL/min/mmHg": "мл/мин/мм рт. ст.",
    "mmol/min/kPa": "ммоль/мин/кПа",
}

_OPERATORS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}
_OPERATOR_SHOWN: Final = {"<": "<", "<=": "≤", ">": ">", ">=": "≥", "==": "="}


# =========================================================================== results
@dataclass(frozen=True)
class FieldIssue:
    """One problem with one form: where, which rule, how bad, and what to tell the person.

    ``field`` is the field code, or None for a problem of the whole form (an unknown field
    in the input). ``rule`` is the rule id: ``required``, ``type``, ``min``, ``max``,
    ``soft_min``, ``soft_max``, ``choice``, ``max_length``, ``not_in_future``, ``decimals``,
    ``unknown_field``, ``form_data``, or the protocol check id (``SPIRO_FEV1_LE_FVC``) or
    cross-visit rule id (``FVC_CHANGE_GT_20``). ``message`` is English and ``message_ru``
    Russian, always both, because a monitor may read what a site entered in the other
    language. ``key`` identifies the issue across re-submissions of the same form, so a
    confirmation ticked once still applies when the page is sent again; ``confirmed``
    says whether this warning was confirmed (always False for errors).
    """

    field: str | None
    rule: str
    severity: Severity
    message: str
    message_ru: str
    key: str
    confirmed: bool = False

    def text(self, language: str = "en") -> str:
        """The message in ``language`` ("ru..." for Russian, English otherwise)."""
        return self.message_ru if language.startswith("ru") else self.message

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` (strings, None and a bool), ready for ``json.dumps``."""
        return asdict(self)


@dataclass(frozen=True)
class FormValidation:
    """The outcome of :func:`validate_form`.

    ``cleaned`` maps every field of the form to its typed value (``int``, ``Decimal``,
    ``date``, ``datetime``, ``time``, ``str``, ``bool``) or None when it was not entered or
    was refused. ``issues`` lists every problem in field order, then the form's checks.
    Do not mutate either: the dataclass is frozen so that a validation cannot be altered
    after it was made, and the containers are meant to be read only.
    """

    form_code: str
    form_version: int
    cleaned: dict[str, Any]
    issues: list[FieldIssue]
    confirmed_warnings: frozenset[str]
    language: str = "en"

    @property
    def errors(self) -> list[FieldIssue]:
        """Issues that block saving."""
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[FieldIssue]:
        """Issues that may be kept once confirmed."""
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def needs_confirmation(self) -> list[str]:
        """Keys of the warnings not yet confirmed, in the order the issues appear."""
        return [i.key for i in self.issues if i.severity == "warning" and not i.confirmed]

    @property
    def can_save(self) -> bool:
        """True when nothing blocks saving: no error and every warning confirmed."""
        return not self.errors and not self.needs_confirmation

    @property
    def queries(self) -> list[FieldIssue]:
        """Confirmed warnings: each one opens a data query when the form is saved."""
        return [i for i in self.issues if i.severity == "warning" and i.confirmed]

    def issues_for(self, field: str | None) -> list[FieldIssue]:
        """The issues of one field (None: the form-level ones), for display next to it."""
        return [i for i in self.issues if i.field == field]

    def messages(self, field: str | None = None, language: str | None = None) -> list[str]:
        """The messages of one field (or of all issues when ``field`` is None) in
        ``language``, by default the language the validation was made for."""
        chosen = self.issues if field is None else self.issues_for(field)
        return [i.text(language or self.language) for i in chosen]

    def json_values(self) -> dict[str, Any]:
        """``cleaned`` as JSON values (see :func:`json_value`), for the stored form data."""
        return {code: json_value(value) for code, value in self.cleaned.items()}


def json_value(value: Any) -> Any:
    """A cleaned value as JSON: Decimal -> number (float), dates and times -> ISO text.

    Decimals are stored as JSON numbers (not text) because the eligibility engine and the
    analysis read numbers; the field's ``decimals`` says how to show them again, and
    re-validating the stored number gives the same value.
    """
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date | time):  # datetime is a date
        return value.isoformat()
    return value


# =========================================================================== text helpers
def ru_plural(n: int, one: str, few: str, many: str) -> str:
    """The Russian plural form for ``n`` (1 день, 2 дня, 5 дней, 21 день, 11 дней)."""
    n = abs(n)
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def unit_ru(unit: str) -> str:
    """The unit as written in Russian ("L" -> "л"); unknown units unchanged."""
    return _UNITS_RU.get(unit, unit)


def _with_unit(number: str, unit: str | None) -> str:
    if not unit:
        return number
    return f"{number}{unit}" if unit.startswith("/") else f"{number} {unit}"


def _plain(x: float | Decimal | int) -> str:
    """A number without exponent or needless zeros: 0.1, 12, 39.5."""
    d = x if isinstance(x, Decimal) else Decimal(repr(x)) if isinstance(x, float) else Decimal(x)
    text = format(d.normalize(_WIDE), "f")
    return "0" if text in ("-0", "") else text


def format_value(value: Any, unit: str | None = None) -> tuple[str, str]:
    """A typed value as a person reads it, in English and in Russian.

    Numbers keep the digits they were typed with and get the unit; Russian uses the
    decimal comma and Russian units. Dates are ISO in English and DD.MM.YYYY in Russian.
    """
    if isinstance(value, bool):
        return ("yes", "да") if value else ("no", "нет")
    if isinstance(value, Decimal | int | float):
        if isinstance(value, Decimal):
            en = format(value, "f")
        else:
            en = str(value) if isinstance(value, int) else _plain(value)
        ru = en.replace(".", ",")
        return _with_unit(en, unit), _with_unit(ru, unit_ru(unit) if unit else None)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="minutes"), value.strftime("%d.%m.%Y %H:%M")
    if isinstance(value, date):
        return value.isoformat(), value.strftime("%d.%m.%Y")
    if isinstance(value, time):
        shown = value.strftime("%H:%M") if not value.second else value.strftime("%H:%M:%S")
        return shown, shown
    return str(value), str(value)


def _bound(x: float, unit: str | None) -> tuple[str, str]:
    """A protocol limit as written (0.1, 12, 39.5) with its unit."""
    return format_value(Decimal(_plain(x)), unit)


def _raw_shown(raw: Any) -> tuple[str, str]:
    """What arrived, for a message about a value that could not be read."""
    if isinstance(raw, str):
        text = raw if len(raw) <= 40 else raw[:40] + "…"
        return f"'{text}'", f"«{text}»"
    if isinstance(raw, bool):
        return ("true", "true") if raw else ("false", "false")
    if isinstance(raw, int):
        text = str(raw) if abs(raw) < 10**40 else "a very large number"
        return text, text if abs(raw) < 10**40 else "очень большое число"
    if isinstance(raw, float | Decimal):
        return repr(raw), repr(raw)
    if isinstance(raw, list | tuple):
        return "a list", "список"
    if isinstance(raw, Mapping):
        return "an object", "объект"
    name = type(raw).__name__
    return f"a {name}", f"значение типа {name}"


# =========================================================================== parsing
class _Refused(Exception):
    """A value broke a hard rule; carries the rule id and the detail in both languages."""

    def __init__(self, rule: str, en: str, ru: str) -> None:
        super().__init__(en)
        self.rule, self.en, self.ru = rule, en, ru


def _type_error(raw: Any, en: str, ru: str) -> _Refused:
    shown_en, shown_ru = _raw_shown(raw)
    return _Refused("type", f"{shown_en} {en}", f"{shown_ru} — {ru}")


def _is_missing(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def _parse_integer(raw: Any) -> int:
    value: int | None = None
    if isinstance(raw, bool):
        value = None
    elif isinstance(raw, int):
        value = raw
    elif isinstance(raw, float):
        if math.isfinite(raw) and raw.is_integer() and abs(raw) <= _MAX_INTEGER:
            value = int(raw)
    elif isinstance(raw, Decimal):
        if raw.is_finite() and raw == raw.to_integral_value() and abs(raw) <= _MAX_INTEGER:
            value = int(raw)
    elif isinstance(raw, str):
        text = raw.strip().translate(_MINUS_SIGNS)
        if len(text) <= 20 and _INTEGER_RE.match(text):
            value = int(text)
    if value is None:
        raise _type_error(raw, "is not a whole number", "не целое число")
    if abs(value) > _MAX_INTEGER:
        raise _type_error(raw, "has too many digits", "слишком много цифр")
    return value


def _parse_decimal(raw: Any) -> Decimal:
    value: Decimal | None = None
    if isinstance(raw, bool):
        value = None
    elif isinstance(raw, int):
        if abs(raw) > _MAX_INTEGER:
            raise _type_error(raw, "has too many digits", "слишком много цифр")
        value = Decimal(raw)
    elif isinstance(raw, float):
        if math.isfinite(raw):
            value = Decimal(repr(raw))
    elif isinstance(raw, Decimal):
        if raw.is_finite():
            value = raw
    elif isinstance(raw, str):
        text = raw.strip().translate(_MINUS_SIGNS)
        if len(text) > _MAX_NUMBER_CHARS:
            raise _type_error(raw, "has too many digits", "слишком много цифр")
        if _DECIMAL_RE.match(text):
            value = Decimal(text.replace(",", "."))
    if value is None:
        raise _type_error(
            raw,
            "is not a number (type digits with a decimal point or comma, e.g. 2.50 or 2,50)",
            "не число (введите цифры с запятой или точкой, например 2,50)",
        )
    return value


def _parse_date(raw: Any) -> date:
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        try:
            if m := _ISO_DATE_RE.match(text):
                return date(int(m[1]), int(m[2]), int(m[3]))
            if m := _RU_DATE_RE.match(text):
                return date(int(m[3]), int(m[2]), int(m[1]))
        except ValueError:
            pass
    raise _type_error(
        raw, "is not a date (YYYY-MM-DD or DD.MM.YYYY)", "не дата (ГГГГ-ММ-ДД или ДД.ММ.ГГГГ)"
    )


def _parse_datetime(raw: Any) -> datetime:
    if isinstance(raw, datetime):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        try:
            if _ISO_DATETIME_RE.match(text):
                return datetime.fromisoformat(text)
            if m := _RU_DATETIME_RE.match(text):
                return datetime(
                    int(m[3]), int(m[2]), int(m[1]), int(m[4]), int(m[5]), int(m[6] or 0)
                )
        except ValueError:
            pass
    raise _type_error(
        raw,
        "is not a date and time (YYYY-MM-DD HH:MM)",
        "не дата и время (ГГГГ-ММ-ДД ЧЧ:ММ)",
    )


def _parse_time(raw: Any) -> time:
    if isinstance(raw, time):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        try:
            if m := _TIME_RE.match(text):
                micro = int((m[4] or "0").ljust(6, "0"))
                return time(int(m[1]), int(m[2]), int(m[3] or 0), micro)
            if _ISO_TIME_TZ_RE.match(text):
                return time.fromisoformat(text)
        except ValueError:
            pass
    raise _type_error(raw, "is not a time (HH:MM)", "не время (ЧЧ:ММ)")


def _parse_boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return raw == 1
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text in BOOLEAN_TRUE:
            return True
        if text in BOOLEAN_FALSE:
            return False
    raise _type_error(raw, "is not yes or no", "не «да» и не «нет»")


def _parse_choice(spec: FormField, raw: Any) -> str:
    codes = [c.code for c in spec.choices or []]
    text: str | None = None
    if isinstance(raw, str):
        text = raw.strip()
    elif isinstance(raw, int) and not isinstance(raw, bool):
        text = str(raw)
    if text is not None:
        if text in codes:
            return text
        folded = [c for c in codes if c.casefold() == text.casefold()]
        if len(folded) == 1:
            return folded[0]
    shown_en, shown_ru = _raw_shown(raw)
    listed = ", ".join(codes)
    raise _Refused(
        "choice",
        f"{shown_en} is not one of the allowed codes ({listed})",
        f"{shown_ru} — недопустимый код (допустимые: {listed})",
    )


def _parse_text(spec: FormField, raw: Any) -> str:
    if not isinstance(raw, str):
        raise _type_error(raw, "is not text", "не текст")
    text = raw.strip().replace("\r\n", "\n")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _Refused(
            "type",
            "contains characters that cannot be stored",
            "содержит символы, которые невозможно сохранить",
        ) from None
    if _CONTROL_RE.search(text):
        raise _Refused(
            "type",
            "contains control characters that cannot be stored",
            "содержит управляющие символы, которые невозможно сохранить",
        )
    if spec.max_length is not None and len(text) > spec.max_length:
        n = len(text)
        raise _Refused(
            "max_length",
            f"{n} characters is longer than the maximum of {spec.max_length}",
            f"{n} {ru_plural(n, 'символ', 'символа', 'символов')} — больше максимума "
            f"{spec.max_length}",
        )
    return text


def _fit_decimals(spec: FormField, value: Decimal) -> Decimal:
    """Apply the ``decimals`` rule: drop zeros beyond it, refuse any other extra digit."""
    allowed = spec.decimals
    exponent = value.as_tuple().exponent
    if allowed is None or not isinstance(exponent, int) or -exponent <= allowed:
        return value
    quantum = Decimal(1).scaleb(-allowed)
    try:
        trimmed = value.quantize(quantum, rounding=ROUND_DOWN, context=_WIDE)
    except InvalidOperation:
        trimmed = None
    if trimmed is not None and trimmed == value:
        return trimmed
    shown_en, shown_ru = format_value(value)
    if allowed == 0:
        raise _Refused(
            "decimals",
            f"{shown_en} must be a whole number",
            f"{shown_ru} — допускается только целое число",
        )
    places_ru = ru_plural(allowed, "знака", "знаков", "знаков")
    raise _Refused(
        "decimals",
        f"{shown_en} has more than {allowed} decimal place{'s' if allowed != 1 else ''}",
        f"{shown_ru} — больше {allowed} {places_ru} после запятой",
    )


def _check_range(spec: FormField, value: int | Decimal) -> None:
    """Hard limits: outside ``min``/``max`` the value cannot be true and is refused."""
    shown = format_value(value, spec.unit)
    if spec.min is not None and value < Decimal(_plain(spec.min)):
        limit = _bound(spec.min, spec.unit)
        raise _Refused(
            "min",
            f"{shown[0]} is below the minimum of {limit[0]}",
            f"{shown[1]} — меньше минимума {limit[1]}",
        )
    if spec.max is not None and value > Decimal(_plain(spec.max)):
        limit = _bound(spec.max, spec.unit)
        raise _Refused(
            "max",
            f"{shown[0]} is above the maximum of {limit[0]}",
            f"{shown[1]} — больше максимума {limit[1]}",
        )


def _soft_range(spec: FormField, value: int | Decimal) -> tuple[str, str, str] | None:
    """Plausibility limits: (rule, en, ru) when the value is possible but unusual."""
    shown = format_value(value, spec.unit)
    if spec.soft_min is not None and value < Decimal(_plain(spec.soft_min)):
        limit = _bound(spec.soft_min, spec.unit)
        return (
            "soft_min",
            f"{shown[0]} is below the expected range (usually at least {limit[0]}); "
            "confirm the value to keep it",
            f"{shown[1]} — ниже ожидаемого диапазона (обычно не менее {limit[1]}); "
            "подтвердите значение, чтобы сохранить его",
        )
    if spec.soft_max is not None and value > Decimal(_plain(spec.soft_max)):
        limit = _bound(spec.soft_max, spec.unit)
        return (
            "soft_max",
            f"{shown[0]} is above the expected range (usually at most {limit[0]}); "
            "confirm the value to keep it",
            f"{shown[1]} — выше ожидаемого диапазона (обычно не более {limit[1]}); "
            "подтвердите значение, чтобы сохранить его",
        )
    return None


def _clean(spec: FormField, raw: Any, today: date) -> Any:
    """Type one non-missing value and apply its hard rules; raise _Refused on a breach."""
    kind = spec.type
    if kind == "integer":
        number: int | Decimal = _parse_integer(raw)
        _check_range(spec, number)
        return number
    if kind == "decimal":
        number = _fit_decimals(spec, _parse_decimal(raw))
        _check_range(spec, number)
        return number
    if kind == "text":
        return _parse_text(spec, raw)
    if kind == "choice":
        return _parse_choice(spec, raw)
    if kind == "boolean":
        return _parse_boolean(raw)
    if kind == "time":
        return _parse_time(raw)
    if kind in ("date", "datetime"):
        value: date = _parse_date(raw) if kind == "date" else _parse_datetime(raw)
        day = value.date() if isinstance(value, datetime) else value
        if spec.not_in_future and day > today:
            shown, now = format_value(value), format_value(today)
            raise _Refused(
                "not_in_future",
                f"{shown[0]} is in the future (today is {now[0]})",
                f"{shown[1]} — дата в будущем (сегодня {now[1]})",
            )
        return value
    raise _Refused("type", f"has an unknown type {kind!r}", f"имеет неизвестный тип {kind!r}")


# =========================================================================== validation
def _issue(spec: FormField, rule: str, severity: Severity, en: str, ru: str) -> FieldIssue:
    return FieldIssue(
        field=spec.code,
        rule=rule,
        severity=severity,
        message=f"{spec.label.en}: {en}",
        message_ru=f"{spec.label.ru}: {ru}",
        key=f"{spec.code}:{rule}",
    )


def _validate_field(spec: FormField, raw: Any, today: date) -> tuple[Any, bool, list[FieldIssue]]:
    """(cleaned value or None, whether something was entered, issues) for one field."""
    if _is_missing(raw):
        if spec.required:
            return (
                None,
                False,
                [
                    _issue(
                        spec,
                        "required",
                        "error",
                        "a value is required",
                        "поле обязательно для заполнения",
                    )
                ],
            )
        return None, False, []
    try:
        value = _clean(spec, raw, today)
    except _Refused as refused:
        return None, True, [_issue(spec, refused.rule, "error", refused.en, refused.ru)]
    except Exception:  # never let odd input escape as an exception: report it instead
        shown_en, shown_ru = _raw_shown(raw)
        return (
            None,
            True,
            [
                _issue(
                    spec,
                    "type",
                    "error",
                    f"{shown_en} cannot be read",
                    f"{shown_ru} — не удается прочитать",
                )
            ],
        )
    if isinstance(value, str) and not value:
        # text that was only blanks after normalisation: treat as not entered
        return _validate_field(spec, None, today)
    issues: list[FieldIssue] = []
    if spec.type in ("integer", "decimal"):
        soft = _soft_range(spec, value)
        if soft is not None:
            issues.append(_issue(spec, soft[0], "warning", soft[1], soft[2]))
    return value, True, issues


def _matches(value: Any, wanted: str | bool) -> bool:
    """Whether a cleaned value equals one of a ``required_when`` check's values.

    Booleans only match booleans (True is not the choice code "1"); anything else is
    compared by its code as written (choice code, number as typed, ISO date).
    """
    if isinstance(wanted, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(wanted, bool) and value is wanted
    if isinstance(value, date | time):
        return value.isoformat() == wanted
    return str(value) == wanted


def _condition_shown(form: Form, check: RequiredWhen) -> tuple[str, str]:
    """The values of a ``required_when`` check as a person reads them ("yes", a label)."""
    try:
        when = form.field(check.when_field)
    except KeyError:
        when = None
    labels = {c.code: c.label for c in (when.choices or [])} if when else {}
    en: list[str] = []
    ru: list[str] = []
    for v in check.values:
        if isinstance(v, bool):
            a, b = format_value(v)
        elif v in labels:
            a, b = labels[v].en, labels[v].ru
        else:
            a = b = v
        en.append(a)
        ru.append(b)
    return " or ".join(en), " или ".join(ru)


def _compare(form: Form, check: FieldComparison, cleaned: Mapping[str, Any]) -> FieldIssue | None:
    left, right = cleaned.get(check.left), cleaned.get(check.right)
    if left is None or right is None:
        return None  # nothing to compare: a missing side is the 'required' rule's business
    try:
        holds = _OPERATORS[check.op](left, right)
    except TypeError:
        return None  # incomparable types (a protocol slip): never block entry for it
    if holds:
        return None
    left_spec, right_spec = form.field(check.left), form.field(check.right)
    lv, rv = format_value(left, left_spec.unit), format_value(right, right_spec.unit)
    op = _OPERATOR_SHOWN[check.op]
    return FieldIssue(
        field=check.left,
        rule=check.id,
        severity=check.severity,
        message=(
            f"{left_spec.label.en} {op} {right_spec.label.en} is not met "
            f"({lv[0]} vs {rv[0]}): {check.message.en}"
        ),
        message_ru=(
            f"Не выполнено условие «{left_spec.label.ru} {op} {right_spec.label.ru}» "
            f"({lv[1]} и {rv[1]}): {check.message.ru}"
        ),
        key=f"{check.left}:{check.id}",
    )


def _required_when(
    form: Form,
    check: RequiredWhen,
    cleaned: Mapping[str, Any],
    entered: Collection[str],
) -> FieldIssue | None:
    when = cleaned.get(check.when_field)
    if when is None or check.field in entered:
        return None  # condition unknown, or the field was entered (valid or already refused)
    spec = form.field(check.field)
    if spec.required:
        return None  # the plain 'required' rule has already said it
    if check.values and not any(_matches(when, v) for v in check.values):
        return None
    when_spec = form.field(check.when_field)
    if check.values:
        shown = _condition_shown(form, check)
        en = f"{spec.label.en} is required when {when_spec.label.en} is {shown[0]}"
        ru = (
            f"{spec.label.ru}: обязательно для заполнения, если «{when_spec.label.ru}» — {shown[1]}"
        )
    else:
        en = f"{spec.label.en} is required when {when_spec.label.en} is given"
        ru = f"{spec.label.ru}: обязательно для заполнения, если указано «{when_spec.label.ru}»"
    return FieldIssue(
        field=check.field,
        rule=check.id,
        severity=check.severity,
        message=f"{en}. {check.message.en}",
        message_ru=f"{ru}. {check.message.ru}",
        key=f"{check.field}:{check.id}",
    )


def _form_issue(form: Form, rule: str, key: str, en: str, ru: str) -> FieldIssue:
    return FieldIssue(
        field=None,
        rule=rule,
        severity="error",
        message=en,
        message_ru=ru,
        key=f"{form.code}:{key}",
    )


def validate_form(
    form: Form,
    raw: Mapping[str, Any],
    *,
    today: date,
    confirmed_warnings: Collection[str] = (),
    language: str = "en",
) -> FormValidation:
    """Check one submission of ``form`` and type its values; never raises on bad input.

    ``raw`` maps field codes to what arrived: text from an HTML form or JSON values.
    ``today`` is the site's current date (for ``not_in_future``), passed in so that pages,
    imports and tests agree. ``confirmed_warnings`` are the warning keys the person has
    confirmed; ``language`` is the default of :meth:`FormValidation.messages` (both
    languages are always in each issue).

    A ``today`` that is not a date is the caller's bug, not bad input: TypeError.
    """
    if isinstance(today, datetime):
        today = today.date()
    elif not isinstance(today, date):
        raise TypeError(f"today must be a date, not {type(today).__name__}")
    issues: list[FieldIssue] = []
    cleaned: dict[str, Any] = {spec.code: None for spec in form.fields}
    by_code = {spec.code: spec for spec in form.fields}
    values: dict[str, Any] = {}

    items: list[tuple[Any, Any]] = []
    if isinstance(raw, Mapping):
        try:
            items = list(raw.items())
        except Exception:  # a mapping that cannot be read is reported, not raised
            items = []
            issues.append(
                _form_issue(
                    form,
                    "form_data",
                    "form_data",
                    f"The data of form {form.name.en} ({form.code}) could not be read",
                    f"Не удается прочитать данные формы «{form.name.ru}» ({form.code})",
                )
            )
    else:
        shown = _raw_shown(raw)
        issues.append(
            _form_issue(
                form,
                "form_data",
                "form_data",
                f"The data of form {form.name.en} ({form.code}) must be field values, not {shown[0]}",
                f"Данные формы «{form.name.ru}» ({form.code}) должны быть значениями полей, "
                f"а не {shown[1]}",
            )
        )
    for key, value in items:
        if isinstance(key, str) and key in by_code:
            values[key] = value
            continue
        name = key if isinstance(key, str) else repr(key)
        name = name if len(name) <= 60 else name[:60] + "…"
        issues.append(
            _form_issue(
                form,
                "unknown_field",
                f"unknown_field:{name}",
                f"Form {form.name.en} ({form.code}) has no field '{name}'",
                f"В форме «{form.name.ru}» ({form.code}) нет поля «{name}»",
            )
        )

    entered: set[str] = set()
    for spec in form.fields:
        value, was_entered, field_issues = _validate_field(spec, values.get(spec.code), today)
        cleaned[spec.code] = value
        if was_entered:
            entered.add(spec.code)
        issues.extend(field_issues)

    for check in form.checks:
        try:
            if isinstance(check, FieldComparison):
                found = _compare(form, check, cleaned)
            else:
                found = _required_when(form, check, cleaned, entered)
        except KeyError:
            found = None  # a check naming a field the form lacks: the protocol loader refuses it
        if found is not None:
            issues.append(found)

    try:
        confirmed = frozenset(k for k in confirmed_warnings if isinstance(k, str))
    except TypeError:
        confirmed = frozenset()
    issues = [
        replace(i, confirmed=True) if i.severity == "warning" and i.key in confirmed else i
        for i in issues
    ]
    return FormValidation(
        form_code=form.code,
        form_version=form.version,
        cleaned=cleaned,
        issues=issues,
        confirmed_warnings=confirmed,
        language=language if isinstance(language, str) else "en",
    )
