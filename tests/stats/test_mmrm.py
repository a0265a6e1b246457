"""Validation of the MMRM engine (``ildtrial.stats.mmrm``) and the ``ildtrial mmrm`` command.

1. The R ``mmrm`` benchmark (``/work/shared/reference/fev_data.csv``): every published
   number of ``/work/shared/domain/statistics.md`` (SAS PROC MIXED / R mmrm) is checked.
2. Closed-form cases on synthetic data: with complete data and a visit-saturated design
   (every term crossed with visit), GLS equals OLS per visit for any Σ, the REML Σ̂ is the
   residual SSCP / (n − q), the ML Σ̂ is SSCP / n, the Satterthwaite df are exactly n − q,
   and both log-likelihoods have closed forms.
3. Degenerate data give a clear error, never garbage.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ildtrial.cli import main
from ildtrial.stats.design import DesignError, build_model_data
from ildtrial.stats.mmrm import (
    MMRMConvergenceError,
    MMRMConvergenceWarning,
    MMRMError,
    MMRMResult,
    _Likelihood,
    _make_blocks,
    fit_mmrm,
    fit_mmrm_arrays,
)

FEV_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "fev_data.csv"
FEV_REFERENCE = {"ARMCD": "PBO", "RACE": "Asian", "SEX": "Male", "AVISIT": "VIS1"}
FEV_MODEL = {
    "response": "FEV1",
    "subject": "USUBJID",
    "visit": "AVISIT",
    "group": "ARMCD",
    "covariates": ["RACE", "SEX"],
    "reference": FEV_REFERENCE,
}

# --- published results (statistics.md: SAS PROC MIXED / R mmrm) -----------------------
PUBLISHED_M2LL = 3386.45  # −2 REML log-likelihood, tolerance 0.01
PUBLISHED_AIC = 3406.4  # given to 1 decimal
PUBLISHED_BIC = 3439.3  # given to 1 decimal
PUBLISHED_ESTIMATES = {
    "(Intercept)": 30.77748,
    "RACE[Black or African American]": 1.53050,
    "RACE[White]": 5.64357,
    "SEX[Female]": 0.32606,
    "ARMCD[TRT]": 3.77423,
    "AVISIT[VIS2]": 4.83959,
    "AVISIT[VIS3]": 10.34211,
    "AVISIT[VIS4]": 15.05390,
    "ARMCD[TRT]:AVISIT[VIS2]": -0.04193,
    "ARMCD[TRT]:AVISIT[VIS3]": -0.69369,
    "ARMCD[TRT]:AVISIT[VIS4]": 0.62423,
}
PUBLISHED_SE = {
    "(Intercept)": 0.88656,
    "RACE[Black or African American]": 0.62448,
    "RACE[White]": 0.66561,
    "SEX[Female]": 0.53195,
    "ARMCD[TRT]": 1.07415,
    "ARMCD[TRT]:AVISIT[VIS4]": 1.85085,
}
PUBLISHED_DF_TRT_VIS4 = 129.72
DF_TOLERANCE = 0.05  # we obtain 129.709 (|Δ| ≈ 0.011)
PUBLISHED_SIGMA_DIAGONAL = [40.5537, 26.5715, 14.8979, 95.5568]
PUBLISHED_SIGMA_VIS1_VIS2 = 14.3960
PUBLISHED_LSMEANS_VIS4 = {"TRT": (52.7841, 1.1877), "PBO": (48.3855, 1.1886)}
PUBLISHED_DIFF_VIS4 = (4.3985, 1.6805, 0.0099)  # estimate, SE, p (p to 4 decimals)

# The published estimates come from a fit stopped at the optimiser's tolerance: the REML
# surface is flat enough that ARMCD[TRT]:AVISIT[VIS2] moved from −0.04193 to −0.04209051
# between R mmrm runs (openpharma/mmrm, tests/testthat/_snaps/tmb-methods(.new).md, both
# with deviance 3386.45). Relative 1e-3 is meaningless for a coefficient near zero, so the
# check is rel 1e-3 OR abs 2e-4 (|Δ| = 1.6e-4 for that one term; all others pass rel 1e-3).
ESTIMATE_ABS_TOL = 2e-4
# The later R mmrm fit, whose optimum agrees with ours to ~1e-6 (our Newton decrement is
# < 1e-10, i.e. we are at the optimum, not at an optimiser tolerance).
MMRM_TIGHT_ESTIMATES = {
    "(Intercept)": 30.77740652,
    "RACE[Black or African American]": 1.53059491,
    "RACE[White]": 5.64356778,
    "SEX[Female]": 0.32602727,
    "ARMCD[TRT]": 3.77441450,
    "AVISIT[VIS2]": 4.83960392,
    "AVISIT[VIS3]": 10.34216724,
    "AVISIT[VIS4]": 15.05378619,
    "ARMCD[TRT]:AVISIT[VIS2]": -0.04209051,
    "ARMCD[TRT]:AVISIT[VIS3]": -0.69380739,
    "ARMCD[TRT]:AVISIT[VIS4]": 0.62412199,
}

needs_fev = pytest.mark.skipif(
    not FEV_PATH.exists(),
    reason=f"reference data {FEV_PATH} is absent (../shared not beside the repo)",
)


@pytest.fixture(scope="module")
def fev() -> pd.DataFrame:
    if not FEV_PATH.exists():
        pytest.skip(f"reference data {FEV_PATH} is absent (../shared not beside the repo)")
    return pd.read_csv(FEV_PATH)


@pytest.fixture(scope="module")
def fev_fit(fev: pd.DataFrame) -> MMRMResult:
    return fit_mmrm(fev, **FEV_MODEL)


def _coef(result: MMRMResult, name: str) -> tuple[float, float]:
    j = result.coef_names.index(name)
    return float(result.beta[j]), math.sqrt(result.beta_cov[j, j])


# --------------------------------------------------------------------------- benchmark


@needs_fev
class TestFevBenchmark:
    def test_data_used(self, fev_fit: MMRMResult) -> None:
        assert fev_fit.converged
        assert fev_fit.n_observations == 537
        assert fev_fit.n_subjects == 197
        assert fev_fit.n_dropped == 800 - 537
        assert fev_fit.coef_names == tuple(PUBLISHED_ESTIMATES)

    def test_minus_2_reml_log_likelihood(self, fev_fit: MMRMResult) -> None:
        assert fev_fit.minus_2_log_likelihood == pytest.approx(PUBLISHED_M2LL, abs=0.01)

    def test_aic_bic(self, fev_fit: MMRMResult) -> None:
        assert fev_fit.n_covariance_parameters == 10
        assert fev_fit.aic == pytest.approx(PUBLISHED_AIC, abs=0.05)
        assert fev_fit.bic == pytest.approx(PUBLISHED_BIC, abs=0.05)
        assert fev_fit.aic == pytest.approx(fev_fit.minus_2_log_likelihood + 20.0)
        assert fev_fit.bic == pytest.approx(fev_fit.minus_2_log_likelihood + 10.0 * math.log(197))

    @pytest.mark.parametrize("name", list(PUBLISHED_ESTIMATES))
    def test_estimates(self, fev_fit: MMRMResult, name: str) -> None:
        estimate, _ = _coef(fev_fit, name)
        assert estimate == pytest.approx(PUBLISHED_ESTIMATES[name], rel=1e-3, abs=ESTIMATE_ABS_TOL)

    def test_estimates_relative_1e3_except_near_zero_term(self, fev_fit: MMRMResult) -> None:
        off = [
            name
            for name, value in PUBLISHED_ESTIMATES.items()
            if _coef(fev_fit, name)[0] != pytest.approx(value, rel=1e-3)
        ]
        assert off == ["ARMCD[TRT]:AVISIT[VIS2]"]

    @pytest.mark.parametrize("name", list(MMRM_TIGHT_ESTIMATES))
    def test_estimates_match_converged_r_mmrm(self, fev_fit: MMRMResult, name: str) -> None:
        assert _coef(fev_fit, name)[0] == pytest.approx(MMRM_TIGHT_ESTIMATES[name], abs=5e-6)

    @pytest.mark.parametrize("name", list(PUBLISHED_SE))
    def test_standard_errors(self, fev_fit: MMRMResult, name: str) -> None:
        _, se = _coef(fev_fit, name)
        assert se == pytest.approx(PUBLISHED_SE[name], rel=1e-3)

    def test_satterthwaite_df_trt_vis4(self, fev_fit: MMRMResult) -> None:
        coef = {e.label: e for e in fev_fit.coefficients()}["ARMCD[TRT]:AVISIT[VIS4]"]
        assert coef.df == pytest.approx(PUBLISHED_DF_TRT_VIS4, abs=DF_TOLERANCE)
        assert coef.se == pytest.approx(1.85085, rel=1e-3)

    def test_covariance(self, fev_fit: MMRMResult) -> None:
        sigma = fev_fit.covariance_frame()
        assert list(sigma.index) == ["VIS1", "VIS2", "VIS3", "VIS4"]
        assert np.diag(sigma.to_numpy()) == pytest.approx(PUBLISHED_SIGMA_DIAGONAL, rel=1e-4)
        assert sigma.loc["VIS1", "VIS2"] == pytest.approx(PUBLISHED_SIGMA_VIS1_VIS2, rel=1e-4)
        assert np.allclose(sigma.to_numpy(), sigma.to_numpy().T)

    def test_lsmeans_vis4(self, fev_fit: MMRMResult) -> None:
        lsm = fev_fit.lsmeans()["VIS4"]
        for group, (estimate, se) in PUBLISHED_LSMEANS_VIS4.items():
            assert lsm[group].estimate == pytest.approx(estimate, rel=1e-4)
            assert lsm[group].se == pytest.approx(se, rel=1e-3)

    def test_difference_vis4(self, fev_fit: MMRMResult) -> None:
        diff = fev_fit.group_differences()["VIS4"]["TRT - PBO"]
        estimate, se, p = PUBLISHED_DIFF_VIS4
        assert diff.estimate == pytest.approx(estimate, rel=1e-4)
        assert diff.se == pytest.approx(se, rel=1e-3)
        assert round(diff.p_value, 4) == p
        assert diff.ci_lower < diff.estimate < diff.ci_upper
        half = diff.ci_upper - diff.estimate
        assert diff.estimate - diff.ci_lower == pytest.approx(half)
        from scipy import stats

        assert half == pytest.approx(stats.t.ppf(0.975, diff.df) * diff.se)

    def test_difference_equals_contrast(self, fev_fit: MMRMResult) -> None:
        by_name = fev_fit.contrast({"ARMCD[TRT]": 1.0, "ARMCD[TRT]:AVISIT[VIS4]": 1.0})[0]
        diff = fev_fit.group_differences()["VIS4"]["TRT - PBO"]
        assert by_name.estimate == pytest.approx(diff.estimate)
        assert by_name.se == pytest.approx(diff.se)
        assert by_name.df == pytest.approx(diff.df)
        assert diff.estimate == pytest.approx(
            fev_fit.lsmeans()["VIS4"]["TRT"].estimate - fev_fit.lsmeans()["VIS4"]["PBO"].estimate
        )

    def test_f_test_single_row_is_t_squared(self, fev_fit: MMRMResult) -> None:
        row = np.zeros(len(fev_fit.coef_names))
        row[-1] = 1.0
        f = fev_fit.f_test([row])
        t = fev_fit.contrast(row)[0]
        assert f.f_value == pytest.approx(t.t_value**2)
        assert f.den_df == pytest.approx(t.df)
        assert f.p_value == pytest.approx(t.p_value)
        # Joint test of the interaction (3 numerator df).
        L = np.zeros((3, len(fev_fit.coef_names)))
        L[:, -3:] = np.eye(3)
        joint = fev_fit.f_test(L)
        assert joint.num_df == 3
        assert 0.0 < joint.p_value < 1.0
        assert joint.den_df > 2.0

    def test_proportional_weights_shift_lsmeans_not_differences(self, fev_fit: MMRMResult) -> None:
        equal = fev_fit.lsmeans()["VIS4"]["TRT"].estimate
        prop = fev_fit.lsmeans(weights="proportional")["VIS4"]["TRT"].estimate
        assert abs(equal - prop) > 1e-3
        assert fev_fit.group_differences(weights="proportional")["VIS4"]["TRT - PBO"].estimate == (
            pytest.approx(fev_fit.group_differences()["VIS4"]["TRT - PBO"].estimate)
        )

    def test_summary_and_dict(self, fev_fit: MMRMResult) -> None:
        text = fev_fit.summary()
        for needle in [
            "-2 REML log-likelihood",
            "3386.4",
            "ARMCD[TRT]:AVISIT[VIS4]",
            "Satterthwaite",
            "VIS4",
        ]:
            assert needle in text
        d = json.loads(json.dumps(fev_fit.to_dict(), allow_nan=False))
        assert d["covariance"]["visits"] == ["VIS1", "VIS2", "VIS3", "VIS4"]
        assert d["visits"]["VIS4"]["lsmeans"]["TRT"]["estimate"] == pytest.approx(52.7841, rel=1e-4)
        assert d["visits"]["VIS4"]["differences"]["TRT - PBO"]["p_value"] == pytest.approx(
            0.0099, abs=5e-5
        )

    def test_nan_rows_equal_absent_rows(self, fev: pd.DataFrame, fev_fit: MMRMResult) -> None:
        observed = fev.dropna(subset=["FEV1"]).sample(frac=1.0, random_state=1)  # shuffled too
        again = fit_mmrm(observed, **FEV_MODEL)
        assert again.n_dropped == 0
        assert again.beta == pytest.approx(fev_fit.beta, abs=1e-5)
        assert again.minus_2_log_likelihood == pytest.approx(
            fev_fit.minus_2_log_likelihood, abs=1e-8
        )

    def test_ml_fit(self, fev: pd.DataFrame, fev_fit: MMRMResult) -> None:
        ml = fit_mmrm(fev, method="ml", **FEV_MODEL)
        assert ml.converged and ml.method == "ml"
        # ML variances are smaller (no correction for the 11 estimated fixed effects).
        assert np.all(np.diag(ml.covariance) < np.diag(fev_fit.covariance))
        assert ml.n_parameters == 10 + 11  # SAS counts θ and β for ML information criteria
        assert ml.aic == pytest.approx(ml.minus_2_log_likelihood + 2 * 21)

    def test_gradient_and_jacobian_are_exact(self, fev: pd.DataFrame) -> None:
        md = build_model_data(fev, **FEV_MODEL)
        theta = np.array([1.8, 1.6, 1.3, 2.2, 2.0, 0.5, 1.0, 1.2, -0.3, 0.4])
        for reml in (True, False):
            lik = _Likelihood(
                _make_blocks(md.y, md.X, md.subject_index, md.visit_index, 4),
                4,
                md.n_observations,
                md.X.shape[1],
                reml,
            )
            ev = lik.evaluate(theta)
            h = 1e-6
            steps = np.eye(theta.size) * h
            fd = np.array(
                [
                    (lik.evaluate(theta + e).value - lik.evaluate(theta - e).value) / (2 * h)
                    for e in steps
                ]
            )
            assert ev.gradient == pytest.approx(fd, rel=1e-6, abs=1e-6)
            jac = lik.beta_cov_jacobian(theta, ev)
            fd_jac = np.array(
                [
                    (lik.evaluate(theta + e).beta_cov - lik.evaluate(theta - e).beta_cov) / (2 * h)
                    for e in steps
                ]
            )
            assert np.max(np.abs(jac - fd_jac)) < 1e-6 * np.max(np.abs(jac))


# --------------------------------------------------------------------------- synthetic


def _simulate(
    n: int = 40, t: int = 3, missing: float = 0.0, seed: int = 7, sigma: np.ndarray | None = None
) -> pd.DataFrame:
    """Change-from-baseline data: arm × visit + baseline × visit, correlated visits."""
    rng = np.random.default_rng(seed)
    if sigma is None:
        a = rng.normal(size=(t, t))
        sigma = a @ a.T + 2.0 * np.eye(t)
    rows = []
    for i in range(n):
        arm = "MSC" if i % 2 else "PBO"
        base = rng.normal(70.0, 8.0)
        err = rng.multivariate_normal(np.zeros(t), sigma)
        for v in range(t):
            y = 0.1 * base - (1.0 + v) * (0.5 if arm == "MSC" else 2.0) + err[v]
            if rng.random() < missing:
                y = np.nan
            rows.append(
                {
                    "USUBJID": f"P{i:03d}",
                    "AVISIT": f"WEEK{13 * (v + 1)}",
                    "ARM": arm,
                    "BASE": base,
                    "CHG": y,
                }
            )
    return pd.DataFrame(rows)


SYN_MODEL = {
    "response": "CHG",
    "subject": "USUBJID",
    "visit": "AVISIT",
    "group": "ARM",
    "visit_interactions": ["BASE"],
    "reference": {"ARM": "PBO"},
}


SAT_N, SAT_T, SAT_Q = 40, 3, 3  # subjects, visits, per-visit regressors (intercept, arm, baseline)


@pytest.fixture(scope="module")
def saturated_data() -> pd.DataFrame:
    return _simulate(SAT_N, SAT_T)


@pytest.fixture(scope="module")
def per_visit_ols(saturated_data: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """OLS of the response on (1, arm, baseline) separately at each visit."""
    out = {}
    for visit, d in saturated_data.sort_values("USUBJID").groupby("AVISIT"):
        X0 = np.column_stack(
            [np.ones(len(d)), (d["ARM"] == "MSC").to_numpy(float), d["BASE"].to_numpy()]
        )
        y = d["CHG"].to_numpy()
        coef, *_ = np.linalg.lstsq(X0, y, rcond=None)
        out[str(visit)] = {"coef": coef, "resid": y - X0 @ coef, "X0": X0}
    return out


class TestSaturatedCompleteData:
    """Complete data, every term crossed with visit: closed forms (SUR with identical regressors)."""

    n, t, q = SAT_N, SAT_T, SAT_Q

    def test_fixed_effects_equal_ols_per_visit(self, saturated_data, per_visit_ols) -> None:
        fit = fit_mmrm(saturated_data, **SYN_MODEL)
        assert fit.visits == ("WEEK13", "WEEK26", "WEEK39")  # natural sort
        diffs = fit.group_differences()
        lsm = fit.lsmeans()
        base_mean = saturated_data["BASE"].mean()
        for visit, ols in per_visit_ols.items():
            coef = ols["coef"]
            resid = ols["resid"]
            X0 = ols["X0"]
            s2 = resid @ resid / (self.n - self.q)
            se_arm = math.sqrt(s2 * np.linalg.inv(X0.T @ X0)[1, 1])
            d = diffs[visit]["MSC - PBO"]
            assert d.estimate == pytest.approx(coef[1], abs=1e-8)
            assert d.se == pytest.approx(se_arm, rel=1e-6)
            # Satterthwaite is exact here: the per-visit t has n − q df.
            assert d.df == pytest.approx(self.n - self.q, rel=1e-4)
            assert lsm[visit]["PBO"].estimate == pytest.approx(
                coef[0] + coef[2] * base_mean, abs=1e-8
            )

    def test_reml_and_ml_covariance_closed_form(self, saturated_data, per_visit_ols) -> None:
        R = np.column_stack([per_visit_ols[v]["resid"] for v in ("WEEK13", "WEEK26", "WEEK39")])
        sscp = R.T @ R
        reml = fit_mmrm(saturated_data, **SYN_MODEL)
        ml = fit_mmrm(saturated_data, method="ml", **SYN_MODEL)
        assert reml.covariance == pytest.approx(sscp / (self.n - self.q), rel=1e-6)
        assert ml.covariance == pytest.approx(sscp / self.n, rel=1e-6)
        # ML vs REML: same β (GLS = OLS whatever Σ), Σ̂_ML = Σ̂_REML (n − q)/n.
        assert ml.beta == pytest.approx(reml.beta, abs=1e-8)
        assert ml.covariance == pytest.approx(
            reml.covariance * (self.n - self.q) / self.n, rel=1e-6
        )

    def test_log_likelihood_closed_forms(self, saturated_data, per_visit_ols) -> None:
        n, t, q = self.n, self.t, self.q
        X0 = per_visit_ols["WEEK13"]["X0"]
        reml = fit_mmrm(saturated_data, **SYN_MODEL)
        ml = fit_mmrm(saturated_data, method="ml", **SYN_MODEL)
        log2pi = math.log(2 * math.pi)
        _, logdet_ml = np.linalg.slogdet(ml.covariance)
        _, logdet_reml = np.linalg.slogdet(reml.covariance)
        # −2ℓ_ML = n [t log 2π + log|Σ̂| + t]
        assert ml.minus_2_log_likelihood == pytest.approx(
            n * (t * log2pi + logdet_ml + t), abs=1e-6
        )
        # −2ℓ_REML = (n − q)[t log 2π + log|Σ̂| + t] + t log|X0ᵀX0|  (Σ̂ = SSCP/(n − q))
        _, logdet_x = np.linalg.slogdet(X0.T @ X0)
        expected = (n - q) * (t * log2pi + logdet_reml + t) + t * logdet_x
        assert reml.minus_2_log_likelihood == pytest.approx(expected, abs=1e-6)

    def test_diagonal_true_covariance(self) -> None:
        # Independent visits (diagonal Σ): the unstructured fit recovers a near-diagonal Σ.
        data = _simulate(200, 3, sigma=np.diag([4.0, 9.0, 16.0]), seed=3)
        fit = fit_mmrm(data, **SYN_MODEL)
        off = fit.correlation[np.triu_indices(3, 1)]
        assert np.all(np.abs(off) < 0.2)
        assert np.diag(fit.covariance) == pytest.approx([4.0, 9.0, 16.0], rel=0.25)


class TestMissingData:
    def test_incomplete_subjects_contribute(self) -> None:
        data = _simulate(60, 4, missing=0.2, seed=11)
        fit = fit_mmrm(data, **SYN_MODEL)
        assert fit.converged
        n_rows = int(data["CHG"].notna().sum())
        assert fit.n_observations == n_rows
        assert fit.n_dropped == len(data) - n_rows
        # Subjects with some missing visits still count (their observed rows are used).
        assert fit.n_subjects == data.loc[data["CHG"].notna(), "USUBJID"].nunique()

    def test_subject_with_no_response_is_dropped(self) -> None:
        data = _simulate(30, 3, seed=5)
        data.loc[data["USUBJID"] == "P000", "CHG"] = np.nan
        fit = fit_mmrm(data, **SYN_MODEL)
        assert fit.n_subjects == 29
        assert fit.n_dropped == 3

    def test_missing_covariate_rows_are_dropped(self) -> None:
        data = _simulate(30, 3, seed=5)
        data.loc[0, "BASE"] = np.nan
        fit = fit_mmrm(data, **SYN_MODEL)
        assert fit.n_observations == len(data) - 1


class TestDegenerate:
    def test_one_subject(self) -> None:
        y = np.array([1.0, 2.0, 3.0])
        X = np.ones((3, 1))
        with pytest.raises(MMRMError, match="at least 2 subjects"):
            fit_mmrm_arrays(y, X, np.zeros(3, int), np.arange(3))

    def test_single_group(self) -> None:
        data = _simulate(20, 3)
        data["ARM"] = "PBO"
        with pytest.raises(DesignError, match="at least two levels"):
            fit_mmrm(data, **SYN_MODEL)

    def test_visit_without_data(self) -> None:
        data = _simulate(20, 3)
        data.loc[data["AVISIT"] == "WEEK26", "CHG"] = np.nan
        with pytest.raises(DesignError, match=r"visit column 'AVISIT'.*WEEK26"):
            fit_mmrm(data, **SYN_MODEL)

    def test_visit_without_data_arrays(self) -> None:
        rng = np.random.default_rng(0)
        n = 10
        subject = np.repeat(np.arange(n), 2)
        visit = np.tile([0, 2], n)
        with pytest.raises(MMRMError, match="no observations"):
            fit_mmrm_arrays(rng.normal(size=2 * n), np.ones((2 * n, 1)), subject, visit, n_visits=3)

    def test_group_without_observations(self) -> None:
        data = _simulate(20, 3)
        data.loc[data["ARM"] == "MSC", "CHG"] = np.nan
        with pytest.raises(DesignError, match=r"group column 'ARM'.*MSC"):
            fit_mmrm(data, **SYN_MODEL)

    def test_group_missing_at_one_visit_is_aliased(self) -> None:
        data = _simulate(20, 3)
        data.loc[(data["ARM"] == "MSC") & (data["AVISIT"] == "WEEK39"), "CHG"] = np.nan
        with pytest.raises(MMRMError, match=r"aliased.*ARM\[MSC\]:AVISIT\[WEEK39\]"):
            fit_mmrm(data, **SYN_MODEL)

    def test_visits_never_observed_together(self) -> None:
        data = _simulate(30, 2)
        first = data["USUBJID"].isin([f"P{i:03d}" for i in range(15)])
        data.loc[first & (data["AVISIT"] == "WEEK26"), "CHG"] = np.nan
        data.loc[~first & (data["AVISIT"] == "WEEK13"), "CHG"] = np.nan
        with pytest.raises(MMRMError, match="no subject has both visits"):
            fit_mmrm(data, response="CHG", subject="USUBJID", visit="AVISIT", group="ARM")

    def _singular(self) -> pd.DataFrame:
        # Visit 2 is visit 1 plus a constant: the residual covariance is exactly singular.
        data = _simulate(30, 3, seed=2)
        w13 = data.loc[data["AVISIT"] == "WEEK13", "CHG"].to_numpy()
        data.loc[data["AVISIT"] == "WEEK26", "CHG"] = w13 + 1.0
        return data

    def test_singular_covariance_raises(self) -> None:
        with pytest.raises(MMRMConvergenceError, match="did not converge"):
            fit_mmrm(
                self._singular(), response="CHG", subject="USUBJID", visit="AVISIT", group="ARM"
            )

    def test_singular_covariance_non_strict_warns_and_flags(self) -> None:
        with pytest.warns(MMRMConvergenceWarning):
            fit = fit_mmrm(
                self._singular(),
                response="CHG",
                subject="USUBJID",
                visit="AVISIT",
                group="ARM",
                strict=False,
            )
        assert fit.converged is False
        assert "Convergence: NO" in fit.summary()
        assert fit.to_dict()["converged"] is False

    def test_iteration_limit(self) -> None:
        data = _simulate(40, 3, seed=4)
        with pytest.raises(MMRMConvergenceError, match="did not converge"):
            fit_mmrm(data, maxiter=1, **SYN_MODEL)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert fit_mmrm(data, **SYN_MODEL).converged

    def test_too_few_observations(self) -> None:
        data = _simulate(3, 3, seed=4)
        with pytest.raises(MMRMError, match="too few observations"):
            fit_mmrm(data, **SYN_MODEL)


class TestDesignErrors:
    def test_missing_column(self) -> None:
        with pytest.raises(DesignError, match="covariate column 'RACE' is not in the data"):
            fit_mmrm(
                _simulate(10),
                response="CHG",
                subject="USUBJID",
                visit="AVISIT",
                group="ARM",
                covariates="RACE",
            )

    def test_unknown_reference_level(self) -> None:
        with pytest.raises(DesignError, match="unknown reference level 'Placebo' for column 'ARM'"):
            fit_mmrm(
                _simulate(10),
                response="CHG",
                subject="USUBJID",
                visit="AVISIT",
                group="ARM",
                reference={"ARM": "Placebo"},
            )

    def test_reference_for_numeric_column(self) -> None:
        with pytest.raises(DesignError, match="'BASE', which is not a categorical"):
            fit_mmrm(_simulate(10), **{**SYN_MODEL, "reference": {"BASE": "70"}})

    def test_duplicate_subject_visit(self) -> None:
        data = _simulate(10)
        data = pd.concat([data, data.iloc[[0]]])
        with pytest.raises(DesignError, match="more than one row"):
            fit_mmrm(data, **SYN_MODEL)

    def test_non_numeric_response(self) -> None:
        data = _simulate(10).assign(CHG="x")
        with pytest.raises(DesignError, match="response column 'CHG' must be numeric"):
            fit_mmrm(data, **SYN_MODEL)

    def test_coefficient_names(self) -> None:
        fit = fit_mmrm(_simulate(30, 3), **SYN_MODEL)
        assert fit.coef_names == (
            "(Intercept)",
            "BASE",
            "ARM[MSC]",
            "AVISIT[WEEK26]",
            "AVISIT[WEEK39]",
            "ARM[MSC]:AVISIT[WEEK26]",
            "ARM[MSC]:AVISIT[WEEK39]",
            "BASE:AVISIT[WEEK26]",
            "BASE:AVISIT[WEEK39]",
        )


# --------------------------------------------------------------------------- CLI

FEV_ARGS = [
    "mmrm",
    str(FEV_PATH),
    "--response",
    "FEV1",
    "--subject",
    "USUBJID",
    "--visit",
    "AVISIT",
    "--group",
    "ARMCD",
    "--covariates",
    "RACE,SEX",
    "--reference",
    "ARMCD=PBO",
    "--reference",
    "RACE=Asian",
    "--reference",
    "SEX=Male",
    "--reference",
    "AVISIT=VIS1",
]


@needs_fev
class TestCli:
    def test_json_output(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(FEV_ARGS) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["minus_2_log_likelihood"] == pytest.approx(PUBLISHED_M2LL, abs=0.01)
        assert out["aic"] == pytest.approx(PUBLISHED_AIC, abs=0.05)
        assert out["bic"] == pytest.approx(PUBLISHED_BIC, abs=0.05)
        coef = out["coefficients"]["ARMCD[TRT]:AVISIT[VIS4]"]
        assert coef["estimate"] == pytest.approx(0.62423, rel=1e-3)
        assert coef["se"] == pytest.approx(1.85085, rel=1e-3)
        assert coef["df"] == pytest.approx(PUBLISHED_DF_TRT_VIS4, abs=DF_TOLERANCE)
        assert out["covariance"]["visits"] == ["VIS1", "VIS2", "VIS3", "VIS4"]
        assert out["covariance"]["matrix"][0][1] == pytest.approx(
            PUBLISHED_SIGMA_VIS1_VIS2, rel=1e-4
        )
        vis4 = out["visits"]["VIS4"]
        assert vis4["lsmeans"]["TRT"]["estimate"] == pytest.approx(52.7841, rel=1e-4)
        assert vis4["lsmeans"]["PBO"]["estimate"] == pytest.approx(48.3855, rel=1e-4)
        diff = vis4["differences"]["TRT - PBO"]
        assert diff["estimate"] == pytest.approx(4.3985, rel=1e-4)
        assert diff["se"] == pytest.approx(1.6805, rel=1e-3)
        assert diff["p_value"] == pytest.approx(0.0099, abs=5e-5)
        assert set(diff) >= {"estimate", "se", "df", "ci_lower", "ci_upper", "p_value"}

    def test_ml_and_text(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main([*FEV_ARGS, "--method", "ml", "--text"]) == 0
        assert "-2 ML log-likelihood" in capsys.readouterr().out

    def test_missing_column(self, capsys: pytest.CaptureFixture[str]) -> None:
        args = [*FEV_ARGS]
        args[args.index("RACE,SEX")] = "RACE,SEXX"
        assert main(args) == 2
        captured = capsys.readouterr()
        assert "SEXX" in captured.err and captured.out == ""

    def test_unknown_reference_level(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main([*FEV_ARGS, "--reference", "RACE=Martian"]) == 2
        err = capsys.readouterr().err
        assert "Martian" in err and "'RACE'" in err

    def test_malformed_reference(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main([*FEV_ARGS, "--reference", "RACE"]) == 2
        assert "COLUMN=LEVEL" in capsys.readouterr().err


def test_cli_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.csv"
    args = [
        "mmrm",
        str(missing),
        "--response",
        "Y",
        "--subject",
        "S",
        "--visit",
        "V",
        "--group",
        "G",
    ]
    assert main(args) == 2
    assert "nope.csv" in capsys.readouterr().err


def test_cli_visit_interaction(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "chg.csv"
    _simulate(40, 3).to_csv(path, index=False)
    args = [
        "mmrm",
        str(path),
        "--response",
        "CHG",
        "--subject",
        "USUBJID",
        "--visit",
        "AVISIT",
        "--group",
        "ARM",
    ]
    assert main([*args, "--reference", "ARM=PBO", "--visit-interaction", "BASE"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "BASE:AVISIT[WEEK39]" in out["coefficients"]
    assert "MSC - PBO" in out["visits"]["WEEK39"]["differences"]


def test_cli_degenerate_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _simulate(20, 3)
    data.loc[(data["ARM"] == "MSC") & (data["AVISIT"] == "WEEK39"), "CHG"] = np.nan
    path = tmp_path / "bad.csv"
    data.to_csv(path, index=False)
    args = [
        "mmrm",
        str(path),
        "--response",
        "CHG",
        "--subject",
        "USUBJID",
        "--visit",
        "AVISIT",
        "--group",
        "ARM",
    ]
    assert main(args) == 1
    assert "aliased" in capsys.readouterr().err
