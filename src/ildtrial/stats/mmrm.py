"""Mixed model for repeated measures (MMRM) with an unstructured covariance.

Pure numpy/scipy; no Django. This is the efficacy model of the statistical analysis plan
(``/work/shared/domain/statistics.md``): change = arm × visit + baseline × visit,
unstructured within-subject covariance, REML, Satterthwaite degrees of freedom, least-
squares means per arm and visit. No Python package fits it (statsmodels ``MixedLM`` has
random effects, not an unstructured residual covariance), hence this module.

Model
-----
For subject *i* with observed visits ``v_i`` (a subset of the *t* visits; missing visits are
simply absent, i.e. missing at random)::

    y_i = X_i β + ε_i,     ε_i ~ N(0, Σ_i),     Σ_i = Σ[v_i, v_i]

Σ (t × t) is unstructured and parametrised, as in R ``mmrm``, by its Cholesky factor
``Σ = L Lᵀ`` with ``θ = (log L_11, …, log L_tt, L_21, L_31, L_32, …)``: unconstrained and
always positive definite.

Likelihood (Laird & Ware 1982; Harville 1977; SAS PROC MIXED documentation), with β
profiled out by generalised least squares ``β̂(θ) = (XᵀV⁻¹X)⁻¹ XᵀV⁻¹y`` and
``r = y − Xβ̂``::

    −2ℓ_ML(θ)   = Σ_i [log|Σ_i| + r_iᵀ Σ_i⁻¹ r_i] + n log 2π
    −2ℓ_REML(θ) = Σ_i [log|Σ_i| + r_iᵀ Σ_i⁻¹ r_i] + log|XᵀV⁻¹X| + (n − p) log 2π

Gradient (exact, analytic). With ``V_k = ∂V/∂θ_k`` (block diagonal, blocks
``Σ_{k}[v_i, v_i]``) and ``C = (XᵀV⁻¹X)⁻¹``, by the envelope theorem for β̂::

    ∂(−2ℓ_REML)/∂θ_k = tr(V⁻¹V_k) − rᵀV⁻¹V_kV⁻¹r − tr(C XᵀV⁻¹V_kV⁻¹X)

Every term is ``tr(Σ_k M)`` for a t × t matrix ``M = G − U − Q`` accumulated over
subjects (``G = Σ Σ_i⁻¹`` padded, ``U = Σ u_i u_iᵀ`` with ``u_i = Σ_i⁻¹ r_i``,
``Q = Σ W_i C W_iᵀ`` with ``W_i = Σ_i⁻¹ X_i``; Q is absent for ML). With
``dΣ = dL Lᵀ + L dLᵀ`` this gives ``∂/∂L = 2 M L`` (lower triangle), times ``L_jj`` for the
log-diagonal. Subjects are grouped by missingness pattern, so the work is a handful of
``einsum`` calls per pattern, not a loop over subjects.

Optimisation: L-BFGS-B on ``−ℓ`` with that gradient, then Newton polishing with the
Hessian obtained by central differences of the exact gradient, until the Newton decrement
``gᵀH⁻¹g`` is below 1e-10 and H is positive definite. Failure (no convergence, a singular
Σ, an indefinite Hessian) sets ``converged = False``; ``fit_mmrm`` then raises
:class:`MMRMConvergenceError` (default) or warns with :class:`MMRMConvergenceWarning`.

Inference (R ``mmrm`` / SAS ``DDFM=SATTERTHWAITE``)
-------------------------------------------------
``Var(β̂) = C = (XᵀV̂⁻¹X)⁻¹``. For a contrast ``lᵀβ``, the one-dimensional Satterthwaite
degrees of freedom are::

    ν = 2 (lᵀCl)² / (gᵀ A g),   g_k = lᵀ (∂C/∂θ_k) l,   ∂C/∂θ_k = C XᵀV⁻¹V_kV⁻¹X C

where ``A = H⁻¹`` and H is the Hessian of the REML (or ML) negative log-likelihood ``−ℓ``
in θ (R mmrm's "asymptotic" covariance of θ̂). At the optimum ``gᵀAg`` does not depend on
the parametrisation of Σ. Multi-row contrasts use the Fai & Cornelius (1996) F test.

Least-squares means follow emmeans: for each group × visit cell, numeric covariates at
their mean over the analysed rows and categorical covariates with equal weight per level.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import linalg, optimize, stats

from ildtrial.stats.design import (
    DesignError,
    DesignSpec,
    Factor,
    ModelData,
    aliased_columns,
    build_model_data,
)

__all__ = [
    "DesignError",
    "Estimate",
    "FTest",
    "MMRMConvergenceError",
    "MMRMConvergenceWarning",
    "MMRMError",
    "MMRMResult",
    "fit_mmrm",
    "fit_mmrm_arrays",
]

Method = Literal["reml", "ml"]
LOG_2PI = math.log(2.0 * math.pi)


class MMRMError(RuntimeError):
    """The model cannot be fitted to these data (degenerate or non-identifiable)."""


class MMRMConvergenceError(MMRMError):
    """The optimiser did not reach a proper optimum; the estimates must not be used."""


class MMRMConvergenceWarning(RuntimeWarning):
    """Emitted instead of :class:`MMRMConvergenceError` when ``strict=False``."""


# --------------------------------------------------------------------------- estimates


@dataclass(frozen=True)
class Estimate:
    """One linear combination ``lᵀβ`` with its t-based inference."""

    label: str
    estimate: float
    se: float
    df: float
    t_value: float
    p_value: float
    ci_lower: float
    ci_upper: float
    conf_level: float = 0.95

    def to_dict(self) -> dict[str, float | None]:
        """JSON-friendly dict (non-finite numbers become ``None``)."""
        return {
            "estimate": _json_float(self.estimate),
            "se": _json_float(self.se),
            "df": _json_float(self.df),
            "t_value": _json_float(self.t_value),
            "p_value": _json_float(self.p_value),
            "ci_lower": _json_float(self.ci_lower),
            "ci_upper": _json_float(self.ci_upper),
        }


@dataclass(frozen=True)
class FTest:
    """Multi-row contrast ``Lβ = 0``: F statistic with Fai–Cornelius Satterthwaite df."""

    f_value: float
    num_df: int
    den_df: float
    p_value: float


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- likelihood


@dataclass(frozen=True)
class _Block:
    """Subjects sharing one missingness pattern: visits ``visits`` are observed."""

    visits: np.ndarray  # (m,) visit indices, increasing
    y: np.ndarray  # (n_g, m)
    X: np.ndarray  # (n_g, m, p)
    y_flat: np.ndarray  # (n_g·m,)
    X_flat: np.ndarray  # (n_g·m, p)


@dataclass
class _Evaluation:
    value: float  # −ℓ (half the deviance)
    gradient: np.ndarray | None
    beta: np.ndarray
    beta_cov: np.ndarray
    sigma: np.ndarray
    sx: list[np.ndarray] = field(default_factory=list)  # Σ_g⁻¹ X_g per block


def _make_blocks(
    y: np.ndarray, X: np.ndarray, subject_index: np.ndarray, visit_index: np.ndarray, n_visits: int
) -> list[_Block]:
    """Group subjects by their set of observed visits (vectorised likelihood blocks)."""
    n_subjects = int(subject_index.max()) + 1
    table = np.full((n_subjects, n_visits), -1, dtype=int)
    table[subject_index, visit_index] = np.arange(y.shape[0])
    observed = table >= 0
    patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    blocks: list[_Block] = []
    for k, pattern in enumerate(patterns):
        subjects = np.flatnonzero(inverse == k)
        visits = np.flatnonzero(pattern)
        if visits.size == 0:
            continue
        rows = table[np.ix_(subjects, visits)]
        blocks.append(
            _Block(
                visits=visits,
                y=y[rows],
                X=X[rows],
                y_flat=y[rows].reshape(-1),
                X_flat=X[rows].reshape(-1, X.shape[1]),
            )
        )
    return blocks


class _Likelihood:
    """(RE)ML negative log-likelihood of the unstructured MMRM and its exact gradient."""

    def __init__(self, blocks: list[_Block], n_visits: int, n_obs: int, n_coef: int, reml: bool):
        self.blocks = blocks
        self.t = n_visits
        self.n_obs = n_obs
        self.p = n_coef
        self.reml = reml
        self.tril = np.tril_indices(n_visits, -1)
        self.n_theta = n_visits * (n_visits + 1) // 2
        self.n_evaluations = 0
        self.index = [np.ix_(b.visits, b.visits) for b in blocks]

    # θ ↔ L -----------------------------------------------------------------
    def chol(self, theta: np.ndarray) -> np.ndarray:
        L = np.zeros((self.t, self.t))
        L[np.diag_indices(self.t)] = np.exp(theta[: self.t])
        L[self.tril] = theta[self.t :]
        return L

    def theta_of(self, L: np.ndarray) -> np.ndarray:
        return np.concatenate([np.log(np.diag(L)), L[self.tril]])

    def sigma_derivatives(self, theta: np.ndarray) -> np.ndarray:
        """``∂Σ/∂θ_k`` for every k, shape (K, t, t); ``dΣ = dL Lᵀ + L dLᵀ``."""
        L = self.chol(theta)
        out = np.zeros((self.n_theta, self.t, self.t))
        entries = [(j, j) for j in range(self.t)] + list(zip(*self.tril, strict=True))
        for k, (a, b) in enumerate(entries):
            dL = np.zeros((self.t, self.t))
            dL[a, b] = L[a, a] if a == b else 1.0
            out[k] = dL @ L.T + L @ dL.T
        return out

    def _gradient_from_m(self, M: np.ndarray, L: np.ndarray) -> np.ndarray:
        dL = 2.0 * M @ L  # ∂(−2ℓ)/∂L for symmetric M, lower triangle used
        return np.concatenate([np.diag(dL) * np.diag(L), dL[self.tril]])

    # evaluation ------------------------------------------------------------
    def evaluate(self, theta: np.ndarray, gradient: bool = True) -> _Evaluation:
        """−ℓ at θ (β profiled by GLS), optionally with its exact gradient."""
        self.n_evaluations += 1
        t, p = self.t, self.p
        L = self.chol(theta)
        sigma = L @ L.T
        xtvx = np.zeros((p, p))
        xtvy = np.zeros(p)
        logdet = 0.0
        inverses: list[np.ndarray] = []
        sxs: list[np.ndarray] = []
        for block, ix in zip(self.blocks, self.index, strict=True):
            c = L if block.visits.size == t else np.linalg.cholesky(sigma[ix])
            logdet += block.y.shape[0] * 2.0 * float(np.sum(np.log(np.diag(c))))
            c_inv = np.linalg.inv(c)
            inv = c_inv.T @ c_inv  # Σ_g⁻¹
            sx = inv @ block.X  # (n_g, m, p): Σ_g⁻¹ X_i for every subject
            flat = sx.reshape(-1, p)
            xtvx += block.X_flat.T @ flat
            xtvy += flat.T @ block.y_flat
            inverses.append(inv)
            sxs.append(sx)
        xtvx = 0.5 * (xtvx + xtvx.T)
        chol_xtvx = np.linalg.cholesky(xtvx)
        chol_inv = np.linalg.inv(chol_xtvx)
        beta_cov = chol_inv.T @ chol_inv  # C = (XᵀV⁻¹X)⁻¹
        beta = beta_cov @ xtvy
        quad = 0.0
        M = np.zeros((t, t))
        for block, ix, inv, sx in zip(self.blocks, self.index, inverses, sxs, strict=True):
            r = block.y - (block.X_flat @ beta).reshape(block.y.shape)
            u = r @ inv  # rows are (Σ_g⁻¹ r_i)ᵀ; Σ_g⁻¹ is symmetric
            quad += float(np.sum(r * u))
            if gradient:
                m = block.y.shape[0] * inv - u.T @ u  # G − U contributions
                if self.reml:
                    m -= np.tensordot(sx @ beta_cov, sx, axes=([0, 2], [0, 2]))  # − Q
                M[ix] += m
        deviance = logdet + quad
        if self.reml:
            deviance += 2.0 * float(np.sum(np.log(np.diag(chol_xtvx)))) + (self.n_obs - p) * LOG_2PI
        else:
            deviance += self.n_obs * LOG_2PI
        grad = None
        if gradient:
            grad = 0.5 * self._gradient_from_m(0.5 * (M + M.T), L)
        return _Evaluation(0.5 * deviance, grad, beta, beta_cov, sigma, sxs)

    def value_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Objective for scipy: a failed factorisation is reported as +inf (step rejected)."""
        try:
            ev = self.evaluate(theta)
        except (np.linalg.LinAlgError, linalg.LinAlgError, FloatingPointError):
            return math.inf, np.zeros_like(theta)
        if (
            not math.isfinite(ev.value)
            or ev.gradient is None
            or not np.all(np.isfinite(ev.gradient))
        ):
            return math.inf, np.zeros_like(theta)
        return ev.value, ev.gradient

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        """Hessian of −ℓ by central differences of the exact gradient (error O(h²))."""
        K = theta.size
        H = np.empty((K, K))
        for k in range(K):
            h = 1e-5 * max(1.0, abs(theta[k]))
            up = theta.copy()
            dn = theta.copy()
            up[k] += h
            dn[k] -= h
            g_up = self.evaluate(up).gradient
            g_dn = self.evaluate(dn).gradient
            assert g_up is not None and g_dn is not None
            H[:, k] = (g_up - g_dn) / (2.0 * h)
        return 0.5 * (H + H.T)

    def beta_cov_jacobian(self, theta: np.ndarray, ev: _Evaluation) -> np.ndarray:
        """``∂C/∂θ_k = C (Σ_i W_iᵀ Σ_k W_i) C`` with ``W_i = Σ_i⁻¹X_i``; shape (K, p, p)."""
        dS = self.sigma_derivatives(theta)
        B = np.zeros((self.n_theta, self.p, self.p))
        for block, sx in zip(self.blocks, ev.sx, strict=True):
            v = block.visits
            B += np.einsum("gmp,kmn,gnq->kpq", sx, dS[:, v][:, :, v], sx)
        C = ev.beta_cov
        return np.einsum("pa,kab,bq->kpq", C, B, C)


# --------------------------------------------------------------------------- optimiser


@dataclass
class _OptimResult:
    theta: np.ndarray
    hessian: np.ndarray | None
    converged: bool
    message: str
    iterations: int
    newton_decrement: float


def _starting_theta(
    lik: _Likelihood,
    y: np.ndarray,
    X: np.ndarray,
    subject_index: np.ndarray,
    visit_index: np.ndarray,
) -> np.ndarray:
    """Start from the pairwise-complete covariance of OLS residuals.

    Falls back to its diagonal (always positive definite) when the pairwise matrix is not
    comfortably positive definite, as happens with heavy missingness.
    """
    t = lik.t
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    scale = max(float(np.mean(resid**2)), 1e-12 * max(1.0, float(np.var(y))), 1e-300)
    table = np.zeros((int(subject_index.max()) + 1, t))
    seen = np.zeros_like(table)
    table[subject_index, visit_index] = resid
    seen[subject_index, visit_index] = 1.0
    counts = seen.T @ seen
    cov = np.divide(table.T @ table, counts, out=np.zeros((t, t)), where=counts > 0)
    var = np.diag(cov).copy()
    var = np.where(var > 1e-8 * scale, var, scale)
    np.fill_diagonal(cov, var)
    diag_start = np.diag(np.sqrt(var))
    try:
        eig = np.linalg.eigvalsh(cov)
        L0 = np.linalg.cholesky(cov) if eig[0] > 1e-3 * eig[-1] else diag_start
    except np.linalg.LinAlgError:
        L0 = diag_start
    return lik.theta_of(L0)


def _optimise(lik: _Likelihood, theta0: np.ndarray, maxiter: int) -> _OptimResult:
    """L-BFGS-B with the exact gradient, then damped Newton polishing.

    Convergence requires: a finite objective, a positive-definite Hessian and a Newton
    decrement ``gᵀH⁻¹g < 1e-10`` (the predicted further decrease of −ℓ).
    """
    t = lik.t
    log_scale = float(np.mean(theta0[:t]))
    # Bounds keep exp(θ) representable; an optimum on a bound means Σ is (near) singular.
    bounds = [(log_scale - 20.0, log_scale + 20.0)] * t + [(None, None)] * (lik.n_theta - t)
    res = optimize.minimize(
        lik.value_and_gradient,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": maxiter, "ftol": 1e-12, "gtol": 1e-9, "maxcor": 20},
    )
    theta = np.asarray(res.x, dtype=float)
    iterations = int(res.nit)
    message = f"L-BFGS-B: {res.message}"
    if not math.isfinite(float(res.fun)):
        return _OptimResult(
            theta, None, False, message + "; objective not finite", iterations, math.inf
        )
    decrement = math.inf
    H: np.ndarray | None = None
    for _ in range(max(0, min(50, maxiter - iterations))):
        f, g = lik.value_and_gradient(theta)
        try:
            H = lik.hessian(theta)
            cf = linalg.cho_factor(H, lower=True)
        except (np.linalg.LinAlgError, linalg.LinAlgError, AssertionError, ValueError):
            H = None
            message += "; Hessian of the objective is not positive definite"
            break
        step = -linalg.cho_solve(cf, g)
        decrement = float(-g @ step)
        if decrement < 1e-10:
            # Quadratic region: the last Newton step squares the remaining error; H, computed
            # a step of size ~sqrt(decrement) away, stays valid for the df computations.
            f_new, _ = lik.value_and_gradient(theta + step)
            if f_new <= f + 1e-9 * max(1.0, abs(f)):
                theta = theta + step
            break
        size = 1.0
        while size > 1e-8:
            f_new, _ = lik.value_and_gradient(theta + size * step)
            if f_new <= f + 1e-4 * size * float(g @ step):
                break
            size *= 0.5
        else:
            message += "; Newton line search failed"
            break
        theta = theta + size * step
        iterations += 1
    converged = H is not None and decrement < 1e-10
    if converged and H is not None:
        theta_l = theta[:t]
        at_bound = np.any(theta_l <= log_scale - 20.0 + 1e-6) or np.any(
            theta_l >= log_scale + 20.0 - 1e-6
        )
        if at_bound:
            converged = False
            message += "; a variance parameter is at its bound (Σ is singular)"
        else:
            message += f"; Newton polish: decrement {decrement:.2e}"
    elif H is not None and not decrement < 1e-10:
        message += f"; Newton decrement {decrement:.2e} did not reach 1e-10"
    return _OptimResult(theta, H, converged, message, iterations, decrement)


# --------------------------------------------------------------------------- results


@dataclass
class MMRMResult:
    """Fitted MMRM: estimates, covariance, information criteria and inference methods."""

    coef_names: tuple[str, ...]
    beta: np.ndarray
    beta_cov: np.ndarray
    visits: tuple[str, ...]
    covariance: np.ndarray
    theta: np.ndarray
    theta_cov: np.ndarray
    beta_cov_jacobian: np.ndarray
    method: Method
    minus_2_log_likelihood: float
    n_subjects: int
    n_observations: int
    converged: bool
    message: str
    iterations: int
    n_evaluations: int
    fit_seconds: float
    spec: DesignSpec | None = None
    n_dropped: int = 0

    # information criteria ----------------------------------------------------
    @property
    def n_covariance_parameters(self) -> int:
        return int(self.theta.size)

    @property
    def n_parameters(self) -> int:
        """Parameters counted by AIC/BIC: θ for REML (R mmrm, SAS); θ and β for ML (SAS)."""
        k = self.n_covariance_parameters
        return k if self.method == "reml" else k + len(self.coef_names)

    @property
    def log_likelihood(self) -> float:
        return -0.5 * self.minus_2_log_likelihood

    @property
    def aic(self) -> float:
        """``−2ℓ + 2k`` (SAS PROC MIXED, R mmrm)."""
        return self.minus_2_log_likelihood + 2.0 * self.n_parameters

    @property
    def bic(self) -> float:
        """``−2ℓ + k·ln(n_subjects)`` (SAS PROC MIXED, R mmrm use subjects, not rows)."""
        return self.minus_2_log_likelihood + self.n_parameters * math.log(self.n_subjects)

    @property
    def correlation(self) -> np.ndarray:
        sd = np.sqrt(np.diag(self.covariance))
        return self.covariance / np.outer(sd, sd)

    def covariance_frame(self) -> pd.DataFrame:
        """Σ̂ with visit labels on both axes."""
        return pd.DataFrame(self.covariance, index=list(self.visits), columns=list(self.visits))

    # inference --------------------------------------------------------------
    def _as_matrix(self, L: Sequence[float] | np.ndarray) -> np.ndarray:
        mat = np.atleast_2d(np.asarray(L, dtype=float))
        if mat.shape[1] != len(self.coef_names):
            raise ValueError(
                f"contrast has {mat.shape[1]} columns but the model has {len(self.coef_names)} coefficients"
            )
        return mat

    def satterthwaite_df(self, l: Sequence[float] | np.ndarray) -> float:  # noqa: E741
        """``ν = 2 (lᵀCl)² / (gᵀAg)`` with ``g_k = lᵀ(∂C/∂θ_k)l`` and ``A = H⁻¹``."""
        vec = self._as_matrix(l)[0]
        var = float(vec @ self.beta_cov @ vec)
        g = np.einsum("kpq,p,q->k", self.beta_cov_jacobian, vec, vec)
        denom = float(g @ self.theta_cov @ g)
        if not math.isfinite(denom):
            return math.nan  # no valid covariance of θ̂ (fit did not converge)
        if denom <= 0.0:
            return math.inf  # lᵀCl does not depend on θ: the t statistic is exact normal
        return 2.0 * var * var / denom

    def _estimate(self, vec: np.ndarray, label: str, conf_level: float) -> Estimate:
        est = float(vec @ self.beta)
        se = math.sqrt(max(float(vec @ self.beta_cov @ vec), 0.0))
        df = self.satterthwaite_df(vec)
        t_value = est / se if se > 0 else math.nan
        p_value = float(2.0 * stats.t.sf(abs(t_value), df)) if se > 0 else math.nan
        q = float(stats.t.ppf(0.5 + conf_level / 2.0, df))
        return Estimate(
            label, est, se, df, t_value, p_value, est - q * se, est + q * se, conf_level
        )

    def contrast(
        self,
        L: Sequence[float] | Sequence[Sequence[float]] | np.ndarray | Mapping[str, float],
        labels: Sequence[str] | None = None,
        conf_level: float = 0.95,
    ) -> list[Estimate]:
        """Estimate(s) of ``Lβ``, one per row, each with 1-d Satterthwaite df.

        ``L`` is a vector, a matrix (rows = contrasts) or a mapping coefficient name →
        weight (e.g. ``{"ARMCD[TRT]": 1, "ARMCD[TRT]:AVISIT[VIS4]": 1}``).
        """
        if isinstance(L, Mapping):
            unknown = set(L) - set(self.coef_names)
            if unknown:
                raise ValueError(f"unknown coefficient(s) {sorted(unknown)}")
            mat = np.array([[float(L.get(name, 0.0)) for name in self.coef_names]])
        else:
            mat = self._as_matrix(L)  # type: ignore[arg-type]
        if labels is None:
            labels = [f"contrast {i + 1}" for i in range(mat.shape[0])]
        if len(labels) != mat.shape[0]:
            raise ValueError("one label per contrast row is needed")
        return [self._estimate(row, lab, conf_level) for row, lab in zip(mat, labels, strict=True)]

    def f_test(self, L: Sequence[Sequence[float]] | np.ndarray) -> FTest:
        """Test ``Lβ = 0`` for a full-row-rank L (Fai & Cornelius 1996 df, as SAS/R mmrm).

        ``F = (Lβ)ᵀ(LCLᵀ)⁻¹(Lβ)/q``. With ``LCLᵀ = P D Pᵀ`` each row of ``PᵀL`` gives a 1-d
        Satterthwaite ν_m; ``E = Σ_{ν_m>2} ν_m/(ν_m−2)`` and the denominator df is
        ``2E/(E−q)`` (if ``E ≤ q`` it falls back to the smallest ν_m).
        """
        mat = self._as_matrix(L)
        q = mat.shape[0]
        M = mat @ self.beta_cov @ mat.T
        if np.linalg.matrix_rank(M) < q:
            raise ValueError("contrast matrix L must have full row rank")
        est = mat @ self.beta
        f_value = float(est @ np.linalg.solve(M, est)) / q
        eigval, eigvec = np.linalg.eigh(M)
        nus = np.array([self.satterthwaite_df(eigvec[:, m] @ mat) for m in range(q)])
        big = nus[nus > 2.0]
        E = float(np.sum(big / (big - 2.0)))
        den_df = 2.0 * E / (E - q) if q < E else float(np.min(nus))
        if q == 1:
            den_df = float(nus[0])
        p_value = float(stats.f.sf(f_value, q, den_df))
        return FTest(f_value, q, den_df, p_value)

    def coefficients(self, conf_level: float = 0.95) -> list[Estimate]:
        """Every fixed effect with SE, Satterthwaite df, t, p and CI."""
        eye = np.eye(len(self.coef_names))
        return [self._estimate(eye[j], name, conf_level) for j, name in enumerate(self.coef_names)]

    def coef_table(self, conf_level: float = 0.95) -> pd.DataFrame:
        rows = [{"term": e.label, **e.to_dict()} for e in self.coefficients(conf_level)]
        return pd.DataFrame(rows).set_index("term")

    def _need_spec(self) -> DesignSpec:
        if self.spec is None:
            raise ValueError("LS means need the design specification; fit with fit_mmrm()")
        return self.spec

    def lsmeans(
        self,
        weights: Literal["equal", "proportional"] = "equal",
        at: Mapping[str, float | str] | None = None,
        conf_level: float = 0.95,
    ) -> dict[str, dict[str, Estimate]]:
        """LS means ``[visit][group]`` (emmeans convention, see module docstring)."""
        spec = self._need_spec()
        out: dict[str, dict[str, Estimate]] = {}
        for visit in spec.visit.levels:
            out[visit] = {}
            for group in spec.group.levels:
                row = spec.grid_row(group, visit, weights=weights, at=at)
                out[visit][group] = self._estimate(row, f"{group} @ {visit}", conf_level)
        return out

    def group_differences(
        self,
        weights: Literal["equal", "proportional"] = "equal",
        at: Mapping[str, float | str] | None = None,
        conf_level: float = 0.95,
    ) -> dict[str, dict[str, Estimate]]:
        """Each non-reference group minus the reference group, per visit: ``[visit]["TRT - PBO"]``.

        The covariate part cancels, so the difference does not depend on ``weights``.
        """
        spec = self._need_spec()
        ref = spec.group.reference
        out: dict[str, dict[str, Estimate]] = {}
        for visit in spec.visit.levels:
            base = spec.grid_row(ref, visit, weights=weights, at=at)
            out[visit] = {}
            for group in spec.group.contrast_levels:
                row = spec.grid_row(group, visit, weights=weights, at=at) - base
                label = f"{group} - {ref}"
                out[visit][label] = self._estimate(row, f"{label} @ {visit}", conf_level)
        return out

    # reporting --------------------------------------------------------------
    def summary(self, conf_level: float = 0.95) -> str:
        """A SAS/R-like text report of the fit."""
        lines: list[str] = []
        crit = "REML" if self.method == "reml" else "ML"
        lines.append("Mixed model for repeated measures (MMRM)")
        if self.spec is not None:
            s = self.spec
            terms = [
                *[c.column for c in s.covariates],
                f"{s.group.column} * {s.visit.column}",
                *[f"{c}:{s.visit.column}" for c in s.visit_interactions],
            ]
            lines.append(f"Formula:     {s.response} ~ {' + '.join(terms)}")
            lines.append(
                f"Covariance:  unstructured({s.visit.column} | {s.subject}), "
                f"{self.n_covariance_parameters} variance parameters"
            )
        lines.append(f"Inference:   {crit}, Satterthwaite degrees of freedom")
        dropped = f" ({self.n_dropped} rows with missing values dropped)" if self.n_dropped else ""
        lines.append(
            f"Data:        {self.n_observations} observations from {self.n_subjects} subjects, "
            f"{len(self.visits)} visits{dropped}"
        )
        lines.append(f"Convergence: {'yes' if self.converged else 'NO'} ({self.message})")
        lines.append("")
        lines.append("Model fit statistics")
        lines.append(f"  -2 {crit} log-likelihood  {self.minus_2_log_likelihood:12.4f}")
        lines.append(f"  AIC                      {self.aic:12.4f}")
        lines.append(f"  BIC                      {self.bic:12.4f}")
        lines.append("")
        lines.append("Fixed effects")
        width = max(12, *(len(n) for n in self.coef_names))
        lines.append(
            f"  {'Term':<{width}} {'Estimate':>11} {'Std.Error':>10} {'df':>8} {'t value':>8} {'Pr(>|t|)':>10}"
        )
        for e in self.coefficients(conf_level):
            lines.append(
                f"  {e.label:<{width}} {e.estimate:11.5f} {e.se:10.5f} {e.df:8.2f} "
                f"{e.t_value:8.3f} {_format_p(e.p_value):>10}"
            )
        lines.append("")
        lines.append("Covariance matrix (unstructured)")
        head = "".join(f"{v:>12}" for v in self.visits)
        lines.append(f"  {'':<8}{head}")
        for v, row in zip(self.visits, self.covariance, strict=True):
            lines.append(f"  {v:<8}" + "".join(f"{x:12.4f}" for x in row))
        if self.spec is not None:
            pct = f"{100 * conf_level:g}%"
            lines.append("")
            lines.append(f"Least-squares means (equal weights over factor levels), {pct} CI")
            lines.append(
                f"  {'Visit':<10} {'Group':<10} {'LS mean':>10} {'SE':>8} {'df':>8} {'CI lower':>10} {'CI upper':>10}"
            )
            for visit, groups in self.lsmeans(conf_level=conf_level).items():
                for group, e in groups.items():
                    lines.append(
                        f"  {visit:<10} {group:<10} {e.estimate:10.4f} {e.se:8.4f} {e.df:8.2f} "
                        f"{e.ci_lower:10.4f} {e.ci_upper:10.4f}"
                    )
            lines.append("")
            lines.append(f"Differences of least-squares means, {pct} CI")
            lines.append(
                f"  {'Visit':<10} {'Contrast':<14} {'Estimate':>10} {'SE':>8} {'df':>8} {'CI lower':>10} "
                f"{'CI upper':>10} {'p-value':>9}"
            )
            for visit, diffs in self.group_differences(conf_level=conf_level).items():
                for label, e in diffs.items():
                    lines.append(
                        f"  {visit:<10} {label:<14} {e.estimate:10.4f} {e.se:8.4f} {e.df:8.2f} "
                        f"{e.ci_lower:10.4f} {e.ci_upper:10.4f} {_format_p(e.p_value):>9}"
                    )
        return "\n".join(lines)

    def to_dict(self, conf_level: float = 0.95) -> dict[str, Any]:
        """JSON-ready dict: coefficients, Σ with visit labels, fit criteria, LS means by visit."""
        out: dict[str, Any] = {
            "method": self.method,
            "converged": self.converged,
            "message": self.message,
            "n_subjects": self.n_subjects,
            "n_observations": self.n_observations,
            "n_dropped_rows": self.n_dropped,
            "minus_2_log_likelihood": _json_float(self.minus_2_log_likelihood),
            "aic": _json_float(self.aic),
            "bic": _json_float(self.bic),
            "n_covariance_parameters": self.n_covariance_parameters,
            "coefficients": {e.label: e.to_dict() for e in self.coefficients(conf_level)},
            "covariance": {
                "visits": list(self.visits),
                "matrix": [[float(x) for x in row] for row in self.covariance],
            },
            "fit_seconds": self.fit_seconds,
        }
        if self.spec is not None:
            s = self.spec
            out["model"] = {
                "response": s.response,
                "subject": s.subject,
                "visit": s.visit.column,
                "group": s.group.column,
                "covariates": [c.column for c in s.covariates],
                "visit_interactions": list(s.visit_interactions),
                "reference": {
                    s.group.column: s.group.reference,
                    s.visit.column: s.visit.reference,
                    **{c.column: c.reference for c in s.covariates if isinstance(c, Factor)},
                },
            }
            lsm = self.lsmeans(conf_level=conf_level)
            diffs = self.group_differences(conf_level=conf_level)
            out["visits"] = {
                visit: {
                    "lsmeans": {g: e.to_dict() for g, e in lsm[visit].items()},
                    "differences": {lab: e.to_dict() for lab, e in diffs[visit].items()},
                }
                for visit in s.visit.levels
            }
        return out


def _format_p(p: float) -> str:
    if not math.isfinite(p):
        return "NA"
    return "<.0001" if p < 1e-4 else f"{p:.4f}"


# --------------------------------------------------------------------------- entry points


def fit_mmrm_arrays(
    y: np.ndarray,
    X: np.ndarray,
    subject_index: np.ndarray,
    visit_index: np.ndarray,
    *,
    n_visits: int | None = None,
    coef_names: Sequence[str] | None = None,
    visit_labels: Sequence[str] | None = None,
    method: Method = "reml",
    maxiter: int = 1000,
    strict: bool = True,
    _stacklevel: int = 2,
) -> MMRMResult:
    """Fit the MMRM from arrays (y, X, 0-based subject and visit indices).

    Raises :class:`MMRMError` for data that cannot identify the model and
    :class:`MMRMConvergenceError` when no proper optimum is found (``strict=False``:
    a :class:`MMRMConvergenceWarning` and a result with ``converged=False`` instead).
    """
    start = time.perf_counter()
    if method not in ("reml", "ml"):
        raise ValueError(f"method must be 'reml' or 'ml', not {method!r}")
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    subject_index = np.asarray(subject_index, dtype=int)
    visit_index = np.asarray(visit_index, dtype=int)
    n, p = X.shape
    t = int(n_visits if n_visits is not None else visit_index.max() + 1)
    names = tuple(coef_names) if coef_names is not None else tuple(f"x{j}" for j in range(p))
    labels = tuple(visit_labels) if visit_labels is not None else tuple(str(j) for j in range(t))
    if y.shape != (n,) or subject_index.shape != (n,) or visit_index.shape != (n,):
        raise ValueError("y, subject_index and visit_index must have one entry per row of X")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(X))):
        raise MMRMError("y and X must be finite (drop missing rows first)")
    if visit_index.min() < 0 or visit_index.max() >= t:
        raise ValueError("visit_index out of range")
    _, counts = np.unique(np.stack([subject_index, visit_index]), axis=1, return_counts=True)
    if np.any(counts > 1):
        raise MMRMError("a subject has more than one observation at the same visit")
    n_subjects = int(np.unique(subject_index).size)
    subject_index = np.unique(subject_index, return_inverse=True)[1].reshape(-1)
    k = t * (t + 1) // 2
    if n_subjects < 2:
        raise MMRMError(f"at least 2 subjects are needed, the data have {n_subjects}")
    per_visit = np.bincount(visit_index, minlength=t)
    if np.any(per_visit == 0):
        empty = [labels[j] for j in np.flatnonzero(per_visit == 0)]
        raise MMRMError(f"visit(s) {empty} have no observations; their variance is not estimable")
    aliased = aliased_columns(X, names)
    if aliased:
        raise MMRMError(
            f"design matrix is rank deficient; aliased (non-estimable) columns: {aliased}"
        )
    if n - p < 1 or n < p + k:
        raise MMRMError(
            f"too few observations ({n}) for {p} fixed effects and {k} covariance parameters"
        )
    # Each pair of visits must be observed together in some subject, or their covariance
    # has no information in the likelihood.
    table = np.zeros((n_subjects, t))
    table[subject_index, visit_index] = 1.0
    pairs = table.T @ table
    for a in range(t):
        for b in range(a):
            if pairs[a, b] == 0:
                raise MMRMError(
                    f"no subject has both visits {labels[b]!r} and {labels[a]!r}; "
                    "their covariance is not estimable with an unstructured model"
                )

    blocks = _make_blocks(y, X, subject_index, visit_index, t)
    lik = _Likelihood(blocks, t, n, p, reml=(method == "reml"))
    theta0 = _starting_theta(lik, y, X, subject_index, visit_index)
    opt = _optimise(lik, theta0, maxiter)
    converged = opt.converged
    message = opt.message
    ev = lik.evaluate(opt.theta)
    sigma = ev.sigma
    eig = np.linalg.eigvalsh(sigma)
    if not eig[0] > 1e-10 * eig[-1]:
        converged = False
        message += "; the estimated covariance matrix is (nearly) singular"
    theta_cov = np.full((k, k), math.nan)
    jac = np.zeros((k, p, p))
    if opt.hessian is not None:
        try:
            theta_cov = np.linalg.inv(opt.hessian)
        except np.linalg.LinAlgError:
            converged = False
            message += "; Hessian is singular"
        jac = lik.beta_cov_jacobian(opt.theta, ev)
    result = MMRMResult(
        coef_names=names,
        beta=ev.beta,
        beta_cov=ev.beta_cov,
        visits=labels,
        covariance=sigma,
        theta=opt.theta,
        theta_cov=theta_cov,
        beta_cov_jacobian=jac,
        method=method,
        minus_2_log_likelihood=2.0 * ev.value,
        n_subjects=n_subjects,
        n_observations=n,
        converged=converged,
        message=message,
        iterations=opt.iterations,
        n_evaluations=lik.n_evaluations,
        fit_seconds=time.perf_counter() - start,
    )
    if not converged:
        text = f"MMRM fit did not converge: {message}"
        if strict:
            raise MMRMConvergenceError(text)
        warnings.warn(text, MMRMConvergenceWarning, stacklevel=_stacklevel)
    return result


def fit_mmrm(
    data: pd.DataFrame,
    *,
    response: str,
    subject: str,
    visit: str,
    group: str,
    covariates: str | Iterable[str] | None = None,
    reference: Mapping[str, str] | None = None,
    visit_interactions: str | Iterable[str] | None = None,
    categorical: str | Iterable[str] | None = None,
    method: Method = "reml",
    maxiter: int = 1000,
    strict: bool = True,
) -> MMRMResult:
    """Fit ``response ~ covariates + group * visit [+ covariate:visit]`` with unstructured Σ.

    ``data`` is long format (one row per subject and visit). See
    :func:`ildtrial.stats.design.build_model_data` for the input rules and
    :func:`fit_mmrm_arrays` for the errors raised.

    Example (the R ``mmrm`` benchmark)::

        fit_mmrm(fev, response="FEV1", subject="USUBJID", visit="AVISIT", group="ARMCD",
                 covariates=["RACE", "SEX"],
                 reference={"ARMCD": "PBO", "RACE": "Asian", "SEX": "Male", "AVISIT": "VIS1"})
    """
    start = time.perf_counter()
    md: ModelData = build_model_data(
        data,
        response=response,
        subject=subject,
        visit=visit,
        group=group,
        covariates=covariates,
        reference=reference,
        visit_interactions=visit_interactions,
        categorical=categorical,
    )
    result = fit_mmrm_arrays(
        md.y,
        md.X,
        md.subject_index,
        md.visit_index,
        n_visits=len(md.spec.visit.levels),
        coef_names=md.spec.column_names,
        visit_labels=md.spec.visit.levels,
        method=method,
        maxiter=maxiter,
        strict=strict,
        _stacklevel=3,
    )
    result.spec = md.spec
    result.n_dropped = md.n_dropped
    result.fit_seconds = time.perf_counter() - start
    return result
