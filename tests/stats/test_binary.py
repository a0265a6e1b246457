"""Exact and score methods for proportions, 2 × 2 tables and rates (``ildtrial.stats.binary``).

Reference values are published worked examples (Newcombe 1998a/b, Fisher's tea tasting)
or closed forms (Clopper–Pearson at x = 0 and x = n, Garwood at 0 events), checked to the
4 decimals in which they are published.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep

from ildtrial.stats.binary import (
    clopper_pearson,
    exact_poisson_rate,
    exposure_adjusted_incidence,
    fisher_exact_two_sided,
    newcombe_difference,
    wilson_score,
)

# --------------------------------------------------------------------------- Clopper–Pearson


@pytest.mark.parametrize(
    ("x", "n", "lower", "upper"),
    [(0, 10, 0.0, 0.3085), (5, 10, 0.1871, 0.8129), (10, 10, 0.6915, 1.0), (1, 4, 0.0063, 0.8059)],
)
def test_clopper_pearson_known_values(x: int, n: int, lower: float, upper: float) -> None:
    ci = clopper_pearson(x, n)
    assert ci.estimate == x / n
    assert ci.lower == pytest.approx(lower, abs=5e-5)
    assert ci.upper == pytest.approx(upper, abs=5e-5)


def test_clopper_pearson_edges_are_closed_forms() -> None:
    # x = 0: upper = 1 − (α/2)^(1/n); x = n: lower = (α/2)^(1/n)
    assert clopper_pearson(0, 10).lower == 0.0
    assert clopper_pearson(0, 10).upper == pytest.approx(1 - 0.025 ** (1 / 10), rel=1e-12)
    assert clopper_pearson(10, 10).upper == 1.0
    assert clopper_pearson(10, 10).lower == pytest.approx(0.025 ** (1 / 10), rel=1e-12)


@pytest.mark.parametrize(("x", "n"), [(1, 10), (3, 7), (6, 20), (19, 20)])
def test_clopper_pearson_limits_are_binomial_tail_inversions(x: int, n: int) -> None:
    ci = clopper_pearson(x, n, level=0.90)
    assert stats.binom.sf(x - 1, n, ci.lower) == pytest.approx(0.05, rel=1e-8)  # P(X ≥ x)
    assert stats.binom.cdf(x, n, ci.upper) == pytest.approx(0.05, rel=1e-8)  # P(X ≤ x)


@pytest.mark.parametrize(
    ("x", "n", "level"),
    [(-1, 10, 0.95), (11, 10, 0.95), (1, 0, 0.95), (1, 10, 1.0), (1.5, 10, 0.95)],
)
def test_clopper_pearson_rejects_bad_input(x: float, n: int, level: float) -> None:
    with pytest.raises(ValueError):
        clopper_pearson(x, n, level)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- Wilson and Newcombe


@pytest.mark.parametrize(
    ("x", "n", "lower", "upper"),
    # Newcombe 1998a (Stat Med 17:857), Table I, method 3 (score, no continuity correction)
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_score_published_examples(x: int, n: int, lower: float, upper: float) -> None:
    ci = wilson_score(x, n)
    assert ci.lower == pytest.approx(lower, abs=5e-5)
    assert ci.upper == pytest.approx(upper, abs=5e-5)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "lower", "upper"),
    # Newcombe 1998b (Stat Med 17:873), Table II, method 10 (hybrid score, no correction)
    [
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (6, 7, 2, 7, 0.0582, 0.8062),
        (5, 56, 0, 29, -0.0381, 0.1926),
        (0, 10, 0, 20, -0.1611, 0.2775),
        (10, 10, 0, 20, 0.6791, 1.0000),
    ],
)
def test_newcombe_table_ii_examples(
    x1: int, n1: int, x2: int, n2: int, lower: float, upper: float
) -> None:
    ci = newcombe_difference(x1, n1, x2, n2)
    assert ci.estimate == pytest.approx(x1 / n1 - x2 / n2, abs=1e-15)
    assert ci.lower == pytest.approx(lower, abs=5e-5)
    assert ci.upper == pytest.approx(upper, abs=5e-5)


def test_newcombe_agrees_with_statsmodels_on_random_tables() -> None:
    rng = np.random.default_rng(20240611)
    for _ in range(200):
        n1, n2 = (int(v) for v in rng.integers(1, 40, size=2))
        x1, x2 = int(rng.integers(0, n1 + 1)), int(rng.integers(0, n2 + 1))
        level = float(rng.choice([0.9, 0.95, 0.99]))
        ours = newcombe_difference(x1, n1, x2, n2, level)
        low, upp = confint_proportions_2indep(
            x1, n1, x2, n2, method="newcomb", compare="diff", alpha=1 - level
        )
        assert (ours.lower, ours.upper) == pytest.approx((float(low), float(upp)), abs=1e-10)


def test_newcombe_is_antisymmetric_and_bounded() -> None:
    a = newcombe_difference(9, 10, 3, 10)
    b = newcombe_difference(3, 10, 9, 10)
    assert (b.lower, b.upper) == pytest.approx((-a.upper, -a.lower), abs=1e-12)
    full = newcombe_difference(10, 10, 0, 10)
    assert full.upper == 1.0 and -1.0 <= full.lower <= 1.0


# --------------------------------------------------------------------------- Fisher


def test_fisher_tea_tasting() -> None:
    # Fisher (1935): 4 cups of each kind, 3 of 4 identified correctly. Margins 4/4/4/4:
    # P(a) = C(4,a)C(4,4−a)/70 = (1, 16, 36, 16, 1)/70; tables no more probable than a = 3:
    # a ∈ {0, 1, 3, 4} → p = 34/70.
    res = fisher_exact_two_sided(3, 1, 1, 3)
    assert res.p_value == pytest.approx(34 / 70, rel=1e-12)
    assert round(res.p_value, 4) == 0.4857
    assert res.sample_odds_ratio == 9.0
    assert res.conditional_odds_ratio == pytest.approx(6.408309, rel=1e-4)  # R fisher.test
    assert res.or_lower == pytest.approx(0.2117329, rel=1e-4)  # R fisher.test
    assert res.or_lower < res.conditional_odds_ratio < res.or_upper


def test_fisher_matches_scipy_on_random_tables() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        a, b, c, d = (int(v) for v in rng.integers(0, 12, size=4))
        if min(a + b, c + d, a + c, b + d) == 0:
            continue
        ours = fisher_exact_two_sided(a, b, c, d)
        ref = stats.fisher_exact([[a, b], [c, d]])
        assert ours.p_value == pytest.approx(min(1.0, float(ref.pvalue)), rel=1e-12)


def test_fisher_empty_margin_gives_p_one_and_no_odds_ratio() -> None:
    res = fisher_exact_two_sided(0, 10, 0, 10)
    assert res.p_value == 1.0
    assert math.isnan(res.conditional_odds_ratio)
    assert res.to_dict()["conditional_odds_ratio"] is None


def test_fisher_rejects_negative_cells() -> None:
    with pytest.raises(ValueError):
        fisher_exact_two_sided(1, -1, 2, 3)


# --------------------------------------------------------------------------- Poisson rates


def test_exact_poisson_zero_events() -> None:
    r = exact_poisson_rate(0, 10.0)
    assert r.rate == 0.0 and r.lower == 0.0
    assert r.upper == pytest.approx(0.3689, abs=5e-5)
    assert r.upper == pytest.approx(-math.log(0.025) / 10, rel=1e-10)  # P(X = 0) = 0.025


def test_exact_poisson_five_events() -> None:
    r = exact_poisson_rate(5, 10.0)
    assert r.rate == 0.5
    assert r.lower == pytest.approx(0.1623, abs=5e-5)
    assert r.upper == pytest.approx(1.1668, abs=5e-5)
    # Garwood limits are Poisson tail inversions
    assert stats.poisson.sf(4, r.lower * 10) == pytest.approx(0.025, rel=1e-8)
    assert stats.poisson.cdf(5, r.upper * 10) == pytest.approx(0.025, rel=1e-8)


def test_exact_poisson_per_scaling_and_errors() -> None:
    r = exact_poisson_rate(5, 10.0, per=100)
    assert (r.rate, r.lower, r.upper) == pytest.approx((50.0, 16.2349, 116.6833), abs=5e-4)
    with pytest.raises(ValueError):
        exact_poisson_rate(1, 0.0)
    with pytest.raises(ValueError):
        exact_poisson_rate(-1, 1.0)


def test_exposure_adjusted_incidence_censors_at_first_event() -> None:
    # days at risk: 365 (no event) + 100 (event on day 100) + 200 (no event) = 665
    res = exposure_adjusted_incidence([None, 100, math.nan], [365, 365, 200])
    assert res.n_participants == 3
    assert res.n_with_event == 1
    assert res.participant_years == pytest.approx(665 / 365.25, rel=1e-12)
    ref = exact_poisson_rate(1, 665 / 365.25)
    assert (res.rate, res.lower, res.upper) == pytest.approx((ref.rate, ref.lower, ref.upper))


def test_exposure_adjusted_incidence_in_years() -> None:
    res = exposure_adjusted_incidence([0.5, None], [1.0, 1.0], units_per_year=1.0, per=100)
    assert res.participant_years == 1.5
    assert res.rate == pytest.approx(100 / 1.5)


@pytest.mark.parametrize(
    ("times", "follow"),
    [
        ([400.0], [365.0]),
        ([None], [-1.0]),
        ([None, None], [1.0]),
        ([None], [0.0]),
        ([-2.0], [10.0]),
    ],
)
def test_exposure_adjusted_incidence_rejects_inconsistent_input(
    times: list[float | None], follow: list[float]
) -> None:
    with pytest.raises(ValueError):
        exposure_adjusted_incidence(times, follow)
