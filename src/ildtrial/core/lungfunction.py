"""Lung-function reference values: % predicted, z-score and LLN for the trial's measures.

Eligibility (FVC >= 40 % predicted, DLCO >= 20 % predicted) and every "% predicted" in
the analysis depend on a reference equation, so this module is the single place where
measured values meet the Global Lung Function Initiative (GLI) equations:

* spirometry (FEV1, FVC, FEV1/FVC): GLI-2012 (Quanjer 2012, needs an ethnicity group) or
  GLI Global 2022 (Bowerman 2023, race-neutral);
* transfer factor (DLCO): GLI-2017 (Stanojevic 2017, with its 2020 erratum);
* 6-minute walk distance: Enright & Sherrill 1998.

The GLI coefficient and spline tables are not retyped here: they come from the ``pyspiro``
package, which ships them at full precision and interpolates the splines between the
quarter-year age rows as the GLI papers prescribe. This module only chooses the table,
checks the inputs, and turns the (L, M, S) triplet into the numbers a report needs.

Every result names the equation set that produced it, because a derived value is only
interpretable together with the method behind it. Inputs are checked before anything is
computed; a bad input raises :class:`LungFunctionInputError` (a ``ValueError``) whose
message names the field and the rule, so a form or the command line can show it as is.
The hard limits are module-level constants so that the eCRF validation can reuse them
instead of restating them.

No Django import here: the same functions serve the web forms, the CLI and the analysis.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, Final, Literal, NamedTuple

__all__ = [
    "DLCO_ML_MIN_MMHG_MAX",
    "DLCO_UNITS",
    "EQUATION_SETS",
    "ETHNICITIES",
    "FEV1FVC_MAX",
    "HEIGHT_CM_MAX",
    "HEIGHT_CM_MIN",
    "ML_MIN_MMHG_PER_MMOL_MIN_KPA",
    "SEXES",
    "SIX_MINUTE_WALK_AGE_MAX",
    "SIX_MINUTE_WALK_AGE_MIN",
    "SIX_MINUTE_WALK_DERIVATION_AGES",
    "SIX_MINUTE_WALK_EQUATIONS",
    "SPIROMETRY_MEASURES",
    "VOLUME_L_MAX",
    "WEIGHT_KG_MAX",
    "WEIGHT_KG_MIN",
    "EquationSet",
    "LungFunctionInputError",
    "ReferenceValue",
    "SixMinuteWalkReference",
    "decimal_age",
    "dlco",
    "six_minute_walk_predicted",
    "spirometry",
]

# --- Hard limits -------------------------------------------------------------------------
# Values outside these bounds are not rare patients but entry errors (wrong unit, a slipped
# decimal point): no adult has them. Plausibility ranges that merely deserve a query belong
# to the protocol file, not here.

HEIGHT_CM_MIN: Final = 100.0
"""Lowest accepted standing height, cm."""
HEIGHT_CM_MAX: Final = 250.0
"""Highest accepted standing height, cm."""
WEIGHT_KG_MIN: Final = 20.0
"""Lowest accepted body weight, kg."""
WEIGHT_KG_MAX: Final = 300.0
"""Highest accepted body weight, kg."""
VOLUME_L_MAX: Final = 15.0
"""Highest accepted FEV1 or FVC, litres (above any recorded human vital capacity; catches mL typed as L)."""
FEV1FVC_MAX: Final = 1.0
"""FEV1/FVC is a fraction: FEV1 cannot exceed FVC (a value like 70 means % was typed)."""
DLCO_ML_MIN_MMHG_MAX: Final = 100.0
"""Highest accepted DLCO, mL/min/mmHg (about 33.5 mmol/min/kPa; healthy adults stay below 60)."""

ML_MIN_MMHG_PER_MMOL_MIN_KPA: Final = 2.987
"""1 mmol/min/kPa = 2.987 mL/min/mmHg (SI transfer factor to traditional DLCO units)."""

DLCO_UNITS: Final = ("mL/min/mmHg", "mmol/min/kPa")
"""Units accepted for DLCO; the first is the one the equations are evaluated in."""

SEXES: Final = ("M", "F")
"""Sex as recorded (SDTM SEX codes); the GLI equations are sex-specific."""

_SPIROMETRY_UNITS: Final = {"FEV1": "L", "FVC": "L", "FEV1FVC": "ratio"}

SPIROMETRY_MEASURES: Final = tuple(_SPIROMETRY_UNITS)
"""Spirometric measures with a reference equation here; FEV1FVC is a fraction 0-1."""

ETHNICITIES: Final = {
    "caucasian": "CAUCASIAN",
    "african_american": "AFRICAN_AMERICAN",
    "ne_asian": "NORTHEAST_ASIAN",
    "se_asian": "SOUTHEAST_ASIAN",
    "other": "OTHER",
}
"""GLI-2012 ethnicity groups: our vocabulary -> member name of ``pyspiro.GLI_2012.Ethnicity``.

GLI-2012 shifts M and S by group, so the group must be recorded; "other" is GLI's
"Other/mixed". GLI Global 2022 is race-neutral and ignores the group; GLI-2017 (DLCO) was
derived in Caucasians only and has no group term.
"""


class LungFunctionInputError(ValueError):
    """An input that the reference equations cannot accept.

    ``field`` names the input (as the keyword argument is spelled, or the measure code for
    a measured value) and ``rule`` says what it must satisfy; ``str(error)`` is
    ``"<field>: <rule>"`` so it can be shown to the person who typed the value.
    """

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


@dataclass(frozen=True, slots=True)
class EquationSet:
    """One published set of reference equations, as a result names it.

    ``id`` is the stable identifier stored with derived values and used in the protocol
    file; ``label`` is what a report prints; ``age_min``/``age_max`` is the age range the
    published tables cover (outside it the equations are an extrapolation we refuse).
    """

    id: str
    label: str
    kind: Literal["spirometry", "transfer_factor"]
    age_min: float
    age_max: float
    uses_ethnicity: bool
    citation: str


EQUATION_SETS: Final = {
    "gli2012": EquationSet(
        id="gli2012",
        label="GLI-2012",
        kind="spirometry",
        age_min=3.0,
        age_max=95.0,
        uses_ethnicity=True,
        citation="Quanjer PH et al. Eur Respir J 2012;40:1324-43",
    ),
    "gli_global_2022": EquationSet(
        id="gli_global_2022",
        label="GLI Global 2022",
        kind="spirometry",
        age_min=3.0,
        age_max=95.0,
        uses_ethnicity=False,
        citation="Bowerman C et al. Am J Respir Crit Care Med 2023;207:768-74",
    ),
    "gli2017": EquationSet(
        id="gli2017",
        label="GLI-2017",
        kind="transfer_factor",
        age_min=5.0,
        age_max=90.0,
        uses_ethnicity=False,
        citation=(
            "Stanojevic S et al. Eur Respir J 2017;50:1700010; erratum Eur Respir J 2020;56:1750010"
        ),
    ),
}
"""Equation sets by identifier. ``gli2012`` is the default for spirometry, ``gli2017`` for DLCO."""

SIX_MINUTE_WALK_EQUATIONS: Final = "Enright & Sherrill 1998"
"""Label of the 6-minute-walk reference equation (Am J Respir Crit Care Med 1998;158:1384)."""
SIX_MINUTE_WALK_AGE_MIN: Final = 18.0
"""Youngest age accepted for the 6MWD equation: it is an adult equation."""
SIX_MINUTE_WALK_AGE_MAX: Final = 100.0
"""Oldest age accepted for the 6MWD equation."""
SIX_MINUTE_WALK_DERIVATION_AGES: Final = (40.0, 80.0)
"""Ages of the Enright & Sherrill sample; outside them the prediction is an extrapolation.

Not enforced (the trial enrols from 20 years), but a report may want to flag it.
"""


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    """A measured value interpreted against a reference equation.

    ``predicted`` is the GLI median M and ``lln`` the 5th centile, both in ``unit`` (the
    unit the value was entered in); ``percent_predicted`` is 100 x value / M and
    ``z_score`` the LMS z-score. ``equations`` is the human label of the equation set
    (e.g. "GLI-2012"), kept with the numbers so a report can say how each was obtained.
    """

    measure: str
    value: float
    unit: str
    predicted: float
    percent_predicted: float
    z_score: float
    lln: float
    equations: str

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of the fields (floats and strings only), ready for ``json.dumps``."""
        return asdict(self)


class SixMinuteWalkReference(NamedTuple):
    """Predicted 6-minute walk distance and its lower limit of normal, metres.

    A tuple, so ``predicted_m, lln_m = six_minute_walk_predicted(...)`` works.
    """

    predicted_m: float
    lln_m: float


# --- Input checks ------------------------------------------------------------------------


def _number(field: str, value: object) -> float:
    """Return ``value`` as a finite float, or raise naming the field."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise LungFunctionInputError(field, f"must be a number (got {value!r})")
    number = float(value)
    if not math.isfinite(number):
        raise LungFunctionInputError(field, f"must be a finite number (got {value!r})")
    return number


def _in_range(field: str, value: object, low: float, high: float, unit: str) -> float:
    """Return ``value`` as a float if ``low <= value <= high``, else raise naming the field."""
    number = _number(field, value)
    if not low <= number <= high:
        raise LungFunctionInputError(
            field, f"must be between {low:g} and {high:g} {unit} (got {number:g})"
        )
    return number


def _positive_at_most(field: str, value: object, high: float, unit: str) -> float:
    """Return ``value`` as a float if ``0 < value <= high``, else raise naming the field."""
    number = _number(field, value)
    if number <= 0:
        raise LungFunctionInputError(field, f"must be greater than 0 {unit} (got {number:g})")
    if number > high:
        raise LungFunctionInputError(field, f"must be at most {high:g} {unit} (got {number:g})")
    return number


def _sex(sex: object) -> str:
    """Normalise the sex code to "M" or "F"."""
    code = sex.strip().upper() if isinstance(sex, str) else None
    if code not in SEXES:
        raise LungFunctionInputError("sex", f"must be 'M' or 'F' (got {sex!r})")
    return code


def _height(height_cm: object) -> float:
    return _in_range("height_cm", height_cm, HEIGHT_CM_MIN, HEIGHT_CM_MAX, "cm")


def _age(age: object, equation_set: EquationSet) -> float:
    number = _number("age", age)
    if not equation_set.age_min <= number <= equation_set.age_max:
        raise LungFunctionInputError(
            "age",
            f"must be between {equation_set.age_min:g} and {equation_set.age_max:g} years "
            f"for {equation_set.label} (got {number:g})",
        )
    return number


def _equation_set(equations: object, kind: str) -> EquationSet:
    accepted = [e.id for e in EQUATION_SETS.values() if e.kind == kind]
    equation_set = EQUATION_SETS.get(equations) if isinstance(equations, str) else None
    if equation_set is None or equation_set.kind != kind:
        raise LungFunctionInputError(
            "equations",
            f"must be one of {', '.join(accepted)} for {kind.replace('_', ' ')} "
            f"(got {equations!r})",
        )
    return equation_set


def _ethnicity(ethnicity: object) -> str:
    if not isinstance(ethnicity, str) or ethnicity not in ETHNICITIES:
        raise LungFunctionInputError(
            "ethnicity", f"must be one of {', '.join(ETHNICITIES)} (got {ethnicity!r})"
        )
    return ethnicity


def _spirometry_value(measure: str, value: object) -> float:
    if measure == "FEV1FVC":
        number = _number(measure, value)
        if not 0 < number <= FEV1FVC_MAX:
            raise LungFunctionInputError(
                measure,
                f"must be a fraction greater than 0 and at most {FEV1FVC_MAX:g} "
                f"(e.g. 0.70, not 70 %; got {number:g})",
            )
        return number
    return _positive_at_most(measure, value, VOLUME_L_MAX, "L")


def _dlco_unit(unit: object) -> str:
    for accepted in DLCO_UNITS:
        if isinstance(unit, str) and unit.strip().lower() == accepted.lower():
            return accepted
    raise LungFunctionInputError(
        "unit", f"DLCO unit must be one of {', '.join(DLCO_UNITS)} (got {unit!r})"
    )


# --- pyspiro behind one door ---------------------------------------------------------------
# pyspiro (and pandas under it) is imported on first use, not at import time, so the CLI
# and the web app do not pay for it unless a reference value is computed. Each equation
# object reads its tables once and is read-only afterwards.


@functools.cache
def _equation_object(equation_id: str) -> Any:
    import pyspiro

    classes = {
        "gli2012": pyspiro.GLI_2012,
        "gli_global_2022": pyspiro.BOWERMAN_2022,
        "gli2017": pyspiro.GLI_2017,
    }
    return classes[equation_id]()


def _lms(
    equation_set: EquationSet,
    sex: str,
    age: float,
    height_cm: float,
    parameter_name: str,
    ethnicity: str | None,
) -> tuple[float, float, float]:
    """The GLI (L, M, S) triplet from pyspiro's tables, as Python floats."""
    equation = _equation_object(equation_set.id)
    sex_code = equation.Sex.MALE.value if sex == "M" else equation.Sex.FEMALE.value
    parameter = equation.Parameters[parameter_name]
    if equation_set.uses_ethnicity:
        if ethnicity is None:
            raise LungFunctionInputError("ethnicity", f"is required by {equation_set.label}")
        ethnicity_code = equation.Ethnicity[ETHNICITIES[ethnicity]].value
        lms = equation.lms(sex_code, age, height_cm, ethnicity_code, parameter, None)
    else:
        lms = equation.lms(sex_code, age, height_cm, parameter, None)
    try:
        l_value, m_value, s_value = (float(x) for x in lms)
    except TypeError:  # pyspiro answers pandas.NA outside its tables
        raise LungFunctionInputError(
            "age", f"outside the tables of {equation_set.label} (got {age:g})"
        ) from None
    return l_value, m_value, s_value


def _reference_value(
    measure: str,
    value: float,
    unit: str,
    lms: tuple[float, float, float],
    equations: str,
    scale: float = 1.0,
) -> ReferenceValue:
    """Apply the LMS formulas; ``scale`` converts M and LLN from the computing unit to ``unit``.

    z = ((x/M)^L - 1) / (L*S), LLN = M * (1 - 1.645*L*S)^(1/L), % predicted = 100*x/M.
    z and % predicted are unit-free, so they are the same in either DLCO unit.
    """
    l_value, m_value, s_value = lms
    x = value * scale
    return ReferenceValue(
        measure=measure,
        value=value,
        unit=unit,
        predicted=m_value / scale,
        percent_predicted=100.0 * x / m_value,
        z_score=((x / m_value) ** l_value - 1.0) / (l_value * s_value),
        lln=m_value * (1.0 - 1.645 * l_value * s_value) ** (1.0 / l_value) / scale,
        equations=equations,
    )


# --- Public functions ------------------------------------------------------------------------


def decimal_age(birth_date: date, test_date: date) -> float:
    """Exact age in decimal years on the test date.

    GLI equations use exact age, not whole years: between two birthdays the predicted FVC
    of an older adult falls by about 1 % a year, so truncating the age biases % predicted.
    The age is the number of completed years plus the elapsed fraction of the current year
    of life (days since the last birthday / days from that birthday to the next one), so
    it is a whole number on every birthday. A 29 February birthday falls on 28 February
    in common years.
    """
    for field, value in (("birth_date", birth_date), ("test_date", test_date)):
        if not isinstance(value, date):
            raise LungFunctionInputError(field, f"must be a date (got {value!r})")
    # a datetime is a date too, but cannot be compared with a plain date: keep the day
    if isinstance(birth_date, datetime):
        birth_date = birth_date.date()
    if isinstance(test_date, datetime):
        test_date = test_date.date()
    if test_date < birth_date:
        raise LungFunctionInputError(
            "test_date",
            f"must not be before birth_date (test {test_date.isoformat()}, "
            f"birth {birth_date.isoformat()})",
        )
    years = test_date.year - birth_date.year
    if _anniversary(birth_date, test_date.year) > test_date:
        years -= 1
    last = _anniversary(birth_date, birth_date.year + years)
    following = _anniversary(birth_date, birth_date.year + years + 1)
    return years + (test_date - last).days / (following - last).days


def _anniversary(birth_date: date, year: int) -> date:
    """The birthday in ``year`` (28 February for a 29 February birth in a common year)."""
    try:
        return birth_date.replace(year=year)
    except ValueError:
        return birth_date.replace(year=year, day=28)


def spirometry(
    sex: str,
    age: float,
    height_cm: float,
    measure: str,
    value: float,
    equations: str = "gli2012",
    ethnicity: str = "caucasian",
) -> ReferenceValue:
    """Reference values for one spirometric measure (FEV1 or FVC in litres, FEV1FVC 0-1).

    ``equations`` is ``"gli2012"`` (default; uses ``ethnicity``) or ``"gli_global_2022"``
    (race-neutral; ``ethnicity`` is still checked but does not change the result).
    ``age`` is the exact decimal age on the test date (see :func:`decimal_age`).
    """
    sex = _sex(sex)
    height = _height(height_cm)
    equation_set = _equation_set(equations, "spirometry")
    age_years = _age(age, equation_set)
    ethnicity = _ethnicity(ethnicity)
    if measure not in SPIROMETRY_MEASURES:
        raise LungFunctionInputError(
            "measure", f"must be one of {', '.join(SPIROMETRY_MEASURES)} (got {measure!r})"
        )
    number = _spirometry_value(measure, value)
    lms = _lms(equation_set, sex, age_years, height, measure, ethnicity)
    return _reference_value(measure, number, _SPIROMETRY_UNITS[measure], lms, equation_set.label)


def dlco(
    sex: str,
    age: float,
    height_cm: float,
    value: float,
    unit: str = "mL/min/mmHg",
    equations: str = "gli2017",
) -> ReferenceValue:
    """Reference values for the CO transfer factor (DLCO / TLCO), GLI-2017.

    The value may be entered in mL/min/mmHg or mmol/min/kPa; the equations are evaluated
    in mL/min/mmHg (1 mmol/min/kPa = 2.987 mL/min/mmHg) and predicted and LLN are
    reported back in the unit entered, so what was entered stays what is shown. % predicted
    and z-score do not depend on the unit.
    """
    sex = _sex(sex)
    height = _height(height_cm)
    equation_set = _equation_set(equations, "transfer_factor")
    age_years = _age(age, equation_set)
    unit = _dlco_unit(unit)
    scale = 1.0 if unit == "mL/min/mmHg" else ML_MIN_MMHG_PER_MMOL_MIN_KPA
    number = _positive_at_most("DLCO", value, DLCO_ML_MIN_MMHG_MAX / scale, unit)
    lms = _lms(equation_set, sex, age_years, height, "DLCO", None)
    return _reference_value("DLCO", number, unit, lms, equation_set.label, scale)


def six_minute_walk_predicted(
    sex: str, age: float, height_cm: float, weight_kg: float
) -> SixMinuteWalkReference:
    """Predicted 6-minute walk distance and LLN in metres (Enright & Sherrill 1998).

    Men:   7.57*height_cm - 5.02*age - 1.76*weight_kg - 309;  LLN = predicted - 153.
    Women: 2.11*height_cm - 2.29*weight_kg - 5.78*age + 667;  LLN = predicted - 139.

    The 6MWD is a secondary endpoint; the prediction lets a report express it against
    what a healthy adult of the same build would walk. The equation was derived at ages
    40-80 (see ``SIX_MINUTE_WALK_DERIVATION_AGES``); adults 18-100 are accepted. An LLN
    below zero is reported as 0; inputs for which the equation predicts no positive
    distance are refused.
    """
    sex = _sex(sex)
    age_years = _in_range(
        "age", age, SIX_MINUTE_WALK_AGE_MIN, SIX_MINUTE_WALK_AGE_MAX, "years for the 6MWD equation"
    )
    height = _height(height_cm)
    weight = _in_range("weight_kg", weight_kg, WEIGHT_KG_MIN, WEIGHT_KG_MAX, "kg")
    if sex == "M":
        predicted = 7.57 * height - 5.02 * age_years - 1.76 * weight - 309.0
        lln = predicted - 153.0
    else:
        predicted = 2.11 * height - 2.29 * weight - 5.78 * age_years + 667.0
        lln = predicted - 139.0
    if predicted <= 0:
        raise LungFunctionInputError(
            "height_cm/age/weight_kg",
            f"{SIX_MINUTE_WALK_EQUATIONS} predicts no positive distance for these inputs "
            f"(predicted {predicted:.1f} m)",
        )
    return SixMinuteWalkReference(predicted_m=predicted, lln_m=max(lln, 0.0))
