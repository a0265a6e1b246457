"""The batched MMRM (``ildtrial.stats.mmrm_batch``) against the validated single fit.

1. With missing data (monotone dropout and intermittent missed visits) every β, SE,
   Satterthwaite df and −2 log-likelihood of every trial equals ``fit_mmrm_arrays`` on the
   same design (REML and ML), and the treatment coefficient equals the LS-mean difference
   of ``fit_mmrm`` with R-style treatment contrasts.
2. Closed forms: complete data = per-visit OLS (df = n − q exactly); one visit with the
   arm only = the pooled two-sample t test.
3. Trials that cannot be fitted are flagged, never silently wrong; a trial's result does
   not depend on the other trials of the batch.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ildtrial.stats.mmrm import MMRMConvergenceWarning, fit_mmrm, fit_mmrm_arrays
from ildtrial.stats.mmrm_batch import fit_mmrm_batch

N_VISITS = 4
CHOL = np.array(
    [[1.0, 0, 0, 0], [0.8, 0.6, 0, 0], [0.7, 0.35, 0.5, 0], [0.6, 0.3, 0.25, 0.55]]
) * 150.0


def simulate(n_trials: int, seed: int, n_subjects: int = 20, missing: bool = True):
    """FVC-like changes (mL) with arm and baseline effects; NaN after dropout/missed visits."""
    rng = np.random.default_rng(seed)
    arm = np.zeros((n_trials, n_subjects))
    arm[:, n_subjects // 2 :] = 1.0
    base = rng.normal(2400.0, 500.0, (n_trials, n_subjects))
    noise = np.einsum("vw,bnw->bnv", CHOL, rng.standard_normal((n_trials, n_subjects, N_VISITS)))
    y = -0.02 * base[..., None] + arm[..., None] * np.arange(1, 5) * 40.0 - 50.0 * np.arange(1, 5) + noise
    if missing:
        drop = rng.integers(1, 12, (n_trials, n_subjects))  # last visit seen = drop - 1
        for v in range(N_VISITS):
            y[:, :, v] = np.where(drop <= v, np.nan, y[:, :, v])
        y[rng.random(y.shape) < 0.05] = np.nan
    return y, np.stack([arm, base], axis=-1)


def single_fit(y: np.ndarray, x: np.ndarray, method: str = "reml"):
    """``fit_mmrm_arrays`` on the cell-means design ``X_i = I_t ⊗ (1, x_i)ᵀ`` of one trial."""
    q = 1 + x.shape[1]
    rows, design, subj, visit = [], [], [], []
    for i in range(y.shape[0]):
        for v in range(y.shape[1]):
            if np.isfinite(y[i, v]):
                row = np.zeros(y.shape[1] * q)
                row[v * q : (v + 1) * q] = np.r_[1.0, x[i]]
                rows.append(y[i, v])
                design.append(row)
                subj.append(i)
                visit.append(v)
    return fit_mmrm_arrays(
        np.array(rows), np.array(design), np.array(subj), np.array(visit),
        n_visits=y.shape[1], method=method,  # type: ignore[arg-type]
    )


def long_frame(y: np.ndarray, x: np.ndarray) -> pd.DataFrame:
    n, t = y.shape
    frame = pd.DataFrame(
        {
            "USUBJID": np.repeat([f"S{i:02d}" for i in range(n)], t),
            "AVISIT": np.tile([f"W{13 * (v + 1)}" for v in range(t)], n),
            "ARM": np.repeat(np.where(x[:, 0] > 0, "MSC", "PBO"), t),
            "BASE": np.repeat(x[:, 1], t),
            "CHG": y.reshape(-1),
        }
    )
    return frame.dropna(subset=["CHG"])


@pytest.fixture(scope="module")
def batch_50():
    y, x = simulate(50, seed=11)
    return y, x, fit_mmrm_batch(y, x, covariate_names=["arm", "base"])


def test_every_trial_equals_the_single_fit(batch_50) -> None:
    y, x, res = batch_50
    assert res.converged.all(), set(res.message)
    assert np.isnan(y).sum() > 0.15 * y.size  # the comparison really involves missing data
    p = N_VISITS * 3
    for b in range(y.shape[0]):
        ref = single_fit(y[b], x[b])
        df_ref = np.array([ref.satterthwaite_df(np.eye(p)[m]) for m in range(p)])
        se_ref = np.sqrt(np.diag(ref.beta_cov))
        np.testing.assert_allclose(res.beta[b].reshape(-1), ref.beta, rtol=1e-4, atol=1e-6 * np.abs(ref.beta).max())
        np.testing.assert_allclose(res.se[b].reshape(-1), se_ref, rtol=1e-4)
        np.testing.assert_allclose(res.df[b].reshape(-1), df_ref, rtol=0, atol=1e-2)
        assert res.minus_2_log_likelihood[b] == pytest.approx(ref.minus_2_log_likelihood, rel=1e-6)
        np.testing.assert_allclose(res.covariance[b], ref.covariance, rtol=1e-4, atol=1e-6 * ref.covariance.max())


def test_treatment_coefficient_is_the_lsmean_difference_of_fit_mmrm(batch_50) -> None:
    """Treatment contrasts (R: ARM * AVISIT + BASE * AVISIT) span the same model."""
    y, x, res = batch_50
    for b in range(4):
        ref = fit_mmrm(
            long_frame(y[b], x[b]), response="CHG", subject="USUBJID", visit="AVISIT",
            group="ARM", covariates=["BASE"], visit_interactions=["BASE"],
            reference={"ARM": "PBO", "AVISIT": "W13"},
        )
        diffs = ref.group_differences()
        for v, label in enumerate(ref.visits):
            e = diffs[label]["MSC - PBO"]
            assert res.effect[b, v] == pytest.approx(e.estimate, rel=1e-4)
            assert res.effect_se[b, v] == pytest.approx(e.se, rel=1e-4)
            assert res.effect_df[b, v] == pytest.approx(e.df, abs=1e-2)
        # a unimodular reparametrisation leaves even the REML likelihood unchanged
        assert res.minus_2_log_likelihood[b] == pytest.approx(ref.minus_2_log_likelihood, rel=1e-6)
        test = res.test(visit=-1)
        e = diffs[ref.visits[-1]]["MSC - PBO"]
        assert test.p_value[b] == pytest.approx(e.p_value, rel=1e-3)
        assert test.ci_lower[b] == pytest.approx(e.ci_lower, rel=1e-4)


def test_ml_equals_the_single_fit() -> None:
    y, x = simulate(6, seed=5)
    res = fit_mmrm_batch(y, x, method="ml")
    assert res.converged.all()
    for b in range(6):
        ref = single_fit(y[b], x[b], method="ml")
        np.testing.assert_allclose(res.beta[b].reshape(-1), ref.beta, rtol=1e-4, atol=1e-6 * np.abs(ref.beta).max())
        np.testing.assert_allclose(res.se[b].reshape(-1), np.sqrt(np.diag(ref.beta_cov)), rtol=1e-4)
        m = 3 * N_VISITS - 2  # arm at the last visit
        assert res.df[b, -1, 1] == pytest.approx(ref.satterthwaite_df(np.eye(12)[m]), abs=1e-2)
        assert res.minus_2_log_likelihood[b] == pytest.approx(ref.minus_2_log_likelihood, rel=1e-6)


def test_complete_data_is_per_visit_ols() -> None:
    """Identical regressors at every visit: GLS = OLS per visit for any Σ (Zellner 1962);
    Σ̂_REML = residual SSCP/(n − q) and the Satterthwaite df are exactly n − q."""
    y, x = simulate(8, seed=3, missing=False)
    res = fit_mmrm_batch(y, x)
    assert res.converged.all()
    n, q = y.shape[1], 3
    for b in range(8):
        Z = np.column_stack([np.ones(n), x[b]])
        coef, *_ = np.linalg.lstsq(Z, y[b], rcond=None)  # (q, t)
        resid = y[b] - Z @ coef
        sigma = resid.T @ resid / (n - q)
        se = np.sqrt(np.outer(np.diag(np.linalg.inv(Z.T @ Z)), np.diag(sigma)))  # (q, t)
        np.testing.assert_allclose(res.beta[b], coef.T, rtol=1e-6, atol=1e-8 * np.abs(coef).max())
        np.testing.assert_allclose(res.se[b], se.T, rtol=1e-6)
        np.testing.assert_allclose(res.covariance[b], sigma, rtol=1e-6)
        np.testing.assert_allclose(res.df[b], n - q, rtol=1e-6)
    assert res.iterations.max() <= 2  # the starting value is the optimum


def test_one_visit_arm_only_is_the_two_sample_t_test() -> None:
    rng = np.random.default_rng(2)
    arm = np.tile(np.repeat([0.0, 1.0], 12), (30, 1))
    y = rng.standard_normal(arm.shape) + 0.8 * arm
    res = fit_mmrm_batch(y[..., None], arm[..., None], covariate_names=["arm"])
    test = res.test(visit=0)
    ref = stats.ttest_ind(y[:, 12:], y[:, :12], axis=1)
    np.testing.assert_allclose(test.t_value, ref.statistic, rtol=1e-8)
    np.testing.assert_allclose(test.p_value, ref.pvalue, rtol=1e-6)
    np.testing.assert_allclose(test.df, 22.0, rtol=1e-8)


def test_non_estimable_and_degenerate_trials_are_flagged() -> None:
    y, x = simulate(6, seed=8)
    y = y.copy()
    y[0, 10:, 3] = np.nan  # no MSC participant at the last visit: arm effect not estimable
    y[1, :, 1] = np.nan  # an empty visit
    y[2, 1:, :] = np.nan  # a single subject
    y[3] = np.nan  # nothing at all
    y[4, :, 3] = 2.0 * y[4, :, 2] + 5.0  # visit 4 an exact function of visit 3: Σ singular
    y[4, :, 3] = np.where(np.isnan(y[4, :, 2]), np.nan, y[4, :, 3])
    res = fit_mmrm_batch(y, x)
    assert not res.converged[:5].any()
    assert "not estimable" in res.message[0]
    assert "not estimable" in res.message[1]
    assert "fewer than 2 subjects" in res.message[2]
    assert res.message[3] == "no observations"
    assert "singular" in res.message[4]
    assert np.isnan(res.beta[:4]).all()
    assert np.isnan(res.test().p_value[:5]).all()  # flagged trials never yield a p-value
    # the healthy trial is unaffected by its neighbours
    assert res.converged[5]
    alone = fit_mmrm_batch(y[5:], x[5:])
    np.testing.assert_allclose(res.beta[5], alone.beta[0], rtol=1e-10)
    np.testing.assert_allclose(res.df[5], alone.df[0], rtol=1e-8)
    # the single fit refuses or flags the same data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MMRMConvergenceWarning)
        ref = fit_mmrm_arrays(
            *_long_arrays(y[4], x[4]), n_visits=N_VISITS, strict=False
        )
    assert not ref.converged


def _long_arrays(y: np.ndarray, x: np.ndarray):
    ref = []
    for i in range(y.shape[0]):
        for v in range(y.shape[1]):
            if np.isfinite(y[i, v]):
                row = np.zeros(3 * y.shape[1])
                row[3 * v : 3 * v + 3] = np.r_[1.0, x[i]]
                ref.append((y[i, v], row, i, v))
    return (
        np.array([r[0] for r in ref]), np.array([r[1] for r in ref]),
        np.array([r[2] for r in ref]), np.array([r[3] for r in ref]),
    )


def test_chunking_does_not_change_results(batch_50) -> None:
    y, x, res = batch_50
    small = fit_mmrm_batch(y, x, covariate_names=["arm", "base"], chunk_size=7)
    np.testing.assert_allclose(small.beta, res.beta, rtol=1e-9)
    np.testing.assert_allclose(small.df, res.df, rtol=1e-7)
    assert res.coef_names()[:3] == ["(Intercept):V1", "arm:V1", "base:V1"]


def test_input_errors() -> None:
    y, x = simulate(2, seed=1)
    with pytest.raises(ValueError, match="n_trials, n_subjects, n_visits"):
        fit_mmrm_batch(y[0], x)
    with pytest.raises(ValueError, match="X_subject must be"):
        fit_mmrm_batch(y, x[:, :5])
    with pytest.raises(ValueError, match="method"):
        fit_mmrm_batch(y, x, method="bayes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not one of the covariates"):
        fit_mmrm_batch(y, x, covariate_names=["arm", "base"], treatment="ARM")
