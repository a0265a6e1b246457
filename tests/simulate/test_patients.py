"""The virtual-patient model (``ildtrial.simulate.patients``) and its parameter file.

* ``parameters.yaml`` is validated with clear errors, every value traceable to a source;
* candidates are deterministic from the seed and go through the *real* eligibility engine
  with a realistic screen-failure rate (35-50 % aimed) for the protocol's reasons;
* trajectories reproduce the parameters: mean decline, arm effect, within-patient
  correlation of the changes (model-implied value), mortality;
* adverse events: infusion reactions the day after infusion, a fatal SAE per death,
  consistent seriousness, totals close to the published 26 vs 16.
"""

from __future__ import annotations

import collections
import math
from pathlib import Path

import numpy as np
import pytest

from ildtrial.simulate.patients import (
    ParameterError,
    default_parameters,
    generate_candidates,
    load_parameters,
    protocol_schedule,
    screen,
    simulate_adverse_events,
    simulate_trajectories,
)

PACKAGED = Path(__file__).resolve().parents[2] / "src" / "ildtrial" / "simulate" / "parameters.yaml"


# --------------------------------------------------------------------------- parameters


def test_parameters_load_with_units_and_declared_sources() -> None:
    p = load_parameters()
    assert p.events.mortality_12_months.value == pytest.approx(0.20)
    assert p.events.mortality_12_months.source.startswith("published")
    assert p.outcomes.fvc.placebo_slope.unit == "mL/year"
    assert -240 <= p.outcomes.fvc.placebo_slope.value <= -200  # INPULSIS placebo range
    assert set(p.sources) >= {"published", "inpulsis", "protocol", "assumption"}


def _write(tmp_path: Path, old: str, new: str) -> Path:
    text = PACKAGED.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "params.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("mortality_12_months: {value: 0.20,", "mortality_12_months: {value: 1.5,", "events.mortality_12_months.value"),
        ("missed_visit: {value: 0.03,", "missed_visit: {value: 0.03, colour: red,", "events.missed_visit.colour"),
        ("source: \"inpulsis:", "source: \"INPULSIS-2014:", "outcomes.fvc.placebo_slope: source 'INPULSIS-2014"),
        ("  withdrawal_12_months:", "  withdrawl_12_months:", "events.withdrawal_12_months"),
        ("slope_correlation_fvc_six_mwd: {value: 0.3,", "slope_correlation_fvc_six_mwd: {value: -0.9,", "valid correlation matrix"),
    ],
)
def test_invalid_parameter_files_are_refused_naming_the_entry(tmp_path, old, new, expected) -> None:
    with pytest.raises(ParameterError) as info:
        load_parameters(_write(tmp_path, old, new))
    assert expected in str(info.value)


def test_unreadable_and_malformed_files(tmp_path) -> None:
    with pytest.raises(ParameterError, match="cannot read"):
        load_parameters(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [1\n", encoding="utf-8")
    with pytest.raises(ParameterError, match="not valid YAML"):
        load_parameters(bad)


def test_overrides_are_validated_and_marked() -> None:
    p = default_parameters().with_values({"events.mortality_12_months": 0.0})
    assert p.events.mortality_12_months.value == 0.0
    assert p.events.mortality_12_months.source == "assumption: override"
    with pytest.raises(ParameterError, match="no such parameter"):
        default_parameters().with_values({"events.mortality": 0.1})
    with pytest.raises(ParameterError, match="less than 1"):
        default_parameters().with_values({"events.mortality_12_months": 1.0})


def test_schedule_comes_from_the_protocol() -> None:
    s = protocol_schedule()
    assert s.assessment_days == (0, 91, 182, 273, 364)
    assert s.infusion_days == (0, 7, 91, 98, 182, 189, 273, 280)
    assert s.related_sae_stop_count == 2


# --------------------------------------------------------------------------- candidates


def test_candidates_are_deterministic_from_the_seed() -> None:
    a = generate_candidates(25, np.random.default_rng(5))
    b = generate_candidates(25, np.random.default_rng(5))
    c = generate_candidates(25, np.random.default_rng(6))
    assert [x.data for x in a] == [x.data for x in b]
    assert [x.data for x in a] != [x.data for x in c]


@pytest.fixture(scope="module")
def screened():
    candidates = generate_candidates(200, np.random.default_rng(2015))
    return candidates, screen(candidates)


def test_screen_failure_rate_through_the_real_engine(screened) -> None:
    candidates, verdicts = screened
    status = collections.Counter(v.status for v in verdicts)
    assert status["incomplete"] == 0  # the simulated forms are complete
    failure = status["not_eligible"] / len(verdicts)
    assert 0.35 <= failure <= 0.50, status
    reasons = collections.Counter(r for v in verdicts for r, _ in v.reasons)
    # failures come from the protocol's criteria, the lung-function ones first
    assert reasons.most_common(1)[0][0] == "IN4"
    for criterion in ("IN3", "IN4", "EX2", "EX8", "IN2"):
        assert reasons[criterion] > 0, reasons


def test_engine_decisions_agree_with_the_drawn_truth(screened) -> None:
    """IN3 is decided on the same GLI scale the candidates were drawn on; IN4 on the
    drawn declines (allowing for the rounding of the entered values)."""
    candidates, verdicts = screened
    for cand, verdict in zip(candidates, verdicts, strict=True):
        outcome = {c.id: c.outcome for c in verdict.criteria}
        fvc, dlco = cand.fvc_percent_predicted, cand.dlco_percent_predicted
        if fvc >= 40.05 and dlco >= 20.05:
            assert outcome["IN3"] == "met"
        if fvc < 39.95 or dlco < 19.95:
            assert outcome["IN3"] == "not_met"
        if cand.fvc_decline_percent > 11 and cand.dlco_decline_percent > 11:
            assert outcome["IN4"] == "met"
        if cand.fvc_decline_percent < 9 or cand.dlco_decline_percent < 9:
            assert outcome["IN4"] == "not_met"


def test_candidate_demographics_are_plausible(screened) -> None:
    candidates, _ = screened
    groups = collections.Counter(c.diagnosis_group for c in candidates)
    assert groups["IIP"] > groups["CTD_ILD"] > 0
    iip_male = np.mean([c.sex == "M" for c in candidates if c.diagnosis_group == "IIP"])
    ctd_male = np.mean([c.sex == "M" for c in candidates if c.diagnosis_group == "CTD_ILD"])
    assert iip_male > 0.6 > 0.4 > ctd_male
    assert all(c.data["DM"]["ethnicity"] == "caucasian" for c in candidates)
    assert 55 < np.mean([c.age_years for c in candidates]) < 68


# --------------------------------------------------------------------------- trajectories


def _population(n: int) -> dict[str, np.ndarray]:
    return {"FVC": np.full(n, 2300.0), "DLCO": np.full(n, 10.0), "6MWD": np.full(n, 300.0)}


@pytest.fixture(scope="module")
def big_cohort():
    n = 6000
    arms = np.repeat([0, 1], n // 2)
    rng = np.random.default_rng(77)
    return arms, simulate_trajectories(_population(n), arms, rng)


def test_trajectories_are_deterministic() -> None:
    arms = ["MSC", "PBO"] * 5
    a = simulate_trajectories(_population(10), arms, np.random.default_rng(1))
    b = simulate_trajectories(_population(10), arms, np.random.default_rng(1))
    np.testing.assert_array_equal(a.fvc_ml, b.fvc_ml)
    np.testing.assert_array_equal(a.death_day, b.death_day)


def test_mean_decline_and_arm_effect_match_the_parameters(big_cohort) -> None:
    arms, tr = big_cohort
    p = default_parameters()
    fvc = p.outcomes.fvc
    change = tr.fvc_ml[:, -1] - tr.fvc_ml[:, 0]
    pbo, msc = change[arms == 0], change[arms == 1]
    pbo, msc = pbo[np.isfinite(pbo)], msc[np.isfinite(msc)]
    expected = fvc.placebo_slope.value * 364 / 365.25
    sd = np.std(pbo, ddof=1)
    assert abs(pbo.mean() - expected) < 4 * sd / math.sqrt(pbo.size)
    diff = msc.mean() - pbo.mean()
    assert abs(diff - fvc.effect_week52.value) < 4 * sd * math.sqrt(1 / pbo.size + 1 / msc.size)
    # model-implied SD of the week-52 change
    var = (
        (fvc.slope_sd.value * 364 / 365.25) ** 2
        + 2 * fvc.serial_sd.value**2 * (1 - fvc.serial_correlation.value**4)
        + 2 * fvc.measurement_sd.value**2
    )
    assert sd == pytest.approx(math.sqrt(var), rel=0.05)


def test_within_patient_correlation_matches_the_model(big_cohort) -> None:
    arms, tr = big_cohort
    m = default_parameters().outcomes.fvc
    c26 = tr.fvc_ml[:, 2] - tr.fvc_ml[:, 0]
    c52 = tr.fvc_ml[:, 4] - tr.fvc_ml[:, 0]
    ok = np.isfinite(c26) & np.isfinite(c52) & (arms == 0)
    r = np.corrcoef(c26[ok], c52[ok])[0, 1]
    sb, ss, se, phi = m.slope_sd.value / 365.25, m.serial_sd.value, m.measurement_sd.value, m.serial_correlation.value

    def cov(d1: float, d2: float) -> float:
        serial = ss**2 * (phi ** (abs(d2 - d1) / 91) - phi ** (d1 / 91) - phi ** (d2 / 91) + 1)
        return sb**2 * d1 * d2 + serial + se**2 * (1 + (d1 == d2))

    implied = cov(182, 364) / math.sqrt(cov(182, 182) * cov(364, 364))
    assert r == pytest.approx(implied, abs=0.04)
    assert 0.3 < r < 0.9  # changes are correlated within a patient
    # random slopes are correlated across endpoints (FVC-DLCO 0.5)
    d52 = tr.dlco[:, 4] - tr.dlco[:, 0]
    ok2 = np.isfinite(c52) & np.isfinite(d52) & (arms == 0)
    assert np.corrcoef(c52[ok2], d52[ok2])[0, 1] > 0.15


def test_deaths_and_missing_visits(big_cohort) -> None:
    arms, tr = big_cohort
    died = np.isfinite(tr.death_day)
    assert died.mean() == pytest.approx(0.20, abs=0.02)  # published: 2 deaths per arm of 10
    assert tr.observed[:, 0].all()
    # nothing is observed on or after death
    for k, day in enumerate(tr.days):
        assert not (tr.observed[:, k] & (tr.death_day <= day)).any()
    assert np.isnan(tr.fvc_ml[~tr.observed]).all()
    frame = tr.to_frame()
    assert len(frame) == int(tr.observed.sum())


# --------------------------------------------------------------------------- adverse events


@pytest.fixture(scope="module")
def adverse_events():
    n = 1000
    arms = np.repeat([0, 1], n // 2)
    rng = np.random.default_rng(12)
    tr = simulate_trajectories(_population(n), arms, rng)
    return tr, simulate_adverse_events(tr, rng)


def test_infusion_reactions_the_day_after_infusion(adverse_events) -> None:
    tr, events = adverse_events
    infusion_days = protocol_schedule().infusion_days
    reactions = [e for e in events if e.term in ("Fever", "Chills")]
    msc = [e for e in reactions if e.arm == "MSC"]
    pbo = [e for e in reactions if e.arm == "PBO"]
    assert len(msc) > 5 * len(pbo)
    next_day = np.mean([e.onset_day == infusion_days[e.infusion_number - 1] + 1 for e in reactions])
    assert next_day > 0.75
    assert all(e.infusion_related and not e.serious and e.hours_after_infusion <= 24 for e in reactions)
    assert all(e.grade in (1, 2) for e in reactions)


def test_deaths_are_fatal_respiratory_failure_saes(adverse_events) -> None:
    tr, events = adverse_events
    fatal = [e for e in events if e.grade == 5]
    assert len(fatal) == int(np.isfinite(tr.death_day).sum())
    assert all(e.term == "Respiratory failure" and e.outcome == "fatal" and "death" in e.seriousness for e in fatal)
    for e in events:
        assert e.serious == bool(e.seriousness)
        assert 1 <= e.grade <= 5
        assert e.relatedness_product in ("not_related", "unlikely", "possible", "probable", "definite")
        assert 0 <= e.onset_day <= tr.follow_up_days


def test_ae_totals_close_to_the_published_trial(adverse_events) -> None:
    """Published: 26 AEs (MSC) vs 16 (placebo) in 10 + 10 participants."""
    tr, events = adverse_events
    per10 = collections.Counter(e.arm for e in events)
    msc, pbo = per10["MSC"] / 50, per10["PBO"] / 50  # 500 per arm -> per 10 participants
    assert 22 <= msc <= 31
    assert 13 <= pbo <= 19


def test_related_sae_override_feeds_the_stopping_rule() -> None:
    n = 200
    arms = np.repeat([0, 1], n // 2)
    tr = simulate_trajectories(_population(n), arms, np.random.default_rng(4))
    events = simulate_adverse_events(tr, np.random.default_rng(4), related_sae_per_infusion=0.2)
    related = [e for e in events if e.serious and e.relatedness_product in ("possible", "probable", "definite")]
    assert related and all(e.arm == "MSC" and e.term == "Infusion related reaction" for e in related)
    with pytest.raises(ValueError, match="probability"):
        simulate_adverse_events(tr, np.random.default_rng(4), related_sae_per_infusion=1.5)
