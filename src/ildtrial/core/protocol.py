"""The protocol as data: a typed model of the protocol file, its loader and its validation.

Everything the platform does for a trial (screening, schedule, forms, randomization,
safety clocks, analysis windows, exports) is derived from one YAML file. A wrong file must
therefore never reach a running system: it is validated in two passes, the structure
(types, ranges, required keys) and then the cross-references (a visit naming a form that
does not exist, a second infusion anchored on a visit that comes after it, a stratum with
one level), and every problem is reported with its path, e.g.
``visits[4].window.after: must be >= 0``, so the author can fix them all at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_PROTOCOL = "NCT02594839.yaml"


class _Model(BaseModel):
    """Base for every protocol object: unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Model):
    """A label in the two languages of the trial: English and Russian."""

    en: str = Field(min_length=1)
    ru: str = Field(min_length=1)

    def get(self, language: str) -> str:
        """The label in ``language`` ('en' or 'ru'), English for any other language."""
        return self.ru if language.startswith("ru") else self.en


# --------------------------------------------------------------------------- identity
class Site(_Model):
    code: str = Field(pattern=r"^[A-Z0-9]{2,8}$")
    name: str
    city: str
    country: str = Field(pattern=r"^[A-Z]{2}$")
    timezone: str


class Identity(_Model):
    registration: str = Field(pattern=r"^NCT\d{8}$")
    title: str
    short_title: str
    phase: str
    study_type: Literal["interventional", "observational"]
    design: Literal["parallel", "crossover", "single_group"]
    sponsor: str
    planned_enrolment: int = Field(ge=1)
    conditions: list[str] = Field(min_length=1)
    sites: list[Site] = Field(min_length=1)


class ProtocolVersion(_Model):
    number: str = Field(pattern=r"^\d+(\.\d+)*$")
    effective_date: date
    description: str


# --------------------------------------------------------------------------- arms
class Intervention(_Model):
    name: Text
    type: Literal["biological", "drug", "placebo", "procedure"]
    form: str
    route: Literal["INTRAVENOUS"]
    dose: float = Field(gt=0)
    dose_unit: str
    description: str


class Arm(_Model):
    code: str = Field(pattern=r"^[A-Z][A-Z0-9]{0,7}$")
    name: Text
    type: Literal["experimental", "placebo_comparator", "active_comparator"]
    intervention: Intervention


class InfusionRegimen(_Model):
    """The dosing regimen: cycles of infusions a fixed number of days apart."""

    cycles: int = Field(ge=1)
    infusions_per_cycle: int = Field(ge=1)
    days_between_infusions_in_cycle: int = Field(ge=1)
    reaction_window_hours: int = Field(ge=1)
    minimum_post_thaw_viability_percent: float = Field(ge=0, le=100)


class Masking(_Model):
    """Who knows the arm. Open label shows it to all; double blind only to ``unblinded_roles``."""

    mode: Literal["open_label", "double_blind"]
    blinded_parties: list[Literal["participant", "investigator", "outcomes_assessor", "care_provider"]]
    unblinded_roles: list[str] = Field(min_length=1)


class Stratum(_Model):
    factor: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: Text
    source: str = Field(description="form.field holding the stratum value at screening")
    levels: list[str] = Field(min_length=2)


class Randomization(_Model):
    ratio: dict[str, int]
    block_sizes: list[int] = Field(min_length=1)
    strata: list[Stratum]
    slots_per_stratum: int = Field(ge=2)


# --------------------------------------------------------------------------- schedule
class Window(_Model):
    before: int = Field(ge=0)
    after: int = Field(ge=0)


class Visit(_Model):
    """A planned visit: its day relative to an anchor, the window around it, the forms due.

    ``anchor`` is ``day0`` (the date of the first infusion) or the code of an earlier
    visit, in which case the planned date runs from that visit's *actual* date: the
    second infusion of each cycle follows the real first one, not the plan.
    """

    code: str = Field(pattern=r"^[A-Z][A-Z0-9]{1,7}$")
    name: Text
    kind: Literal["screening", "infusion", "assessment", "end_of_study"]
    anchor: str
    day: int
    window: Window
    cycle: int | None = Field(default=None, ge=1)
    infusion: bool = False
    forms: list[str] = Field(default_factory=list)


class Schedule(_Model):
    day_zero: str
    unscheduled_forms: list[str]
    visits: list[Visit] = Field(min_length=1)


# --------------------------------------------------------------------------- forms
FieldType = Literal["integer", "decimal", "text", "date", "datetime", "time", "choice", "boolean"]


class Choice(_Model):
    code: str = Field(pattern=r"^[A-Za-z0-9_/.^-]+$")
    label: Text


class FormField(_Model):
    """One eCRF field. ``min``/``max`` are hard limits (impossible values are refused);
    ``soft_min``/``soft_max`` mark implausible values that are kept only after the user
    confirms them, and then raise a query."""

    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: Text
    type: FieldType
    unit: str | None = None
    required: bool = False
    min: float | None = None
    max: float | None = None
    soft_min: float | None = None
    soft_max: float | None = None
    decimals: int | None = Field(default=None, ge=0, le=6)
    max_length: int | None = Field(default=None, ge=1, le=4000)
    choices: list[Choice] | None = None
    help: Text | None = None
    not_in_future: bool = False


class FieldComparison(_Model):
    """Cross-field check ``left op right`` on two numeric or date fields of one form."""

    id: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    kind: Literal["compare"]
    left: str
    op: Literal["<", "<=", ">", ">=", "=="]
    right: str
    severity: Literal["error", "warning"]
    message: Text


class RequiredWhen(_Model):
    """Cross-field check: ``field`` is required when ``when_field`` has one of ``values``
    (an empty ``values`` list means: whenever ``when_field`` has any value at all)."""

    id: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    kind: Literal["required_when"]
    field: str
    when_field: str
    values: list[str | bool]
    severity: Literal["error", "warning"]
    message: Text


FormCheck = Annotated[FieldComparison | RequiredWhen, Field(discriminator="kind")]


class Form(_Model):
    code: str = Field(pattern=r"^[A-Z][A-Z0-9]{1,7}$")
    name: Text
    version: int = Field(ge=1)
    repeating: bool = False
    sdv: Literal["full", "key_fields", "none"]
    key_fields: list[str] = Field(default_factory=list)
    #: the date field that dates the study procedure this form records (None for history,
    #: e.g. prior lung-function results): no procedure may be dated before consent
    procedure_date: str | None = None
    fields: list[FormField] = Field(min_length=1)
    checks: list[FormCheck] = Field(default_factory=list)

    def field(self, code: str) -> FormField:
        """The field called ``code``; KeyError names the form and field when it is absent."""
        for f in self.fields:
            if f.code == code:
                return f
        raise KeyError(f"form {self.code} has no field {code!r}")


# --------------------------------------------------------------------------- eligibility
class AgeRangeRule(_Model):
    kind: Literal["age_range"]
    min_years: float = Field(ge=0)
    max_years: float = Field(gt=0)


class DiagnosisRule(_Model):
    kind: Literal["diagnosis"]
    allowed_groups: list[str] = Field(min_length=1)
    min_symptom_months: int = Field(ge=0)
    evidence_any_of: list[Literal["hrct", "histology"]] = Field(min_length=1)


class DiagnosisExcludedRule(_Model):
    kind: Literal["diagnosis_excluded"]
    excluded_groups: list[str] = Field(min_length=1)


class PercentPredictedRule(_Model):
    kind: Literal["percent_predicted_min"]
    minimum_percent: dict[Literal["FVC", "DLCO", "FEV1"], float]


class RelativeDeclineRule(_Model):
    """Loss of more than ``more_than_percent`` over ``lookback_months`` for each measure,
    against the earlier measurement nearest to the look-back point inside the window."""

    kind: Literal["relative_decline"]
    measures: list[Literal["FVC", "DLCO"]] = Field(min_length=1)
    more_than_percent: float = Field(gt=0, lt=100)
    lookback_months: float = Field(gt=0)
    window_months_min: float = Field(gt=0)
    window_months_max: float = Field(gt=0)


class RatioBelowRule(_Model):
    kind: Literal["ratio_below"]
    threshold: float = Field(gt=0, lt=1)
    show_lln: bool = True


class ConsentRule(_Model):
    kind: Literal["consent_signed"]


class AnswerRule(_Model):
    """An investigator's yes/no judgement recorded on a screening form (e.g. cooperation)."""

    kind: Literal["answer"]
    item: str
    applies_when: bool = True


class EventWithinRule(_Model):
    """An event (infection, malignancy, alcohol abuse) dated within a period before a reference date."""

    kind: Literal["event_within"]
    present_item: str
    date_item: str
    days: int | None = Field(default=None, ge=1)
    months: int | None = Field(default=None, ge=1)
    years: int | None = Field(default=None, ge=1)
    before: Literal["screening", "enrolment", "randomization"]


class WashoutRule(_Model):
    kind: Literal["washout"]
    medication_classes: list[str] = Field(min_length=1)
    months: int = Field(ge=1)
    before: Literal["screening", "enrolment", "randomization"]


EligibilityRule = Annotated[
    AgeRangeRule
    | DiagnosisRule
    | DiagnosisExcludedRule
    | PercentPredictedRule
    | RelativeDeclineRule
    | RatioBelowRule
    | ConsentRule
    | AnswerRule
    | EventWithinRule
    | WashoutRule,
    Field(discriminator="kind"),
]


class Criterion(_Model):
    id: str = Field(pattern=r"^(IN|EX)\d{1,2}$")
    type: Literal["inclusion", "exclusion"]
    protocol_text: str
    summary: Text
    rule: EligibilityRule


class Eligibility(_Model):
    screening_window_days: int = Field(ge=1)
    reference_equations: Literal["gli2012", "gli_global_2022"]
    dlco_equations: Literal["gli2017"]
    criteria: list[Criterion] = Field(min_length=1)


# --------------------------------------------------------------------------- outcomes, safety
class Endpoint(_Model):
    id: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    type: Literal["primary", "secondary"]
    title: Text
    measure: str
    timeframe_months: int = Field(ge=1)
    source: str
    visits: list[str] = Field(default_factory=list)
    paramcd: str | None = None


class AnalysisWindow(_Model):
    label: str
    visit: str
    target_day: int
    low_day: int
    high_day: int


class StoppingRule(_Model):
    id: str
    description: Text
    related_sae_count: int = Field(ge=1)
    relatedness_counted: list[Literal["possible", "probable", "definite"]] = Field(min_length=1)


class Safety(_Model):
    sponsor_report_hours: int = Field(ge=1)
    susar_fatal_or_life_threatening_days: int = Field(ge=1)
    susar_fatal_or_life_threatening_complete_days: int = Field(ge=0)
    susar_other_days: int = Field(ge=1)
    follow_up_months: int = Field(ge=1)
    stopping_rules: list[StoppingRule]


class Protocol(_Model):
    """The whole protocol file. Immutable: an amendment is a new file with a new version."""

    protocol: ProtocolVersion
    identity: Identity
    arms: list[Arm] = Field(min_length=2)
    regimen: InfusionRegimen
    masking: Masking
    randomization: Randomization
    schedule: Schedule
    forms: list[Form] = Field(min_length=1)
    eligibility: Eligibility
    endpoints: list[Endpoint] = Field(min_length=1)
    analysis_windows: list[AnalysisWindow] = Field(min_length=1)
    safety: Safety

    @property
    def version(self) -> str:
        return self.protocol.number

    def form(self, code: str) -> Form:
        for f in self.forms:
            if f.code == code:
                return f
        raise KeyError(f"protocol {self.version} has no form {code!r}")

    def visit(self, code: str) -> Visit:
        for v in self.schedule.visits:
            if v.code == code:
                return v
        raise KeyError(f"protocol {self.version} has no visit {code!r}")

    def arm(self, code: str) -> Arm:
        for a in self.arms:
            if a.code == code:
                return a
        raise KeyError(f"protocol {self.version} has no arm {code!r}")

    def criterion(self, criterion_id: str) -> Criterion:
        for c in self.eligibility.criteria:
            if c.id == criterion_id:
                return c
        raise KeyError(f"protocol {self.version} has no criterion {criterion_id!r}")

    @property
    def is_blinded(self) -> bool:
        return self.masking.mode == "double_blind"

    @property
    def infusion_visits(self) -> list[Visit]:
        return [v for v in self.schedule.visits if v.infusion]


# --------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class ProtocolIssue:
    """One problem in a protocol file: where (a path like ``visits[4].window.after``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ProtocolInvalid(ValueError):
    """The protocol file was refused; ``issues`` lists every problem found."""

    def __init__(self, source: str, issues: list[ProtocolIssue]):
        self.source = source
        self.issues = issues
        lines = "\n".join(f"  - {issue}" for issue in issues)
        super().__init__(f"protocol file {source} is invalid ({len(issues)} problem(s)):\n{lines}")


def _format_path(loc: Iterable[Any]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            # pydantic puts the discriminator tag in the location of union members: drop it
            if part in _RULE_KINDS or part in _CHECK_KINDS:
                continue
            path += f".{part}" if path else str(part)
    return path


_RULE_KINDS = {
    "age_range",
    "diagnosis",
    "diagnosis_excluded",
    "percent_predicted_min",
    "relative_decline",
    "ratio_below",
    "consent_signed",
    "answer",
    "event_within",
    "washout",
}
_CHECK_KINDS = {"compare", "required_when"}


def _message(error: dict[str, Any]) -> str:
    """Say what the rule is, in the words a protocol author uses, not the validator's."""
    kind = error["type"]
    ctx = error.get("ctx", {})
    if kind == "greater_than_equal":
        return f"must be >= {ctx['ge']}"
    if kind == "greater_than":
        return f"must be > {ctx['gt']}"
    if kind == "less_than_equal":
        return f"must be <= {ctx['le']}"
    if kind == "less_than":
        return f"must be < {ctx['lt']}"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known key (check the spelling)"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if kind == "union_tag_invalid":
        return f"kind {ctx.get('tag')!r} is unknown; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return "needs a 'kind'"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "string_too_short":
        return f"must have at least {ctx.get('min_length')} character(s)"
    return str(error["msg"])


def _duplicates(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    dup: list[str] = []
    for v in values:
        if v in seen and v not in dup:
            dup.append(v)
        seen.add(v)
    return dup


def cross_check(p: Protocol) -> list[ProtocolIssue]:
    """The rules that tie one part of the file to another; a schema alone cannot see them."""
    issues: list[ProtocolIssue] = []

    def add(path: str, message: str) -> None:
        issues.append(ProtocolIssue(path, message))

    arm_codes = [a.code for a in p.arms]
    for code in _duplicates(arm_codes):
        add("arms", f"arm code {code!r} is used twice")
    if sorted(p.randomization.ratio) != sorted(arm_codes):
        add("randomization.ratio", f"must give a weight for each arm {arm_codes} and nothing else")
    for arm, weight in p.randomization.ratio.items():
        if weight < 1:
            add(f"randomization.ratio.{arm}", "must be >= 1")
    ratio_sum = sum(p.randomization.ratio.values())
    for i, size in enumerate(p.randomization.block_sizes):
        if ratio_sum and size % ratio_sum:
            add(f"randomization.block_sizes[{i}]", f"must be a multiple of the ratio total {ratio_sum}")
    form_codes = [f.code for f in p.forms]
    for code in _duplicates(form_codes):
        add("forms", f"form code {code!r} is used twice")
    form_by_code = {f.code: f for f in p.forms}
    for si, stratum in enumerate(p.randomization.strata):
        for level in _duplicates(stratum.levels):
            add(f"randomization.strata[{si}].levels", f"level {level!r} is listed twice")
        form_code, _, field_code = stratum.source.partition(".")
        form = form_by_code.get(form_code)
        if form is None or not any(f.code == field_code for f in form.fields):
            add(f"randomization.strata[{si}].source", f"{stratum.source!r} is not a form.field of this protocol")
    for role in p.masking.unblinded_roles:
        if role not in KNOWN_ROLES:
            add("masking.unblinded_roles", f"unknown role {role!r}; known roles: {sorted(KNOWN_ROLES)}")

    visit_codes = [v.code for v in p.schedule.visits]
    for code in _duplicates(visit_codes):
        add("schedule.visits", f"visit code {code!r} is used twice")
    if p.schedule.day_zero not in visit_codes:
        add("schedule.day_zero", f"{p.schedule.day_zero!r} is not a visit code")
    for fi, code in enumerate(p.schedule.unscheduled_forms):
        if code not in form_by_code:
            add(f"schedule.unscheduled_forms[{fi}]", f"form {code!r} is not defined in forms")
    earlier: set[str] = set()
    for vi, visit in enumerate(p.schedule.visits):
        path = f"schedule.visits[{vi}]"
        if visit.anchor != "day0" and visit.anchor not in earlier:
            add(f"{path}.anchor", f"must be 'day0' or the code of an earlier visit, not {visit.anchor!r}")
        if visit.anchor != "day0" and visit.day <= 0:
            add(f"{path}.day", "must be > 0 when anchored on an earlier visit")
        for fi, code in enumerate(visit.forms):
            if code not in form_by_code:
                add(f"{path}.forms[{fi}]", f"form {code!r} is not defined in forms")
        if visit.infusion and visit.cycle is None:
            add(f"{path}.cycle", "an infusion visit must name its cycle")
        earlier.add(visit.code)
    n_infusions = sum(1 for v in p.schedule.visits if v.infusion)
    expected = p.regimen.cycles * p.regimen.infusions_per_cycle
    if n_infusions != expected:
        add("schedule.visits", f"has {n_infusions} infusion visits; the regimen needs {expected}")

    for fi, form in enumerate(p.forms):
        field_codes = [f.code for f in form.fields]
        for code in _duplicates(field_codes):
            add(f"forms[{fi}].fields", f"field code {code!r} is used twice in form {form.code}")
        by_code = {f.code: f for f in form.fields}
        if form.procedure_date is not None and (
            form.procedure_date not in by_code or by_code[form.procedure_date].type != "date"
        ):
            add(f"forms[{fi}].procedure_date", f"{form.procedure_date!r} is not a date field of form {form.code}")
        for ki, key in enumerate(form.key_fields):
            if key not in by_code:
                add(f"forms[{fi}].key_fields[{ki}]", f"{key!r} is not a field of form {form.code}")
        for xi, fld in enumerate(form.fields):
            fpath = f"forms[{fi}].fields[{xi}]"
            if fld.type == "choice" and not fld.choices:
                add(f"{fpath}.choices", "a choice field needs choices")
            if fld.type != "choice" and fld.choices:
                add(f"{fpath}.choices", f"only choice fields take choices (type is {fld.type})")
            if fld.choices:
                for code in _duplicates(c.code for c in fld.choices):
                    add(f"{fpath}.choices", f"choice code {code!r} is used twice")
            numeric = fld.type in ("integer", "decimal")
            for bound in ("min", "max", "soft_min", "soft_max"):
                if getattr(fld, bound) is not None and not numeric:
                    add(f"{fpath}.{bound}", f"only numeric fields take {bound} (type is {fld.type})")
            if fld.min is not None and fld.max is not None and fld.min > fld.max:
                add(f"{fpath}.max", f"must be >= min ({fld.min})")
            if fld.soft_min is not None and fld.min is not None and fld.soft_min < fld.min:
                add(f"{fpath}.soft_min", f"must be >= min ({fld.min})")
            if fld.soft_max is not None and fld.max is not None and fld.soft_max > fld.max:
                add(f"{fpath}.soft_max", f"must be <= max ({fld.max})")
        for ci, check in enumerate(form.checks):
            names = (check.left, check.right) if check.kind == "compare" else (check.field, check.when_field)
            for name in names:
                if name not in by_code:
                    add(f"forms[{fi}].checks[{ci}]", f"names {name!r}, which is not a field of form {form.code}")

    criteria = p.eligibility.criteria
    for cid in _duplicates(c.id for c in criteria):
        add("eligibility.criteria", f"criterion id {cid!r} is used twice")
    for ci, crit in enumerate(criteria):
        prefix = "IN" if crit.type == "inclusion" else "EX"
        if not crit.id.startswith(prefix):
            add(f"eligibility.criteria[{ci}].id", f"an {crit.type} criterion id must start with {prefix}")
        rule = crit.rule
        rpath = f"eligibility.criteria[{ci}].rule"
        if isinstance(rule, AgeRangeRule) and rule.min_years >= rule.max_years:
            add(f"{rpath}.max_years", "must be > min_years")
        if isinstance(rule, RelativeDeclineRule) and not (
            rule.window_months_min <= rule.lookback_months <= rule.window_months_max
        ):
            add(rpath, "the look-back must lie inside [window_months_min, window_months_max]")
        if isinstance(rule, EventWithinRule) and sum(x is not None for x in (rule.days, rule.months, rule.years)) != 1:
            add(rpath, "give exactly one of days, months, years")
        for item_attr in ("item", "present_item", "date_item"):
            item = getattr(rule, item_attr, None)
            if item is None:
                continue
            form_code, _, field_code = item.partition(".")
            form = form_by_code.get(form_code)
            if form is None or field_code not in {f.code for f in form.fields}:
                add(f"{rpath}.{item_attr}", f"{item!r} is not a form.field of this protocol")

    for ei, endpoint in enumerate(p.endpoints):
        for vi, code in enumerate(endpoint.visits):
            if code not in visit_codes:
                add(f"endpoints[{ei}].visits[{vi}]", f"{code!r} is not a visit code")
    for wi, window in enumerate(p.analysis_windows):
        if window.visit not in visit_codes:
            add(f"analysis_windows[{wi}].visit", f"{window.visit!r} is not a visit code")
        if not window.low_day <= window.target_day <= window.high_day:
            add(f"analysis_windows[{wi}]", "needs low_day <= target_day <= high_day")
    for wi in range(1, len(p.analysis_windows)):
        if p.analysis_windows[wi].low_day <= p.analysis_windows[wi - 1].high_day:
            add(f"analysis_windows[{wi}].low_day", "analysis windows must not overlap")
    return issues


#: The platform's roles (see ``ildtrial.core.roles``); repeated here as names only so the
#: protocol model stays importable on its own.
KNOWN_ROLES = frozenset(
    {
        "investigator",
        "sub_investigator",
        "study_coordinator",
        "monitor",
        "data_manager",
        "cell_lab",
        "unblinded_statistician",
        "dsmb_member",
        "sponsor_viewer",
        "administrator",
    }
)


def parse_protocol(text: str, source: str = "<string>") -> Protocol:
    """Parse and validate protocol YAML text; raise ProtocolInvalid listing every problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ProtocolInvalid(source, [ProtocolIssue(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from exc
    if not isinstance(raw, dict):
        raise ProtocolInvalid(source, [ProtocolIssue("", "the file must be a mapping of sections")])
    try:
        protocol = Protocol.model_validate(raw)
    except ValidationError as exc:
        issues = [ProtocolIssue(_format_path(e["loc"]), _message(e)) for e in exc.errors()]
        raise ProtocolInvalid(source, issues) from None
    issues = cross_check(protocol)
    if issues:
        raise ProtocolInvalid(source, issues)
    return protocol


def load_protocol(path: str | Path | None = None) -> LoadedProtocol:
    """Load a protocol file (the packaged NCT02594839 file by default) with its digest."""
    if path is None:
        text = resources.files("ildtrial.protocols").joinpath(DEFAULT_PROTOCOL).read_text(encoding="utf-8")
        source = f"ildtrial/protocols/{DEFAULT_PROTOCOL}"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ProtocolInvalid(str(path), [ProtocolIssue("", f"cannot read the file: {exc.strerror}")]) from exc
        source = str(path)
    return LoadedProtocol(parse_protocol(text, source), source, hashlib.sha256(text.encode()).hexdigest())


@dataclass(frozen=True)
class LoadedProtocol:
    """A validated protocol with where it came from and the SHA-256 of its text, so a
    record can say exactly which file was in force when it was entered."""

    protocol: Protocol
    source: str
    sha256: str

    @cached_property
    def version(self) -> str:
        return self.protocol.version


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the protocol file, for editors and external validators."""
    schema = Protocol.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ildtrial protocol file"
    return schema
