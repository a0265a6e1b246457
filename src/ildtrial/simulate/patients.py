"""Virtual patients for NCT02594839: screening candidates, outcome trajectories, adverse events.

Why: the design tool and the platform's end-to-end tests need realistic participants whose
screening data go through the *real* eligibility engine (so screen-failure rates come from
the protocol's criteria, not from a number typed into a simulator), and whose lung
function, walk distance, deaths and adverse events look like the published trial's
(Averyanov et al. 2020, summarised in ``/work/shared/domain/statistics.md``). Every number
of the model lives in ``parameters.yaml`` with its unit and source; this module only
implements the model.

Three layers, all deterministic given a ``numpy.random.Generator``:

* :func:`generate_candidates`: demographics, diagnosis, screening spirometry/DLCO and a
  prior measurement ~12 months earlier, exclusion answers and prior treatments, returned as
  :class:`VirtualCandidate` objects whose ``data`` is the eligibility engine's input dict
  (``docs/eligibility-input.md``). % predicted is generated on the GLI scale through
  :mod:`ildtrial.core.lungfunction`, so IN3 fails exactly when the drawn % predicted is
  below the protocol's threshold (up to rounding of the entered values).
* :func:`simulate_trajectories`: FVC (mL), DLCO (mL/min/mmHg) and 6MWD (m) at weeks
  0/13/26/39/52 from a random-intercept, random-slope model with AR(1) serial correlation
  and measurement noise, an additive arm effect growing linearly to ``effect_week52``,
  deaths and withdrawals (exponential times) and missed visits. The vectorised helpers
  (:func:`endpoint_values`, :func:`event_days`, :func:`observed_visits`) are shared with
  the design tool, so the two use literally the same model.
* :func:`simulate_adverse_events`: infusion reactions (fever, chills) concentrated the day
  after infusion, background AEs, non-fatal SAEs, product-related SAEs and fatal
  respiratory failure at each death, with CTCAE v5.0 terms and grades, ICH E2A
  seriousness criteria and relatedness (``/work/shared/domain/safety.md``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from scipy import stats

from ildtrial.core import lungfunction as lf
from ildtrial.core.protocol import LoadedProtocol, Protocol, load_protocol

__all__ = [
    "ENDPOINTS",
    "EndpointModel",
    "ParameterError",
    "ProtocolSchedule",
    "SimulatedAdverseEvent",
    "SimulationParameters",
    "Trajectories",
    "VirtualCandidate",
    "default_parameters",
    "endpoint_values",
    "event_days",
    "generate_candidates",
    "infusions_received",
    "load_parameters",
    "observed_visits",
    "protocol_schedule",
    "screen",
    "simulate_adverse_events",
    "simulate_trajectories",
]

ENDPOINTS: tuple[str, ...] = ("FVC", "DLCO", "6MWD")
"""Endpoint codes accepted by the simulator (FVC in mL, DLCO in mL/min/mmHg, 6MWD in m)."""
_ENDPOINT_KEY = {"FVC": "fvc", "DLCO": "dlco", "6MWD": "six_mwd"}
DAYS_PER_YEAR = 365.25
DAYS_PER_MONTH = 30.4375  # the eligibility engine's month (IN4 window)


# =========================================================================== parameters


class ParameterError(ValueError):
    """``parameters.yaml`` (or an override) is invalid; ``issues`` lists (path, problem)."""

    def __init__(self, source: str, issues: Sequence[tuple[str, str]]):
        self.source = source
        self.issues = list(issues)
        lines = "\n".join(f"  {path}: {problem}" for path, problem in self.issues)
        super().__init__(f"invalid simulation parameters in {source}:\n{lines}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Quantity(_Strict):
    """One model parameter: its value, unit and where the number comes from."""

    value: float
    unit: str = Field(min_length=1)
    source: str = Field(min_length=3)
    note: str | None = None


class Number(Quantity):
    pass


class NonNegative(Quantity):
    value: float = Field(ge=0)


class Positive(Quantity):
    value: float = Field(gt=0)


class Probability(Quantity):
    value: float = Field(ge=0, le=1)


class HazardProbability(Quantity):
    """A 12-month event probability (must be < 1 to give a finite hazard)."""

    value: float = Field(ge=0, lt=1)


class Correlation(Quantity):
    value: float = Field(gt=-1, lt=1)


class DateQuantity(_Strict):
    value: date
    unit: Literal["date"]
    source: str = Field(min_length=3)
    note: str | None = None


class Screening(_Strict):
    first_screening_date: DateQuantity
    recruitment_days: Positive
    days_to_randomization: NonNegative


class Population(_Strict):
    excluded_ild_fraction: Probability
    iip_fraction: Probability
    male_fraction_iip: Probability
    male_fraction_ctd: Probability
    age_mean_iip: Positive
    age_sd_iip: Positive
    age_mean_ctd: Positive
    age_sd_ctd: Positive
    age_min: Positive
    age_max: Positive
    height_mean_male: Positive
    height_sd_male: Positive
    height_mean_female: Positive
    height_sd_female: Positive
    bmi_mean: Positive
    bmi_sd: Positive
    symptom_years_mean: Positive
    short_symptoms_fraction: Probability
    no_diagnostic_imaging_fraction: Probability
    histology_fraction: Probability

    @model_validator(mode="after")
    def _ages(self) -> Population:
        if not 18 <= self.age_min.value < self.age_max.value <= 95:
            raise ValueError("need 18 <= age_min < age_max <= 95 (GLI and 6MWD equations)")
        return self


class LungFunction(_Strict):
    fvc_percent_mean: Positive
    fvc_percent_sd: Positive
    fvc_percent_min: Positive
    dlco_percent_mean: Positive
    dlco_percent_sd: Positive
    dlco_percent_min: Positive
    percent_correlation: Correlation
    fev1_fvc_mean: Probability
    fev1_fvc_sd: Positive
    prior_fvc_decline_mean: Number
    prior_fvc_decline_sd: Positive
    prior_dlco_decline_mean: Number
    prior_dlco_decline_sd: Positive
    prior_decline_correlation: Correlation
    prior_interval_months_mean: Positive
    prior_interval_months_sd: NonNegative
    prior_dlco_si_units_fraction: Probability
    six_mwd_fvc_correlation: Correlation


class Exclusions(_Strict):
    significant_condition: Probability
    recent_infection: Probability
    remote_infection: Probability
    recent_malignancy: Probability
    remote_malignancy: Probability
    unable_to_cooperate: Probability
    pregnant_or_breastfeeding: Probability
    transplant_listing: Probability
    recent_alcohol_abuse: Probability
    other_trial: Probability
    recent_treatment_iip: Probability
    recent_treatment_ctd: Probability
    past_treatment_iip: Probability
    past_treatment_ctd: Probability


class EndpointModel(_Strict):
    """Outcome model of one endpoint (see the comment above ``outcomes`` in the YAML)."""

    baseline_mean: Number
    baseline_sd: NonNegative
    baseline_min: Number
    placebo_slope: Number
    slope_sd: NonNegative
    serial_sd: NonNegative
    serial_correlation: Quantity = Field()
    measurement_sd: NonNegative
    effect_week52: Number
    floor: Number

    @field_validator("serial_correlation")
    @classmethod
    def _ar(cls, q: Quantity) -> Quantity:
        if not 0 <= q.value < 1:
            raise ValueError("serial correlation per 13 weeks must be in [0, 1)")
        return q


class Outcomes(_Strict):
    fvc: EndpointModel
    dlco: EndpointModel
    six_mwd: EndpointModel
    slope_correlation_fvc_dlco: Correlation
    slope_correlation_fvc_six_mwd: Correlation
    slope_correlation_dlco_six_mwd: Correlation

    def endpoint(self, code: str) -> EndpointModel:
        if code not in _ENDPOINT_KEY:
            raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)} (got {code!r})")
        return getattr(self, _ENDPOINT_KEY[code])

    def slope_correlation(self) -> np.ndarray:
        a = self.slope_correlation_fvc_dlco.value
        b = self.slope_correlation_fvc_six_mwd.value
        c = self.slope_correlation_dlco_six_mwd.value
        return np.array([[1.0, a, b], [a, 1.0, c], [b, c, 1.0]])

    @model_validator(mode="after")
    def _positive_definite(self) -> Outcomes:
        if np.linalg.eigvalsh(self.slope_correlation())[0] <= 0:
            raise ValueError("the three slope correlations do not form a valid correlation matrix")
        return self


class Events(_Strict):
    mortality_12_months: HazardProbability
    msc_mortality_hazard_ratio: Positive
    withdrawal_12_months: HazardProbability
    missed_visit: Probability
    follow_up_days: Positive


class Safety(_Strict):
    background_ae_rate: NonNegative
    background_sae_rate: NonNegative
    msc_fever_per_infusion: Probability
    msc_chills_per_infusion: Probability
    placebo_fever_per_infusion: Probability
    placebo_chills_per_infusion: Probability
    reaction_next_day_fraction: Probability
    reaction_grade2_fraction: Probability
    related_sae_per_infusion_msc: Probability
    related_sae_per_infusion_placebo: Probability


class AETerm(_Strict):
    term: str = Field(min_length=1)
    soc: str = Field(min_length=1)
    weight: float = Field(gt=0)
    grades: list[float] = Field(min_length=1, max_length=4)

    @field_validator("grades")
    @classmethod
    def _distribution(cls, grades: list[float]) -> list[float]:
        if any(g < 0 for g in grades) or abs(sum(grades) - 1.0) > 1e-6:
            raise ValueError("grade probabilities (grades 1-4) must be >= 0 and sum to 1")
        return grades


class AETermList(_Strict):
    source: str = Field(min_length=3)
    terms: list[AETerm] = Field(min_length=1)


class SimulationParameters(_Strict):
    """All parameters of the virtual-patient model (validated ``parameters.yaml``)."""

    version: Literal[1]
    sources: dict[str, str]
    screening: Screening
    population: Population
    lung_function: LungFunction
    exclusions: Exclusions
    outcomes: Outcomes
    events: Events
    safety: Safety
    background_ae_terms: AETermList
    serious_ae_terms: AETermList

    @model_validator(mode="after")
    def _sources_declared(self) -> SimulationParameters:
        problems = [
            f"{path}: source {src!r} does not start with a declared source key "
            f"({', '.join(self.sources)})"
            for path, src in _walk_sources(self)
            if src.split(":", 1)[0].strip() not in self.sources
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def with_values(self, updates: Mapping[str, float]) -> SimulationParameters:
        """A copy with some values replaced, by dotted path, re-validated.

        Example: ``params.with_values({"events.mortality_12_months": 0.0})``. The source of
        a replaced value becomes ``"assumption: override"`` so a report cannot mistake it
        for the documented value.
        """
        data = self.model_dump(mode="json")
        for path, value in updates.items():
            node: Any = data
            parts = path.split(".")
            for part in parts:
                if not isinstance(node, dict) or part not in node:
                    raise ParameterError("override", [(path, "no such parameter")])
                node = node[part]
            if not isinstance(node, dict) or "value" not in node:
                raise ParameterError("override", [(path, "is a group, not a parameter")])
            node["value"] = value
            node["source"] = "assumption: override"
        return _validate(data, "override")

    def endpoint(self, code: str) -> EndpointModel:
        return self.outcomes.endpoint(code)


def _walk_sources(model: BaseModel, prefix: str = "") -> Iterable[tuple[str, str]]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        path = f"{prefix}{name}"
        if isinstance(value, Quantity | DateQuantity | AETermList):
            yield path, value.source
        elif isinstance(value, BaseModel):
            yield from _walk_sources(value, path + ".")


def _validate(data: Any, source: str) -> SimulationParameters:
    try:
        return SimulationParameters.model_validate(data)
    except ValidationError as exc:
        issues = [
            (".".join(str(p) for p in err["loc"]) or "(top level)", err["msg"])
            for err in exc.errors()
        ]
        raise ParameterError(source, issues) from None


def load_parameters(path: str | Path | None = None) -> SimulationParameters:
    """Load and validate a parameter file (the packaged ``parameters.yaml`` by default).

    Raises :class:`ParameterError` naming every invalid or missing entry (unknown keys are
    refused, so a misspelt parameter cannot silently fall back to a default).
    """
    if path is None:
        text = resources.files("ildtrial.simulate").joinpath("parameters.yaml").read_text("utf-8")
        source = "ildtrial/simulate/parameters.yaml"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ParameterError(str(path), [("", f"cannot read the file: {exc.strerror}")]) from exc
        source = str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParameterError(source, [("", f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise ParameterError(source, [("", "the file must hold a mapping of sections")])
    return _validate(data, source)


@functools.cache
def default_parameters() -> SimulationParameters:
    """The packaged parameters (validated once; the model is immutable)."""
    return load_parameters()


# =========================================================================== schedule


@dataclass(frozen=True)
class ProtocolSchedule:
    """Planned days (day 0 = first infusion) the simulator takes from the protocol file."""

    assessment_days: tuple[int, ...]  # baseline and the efficacy visits, e.g. 0, 91, ..., 364
    assessment_labels: tuple[str, ...]
    infusion_days: tuple[int, ...]  # 0, 7, 91, 98, 182, 189, 273, 280
    related_sae_stop_count: int  # the stopping rule's number of related SAEs
    relatedness_counted: tuple[str, ...]


def protocol_schedule(protocol: Protocol | LoadedProtocol | None = None) -> ProtocolSchedule:
    """Planned infusion and assessment days and the stopping rule, from the protocol file.

    Each visit is planned from its anchor (day 0 or an earlier visit's planned day); the
    assessments are the baseline infusion visit and the visits that collect spirometry.
    """
    if protocol is None:
        return _default_schedule()
    proto = protocol.protocol if isinstance(protocol, LoadedProtocol) else protocol
    day_zero = proto.schedule.day_zero
    planned: dict[str, int] = {}
    for visit in proto.schedule.visits:  # anchors precede the visits planned from them
        base = 0 if visit.anchor == "day0" else planned[visit.anchor]
        planned[visit.code] = base + visit.day
    infusions = tuple(sorted(planned[v.code] for v in proto.schedule.visits if v.infusion))
    assess = [(0, day_zero)] + [
        (planned[v.code], v.code)
        for v in proto.schedule.visits
        if "SPIRO" in v.forms and planned[v.code] > 0
    ]
    assess.sort()
    rule = proto.safety.stopping_rules[0] if proto.safety.stopping_rules else None
    return ProtocolSchedule(
        assessment_days=tuple(d for d, _ in assess),
        assessment_labels=tuple(c for _, c in assess),
        infusion_days=infusions,
        related_sae_stop_count=rule.related_sae_count if rule else 2,
        relatedness_counted=tuple(rule.relatedness_counted) if rule else ("possible", "probable", "definite"),
    )


@functools.cache
def _default_schedule() -> ProtocolSchedule:
    return protocol_schedule(load_protocol())


# =========================================================================== candidates

_EXCLUDED_GROUPS = ("SARCOIDOSIS", "PAP", "LAM", "AMYLOIDOSIS", "EXPOSURE_ILD", "OTHER_ILD")
_IIP_DETAILS = ("IPF, UIP pattern", "Idiopathic NSIP", "Unclassifiable IIP")
_CTD_DETAILS = (
    "Systemic sclerosis-associated ILD, NSIP pattern",
    "Rheumatoid arthritis-associated ILD, UIP pattern",
    "Antisynthetase syndrome / myositis-associated ILD",
)
_RECENT_TREATMENT = {
    "IIP": (("pirfenidone", "pirfenidone"), ("nintedanib", "nintedanib"), ("oral_steroid", "prednisolone")),
    "CTD_ILD": (
        ("cytostatic", "cyclophosphamide"),
        ("cytostatic", "azathioprine"),
        ("oral_steroid", "prednisolone"),
        ("monoclonal_antibody", "rituximab"),
        ("tnf_blocker", "infliximab"),
    ),
}


@dataclass(frozen=True)
class VirtualCandidate:
    """A simulated screening candidate.

    ``data`` is the eligibility engine's input dict (``docs/eligibility-input.md``); the
    other fields are the same facts in convenient form, plus values the engine does not
    read (weight is in ``data`` too; ``six_mwd_m`` is the screening 6-minute walk) and the
    drawn "truth" (% predicted, relative declines) for checking the model.
    """

    candidate_id: str
    screening_date: date
    sex: str
    birth_date: date
    age_years: float
    height_cm: float
    weight_kg: float
    diagnosis_group: str
    fvc_l: float
    fev1_l: float
    dlco: float  # mL/min/mmHg
    fvc_percent_predicted: float
    dlco_percent_predicted: float
    prior_fvc_l: float
    prior_dlco: float  # mL/min/mmHg (the entered value may be in mmol/min/kPa)
    fvc_decline_percent: float
    dlco_decline_percent: float
    six_mwd_m: float
    data: dict[str, Any] = field(repr=False)

    def eligibility_dict(self) -> dict[str, Any]:
        """A fresh copy of the engine's input dict (safe to modify)."""
        import copy

        return copy.deepcopy(self.data)


def _truncated_normal(
    rng: np.random.Generator, mean: np.ndarray | float, sd: np.ndarray | float,
    low: float, high: float, size: int,
) -> np.ndarray:
    mean = np.broadcast_to(np.asarray(mean, dtype=float), (size,))
    sd = np.broadcast_to(np.asarray(sd, dtype=float), (size,))
    a = (low - mean) / sd
    b = (high - mean) / sd
    return stats.truncnorm.rvs(a, b, loc=mean, scale=sd, size=size, random_state=rng)


def _iso(d: date) -> str:
    return d.isoformat()


def generate_candidates(
    n: int,
    rng: np.random.Generator,
    params: SimulationParameters | None = None,
    *,
    id_prefix: str = "VC",
) -> list[VirtualCandidate]:
    """Draw ``n`` referred candidates with everything the screening forms hold.

    Screen failures arise from the protocol's own criteria when the engine evaluates the
    dicts: FVC < 40 % or DLCO < 20 % predicted (IN3), a 12-month decline of at most 10 %
    (IN4), FEV1/FVC < 0.70 (EX2), age (IN1), diagnosis and symptom duration (IN2/EX1) and
    the exclusion answers and prior treatments (EX3-EX11). With the packaged parameters
    about 35-50 % fail (tests/simulate/test_patients.py checks it through the engine).
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    p = params or default_parameters()
    pop, lfp, exc, scr = p.population, p.lung_function, p.exclusions, p.screening

    u_excluded = rng.random(n) < pop.excluded_ild_fraction.value
    u_iip = rng.random(n) < pop.iip_fraction.value
    group = np.where(u_excluded, "X", np.where(u_iip, "IIP", "CTD_ILD"))
    excluded_kind = rng.integers(0, len(_EXCLUDED_GROUPS), n)
    p_male = np.where(
        group == "IIP", pop.male_fraction_iip.value,
        np.where(group == "CTD_ILD", pop.male_fraction_ctd.value, 0.5),
    )
    male = rng.random(n) < p_male
    age_mean = np.where(group == "CTD_ILD", pop.age_mean_ctd.value, pop.age_mean_iip.value)
    age_sd = np.where(group == "CTD_ILD", pop.age_sd_ctd.value, pop.age_sd_iip.value)
    age = _truncated_normal(rng, age_mean, age_sd, pop.age_min.value, pop.age_max.value, n)
    h_mean = np.where(male, pop.height_mean_male.value, pop.height_mean_female.value)
    h_sd = np.where(male, pop.height_sd_male.value, pop.height_sd_female.value)
    height = np.round(_truncated_normal(rng, h_mean, h_sd, 140.0, 205.0, n), 1)
    bmi = _truncated_normal(rng, pop.bmi_mean.value, pop.bmi_sd.value, 16.0, 45.0, n)
    weight = np.round(bmi * (height / 100.0) ** 2, 1)
    screen_offset = rng.integers(0, max(1, int(scr.recruitment_days.value)), n)
    birth_jitter = rng.random(n)

    # % predicted (bivariate truncated normal by redrawing) and FEV1/FVC
    rho = lfp.percent_correlation.value
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)
    fvc_pct = lfp.fvc_percent_mean.value + lfp.fvc_percent_sd.value * z[:, 0]
    dlco_pct = lfp.dlco_percent_mean.value + lfp.dlco_percent_sd.value * z[:, 1]
    for _ in range(100):
        low = (fvc_pct < lfp.fvc_percent_min.value) | (dlco_pct < lfp.dlco_percent_min.value)
        if not low.any():
            break
        z2 = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=int(low.sum()))
        fvc_pct[low] = lfp.fvc_percent_mean.value + lfp.fvc_percent_sd.value * z2[:, 0]
        dlco_pct[low] = lfp.dlco_percent_mean.value + lfp.dlco_percent_sd.value * z2[:, 1]
    fvc_pct = np.maximum(fvc_pct, lfp.fvc_percent_min.value)
    dlco_pct = np.maximum(dlco_pct, lfp.dlco_percent_min.value)
    ratio = np.clip(rng.normal(lfp.fev1_fvc_mean.value, lfp.fev1_fvc_sd.value, n), 0.45, 0.98)
    rho6 = lfp.six_mwd_fvc_correlation.value
    six = p.outcomes.six_mwd
    z_fvc = (fvc_pct - lfp.fvc_percent_mean.value) / lfp.fvc_percent_sd.value
    six_mwd = six.baseline_mean.value + six.baseline_sd.value * (
        rho6 * z_fvc + math.sqrt(1 - rho6 * rho6) * rng.standard_normal(n)
    )
    six_mwd = np.round(np.maximum(six_mwd, six.baseline_min.value))

    # relative declines over the prior ~12 months
    rd = lfp.prior_decline_correlation.value
    sf, sd_ = lfp.prior_fvc_decline_sd.value, lfp.prior_dlco_decline_sd.value
    decl = rng.multivariate_normal(
        [lfp.prior_fvc_decline_mean.value, lfp.prior_dlco_decline_mean.value],
        [[sf * sf, rd * sf * sd_], [rd * sf * sd_, sd_ * sd_]],
        size=n,
    )
    decl = np.clip(decl, -30.0, 60.0)
    interval = np.clip(
        rng.normal(lfp.prior_interval_months_mean.value, lfp.prior_interval_months_sd.value, n),
        9.3, 14.7,
    )
    si_units = rng.random(n) < lfp.prior_dlco_si_units_fraction.value
    older_row = rng.random(n) < 0.3

    # diagnosis details
    short_sym = rng.random(n) < pop.short_symptoms_fraction.value
    sym_years = rng.exponential(pop.symptom_years_mean.value, n)
    sym_short_months = rng.uniform(2.0, 11.0, n)
    no_imaging = rng.random(n) < pop.no_diagnostic_imaging_fraction.value
    histology = rng.random(n) < pop.histology_fraction.value
    hrct_frac = rng.random(n)
    detail_idx = rng.integers(0, 3, n)

    # exclusions
    def draw(q: Probability) -> np.ndarray:
        return rng.random(n) < q.value

    significant = draw(exc.significant_condition)
    infection_recent = draw(exc.recent_infection)
    infection_remote = draw(exc.remote_infection)
    malignancy_recent = draw(exc.recent_malignancy)
    malignancy_remote = draw(exc.remote_malignancy)
    uncooperative = draw(exc.unable_to_cooperate)
    pregnant = draw(exc.pregnant_or_breastfeeding)
    transplant = draw(exc.transplant_listing)
    alcohol = draw(exc.recent_alcohol_abuse)
    other_trial = draw(exc.other_trial)
    p_recent = np.where(group == "CTD_ILD", exc.recent_treatment_ctd.value, exc.recent_treatment_iip.value)
    p_past = np.where(group == "CTD_ILD", exc.past_treatment_ctd.value, exc.past_treatment_iip.value)
    treat_recent = rng.random(n) < p_recent
    treat_past = rng.random(n) < p_past
    treat_ongoing = rng.random(n) < 0.5
    treat_pick = rng.integers(0, 5, (n, 2))
    event_u = rng.random((n, 4))

    first = scr.first_screening_date.value
    to_rand = int(scr.days_to_randomization.value)
    out: list[VirtualCandidate] = []
    for i in range(n):
        screening = first + timedelta(days=int(screen_offset[i]))
        enrol = screening + timedelta(days=to_rand)
        sex = "M" if male[i] else "F"
        birth = screening - timedelta(days=int(round((age[i] + birth_jitter[i] / 365.25) * 365.2425)))
        age_at_test = lf.decimal_age(birth, screening)
        diag = _EXCLUDED_GROUPS[excluded_kind[i]] if group[i] == "X" else str(group[i])
        # GLI predicted values on the test date (exact decimal age, as the engine uses)
        fvc_pred = lf.spirometry(sex, age_at_test, float(height[i]), "FVC", 1.0).predicted
        dlco_pred = lf.dlco(sex, age_at_test, float(height[i]), 10.0).predicted
        fvc_l = round(max(0.3, fvc_pct[i] / 100.0 * fvc_pred), 2)
        fev1_l = round(min(fvc_l, max(0.2, ratio[i] * fvc_l)), 2)
        dlco_v = round(max(0.6, dlco_pct[i] / 100.0 * dlco_pred), 1)
        prior_fvc = round(fvc_l / (1.0 - decl[i, 0] / 100.0), 2)
        prior_dlco = dlco_v / (1.0 - decl[i, 1] / 100.0)
        prior_date = screening - timedelta(days=int(round(interval[i] * DAYS_PER_MONTH)))
        if si_units[i]:
            prior_dlco_entry = {
                "dlco": round(prior_dlco / lf.ML_MIN_MMHG_PER_MMOL_MIN_KPA, 2),
                "dlco_unit": "mmol/min/kPa",
            }
        else:
            prior_dlco_entry = {"dlco": round(prior_dlco, 1), "dlco_unit": "mL/min/mmHg"}
        prior_rows: list[dict[str, Any]] = [
            {
                "test_date": _iso(prior_date),
                "fvc_l": prior_fvc,
                **prior_dlco_entry,
                "source": "Outpatient lung-function report",
            }
        ]
        if older_row[i]:
            prior_rows.insert(
                0,
                {
                    "test_date": _iso(prior_date - timedelta(days=365)),
                    "fvc_l": round(prior_fvc * 1.08, 2),
                    "source": "Earlier hospital discharge summary",
                },
            )

        if short_sym[i]:
            onset = screening - timedelta(days=int(sym_short_months[i] * DAYS_PER_MONTH))
        else:
            onset = screening - timedelta(days=int(DAYS_PER_YEAR * (1.05 + sym_years[i])))
        onset = max(onset, birth + timedelta(days=365 * 15))
        hrct_date = onset + timedelta(days=int((screening - onset).days * hrct_frac[i]))
        details = _CTD_DETAILS if diag == "CTD_ILD" else _IIP_DETAILS
        dx: dict[str, Any] = {
            "diagnosis_group": diag,
            "diagnosis_detail": details[detail_idx[i]] if diag in ("IIP", "CTD_ILD") else diag.title(),
            "symptom_onset_date": _iso(onset),
            "hrct_diagnostic": not no_imaging[i],
            "histology_diagnostic": bool(histology[i] and not no_imaging[i]),
        }
        if dx["hrct_diagnostic"]:
            dx["hrct_date"] = _iso(hrct_date)
        if dx["histology_diagnostic"]:
            dx["histology_date"] = _iso(hrct_date + timedelta(days=30) if hrct_date + timedelta(days=30) <= screening else hrct_date)

        excl: dict[str, Any] = {
            "significant_condition": bool(significant[i]),
            "active_infection": bool(infection_recent[i] or infection_remote[i]),
            "malignancy_history": bool(malignancy_recent[i] or malignancy_remote[i]),
            "unable_to_cooperate": bool(uncooperative[i]),
            "pregnant_or_breastfeeding": bool(pregnant[i] and sex == "F" and age[i] < 50),
            "transplant_listing": bool(transplant[i]),
            "alcohol_abuse": bool(alcohol[i]),
            "other_trial": bool(other_trial[i]),
        }
        if infection_recent[i]:  # 14-27 days before enrolment = on or before screening
            excl["infection_date"] = _iso(enrol - timedelta(days=14 + int(event_u[i, 0] * 13)))
        elif infection_remote[i]:
            excl["infection_date"] = _iso(enrol - timedelta(days=60 + int(event_u[i, 0] * 120)))
        if malignancy_recent[i]:
            excl["malignancy_date"] = _iso(enrol - timedelta(days=int(DAYS_PER_YEAR * (0.5 + 4 * event_u[i, 1]))))
        elif malignancy_remote[i]:
            excl["malignancy_date"] = _iso(enrol - timedelta(days=int(DAYS_PER_YEAR * (6 + 9 * event_u[i, 1]))))
        if alcohol[i]:
            excl["alcohol_abuse_date"] = _iso(enrol - timedelta(days=30 + int(300 * event_u[i, 2])))

        prohib: list[dict[str, Any]] = []
        options = _RECENT_TREATMENT["CTD_ILD" if diag == "CTD_ILD" else "IIP"]
        if treat_past[i]:
            cls, name = options[treat_pick[i, 0] % len(options)]
            months = 7 + int(29 * event_u[i, 3])
            prohib.append({"medication_class": cls, "medication_name": name,
                           "stop_date": _iso(enrol - timedelta(days=int(months * DAYS_PER_MONTH)))})
        if treat_recent[i]:
            cls, name = options[treat_pick[i, 1] % len(options)]
            row: dict[str, Any] = {"medication_class": cls, "medication_name": name}
            if not treat_ongoing[i]:
                stop = enrol - timedelta(days=int((1 + 4 * event_u[i, 3]) * DAYS_PER_MONTH))
                row["stop_date"] = _iso(min(stop, screening))
            prohib.append(row)

        cid = f"{id_prefix}-{i + 1:05d}"
        data: dict[str, Any] = {
            "candidate_id": cid,
            "screening_date": _iso(screening),
            "consent": {"signed": f"{_iso(screening)}T09:00", "first_procedure": f"{_iso(screening)}T09:30"},
            "enrolment_date": _iso(enrol),
            "randomization_date": _iso(enrol),
            "DM": {
                "birth_date": _iso(birth),
                "sex": sex,
                "height_cm": float(height[i]),
                "weight_kg": float(weight[i]),
                "ethnicity": "caucasian",
            },
            "DX": dx,
            "SPIRO": {"test_date": _iso(screening), "fev1_l": fev1_l, "fvc_l": fvc_l},
            "DLCO": {"test_date": _iso(screening), "dlco": dlco_v, "dlco_unit": "mL/min/mmHg"},
            "PRIORLF": prior_rows,
            "EXCL": excl,
            "PROHIB": prohib,
        }
        out.append(
            VirtualCandidate(
                candidate_id=cid,
                screening_date=screening,
                sex=sex,
                birth_date=birth,
                age_years=age_at_test,
                height_cm=float(height[i]),
                weight_kg=float(weight[i]),
                diagnosis_group=diag,
                fvc_l=fvc_l,
                fev1_l=fev1_l,
                dlco=dlco_v,
                fvc_percent_predicted=100.0 * fvc_l / fvc_pred,
                dlco_percent_predicted=100.0 * dlco_v / dlco_pred,
                prior_fvc_l=prior_fvc,
                prior_dlco=prior_dlco,
                fvc_decline_percent=float(decl[i, 0]),
                dlco_decline_percent=float(decl[i, 1]),
                six_mwd_m=float(six_mwd[i]),
                data=data,
            )
        )
    return out


def screen(
    candidates: Sequence[VirtualCandidate], protocol: LoadedProtocol | None = None
) -> list[Any]:
    """Run the real eligibility engine (:func:`ildtrial.core.eligibility.evaluate`) on each."""
    from ildtrial.core.eligibility import CandidateData, evaluate

    loaded = protocol or load_protocol()
    return [evaluate(loaded, CandidateData.from_dict(c.data, loaded)) for c in candidates]


# =========================================================================== outcomes


def endpoint_values(
    level: np.ndarray,
    arm: np.ndarray,
    slope_z: np.ndarray,
    model: EndpointModel,
    days: Sequence[int],
    rng: np.random.Generator,
    effect_week52: float | None = None,
) -> np.ndarray:
    """Values of one endpoint at ``days`` (shape ``level.shape + (len(days),)``), no missingness.

    ``y(d) = level + (placebo_slope + slope_sd·slope_z)·d/365.25 + arm·effect·d/364
    + s(d) + e(d)`` with an AR(1) serial term s (stationary, sd ``serial_sd``, correlation
    ``serial_correlation^(Δd/91)``) and independent measurement noise e; values are kept
    above ``floor``. ``effect_week52`` overrides the parameter (the design tool's grid).
    """
    d = np.asarray(days, dtype=float)
    effect = model.effect_week52.value if effect_week52 is None else float(effect_week52)
    slope = model.placebo_slope.value + model.slope_sd.value * slope_z
    mean = (
        level[..., None]
        + slope[..., None] * (d / DAYS_PER_YEAR)
        + np.asarray(arm, dtype=float)[..., None] * effect * (d / 364.0)
    )
    shape = mean.shape
    serial = np.empty(shape)
    eps = rng.standard_normal(shape)
    sd_s = model.serial_sd.value
    serial[..., 0] = sd_s * eps[..., 0]
    for k in range(1, d.size):
        phi = model.serial_correlation.value ** ((d[k] - d[k - 1]) / 91.0)
        serial[..., k] = phi * serial[..., k - 1] + sd_s * math.sqrt(1 - phi * phi) * eps[..., k]
    noise = model.measurement_sd.value * rng.standard_normal(shape)
    return np.maximum(mean + serial + noise, model.floor.value)


def event_days(
    arm: np.ndarray, rng: np.random.Generator, events: Events
) -> tuple[np.ndarray, np.ndarray]:
    """Death and withdrawal days (``inf`` = none before the end of follow-up).

    Constant hazards ``h = −ln(1 − P12)/follow_up`` (death ×HR in the MSC arm), so that
    the 12-month probabilities are the parameters. Draws are made for every participant
    whatever the rates, so results stay comparable across parameter values.
    """
    arm = np.asarray(arm, dtype=float)
    horizon = events.follow_up_days.value
    h_death = -math.log1p(-events.mortality_12_months.value) / horizon
    h_death = h_death * np.where(arm > 0, events.msc_mortality_hazard_ratio.value, 1.0)
    h_wd = -math.log1p(-events.withdrawal_12_months.value) / horizon
    e1 = rng.standard_exponential(arm.shape)
    e2 = rng.standard_exponential(arm.shape)
    with np.errstate(divide="ignore"):
        death = np.where(h_death > 0, e1 / np.where(h_death > 0, h_death, 1.0), np.inf)
        withdrawal = np.full(arm.shape, np.inf) if h_wd <= 0 else e2 / h_wd
    death = np.where(death <= horizon, np.ceil(death), np.inf)
    withdrawal = np.where(withdrawal <= horizon, np.ceil(withdrawal), np.inf)
    return death, withdrawal


def observed_visits(
    days: Sequence[int],
    death_day: np.ndarray,
    withdrawal_day: np.ndarray,
    missed_probability: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Which planned assessments happen: before death and withdrawal, and not missed.

    The baseline (day 0, before the first infusion) is always observed.
    """
    d = np.asarray(days, dtype=float)
    end = np.minimum(death_day, withdrawal_day)[..., None]
    missed = rng.random((*end.shape[:-1], d.size)) < missed_probability
    observed = (d < end) & ~missed
    observed[..., 0] = True
    return observed


@dataclass(frozen=True)
class Trajectories:
    """Simulated outcomes of randomized participants at the protocol's assessment days.

    Value arrays are (n, n_visits) with NaN where the assessment did not happen.
    ``arm`` is 1 for MSC, 0 for placebo; ``death_day`` / ``withdrawal_day`` are study days
    (day 0 = first infusion), ``inf`` when the event did not happen during follow-up.
    """

    participant_ids: tuple[str, ...]
    days: np.ndarray
    visit_labels: tuple[str, ...]
    arm: np.ndarray
    fvc_ml: np.ndarray
    dlco: np.ndarray
    six_mwd_m: np.ndarray
    observed: np.ndarray
    death_day: np.ndarray
    withdrawal_day: np.ndarray
    follow_up_days: float

    @property
    def end_day(self) -> np.ndarray:
        """Last day in the study: death, withdrawal or the end of follow-up."""
        return np.minimum(np.minimum(self.death_day, self.withdrawal_day), self.follow_up_days)

    def values(self, endpoint: str) -> np.ndarray:
        return {"FVC": self.fvc_ml, "DLCO": self.dlco, "6MWD": self.six_mwd_m}[endpoint]

    def to_frame(self) -> pd.DataFrame:
        """Long format: one row per participant and *observed* visit."""
        n, v = self.observed.shape
        frame = pd.DataFrame(
            {
                "participant": np.repeat(np.array(self.participant_ids, dtype=object), v),
                "arm": np.repeat(np.where(self.arm > 0, "MSC", "PBO"), v),
                "visit": np.tile(np.array(self.visit_labels, dtype=object), n),
                "day": np.tile(self.days, n),
                "FVC_mL": self.fvc_ml.reshape(-1),
                "DLCO": self.dlco.reshape(-1),
                "SIXMWD_m": self.six_mwd_m.reshape(-1),
            }
        )
        return frame[self.observed.reshape(-1)].reset_index(drop=True)


def _arm_indicator(arms: Sequence[str | int] | np.ndarray) -> np.ndarray:
    out = []
    for a in arms:
        if isinstance(a, str):
            if a.upper() not in ("MSC", "PBO"):
                raise ValueError(f"arm must be 'MSC' or 'PBO' (got {a!r})")
            out.append(1.0 if a.upper() == "MSC" else 0.0)
        else:
            if int(a) not in (0, 1):
                raise ValueError(f"arm indicator must be 0 (PBO) or 1 (MSC) (got {a!r})")
            out.append(float(a))
    return np.array(out)


def simulate_trajectories(
    participants: Sequence[VirtualCandidate] | Mapping[str, Sequence[float]],
    arms: Sequence[str | int] | np.ndarray,
    rng: np.random.Generator,
    params: SimulationParameters | None = None,
    *,
    effects: Mapping[str, float] | None = None,
    schedule: ProtocolSchedule | None = None,
) -> Trajectories:
    """Correlated FVC, DLCO and 6MWD trajectories with deaths, withdrawals and missed visits.

    ``participants`` are candidates (their screening FVC, DLCO and 6MWD are the true
    baseline levels) or a mapping with ``"FVC"`` (mL), ``"DLCO"`` and ``"6MWD"`` arrays.
    ``arms`` gives "MSC"/"PBO" (or 1/0) per participant; ``effects`` overrides the
    week-52 arm effect per endpoint (e.g. ``{"FVC": 0.0}`` for a null scenario).
    Random slopes are correlated across the endpoints (``outcomes.slope_correlation_*``).
    """
    p = params or default_parameters()
    sch = schedule or protocol_schedule()
    arm = _arm_indicator(arms)
    if isinstance(participants, Mapping):
        levels = {k: np.asarray(participants[k], dtype=float) for k in ENDPOINTS}
        ids = tuple(f"P{i + 1:03d}" for i in range(arm.size))
    else:
        levels = {
            "FVC": np.array([c.fvc_l * 1000.0 for c in participants]),
            "DLCO": np.array([c.dlco for c in participants]),
            "6MWD": np.array([c.six_mwd_m for c in participants]),
        }
        ids = tuple(c.candidate_id for c in participants)
    for key, lev in levels.items():
        if lev.shape != arm.shape:
            raise ValueError(f"{key}: {lev.size} baseline values for {arm.size} arms")
    unknown = set(effects or {}) - set(ENDPOINTS)
    if unknown:
        raise ValueError(f"unknown endpoint(s) in effects: {sorted(unknown)}")
    slope_z = rng.multivariate_normal(np.zeros(3), p.outcomes.slope_correlation(), size=arm.size)
    days = sch.assessment_days
    values = {
        ep: endpoint_values(
            levels[ep], arm, slope_z[:, k], p.endpoint(ep), days, rng,
            None if effects is None else effects.get(ep),
        )
        for k, ep in enumerate(ENDPOINTS)
    }
    death, withdrawal = event_days(arm, rng, p.events)
    observed = observed_visits(days, death, withdrawal, p.events.missed_visit.value, rng)
    masked = {ep: np.where(observed, v, np.nan) for ep, v in values.items()}
    return Trajectories(
        participant_ids=ids,
        days=np.asarray(days, dtype=float),
        visit_labels=sch.assessment_labels,
        arm=arm,
        fvc_ml=masked["FVC"],
        dlco=masked["DLCO"],
        six_mwd_m=masked["6MWD"],
        observed=observed,
        death_day=death,
        withdrawal_day=withdrawal,
        follow_up_days=p.events.follow_up_days.value,
    )


# =========================================================================== adverse events

Relatedness = Literal["not_related", "unlikely", "possible", "probable", "definite"]


@dataclass(frozen=True)
class SimulatedAdverseEvent:
    """One adverse event as a site would report it (CTCAE v5.0 term and grade, ICH E2A).

    ``seriousness`` lists the ICH E2A criteria met (``death``, ``life_threatening``,
    ``hospitalisation``, ...), empty for a non-serious event; relatedness is assessed
    separately for the product and the infusion procedure (safety.md).
    ``hours_after_infusion`` is set for events with onset after an infusion;
    ``infusion_related`` flags onset within 24 h of an infusion.
    """

    participant: str
    arm: str
    term: str
    soc: str
    grade: int
    serious: bool
    seriousness: tuple[str, ...]
    relatedness_product: Relatedness
    relatedness_procedure: Relatedness
    onset_day: int
    infusion_number: int | None
    hours_after_infusion: float | None
    infusion_related: bool
    outcome: Literal["recovered", "recovering", "fatal"]

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        out = asdict(self)
        out["seriousness"] = list(self.seriousness)
        return out


_FEVER = ("Fever", "General disorders and administration site conditions")
_CHILLS = ("Chills", "General disorders and administration site conditions")
_IRR = ("Infusion related reaction", "Injury, poisoning and procedural complications")
_RESP_FAILURE = ("Respiratory failure", "Respiratory, thoracic and mediastinal disorders")


def infusions_received(end_day: np.ndarray, infusion_days: Sequence[int]) -> np.ndarray:
    """Number of infusions given before the end day (an infusion on day d needs end > d)."""
    return (np.asarray(infusion_days, dtype=float) < np.asarray(end_day)[..., None]).sum(axis=-1)


def simulate_adverse_events(
    trajectories: Trajectories,
    rng: np.random.Generator,
    params: SimulationParameters | None = None,
    *,
    related_sae_per_infusion: float | None = None,
    schedule: ProtocolSchedule | None = None,
) -> list[SimulatedAdverseEvent]:
    """Adverse events of the participants of ``trajectories`` over their time in the study.

    * Infusion reactions: per infusion given, fever and chills with arm-specific
      probabilities; onset the day after the infusion with probability
      ``reaction_next_day_fraction`` (12-24 h after it), else 1-8 h after it; grade 1
      (or 2); not serious; product relatedness "probable" (MSC) / "unlikely" (placebo).
    * Product-related SAEs: per infusion with probability ``related_sae_per_infusion_*``
      (override for the MSC arm with ``related_sae_per_infusion``): "Infusion related
      reaction", grade 3, hospitalisation, relatedness "probable". These count for the
      protocol's stopping rule.
    * Background AEs and non-fatal SAEs: Poisson processes over the participant's time in
      the study with terms drawn from ``background_ae_terms`` / ``serious_ae_terms``;
      relatedness "not_related" or "unlikely".
    * Each death: "Respiratory failure", grade 5, serious (death), outcome fatal
      (published: all 4 deaths were from progression of respiratory failure).

    Events are returned sorted by participant and onset day.
    """
    p = params or default_parameters()
    sch = schedule or protocol_schedule()
    s = p.safety
    inf_days = np.asarray(sch.infusion_days, dtype=float)
    end = trajectories.end_day
    horizon = trajectories.follow_up_days
    events: list[SimulatedAdverseEvent] = []
    p_rel_msc = s.related_sae_per_infusion_msc.value if related_sae_per_infusion is None else float(related_sae_per_infusion)
    if not 0.0 <= p_rel_msc <= 1.0:
        raise ValueError("related_sae_per_infusion must be a probability")
    bg_terms = p.background_ae_terms.terms
    bg_w = np.array([t.weight for t in bg_terms])
    sae_terms = p.serious_ae_terms.terms
    sae_w = np.array([t.weight for t in sae_terms])

    def grade_of(probs: list[float]) -> int:
        return int(rng.choice(len(probs), p=np.asarray(probs) / sum(probs))) + 1

    for i, pid in enumerate(trajectories.participant_ids):
        msc = trajectories.arm[i] > 0
        arm = "MSC" if msc else "PBO"
        given = [k for k, d in enumerate(inf_days) if d < end[i]]
        p_fever = s.msc_fever_per_infusion.value if msc else s.placebo_fever_per_infusion.value
        p_chills = s.msc_chills_per_infusion.value if msc else s.placebo_chills_per_infusion.value
        p_rel = p_rel_msc if msc else s.related_sae_per_infusion_placebo.value
        for k in given:
            day0 = int(inf_days[k])
            for (term, soc), prob in ((_FEVER, p_fever), (_CHILLS, p_chills)):
                if rng.random() < prob:
                    next_day = rng.random() < s.reaction_next_day_fraction.value
                    hours = float(rng.uniform(12.0, 24.0) if next_day else rng.uniform(1.0, 8.0))
                    grade = 2 if rng.random() < s.reaction_grade2_fraction.value else 1
                    events.append(
                        SimulatedAdverseEvent(
                            pid, arm, term, soc, grade, False, (),
                            "probable" if msc else "unlikely", "possible",
                            day0 + (1 if next_day else 0), k + 1, round(hours, 1), True, "recovered",
                        )
                    )
            if rng.random() < p_rel:
                hours = float(rng.uniform(0.5, 6.0))
                events.append(
                    SimulatedAdverseEvent(
                        pid, arm, _IRR[0], _IRR[1], 3, True, ("hospitalisation",),
                        "probable", "probable", day0, k + 1, round(hours, 1), True, "recovered",
                    )
                )
        years = max(0.0, float(end[i])) / DAYS_PER_YEAR
        for _ in range(int(rng.poisson(s.background_ae_rate.value * years))):
            t = bg_terms[int(rng.choice(len(bg_terms), p=bg_w / bg_w.sum()))]
            day = int(rng.integers(0, max(1, int(end[i]))))
            events.append(
                _background_event(pid, arm, t.term, t.soc, grade_of(t.grades), day, inf_days, rng, serious=False)
            )
        for _ in range(int(rng.poisson(s.background_sae_rate.value * years))):
            t = sae_terms[int(rng.choice(len(sae_terms), p=sae_w / sae_w.sum()))]
            grade = grade_of(t.grades)
            day = int(rng.integers(0, max(1, int(end[i]))))
            events.append(
                _background_event(pid, arm, t.term, t.soc, grade, day, inf_days, rng, serious=True)
            )
        if math.isfinite(trajectories.death_day[i]) and trajectories.death_day[i] <= horizon:
            events.append(
                SimulatedAdverseEvent(
                    pid, arm, _RESP_FAILURE[0], _RESP_FAILURE[1], 5, True, ("death",),
                    "unlikely", "not_related", int(trajectories.death_day[i]), None, None, False, "fatal",
                )
            )
    order = {pid: k for k, pid in enumerate(trajectories.participant_ids)}
    events.sort(key=lambda e: (order[e.participant], e.onset_day))
    return events


def _background_event(
    pid: str, arm: str, term: str, soc: str, grade: int, day: int,
    inf_days: np.ndarray, rng: np.random.Generator, *, serious: bool,
) -> SimulatedAdverseEvent:
    """A background event; flagged infusion-related only if it starts within 24 h of one."""
    before = inf_days[inf_days <= day]
    hours = None
    number = None
    if before.size:
        number = int(np.flatnonzero(inf_days <= day)[-1]) + 1
        hours = round((day - before[-1]) * 24.0 + float(rng.uniform(0.0, 24.0)), 1)
    related = bool(hours is not None and hours <= 24.0)
    seriousness: tuple[str, ...] = ()
    if serious:
        seriousness = ("life_threatening", "hospitalisation") if grade >= 4 else ("hospitalisation",)
    return SimulatedAdverseEvent(
        pid, arm, term, soc, grade, serious, seriousness,
        "not_related" if rng.random() < 0.7 else "unlikely", "not_related",
        day, number, hours, related, "recovered" if not serious else "recovering",
    )
