"""Operating characteristics of the NCT02594839 design by simulation (no database).

Why: with 10 participants per arm, what a trial of this design can and cannot show
(power for an FVC difference, whether the MMRM test keeps its level, how often the CI
covers the truth, how likely the related-SAE stopping rule is to fire) is a property of the
design that simulation answers directly. Each scenario simulates ``n_trials`` trials at the
data level with the virtual-patient model of :mod:`ildtrial.simulate.patients` (same
functions, same ``parameters.yaml``) and analyses every trial as the statistical analysis
plan says:

* efficacy: MMRM of the change from baseline at weeks 13/26/39/52 with arm × visit and
  baseline × visit, unstructured covariance, REML and Satterthwaite df, fitted to all
  trials at once by :func:`ildtrial.stats.mmrm_batch.fit_mmrm_batch`; the test is the
  two-sided t test of the week-52 arm difference;
* safety: Fisher's exact test (two-sided) of participants with ≥ 1 SAE, MSC vs placebo
  (scipy.stats.fisher_exact, tabulated once per arm size: the 2 × 2 tables of small trials
  are few);
* stopping rule: dosing halts after ``related_sae_stop_count`` (protocol: 2) SAEs related to
  the product in the MSC arm; with a per-infusion related-SAE probability π and k
  infusions given, the count is Binomial(k, π).

Randomness: scenario streams come from ``numpy.random.SeedSequence`` entropy
``[seed, n_per_arm]``, the same for every effect size: common random numbers, so power
curves across effects are smooth and type I error and power come from the same trials.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ildtrial.simulate.patients import (
    ENDPOINTS,
    ProtocolSchedule,
    SimulationParameters,
    default_parameters,
    endpoint_values,
    event_days,
    infusions_received,
    observed_visits,
    protocol_schedule,
)
from ildtrial.stats.mmrm_batch import BatchResult, fit_mmrm_batch

__all__ = [
    "SimulatedTrials",
    "analyse_efficacy",
    "analyse_safety",
    "TTestCheck",
    "fisher_p_table",
    "operating_characteristics",
    "simulate_trials",
    "stopping_probability_binomial",
    "ttest_check",
]


@dataclass(frozen=True)
class SimulatedTrials:
    """``n_trials`` simulated trials of ``2·n_per_arm`` participants (arrays, no database).

    ``change`` is (n_trials, n, n_post) change from baseline at the post-baseline
    assessments (NaN = missing), ``baseline`` the observed day-0 value, ``arm`` 1 = MSC.
    """

    endpoint: str
    effect: float
    arm: np.ndarray
    baseline: np.ndarray
    change: np.ndarray
    death_day: np.ndarray
    withdrawal_day: np.ndarray
    infusions: np.ndarray  # infusions received per participant
    visit_labels: tuple[str, ...]
    follow_up_days: float

    @property
    def died(self) -> np.ndarray:
        return np.isfinite(self.death_day) & (self.death_day <= self.follow_up_days)


def simulate_trials(
    n_trials: int,
    n_per_arm: int,
    rng: np.random.Generator,
    params: SimulationParameters | None = None,
    *,
    endpoint: str = "FVC",
    effect: float | None = None,
    schedule: ProtocolSchedule | None = None,
) -> SimulatedTrials:
    """Simulate the efficacy data and exposure of many trials at once (vectorised).

    Baseline levels are drawn from the eligible population's distribution
    (``outcomes.<endpoint>.baseline_*``, truncated normal); the trajectory, deaths,
    withdrawals and missed visits use the same functions as
    :func:`ildtrial.simulate.patients.simulate_trajectories`.
    """
    p = params or default_parameters()
    sch = schedule or protocol_schedule()
    if endpoint not in ENDPOINTS:
        raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)} (got {endpoint!r})")
    if n_trials < 1 or n_per_arm < 2:
        raise ValueError("need n_trials >= 1 and n_per_arm >= 2")
    model = p.endpoint(endpoint)
    n = 2 * n_per_arm
    shape = (n_trials, n)
    arm = np.broadcast_to(np.repeat([0.0, 1.0], n_per_arm), shape).copy()
    mean, sd, low = model.baseline_mean.value, model.baseline_sd.value, model.baseline_min.value
    if sd > 0:
        level = stats.truncnorm.rvs(
            (low - mean) / sd, np.inf, loc=mean, scale=sd, size=shape, random_state=rng
        )
    else:
        level = np.full(shape, max(mean, low))
    slope_z = rng.standard_normal(shape)
    values = endpoint_values(level, arm, slope_z, model, sch.assessment_days, rng, effect)
    death, withdrawal = event_days(arm, rng, p.events)
    observed = observed_visits(sch.assessment_days, death, withdrawal, p.events.missed_visit.value, rng)
    change = np.where(observed[..., 1:], values[..., 1:] - values[..., :1], np.nan)
    end = np.minimum(np.minimum(death, withdrawal), p.events.follow_up_days.value)
    return SimulatedTrials(
        endpoint=endpoint,
        effect=model.effect_week52.value if effect is None else float(effect),
        arm=arm,
        baseline=values[..., 0],
        change=change,
        death_day=death,
        withdrawal_day=withdrawal,
        infusions=infusions_received(end, sch.infusion_days),
        visit_labels=sch.assessment_labels[1:],
        follow_up_days=p.events.follow_up_days.value,
    )


def analyse_efficacy(trials: SimulatedTrials) -> BatchResult:
    """MMRM of every trial: change ~ arm × visit + baseline × visit, unstructured, REML."""
    X = np.stack([trials.arm, trials.baseline], axis=-1)
    return fit_mmrm_batch(
        trials.change, X, covariate_names=["arm", "baseline"],
        visit_labels=trials.visit_labels, treatment="arm",
    )


@functools.cache
def fisher_p_table(n_msc: int, n_pbo: int) -> np.ndarray:
    """Two-sided Fisher exact p-values for every table: ``[a, b]`` = MSC / placebo counts.

    ``(n_msc + 1) × (n_pbo + 1)`` calls of :func:`scipy.stats.fisher_exact`, once per arm
    size; a batch of trials then needs only an array lookup.
    """
    out = np.empty((n_msc + 1, n_pbo + 1))
    for a in range(n_msc + 1):
        for b in range(n_pbo + 1):
            out[a, b] = stats.fisher_exact([[a, n_msc - a], [b, n_pbo - b]]).pvalue
    return out


def stopping_probability_binomial(
    n_msc: int, related_sae_per_infusion: float, n_infusions: int = 8, threshold: int = 2
) -> float:
    """P(≥ threshold related SAEs) when all ``n_msc·n_infusions`` infusions are given.

    Each infusion independently causes a related SAE with probability π, so the count is
    Binomial(n_msc·n_infusions, π) and ``P = 1 − Σ_{k<threshold} C(N,k) π^k (1−π)^(N−k)``.
    With deaths and withdrawals fewer infusions are given and the simulated probability
    is lower.
    """
    return float(stats.binom.sf(threshold - 1, n_msc * n_infusions, related_sae_per_infusion))


def analyse_safety(
    trials: SimulatedTrials,
    related_sae_per_infusion: float,
    rng: np.random.Generator,
    params: SimulationParameters | None = None,
    alpha: float = 0.05,
    stop_count: int = 2,
) -> dict[str, np.ndarray]:
    """SAE comparison and stopping rule for every simulated trial.

    A participant has ≥ 1 SAE if they died, had a background non-fatal SAE (Poisson,
    ``safety.background_sae_rate`` over their time in the study) or a product-related SAE
    (Binomial(infusions received, π); π = ``related_sae_per_infusion`` in the MSC arm).
    Returns per trial: ``fisher_reject`` (two-sided Fisher p < alpha), ``stopped``
    (≥ ``stop_count`` related SAEs in the MSC arm), ``p_msc`` / ``p_pbo`` (shares with
    ≥ 1 SAE) and ``related_msc`` (related SAEs in the MSC arm).
    """
    params = params or default_parameters()
    s = params.safety
    msc = trials.arm > 0
    end = np.minimum(np.minimum(trials.death_day, trials.withdrawal_day), trials.follow_up_days)
    years = end / 365.25
    background = rng.poisson(s.background_sae_rate.value * years)
    p_rel = np.where(msc, related_sae_per_infusion, s.related_sae_per_infusion_placebo.value)
    related = rng.binomial(trials.infusions, p_rel)
    any_sae = trials.died | (background > 0) | (related > 0)
    a = (any_sae & msc).sum(axis=1)
    b = (any_sae & ~msc).sum(axis=1)
    n_msc = int(msc[0].sum())
    n_pbo = int((~msc[0]).sum())
    p_fisher = fisher_p_table(n_msc, n_pbo)[a, b]
    stopped = (related * msc).sum(axis=1) >= stop_count
    return {
        "fisher_reject": p_fisher < alpha,
        "stopped": stopped,
        "p_msc": a / n_msc,
        "p_pbo": b / n_pbo,
        "related_msc": (related * msc).sum(axis=1),
    }


def _mc_se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1.0 - p), 0.0) / n) if n > 0 else math.nan


def operating_characteristics(
    n_per_arm_grid: Sequence[int],
    effect_grid: Sequence[float],
    n_trials: int,
    seed: int,
    endpoint: str = "FVC",
    alpha: float = 0.05,
    sae_rate_grid: Sequence[float] = (0.0, 0.005, 0.02),
    *,
    conf_level: float = 0.95,
    params: SimulationParameters | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Power, type I error, CI coverage, SAE test and stopping probability per scenario.

    One row per (n_per_arm, effect, related-SAE probability). ``effect`` is the true
    week-52 difference MSC − placebo in the endpoint's unit (FVC mL, DLCO mL/min/mmHg,
    6MWD m); ``sae_rate_grid`` holds per-infusion probabilities of a product-related SAE
    in the MSC arm. Columns:

    * ``rejection_rate`` (share of converged trials with p < alpha) and its Monte-Carlo SE;
      ``power`` = rejection rate when effect ≠ 0, ``type_i_error`` when effect = 0;
    * ``coverage``: share of ``conf_level`` CIs covering the true effect;
    * ``mean_estimate``, ``bias``, ``empirical_se``, ``mean_model_se``;
    * ``n_converged``: trials whose MMRM converged (rates are among these; a
      non-converged fit is never counted as a result);
    * ``sae_any_msc`` / ``sae_any_pbo``: mean share with ≥ 1 SAE; ``sae_fisher_rejection``:
      P(Fisher p < alpha); ``stop_probability`` (± MC SE) and, for reference,
      ``stop_probability_all_infused`` (binomial, every infusion given).
    """
    p = params or default_parameters()
    sch = protocol_schedule()
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    rows: list[dict[str, object]] = []
    scenarios = [(n, e) for n in n_per_arm_grid for e in effect_grid]
    iterator = scenarios
    if progress:
        from tqdm import tqdm

        iterator = tqdm(scenarios, desc="scenarios", unit="scenario")
    for n_per_arm, effect in iterator:
        rng = np.random.default_rng([int(seed), int(n_per_arm)])
        trials = simulate_trials(n_trials, n_per_arm, rng, p, endpoint=endpoint, effect=effect, schedule=sch)
        fit = analyse_efficacy(trials)
        test = fit.test(visit=-1, conf_level=conf_level)
        ok = fit.converged
        n_ok = int(ok.sum())
        reject = float(np.mean(test.p_value[ok] < alpha)) if n_ok else math.nan
        cover = (
            float(np.mean((test.ci_lower[ok] <= effect) & (effect <= test.ci_upper[ok])))
            if n_ok else math.nan
        )
        est = test.estimate[ok]
        base = {
            "endpoint": endpoint,
            "n_per_arm": int(n_per_arm),
            "effect": float(effect),
            "n_trials": int(n_trials),
            "n_converged": n_ok,
            "rejection_rate": reject,
            "rejection_mc_se": _mc_se(reject, n_ok),
            "power": reject if effect != 0 else math.nan,
            "type_i_error": reject if effect == 0 else math.nan,
            "coverage": cover,
            "coverage_mc_se": _mc_se(cover, n_ok),
            "mean_estimate": float(est.mean()) if n_ok else math.nan,
            "bias": float(est.mean() - effect) if n_ok else math.nan,
            "empirical_se": float(est.std(ddof=1)) if n_ok > 1 else math.nan,
            "mean_model_se": float(test.se[ok].mean()) if n_ok else math.nan,
            "mean_df": float(test.df[ok].mean()) if n_ok else math.nan,
            "deaths_per_trial": float(trials.died.sum(axis=1).mean()),
        }
        for k, rate in enumerate(sae_rate_grid):
            srng = np.random.default_rng([int(seed), int(n_per_arm), 1, k])
            saf = analyse_safety(trials, float(rate), srng, p, alpha, sch.related_sae_stop_count)
            stop = float(np.mean(saf["stopped"]))
            rows.append(
                {
                    **base,
                    "related_sae_per_infusion": float(rate),
                    "sae_any_msc": float(np.mean(saf["p_msc"])),
                    "sae_any_pbo": float(np.mean(saf["p_pbo"])),
                    "sae_fisher_rejection": float(np.mean(saf["fisher_reject"])),
                    "stop_probability": stop,
                    "stop_mc_se": _mc_se(stop, n_trials),
                    "stop_probability_all_infused": stopping_probability_binomial(
                        n_per_arm, float(rate), len(sch.infusion_days), sch.related_sae_stop_count
                    ),
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- textbook check


@dataclass(frozen=True)
class TTestCheck:
    """Simulated MMRM power in the reduced model vs the analytic two-sample t-test power."""

    n_per_arm: int
    effect_size: float
    n_trials: int
    simulated_power: float
    analytic_power: float
    mc_se: float
    mean_df: float

    @property
    def z(self) -> float:
        """(simulated − analytic) / MC SE; |z| < 3 is agreement within Monte-Carlo error."""
        return (self.simulated_power - self.analytic_power) / self.mc_se


def ttest_check(
    n_per_arm: int = 20,
    effect_size: float = 0.9,
    n_trials: int = 2000,
    seed: int = 20151105,
    alpha: float = 0.05,
) -> TTestCheck:
    """Power of the batched MMRM where it reduces to the two-sample t test.

    One post-baseline visit, no missing data and only the arm as covariate: the model is
    ``y = β0 + β1·arm + ε`` with one variance, the REML t test of β1 is the pooled-variance
    t test and its Satterthwaite df is exactly 2n − 2. Its simulated power must match
    ``statsmodels.stats.power.TTestIndPower`` (noncentral t) within Monte-Carlo error.
    """
    from statsmodels.stats.power import TTestIndPower

    rng = np.random.default_rng([int(seed), int(n_per_arm)])
    arm = np.broadcast_to(np.repeat([0.0, 1.0], n_per_arm), (n_trials, 2 * n_per_arm))
    y = rng.standard_normal(arm.shape) + effect_size * arm
    fit = fit_mmrm_batch(y[..., None], arm[..., None].copy(), covariate_names=["arm"])
    test = fit.test(visit=0)
    ok = fit.converged
    power = float(np.mean(test.p_value[ok] < alpha))
    analytic = float(
        TTestIndPower().power(effect_size=effect_size, nobs1=n_per_arm, alpha=alpha, ratio=1.0)
    )
    return TTestCheck(
        n_per_arm=n_per_arm,
        effect_size=effect_size,
        n_trials=int(ok.sum()),
        simulated_power=power,
        analytic_power=analytic,
        mc_se=_mc_se(analytic, int(ok.sum())),
        mean_df=float(np.mean(test.df[ok])),
    )
