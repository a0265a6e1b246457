"""Operating characteristics (``ildtrial.simulate.design``) against textbook answers.

* Under the null the MMRM test keeps its level and the CIs their coverage, within
  Monte-Carlo error (1,000 trials of the real 10 + 10 design, with deaths and dropouts).
* Where the model reduces to a two-sample t test, the simulated power equals the analytic
  noncentral-t power of statsmodels' ``TTestIndPower`` within Monte-Carlo error.
* With every infusion given, the stopping-rule probability equals the binomial formula.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ildtrial.simulate.design import (
    analyse_safety,
    fisher_p_table,
    operating_characteristics,
    simulate_trials,
    stopping_probability_binomial,
    ttest_check,
)
from ildtrial.simulate.patients import default_parameters


@pytest.fixture(scope="module")
def null_and_alternative() -> pd.DataFrame:
    return operating_characteristics(
        [10], [0.0, 315.0], n_trials=1000, seed=2015, sae_rate_grid=(0.0, 0.02)
    )


def test_type_i_error_and_coverage_within_monte_carlo_error(null_and_alternative) -> None:
    null = null_and_alternative[null_and_alternative.effect == 0.0].iloc[0]
    assert null.n_converged >= 990
    mc = math.sqrt(0.05 * 0.95 / null.n_converged)
    assert abs(null.type_i_error - 0.05) < 3 * mc
    assert abs(null.coverage - 0.95) < 3 * mc
    assert math.isnan(null.power)
    assert abs(null.bias) < 3 * null.empirical_se / math.sqrt(null.n_converged)
    # Satterthwaite SEs are honest: model SE close to the empirical SD of the estimates
    assert null.mean_model_se == pytest.approx(null.empirical_se, rel=0.1)


def test_power_and_table_layout(null_and_alternative) -> None:
    df = null_and_alternative
    assert len(df) == 4  # 2 effects x 2 SAE rates
    alt = df[df.effect == 315.0].iloc[0]
    null = df[df.effect == 0.0].iloc[0]
    assert alt.power > 0.5 > null.type_i_error
    assert math.isnan(alt.type_i_error)
    assert abs(alt.bias) < 3 * alt.empirical_se / math.sqrt(alt.n_converged)
    # SAE: no product-related SAEs -> Fisher's test rejects rarely (it is conservative)
    no_excess = df[(df.effect == 0.0) & (df.related_sae_per_infusion == 0.0)].iloc[0]
    assert no_excess.sae_fisher_rejection <= 0.05
    assert no_excess.stop_probability == 0.0
    assert no_excess.sae_any_msc == pytest.approx(no_excess.sae_any_pbo, abs=0.05)
    excess = df[(df.effect == 0.0) & (df.related_sae_per_infusion == 0.02)].iloc[0]
    assert excess.sae_any_msc > no_excess.sae_any_msc
    assert 0 < excess.stop_probability < excess.stop_probability_all_infused
    for col in ("rejection_rate", "coverage", "stop_probability", "n_converged", "mean_df"):
        assert col in df.columns


def test_results_are_deterministic_from_the_seed() -> None:
    a = operating_characteristics([5], [100.0], n_trials=50, seed=3, sae_rate_grid=(0.01,))
    b = operating_characteristics([5], [100.0], n_trials=50, seed=3, sae_rate_grid=(0.01,))
    pd.testing.assert_frame_equal(a, b)


def test_t_test_textbook_check() -> None:
    check = ttest_check(n_per_arm=20, effect_size=0.9, n_trials=2000)
    assert check.n_trials == 2000
    assert check.mean_df == pytest.approx(38.0)
    assert 0.7 < check.analytic_power < 0.85
    assert abs(check.z) < 3, check


def test_stopping_probability_equals_the_binomial_formula() -> None:
    """No deaths or withdrawals: every MSC participant gets all 8 infusions, the number of
    related SAEs is Binomial(80, π) and P(stop) = P(X ≥ 2)."""
    params = default_parameters().with_values(
        {"events.mortality_12_months": 0.0, "events.withdrawal_12_months": 0.0}
    )
    n_trials, pi = 4000, 0.02
    trials = simulate_trials(n_trials, 10, np.random.default_rng(9), params)
    assert (trials.infusions == 8).all()
    safety = analyse_safety(trials, pi, np.random.default_rng(10), params)
    exact = 1 - (1 - pi) ** 80 - 80 * pi * (1 - pi) ** 79
    assert stopping_probability_binomial(10, pi) == pytest.approx(exact, rel=1e-12)
    simulated = float(np.mean(safety["stopped"]))
    assert abs(simulated - exact) < 3 * math.sqrt(exact * (1 - exact) / n_trials)
    assert float(np.mean(safety["related_msc"])) == pytest.approx(80 * pi, rel=0.05)
    # with deaths, fewer infusions are given and the rule fires less often
    with_deaths = simulate_trials(n_trials, 10, np.random.default_rng(9))
    stopped = analyse_safety(with_deaths, pi, np.random.default_rng(10))["stopped"]
    assert float(np.mean(stopped)) < simulated


def test_fisher_table_matches_scipy() -> None:
    table = fisher_p_table(10, 10)
    assert table.shape == (11, 11)
    assert table[3, 7] == pytest.approx(stats.fisher_exact([[3, 7], [7, 3]]).pvalue)
    np.testing.assert_allclose(table, table.T)  # equal arm sizes: symmetric
    assert table[5, 5] == pytest.approx(1.0)


def test_other_endpoints_and_errors() -> None:
    df = operating_characteristics([10], [0.0], n_trials=40, seed=1, endpoint="6MWD", sae_rate_grid=(0.0,))
    assert df.endpoint.iloc[0] == "6MWD" and df.n_converged.iloc[0] >= 38
    with pytest.raises(ValueError, match="endpoint"):
        simulate_trials(10, 5, np.random.default_rng(1), endpoint="TLC")
    with pytest.raises(ValueError, match="alpha"):
        operating_characteristics([5], [0.0], n_trials=10, seed=1, alpha=1.5)
