"""Derived values of the lung-function forms, each stored with the method that made it.

A "% predicted" is only meaningful together with the reference equation, the age and the
body size it was computed from: a later amendment may change the equation set, a
corrected birth date changes the age. So every derived number here is a
:class:`DerivedValue` carrying its ``method`` (``"GLI-2012 (Quanjer 2012)"``) and the
``inputs`` it used, and is recomputed from the entered data rather than typed.

* SPIRO: FEV1 and FVC predicted, % predicted, z-score, LLN; the FEV1/FVC ratio with its
  predicted value, z and LLN, and the two obstruction flags: below the protocol's fixed
  0.70 (EX2 as written) and below the LLN (shown alongside, as the ATS/ERS advise).
* DLCO: predicted, % predicted, z, LLN in the unit entered, and, when haemoglobin is
  given, the Hb-corrected DLCO (ATS/ERS 2017, Graham) with its % predicted.
* SIXMWT: Enright–Sherrill predicted distance, LLN and % predicted; SpO2 drop.

Age is the exact decimal age on the form's test date (:func:`lungfunction.decimal_age`),
never whole years. Values are kept at full float precision: rounding is for display, and
the analysis should not inherit display rounding.

A value that cannot be derived (demographics not yet entered, a test date before the
birth date, an age outside the equation's range) is still present, with ``value`` None
and a ``reason`` in English and Russian: the page shows why a number is missing, and
:func:`derive` never raises on such data.

No Django import.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

from ildtrial.core import lungfunction as lf
from ildtrial.core.protocol import LoadedProtocol, Protocol

__all__ = [
    "FEV1_FVC_FIXED_THRESHOLD",
    "HB_CORRECTION_METHOD",
    "METHODS",
    "DerivationContext",
    "DerivedValue",
    "derive",
    "hb_corrected_dlco",
    "hb_correction_factor",
]

FEV1_FVC_FIXED_THRESHOLD: Final = Decimal("0.70")
"""The protocol's fixed-ratio obstruction threshold (EX2: FEV1/FVC < 0.70)."""

HB_CORRECTION_METHOD: Final = "ATS/ERS 2017 (Graham) haemoglobin correction"
"""Label of the DLCO haemoglobin correction (Graham BL et al. Eur Respir J 2017;49:1600016)."""

HB_CORRECTION_CHILD_AGE: Final = 15.0
"""Below this age both sexes use the female/child factor of the ATS/ERS 2017 correction."""

METHODS: Final = {
    "gli2012": "GLI-2012 (Quanjer 2012)",
    "gli_global_2022": "GLI Global 2022 (Bowerman 2023)",
    "gli2017": "GLI-2017 (Stanojevic 2017)",
}
"""How a derived value names its reference equation set: label and first author, year."""

AGE_METHOD: Final = "exact decimal age on the test date"
SIXMWD_METHOD: Final = lf.SIX_MINUTE_WALK_EQUATIONS
SPO2_DROP_METHOD: Final = "SpO2 at rest − lowest SpO2 during the test"
RATIO_METHOD: Final = "FEV1 / FVC as entered"
FIXED_RATIO_METHOD: Final = "FEV1/FVC < 0.70 (protocol fixed ratio, EX2)"

#: How a missing input is named in a reason, in English and Russian.
_INPUT_NAMES: Final = {
    "sex": ("sex", "пол"),
    "birth_date": ("date of birth", "дата рождения"),
    "height_cm": ("height", "рост"),
    "weight_kg": ("weight", "масса тела"),
    "ethnicity": ("ethnic group", "этническая группа"),
    "test_date": ("test date", "дата исследования"),
    "fev1_l": ("FEV1", "ОФВ1"),
    "fvc_l": ("FVC", "ФЖЕЛ"),
    "dlco": ("DLCO", "DLCO"),
    "dlco_unit": ("DLCO unit", "единица DLCO"),
    "haemoglobin_g_dl": ("haemoglobin", "гемоглобин"),
    "distance_m": ("distance walked", "пройденная дистанция"),
    "spo2_rest": ("SpO2 at rest", "SpO2 в покое"),
    "spo2_nadir": ("lowest SpO2", "минимальная SpO2"),
}


@dataclass(frozen=True)
class DerivationContext:
    """What a derivation needs besides the form: the participant's demographics and the
    protocol's equation sets. Any demographic may be None (not yet entered); the values
    that need it then carry a reason instead of a number."""

    sex: str | None
    birth_date: date | None
    height_cm: float | Decimal | None
    weight_kg: float | Decimal | None
    ethnicity: str | None
    reference_equations: str = "gli2012"
    dlco_equations: str = "gli2017"

    @classmethod
    def from_demographics(
        cls, demographics: Mapping[str, Any], protocol: Protocol | LoadedProtocol | None = None
    ) -> DerivationContext:
        """Build the context from the cleaned DM form and (optionally) the protocol, whose
        ``eligibility.reference_equations``/``dlco_equations`` then choose the equations."""
        kwargs: dict[str, Any] = {}
        if protocol is not None:
            p = protocol.protocol if isinstance(protocol, LoadedProtocol) else protocol
            kwargs = {
                "reference_equations": p.eligibility.reference_equations,
                "dlco_equations": p.eligibility.dlco_equations,
            }
        return cls(
            sex=demographics.get("sex"),
            birth_date=demographics.get("birth_date"),
            height_cm=demographics.get("height_cm"),
            weight_kg=demographics.get("weight_kg"),
            ethnicity=demographics.get("ethnicity"),
            **kwargs,
        )


@dataclass(frozen=True)
class DerivedValue:
    """One derived number or flag with the method and inputs behind it.

    ``value`` is a float (or a bool for a flag), or None when it could not be derived;
    ``reason``/``reason_ru`` then say why. ``unit`` is None for unit-free values
    (z-scores, flags). ``inputs`` holds JSON-ready values (numbers, text, ISO dates).
    """

    value: float | bool | None
    unit: str | None
    method: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    reason: str | None = None
    reason_ru: str | None = None

    @property
    def available(self) -> bool:
        return self.value is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` for the form's stored ``derived`` JSON."""
        data = asdict(self)
        data["inputs"] = dict(self.inputs)
        return data


class _NotDerivable(Exception):
    """Why a group of values cannot be derived, in English and Russian."""

    def __init__(self, en: str, ru: str) -> None:
        super().__init__(en)
        self.en, self.ru = en, ru


def _missing(names: list[str]) -> _NotDerivable:
    en = ", ".join(_INPUT_NAMES.get(n, (n, n))[0] for n in names)
    ru = ", ".join(_INPUT_NAMES.get(n, (n, n))[1] for n in names)
    return _NotDerivable(f"not computed: {en} missing", f"не рассчитано: нет данных ({ru})")


def _refused(error: Exception) -> _NotDerivable:
    return _NotDerivable(f"not computed: {error}", f"не рассчитано: {error}")


def _number(value: Any) -> float | None:
    """A finite float from a cleaned or stored number (int, float, Decimal), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


class _Block:
    """A group of derived values that stand or fall together (predicted, %, z, LLN)."""

    def __init__(self, out: dict[str, DerivedValue]) -> None:
        self.out = out

    def add(
        self,
        specs: Mapping[str, tuple[str | None, str]],
        compute: Callable[[dict[str, Any]], Mapping[str, float | bool]],
    ) -> Mapping[str, float | bool] | None:
        """Run ``compute(inputs)``; store each key of ``specs`` (key -> (unit, method))
        with its value, or with the reason when it raised ``_NotDerivable``."""
        inputs: dict[str, Any] = {}
        try:
            try:
                values = compute(inputs)
            except (ValueError, TypeError, ArithmeticError) as error:
                # odd data the checks above did not foresee: a reason, never an exception
                raise _refused(error) from None
        except _NotDerivable as why:
            for key, (unit, method) in specs.items():
                self.out[key] = DerivedValue(
                    None, unit, method, _jsonable(inputs), reason=why.en, reason_ru=why.ru
                )
            return None
        for key, (unit, method) in specs.items():
            self.out[key] = DerivedValue(values[key], unit, method, _jsonable(inputs))
        return values


def _jsonable(inputs: dict[str, Any]) -> dict[str, Any]:
    return {k: _json(v) for k, v in inputs.items()}


def _gather(
    context: DerivationContext,
    cleaned: Mapping[str, Any],
    demographics: tuple[str, ...],
    measured: tuple[str, ...] = (),
    inputs: dict[str, Any] | None = None,
    *,
    dated: bool = True,
) -> dict[str, Any]:
    """The demographics, exact age and measured values a derivation needs.

    Every gap is named at once (demographics and form values), so the reason tells the
    whole story; the exact age is computed only when the birth date is needed. The values
    found are copied into ``inputs`` as they are gathered. ``dated=False`` is for values
    that need no test date (the FEV1/FVC ratio, the SpO2 drop).
    """
    missing: list[str] = []
    values: dict[str, Any] = {}
    day = _day(cleaned.get("test_date"))
    if day is None and dated:
        missing.append("test_date")
    for name in demographics:
        raw = getattr(context, name)
        if name in ("height_cm", "weight_kg"):
            raw = _number(raw)
        elif name == "birth_date":
            raw = _day(raw)
        elif not isinstance(raw, str) or not raw:
            raw = None
        if raw is None:
            missing.append(name)
        values[name] = raw
    for name in measured:
        raw = cleaned.get(name)
        if name.endswith("_unit"):
            raw = raw if isinstance(raw, str) and raw else None
        else:
            raw = _number(raw)
        if raw is None:
            missing.append(name)
        values[name] = raw
    if missing:
        raise _missing(missing)
    if day is not None:
        values["test_date"] = day
    if "birth_date" in values and day is not None:
        try:
            values["age_years"] = lf.decimal_age(values.pop("birth_date"), day)
        except lf.LungFunctionInputError as error:
            raise _refused(error) from None
    if inputs is not None:
        inputs.update(values)
    return values


def _age_value(context: DerivationContext, test_date: Any) -> DerivedValue:
    try:
        demo = _gather(context, {"test_date": test_date}, ("birth_date",))
    except _NotDerivable as why:
        return DerivedValue(None, "years", AGE_METHOD, {}, reason=why.en, reason_ru=why.ru)
    return DerivedValue(
        demo["age_years"], "years", AGE_METHOD, {"test_date": demo["test_date"].isoformat()}
    )


def _method(equations: str) -> str:
    if equations in METHODS:
        return METHODS[equations]
    known = lf.EQUATION_SETS.get(equations)
    return known.label if known else str(equations)


def _reference_keys(
    prefix: str, unit: str | None, method: str
) -> dict[str, tuple[str | None, str]]:
    suffix = f"_{unit.lower()}" if unit in ("L",) else ""
    return {
        f"{prefix}_predicted{suffix}": (unit, method),
        f"{prefix}_percent_predicted": ("%", method),
        f"{prefix}_z_score": (None, method),
        f"{prefix}_lln{suffix}": (unit, method),
    }


def _reference_values(
    keys: Mapping[str, tuple[str | None, str]], ref: lf.ReferenceValue
) -> dict[str, float]:
    names = list(keys)
    return {
        names[0]: ref.predicted,
        names[1]: ref.percent_predicted,
        names[2]: ref.z_score,
        names[3]: ref.lln,
    }


# =========================================================================== SPIRO
def _spirometry(cleaned: Mapping[str, Any], context: DerivationContext) -> dict[str, DerivedValue]:
    out: dict[str, DerivedValue] = {"age_years": _age_value(context, cleaned.get("test_date"))}
    block = _Block(out)
    equations = context.reference_equations
    method = _method(equations)
    equation_set = lf.EQUATION_SETS.get(equations)
    needs_ethnicity = equation_set.uses_ethnicity if equation_set else True
    needed = ("sex", "birth_date", "height_cm") + (("ethnicity",) if needs_ethnicity else ())

    def reference(measure: str, value: float, demo: Mapping[str, Any]) -> lf.ReferenceValue:
        try:
            return lf.spirometry(
                demo["sex"],
                demo["age_years"],
                demo["height_cm"],
                measure,
                value,
                equations=equations,
                ethnicity=demo.get("ethnicity") or "other",
            )
        except lf.LungFunctionInputError as error:
            raise _refused(error) from None

    for measure, field_code in (("FEV1", "fev1_l"), ("FVC", "fvc_l")):
        keys = _reference_keys(measure.lower(), "L", method)

        def compute(
            inputs: dict[str, Any],
            measure: str = measure,
            field_code: str = field_code,
            keys: Mapping[str, tuple[str | None, str]] = keys,
        ) -> Mapping[str, float]:
            inputs["equations"] = equations
            demo = _gather(context, cleaned, needed, (field_code,), inputs)
            return _reference_values(keys, reference(measure, demo[field_code], demo))

        block.add(keys, compute)

    # The ratio itself needs no demographics. It is computed in decimal arithmetic from
    # the values as entered, so 1.75/2.50 is exactly 0.70, not "below 0.70" by float noise
    # (the eligibility engine compares the same way).
    def exact_ratio(inputs: dict[str, Any]) -> Decimal:
        values = _gather(context, cleaned, (), ("fev1_l", "fvc_l"), dated=False)
        fev1, fvc = values["fev1_l"], values["fvc_l"]
        if fvc <= 0:
            raise _NotDerivable(
                "not computed: FVC is not positive", "не рассчитано: ФЖЕЛ не больше нуля"
            )
        inputs.update(fev1_l=fev1, fvc_l=fvc)
        return Decimal(repr(fev1)) / Decimal(repr(fvc))

    def ratio(inputs: dict[str, Any]) -> Mapping[str, float | bool]:
        exact = exact_ratio(inputs)
        return {
            "fev1_fvc_ratio": float(exact),
            "fev1_fvc_below_0_70": exact < FEV1_FVC_FIXED_THRESHOLD,
        }

    block.add(
        {
            "fev1_fvc_ratio": ("ratio", RATIO_METHOD),
            "fev1_fvc_below_0_70": (None, FIXED_RATIO_METHOD),
        },
        ratio,
    )

    def ratio_reference(inputs: dict[str, Any]) -> Mapping[str, float | bool]:
        inputs["equations"] = equations
        demo = _gather(context, cleaned, needed, ("fev1_l", "fvc_l"), inputs)
        exact = exact_ratio(inputs)
        ref = reference("FEV1FVC", float(exact), demo)
        return {
            "fev1_fvc_predicted": ref.predicted,
            "fev1_fvc_z_score": ref.z_score,
            "fev1_fvc_lln": ref.lln,
            "fev1_fvc_below_lln": float(exact) < ref.lln,
        }

    block.add(
        {
            "fev1_fvc_predicted": ("ratio", method),
            "fev1_fvc_z_score": (None, method),
            "fev1_fvc_lln": ("ratio", method),
            "fev1_fvc_below_lln": (None, f"FEV1/FVC < LLN, {method}"),
        },
        ratio_reference,
    )
    return out


# =========================================================================== DLCO
def hb_correction_factor(hb_g_dl: float, sex: str, age: float) -> float:
    """The ATS/ERS 2017 (Graham) factor that corrects a measured DLCO for haemoglobin
    (to 14.6 g/dL for adult men, 13.4 g/dL for women and children under 15):

    * adult male:                (10.22 + Hb) / (1.7 × Hb)
    * adult female, child < 15:  (9.38 + Hb) / (1.7 × Hb)

    DLCO falls with anaemia without any change in the lung, so the corrected value is
    what the lung would transfer at a normal haemoglobin. Hb in g/dL, age in years.
    """
    for name, value in (("haemoglobin_g_dl", hb_g_dl), ("age", age)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise lf.LungFunctionInputError(name, f"must be a number (got {value!r})")
    if not hb_g_dl > 0:
        raise lf.LungFunctionInputError(
            "haemoglobin_g_dl", f"must be greater than 0 (got {hb_g_dl!r})"
        )
    if sex not in lf.SEXES:
        raise lf.LungFunctionInputError("sex", f"must be 'M' or 'F' (got {sex!r})")
    constant = 10.22 if sex == "M" and age >= HB_CORRECTION_CHILD_AGE else 9.38
    return (constant + hb_g_dl) / (1.7 * hb_g_dl)


def hb_corrected_dlco(dlco: float, hb_g_dl: float, sex: str, age: float) -> float:
    """The Hb-corrected DLCO, in the unit of ``dlco``: DLCO × :func:`hb_correction_factor`."""
    return dlco * hb_correction_factor(hb_g_dl, sex, age)


def _dlco(cleaned: Mapping[str, Any], context: DerivationContext) -> dict[str, DerivedValue]:
    out: dict[str, DerivedValue] = {"age_years": _age_value(context, cleaned.get("test_date"))}
    block = _Block(out)
    equations = context.dlco_equations
    method = _method(equations)
    raw_unit = cleaned.get("dlco_unit")
    unit = raw_unit if isinstance(raw_unit, str) and raw_unit else None
    keys = _reference_keys("dlco", unit, method)
    demographics = ("sex", "birth_date", "height_cm")

    def reference(inputs: dict[str, Any]) -> lf.ReferenceValue:
        inputs["equations"] = equations
        demo = _gather(context, cleaned, demographics, ("dlco", "dlco_unit"), inputs)
        try:
            return lf.dlco(
                demo["sex"],
                demo["age_years"],
                demo["height_cm"],
                demo["dlco"],
                demo["dlco_unit"],
                equations=equations,
            )
        except lf.LungFunctionInputError as error:
            raise _refused(error) from None

    block.add(keys, lambda inputs: _reference_values(keys, reference(inputs)))

    def corrected(inputs: dict[str, Any]) -> float:
        demo = _gather(
            context, cleaned, ("sex", "birth_date"), ("dlco", "haemoglobin_g_dl"), inputs
        )
        try:
            return hb_corrected_dlco(
                demo["dlco"], demo["haemoglobin_g_dl"], demo["sex"], demo["age_years"]
            )
        except lf.LungFunctionInputError as error:
            raise _refused(error) from None

    block.add(
        {"dlco_hb_corrected": (unit, HB_CORRECTION_METHOD)},
        lambda inputs: {"dlco_hb_corrected": corrected(inputs)},
    )

    def corrected_percent(inputs: dict[str, Any]) -> Mapping[str, float]:
        value = corrected(inputs)
        predicted = reference(inputs).predicted
        inputs["dlco_hb_corrected"] = value
        return {"dlco_hb_corrected_percent_predicted": 100.0 * value / predicted}

    block.add(
        {
            "dlco_hb_corrected_percent_predicted": (
                "%",
                f"{HB_CORRECTION_METHOD}; predicted by {method}",
            )
        },
        corrected_percent,
    )
    return out


# =========================================================================== SIXMWT
def _six_minute_walk(
    cleaned: Mapping[str, Any], context: DerivationContext
) -> dict[str, DerivedValue]:
    out: dict[str, DerivedValue] = {"age_years": _age_value(context, cleaned.get("test_date"))}
    block = _Block(out)
    demographics = ("sex", "birth_date", "height_cm", "weight_kg")

    def reference(inputs: dict[str, Any], measured: tuple[str, ...] = ()) -> dict[str, Any]:
        demo = _gather(context, cleaned, demographics, measured, inputs)
        try:
            predicted, lln = lf.six_minute_walk_predicted(
                demo["sex"], demo["age_years"], demo["height_cm"], demo["weight_kg"]
            )
        except lf.LungFunctionInputError as error:
            raise _refused(error) from None
        return {**demo, "sixmwd_predicted_m": predicted, "sixmwd_lln_m": lln}

    def predicted(inputs: dict[str, Any]) -> Mapping[str, float]:
        ref = reference(inputs)
        return {
            "sixmwd_predicted_m": ref["sixmwd_predicted_m"],
            "sixmwd_lln_m": ref["sixmwd_lln_m"],
        }

    block.add(
        {"sixmwd_predicted_m": ("m", SIXMWD_METHOD), "sixmwd_lln_m": ("m", SIXMWD_METHOD)},
        predicted,
    )

    def percent(inputs: dict[str, Any]) -> Mapping[str, float]:
        ref = reference(inputs, ("distance_m",))
        inputs["sixmwd_predicted_m"] = ref["sixmwd_predicted_m"]
        return {"sixmwd_percent_predicted": 100.0 * ref["distance_m"] / ref["sixmwd_predicted_m"]}

    block.add({"sixmwd_percent_predicted": ("%", SIXMWD_METHOD)}, percent)

    def drop(inputs: dict[str, Any]) -> Mapping[str, float]:
        values = _gather(context, cleaned, (), ("spo2_rest", "spo2_nadir"), dated=False)
        inputs.update(spo2_rest=values["spo2_rest"], spo2_nadir=values["spo2_nadir"])
        return {"spo2_drop": values["spo2_rest"] - values["spo2_nadir"]}

    block.add({"spo2_drop": ("%", SPO2_DROP_METHOD)}, drop)
    return out


_DERIVATIONS: Final[
    dict[str, Callable[[Mapping[str, Any], DerivationContext], dict[str, DerivedValue]]]
] = {
    "SPIRO": _spirometry,
    "DLCO": _dlco,
    "SIXMWT": _six_minute_walk,
}


def derive(
    form_code: str, cleaned: Mapping[str, Any], context: DerivationContext
) -> dict[str, DerivedValue]:
    """The derived values of one form (an empty dict for a form that has none).

    ``cleaned`` is :attr:`crf.FormValidation.cleaned` (or the stored JSON values: numbers
    and ISO dates are read too). Every key of the form's derivations is always present;
    what cannot be computed has ``value`` None and a reason. Never raises on bad data.
    """
    compute = _DERIVATIONS.get(form_code)
    if compute is None or not isinstance(cleaned, Mapping):
        return {}
    return compute(cleaned, context)
