"""Batched MMRM: thousands of small trials fitted at once with stacked numpy linear algebra.

Why this module exists
----------------------
The design tool (``ildtrial.simulate.design``) analyses 10,000 simulated 20-patient trials
per scenario. A Python loop over :func:`ildtrial.stats.mmrm.fit_mmrm` costs ~30 ms a trial
(5 minutes a scenario); here every operation acts on all trials of a chunk at once, so the
per-trial cost is a few hundred microseconds. The likelihood, estimates, standard errors and
Satterthwaite degrees of freedom are the *same quantities* as the single fit (the tests check
every one against :func:`ildtrial.stats.mmrm.fit_mmrm_arrays`); only the algorithm differs.

Model (one fixed design family)
-------------------------------
Per trial, subject *i* has a response at each of *t* visits (NaN = missing) and a row of
subject-level covariates ``x_i`` (e.g. arm indicator, baseline value). With
``z_i = (1, x_i)`` (q = 1 + p_s entries) the fixed effects are *visit-specific intercepts
and visit-specific coefficients of every covariate*::

    y_iv = z_iᵀ β_v + ε_iv,        ε_i ~ N(0, Σ),   Σ unstructured (t × t)

i.e. ``X_i = I_t ⊗ z_iᵀ`` and ``β = (β_1, …, β_t)`` (p = t·q). This is "change = arm × visit
+ baseline × visit" of the statistical analysis plan in cell-means form: the coefficient of
the arm indicator at visit v *is* the LS-mean difference at visit v (the covariate part
cancels in the difference). It spans the same column space as R's treatment contrasts
(``ARM * VISIT + BASE * VISIT``) via a unimodular transform, so Σ̂, the −2 REML
log-likelihood and the treatment contrasts agree with ``fit_mmrm`` on the data frame.

Likelihood with missing data: exact, grouped by missingness pattern
-------------------------------------------------------------------
Subjects of one trial with the same set O of observed visits share ``Σ_OO``. Everything the
likelihood needs is a sum over subjects of quantities that depend on the subject only through
``z_i``, ``y_i`` and O, so per (trial, pattern) "cell" we keep the sufficient statistics
``n_c``, ``S_c = Σ z zᵀ``, ``Syz_c = Σ y zᵀ`` and ``Syy_c = Σ y yᵀ`` (missing y set to 0).
The padded inverse ``P_c`` (``Σ_OO⁻¹`` in the observed rows/columns, 0 elsewhere) and
``log|Σ_OO|`` are computed exactly from ``A = D Σ D + (I − D)`` (D = diag(observed)): after a
permutation A is ``blockdiag(Σ_OO, I)``, so ``A⁻¹ = P_c + (I − D)`` and ``|A| = |Σ_OO|``.
No large-variance approximation is involved. With ``R_c = Σ_{i∈c} r_i r_iᵀ`` (GLS residuals)
and ``B`` the t × q matrix of β::

    XᵀV⁻¹X = Σ_c P_c ⊗ S_c,     XᵀV⁻¹y = vec Σ_c P_c Syz_c,
    R_c = Syy − Syz Bᵀ − B Syzᵀ + B S Bᵀ,
    −2ℓ_REML = Σ_c [n_c log|Σ_O(c)| + tr(P_c R_c)] + log|XᵀV⁻¹X| + (n − p) log 2π
    −2ℓ_ML   = Σ_c [n_c log|Σ_O(c)| + tr(P_c R_c)] + n log 2π

(Laird & Ware 1982; Harville 1977). Cells are padded to the same count within a chunk
(a padding cell has n = 0 and zero statistics, so it contributes nothing).

Derivatives (analytic, exact)
-----------------------------
Σ = L Lᵀ with θ = (log L_11, …, log L_tt, L_21, L_31, L_32, …) exactly as in
:mod:`ildtrial.stats.mmrm`, so θ and its covariance mean the same thing in both modules.
With ``P = V⁻¹ − V⁻¹XCXᵀV⁻¹`` (C = (XᵀV⁻¹X)⁻¹), u = Py and directions ``D_j = ∂Σ/∂θ_j``::

    ∂(−2ℓ_R)/∂θ_j     = tr(P D_j) − uᵀD_j u = tr(M D_j),   M = Σ_c (n_c P_c − U_c − Q_c)
    ∂²(−2ℓ_R)/∂θ_j∂θ_k = −tr(P D_j P D_k) + 2 uᵀD_j P D_k u + tr(M ∂²Σ/∂θ_j∂θ_k)

(the second line is the standard REML Hessian, e.g. Searle, Casella & McCulloch 1992, §6.12,
for a covariance with second derivatives). Per cell, with ``U_c = P R_c P``,
``Q_c = P H_c P`` (``H_c = Σ_{i∈c} X_i C X_iᵀ``), ``G_j = XᵀV⁻¹D_jV⁻¹X = Σ_c (P D_j P) ⊗ S_c``
and ``a_j = Σ_c P D_j P Rz_c`` (``Rz_c = Syz − B S``)::

    tr(P D_j P D_k) = Σ_c n_c tr(P D_j P D_k) − Σ_c [tr(Q D_j P D_k) + tr(Q D_k P D_j)]
                      + tr(C G_j C G_k)
    uᵀD_j P D_k u  = Σ_c tr(U D_j P D_k) − a_jᵀ C a_k

For ML, drop the Q and ``C G C G`` terms (P → V⁻¹ in the trace term only). The Hessian is
the *observed* one, as the single fit uses (R mmrm's asymptotic covariance of θ̂).

Optimisation
------------
Newton's method on all trials of a chunk at once, with a per-trial Armijo backtracking
line search. Where a trial's observed Hessian is not positive definite (far from the
optimum), Newton with |eigenvalues| and Fisher scoring (expected information
``tr(P D_j P D_k)``) are both tried and the better step is kept. A trial has converged when
its Hessian is positive definite and the Newton decrement of −ℓ (``½ gᵀH⁻¹g`` on the −2ℓ
scale) is below 1e-12 (the single fit uses < 1e-10 and then one more Newton step, which
lands lower than that). Each trial is fitted on its own unit scale (y divided by the
geometric mean of its starting SDs, results mapped back exactly) so that all entries of θ
are dimensionless. It starts from the pairwise-complete covariance of per-visit OLS
residuals (divided by n_vw − q), which *is* the REML optimum for complete data, so complete
trials converge in one step; simulated trials of this design take 4-8 iterations.

A trial is flagged (``converged = False``, estimates NaN or kept but marked, with a
message) when the model is not estimable from its data (a visit whose covariates are
collinear among the observed subjects, a pair of visits never observed together, too few
observations), when the line search fails, the iteration limit is reached, or Σ̂ is
(nearly) singular. Results of flagged trials must not be used; they are never silently
wrong.

Inference
---------
``Var(β̂) = C``; for the coefficient m the Satterthwaite df is
``ν = 2 C_mm² / (gᵀ A g)`` with ``g_j = (C G_j C)_mm`` (``∂C/∂θ_j = C G_j C``) and
``A = H⁻¹`` of −ℓ (R mmrm / SAS ``DDFM=SATTERTHWAITE``), exactly as
:meth:`ildtrial.stats.mmrm.MMRMResult.satterthwaite_df`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

__all__ = [
    "BatchResult",
    "BatchTest",
    "fit_mmrm_batch",
]

Method = Literal["reml", "ml"]
LOG_2PI = math.log(2.0 * math.pi)

#: Converged when the Newton decrement of −ℓ is below this (see module docstring).
DECREMENT_TOL = 1e-12
#: A step that changes −2ℓ by less than this relative amount is rounding noise: accept it.
_SLACK = 1e-11


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class BatchTest:
    """t-based inference for one coefficient across trials (arrays of shape (n_trials,))."""

    estimate: np.ndarray
    se: np.ndarray
    df: np.ndarray
    t_value: np.ndarray
    p_value: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    converged: np.ndarray
    conf_level: float


@dataclass(frozen=True)
class BatchResult:
    """Per-trial MMRM results of :func:`fit_mmrm_batch`.

    Arrays are indexed ``[trial, visit, term]`` with ``term`` 0 = visit intercept and
    ``term`` k ≥ 1 = covariate k − 1 of ``X_subject`` (its coefficient *at that visit*).
    Trials with ``converged == False`` carry NaN or unreliable numbers: filter on
    ``converged`` (``message`` says why).
    """

    beta: np.ndarray  # (n_trials, t, q)
    se: np.ndarray  # (n_trials, t, q)
    df: np.ndarray  # (n_trials, t, q)  Satterthwaite
    minus_2_log_likelihood: np.ndarray  # (n_trials,)
    converged: np.ndarray  # (n_trials,) bool
    message: np.ndarray  # (n_trials,) str (object)
    iterations: np.ndarray  # (n_trials,) int
    covariance: np.ndarray  # (n_trials, t, t) Σ̂
    theta: np.ndarray  # (n_trials, K)
    n_subjects: np.ndarray  # (n_trials,) subjects with ≥ 1 analysed observation
    n_observations: np.ndarray  # (n_trials,)
    term_names: tuple[str, ...]
    visit_labels: tuple[str, ...]
    treatment_term: int
    method: Method

    @property
    def n_trials(self) -> int:
        return int(self.beta.shape[0])

    @property
    def effect(self) -> np.ndarray:
        """Treatment effect (arm-by-visit coefficient = LS-mean difference), (n_trials, t)."""
        return self.beta[:, :, self.treatment_term]

    @property
    def effect_se(self) -> np.ndarray:
        return self.se[:, :, self.treatment_term]

    @property
    def effect_df(self) -> np.ndarray:
        return self.df[:, :, self.treatment_term]

    def coef_names(self) -> list[str]:
        """Names in the flattened order ``beta.reshape(n_trials, -1)`` (visit-major)."""
        return [f"{term}:{visit}" for visit in self.visit_labels for term in self.term_names]

    def test(
        self,
        visit: int | str = -1,
        term: int | str | None = None,
        conf_level: float = 0.95,
        null: float = 0.0,
    ) -> BatchTest:
        """Two-sided t test and CI of one coefficient at one visit, for every trial.

        ``term`` defaults to the treatment term; ``p = 2·P(T_ν > |t|)`` with the
        Satterthwaite ν of that coefficient, CI ``est ± t_{ν,1−α/2}·SE``.
        """
        v = self.visit_labels.index(visit) if isinstance(visit, str) else int(visit)
        k = self.treatment_term if term is None else term
        if isinstance(k, str):
            k = self.term_names.index(k)
        est = self.beta[:, v, k]
        se = self.se[:, v, k]
        df = self.df[:, v, k]
        ok = self.converged & np.isfinite(se) & (se > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            t_value = np.where(ok, (est - null) / se, np.nan)
            p_value = np.where(ok, 2.0 * stats.t.sf(np.abs(t_value), df), np.nan)
            q = stats.t.ppf(0.5 + conf_level / 2.0, df)
            lower = np.where(ok, est - q * se, np.nan)
            upper = np.where(ok, est + q * se, np.nan)
        return BatchTest(est, se, df, t_value, p_value, lower, upper, self.converged, conf_level)


# --------------------------------------------------------------------------- cells


@dataclass
class _Cells:
    """Sufficient statistics per (trial, missingness pattern), padded to ``nc`` cells."""

    n: np.ndarray  # (b, nc)
    mask: np.ndarray  # (b, nc, t) bool; padding cells: all True
    S: np.ndarray  # (b, nc, q, q)
    Syz: np.ndarray  # (b, nc, t, q)
    Syy: np.ndarray  # (b, nc, t, t)
    n_obs: np.ndarray  # (b,)

    def take(self, idx: np.ndarray) -> _Cells:
        return _Cells(
            self.n[idx], self.mask[idx], self.S[idx], self.Syz[idx], self.Syy[idx], self.n_obs[idx]
        )


def _build_cells(
    Y: np.ndarray, Z: np.ndarray, obs: np.ndarray
) -> tuple[_Cells, np.ndarray]:
    """Group each trial's subjects by observed-visit pattern; returns cells and cells/trial.

    Subjects without any observation are dropped (they carry no likelihood information).
    """
    n_trials, n_subj, t = Y.shape
    q = Z.shape[2]
    code = (obs.astype(np.int64) << np.arange(t, dtype=np.int64)).sum(axis=2)  # (B, N)
    key = np.arange(n_trials, dtype=np.int64)[:, None] * (1 << t) + code
    flat_key = key.reshape(-1)
    keep = code.reshape(-1) > 0
    order = np.argsort(flat_key, kind="stable")
    order = order[keep[order]]
    sorted_key = flat_key[order]
    cell_key, first = np.unique(sorted_key, return_index=True)
    cell_trial = cell_key >> t
    cell_code = cell_key & ((1 << t) - 1)
    cells_per_trial = np.bincount(cell_trial, minlength=n_trials)
    nc = max(1, int(cells_per_trial.max(initial=0)))
    trial_first = np.zeros(n_trials, dtype=np.int64)
    trial_first[1:] = np.cumsum(cells_per_trial)[:-1]
    slot = np.arange(cell_key.size) - trial_first[cell_trial]

    y = np.where(obs, Y, 0.0).reshape(-1, t)[order]
    z = Z.reshape(-1, q)[order]
    count = np.diff(np.append(first, order.size)).astype(float)
    S_cell = np.add.reduceat(z[:, :, None] * z[:, None, :], first, axis=0) if order.size else None
    Syz_cell = np.add.reduceat(y[:, :, None] * z[:, None, :], first, axis=0) if order.size else None
    Syy_cell = np.add.reduceat(y[:, :, None] * y[:, None, :], first, axis=0) if order.size else None

    n = np.zeros((n_trials, nc))
    mask = np.ones((n_trials, nc, t), dtype=bool)
    S = np.zeros((n_trials, nc, q, q))
    Syz = np.zeros((n_trials, nc, t, q))
    Syy = np.zeros((n_trials, nc, t, t))
    if order.size:
        n[cell_trial, slot] = count
        bits = ((cell_code[:, None] >> np.arange(t)) & 1).astype(bool)
        mask[cell_trial, slot] = bits
        S[cell_trial, slot] = S_cell
        Syz[cell_trial, slot] = Syz_cell
        Syy[cell_trial, slot] = Syy_cell
    n_obs = obs.sum(axis=(1, 2)).astype(float)
    return _Cells(n, mask, S, Syz, Syy, n_obs), cells_per_trial


# --------------------------------------------------------------------------- parametrisation


class _Param:
    """θ ↔ L ↔ Σ for a t × t unstructured covariance (same θ as ``ildtrial.stats.mmrm``)."""

    def __init__(self, t: int):
        self.t = t
        self.tril = np.tril_indices(t, -1)
        self.K = t * (t + 1) // 2
        rows = np.concatenate([np.arange(t), self.tril[0]])
        cols = np.concatenate([np.arange(t), self.tril[1]])
        self.rows, self.cols = rows, cols
        self.is_diag = np.arange(self.K) < t

    def chol(self, theta: np.ndarray) -> np.ndarray:
        L = np.zeros((*theta.shape[:-1], self.t, self.t))
        d = np.arange(self.t)
        L[..., d, d] = np.exp(theta[..., : self.t])
        L[..., self.tril[0], self.tril[1]] = theta[..., self.t :]
        return L

    def theta_of(self, L: np.ndarray) -> np.ndarray:
        d = np.arange(self.t)
        return np.concatenate(
            [np.log(L[..., d, d]), L[..., self.tril[0], self.tril[1]]], axis=-1
        )

    def dchol(self, L: np.ndarray) -> np.ndarray:
        """``∂L/∂θ_j`` (b, K, t, t): ``L_aa·E_aa`` for log-diagonal, ``E_ab`` below it."""
        b = L.shape[0]
        dL = np.zeros((b, self.K, self.t, self.t))
        j = np.arange(self.K)
        dL[:, j, self.rows, self.cols] = np.where(
            self.is_diag[None, :], L[:, self.rows, self.rows], 1.0
        )
        return dL


# --------------------------------------------------------------------------- evaluation


@dataclass
class _Eval:
    value: np.ndarray  # −2ℓ (b,)
    ok: np.ndarray  # finite, factorisations succeeded (b,)
    sigma: np.ndarray | None = None
    beta: np.ndarray | None = None  # (b, p)
    C: np.ndarray | None = None  # (b, p, p)
    grad: np.ndarray | None = None  # of −2ℓ (b, K)
    hess: np.ndarray | None = None  # of −2ℓ (b, K, K)
    fisher: np.ndarray | None = None  # expected Hessian of −2ℓ (b, K, K)
    CG: np.ndarray | None = None  # C G_j (b, K, p, p)


def _cholesky(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched Cholesky that flags (instead of raising for the whole batch) failures."""
    try:
        return np.linalg.cholesky(A), np.ones(A.shape[0], dtype=bool)
    except np.linalg.LinAlgError:
        out = np.full_like(A, np.nan)
        ok = np.zeros(A.shape[0], dtype=bool)
        for i in range(A.shape[0]):
            try:
                out[i] = np.linalg.cholesky(A[i])
                ok[i] = True
            except np.linalg.LinAlgError:
                pass
        return out, ok


def _inv(A: np.ndarray) -> np.ndarray:
    """Batched inverse; a singular member becomes NaN instead of failing the batch."""
    try:
        return np.linalg.inv(A)
    except np.linalg.LinAlgError:
        out = np.full_like(A, np.nan)
        for i in range(A.shape[0]):
            with contextlib.suppress(np.linalg.LinAlgError):
                out[i] = np.linalg.inv(A[i])
        return out


def _tr_pairs(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``tr(left_j @ right_k)`` for stacked (..., K, m, m) arrays → (..., K, K)."""
    *lead, K, m, _ = left.shape
    a = left.reshape(*lead, K, m * m)
    b = np.swapaxes(right, -1, -2).reshape(*lead, K, m * m)
    return a @ np.swapaxes(b, -1, -2)


def _evaluate(
    cells: _Cells, theta: np.ndarray, par: _Param, q: int, reml: bool, order: int
) -> _Eval:
    """−2ℓ at θ for every trial (order 0), with gradient (1) and Hessian (2)."""
    b = theta.shape[0]
    t, K = par.t, par.K
    p = t * q
    nc = cells.n.shape[1]
    with np.errstate(all="ignore"):
        L = par.chol(theta)
        sigma = L @ np.swapaxes(L, -1, -2)
        mm = cells.mask[:, :, :, None] & cells.mask[:, :, None, :]
        eye_missing = np.zeros((b, nc, t, t))
        d = np.arange(t)
        eye_missing[:, :, d, d] = (~cells.mask).astype(float)
        A = np.where(mm, sigma[:, None], 0.0) + eye_missing
        sign, logdet_a = np.linalg.slogdet(A)
        P = np.where(mm, _inv(A.reshape(-1, t, t)).reshape(b, nc, t, t), 0.0)
        ok = np.all((sign > 0) & np.isfinite(logdet_a), axis=1)
        logdet_a = np.where(np.isfinite(logdet_a), logdet_a, 0.0)

        # XᵀV⁻¹X = Σ_c P_c ⊗ S_c, ordered (v, k) → v·q + k
        xtvx = (
            np.swapaxes(P.reshape(b, nc, t * t), 1, 2) @ cells.S.reshape(b, nc, q * q)
        ).reshape(b, t, t, q, q)
        xtvx = xtvx.transpose(0, 1, 3, 2, 4).reshape(b, p, p)
        xtvx = 0.5 * (xtvx + np.swapaxes(xtvx, -1, -2))
        xtvy = (P @ cells.Syz).sum(axis=1).reshape(b, p)
        good = ok & np.all(np.isfinite(xtvx), axis=(1, 2))
        xtvx_safe = np.where(good[:, None, None], xtvx, np.eye(p))
        chol_x, chol_ok = _cholesky(xtvx_safe)
        ok = good & chol_ok
        chol_x = np.where(ok[:, None, None], chol_x, np.eye(p))
        chol_inv = _inv(chol_x)
        C = np.swapaxes(chol_inv, -1, -2) @ chol_inv
        beta = (C @ xtvy[:, :, None])[:, :, 0]
        Bm = beta.reshape(b, t, q)[:, None]  # (b, 1, t, q)
        SyzBt = cells.Syz @ np.swapaxes(Bm, -1, -2)
        R = cells.Syy - SyzBt - np.swapaxes(SyzBt, -1, -2) + Bm @ cells.S @ np.swapaxes(Bm, -1, -2)
        quad = np.einsum("bcvw,bcvw->b", P, R)
        value = (cells.n * logdet_a).sum(axis=1) + quad
        if reml:
            value = value + 2.0 * np.log(np.diagonal(chol_x, axis1=1, axis2=2)).sum(axis=1)
            value = value + (cells.n_obs - p) * LOG_2PI
        else:
            value = value + cells.n_obs * LOG_2PI
        ok = ok & np.isfinite(value)
        value = np.where(ok, value, np.inf)
        out = _Eval(value=value, ok=ok, sigma=sigma, beta=beta, C=C)
        if order == 0:
            return out

        # gradient ------------------------------------------------------------------
        Ct = C.reshape(b, t, q, t, q).transpose(0, 1, 3, 2, 4).reshape(b, t * t, q * q)
        Hc = np.swapaxes(Ct @ np.swapaxes(cells.S.reshape(b, nc, q * q), 1, 2), 1, 2)
        Hc = Hc.reshape(b, nc, t, t)  # H_c = Σ_{i∈c} X_i C X_iᵀ
        Q = P @ Hc @ P
        U = P @ R @ P
        Mc = cells.n[:, :, None, None] * P - U
        if reml:
            Mc = Mc - Q
        M = Mc.sum(axis=1)
        M = 0.5 * (M + np.swapaxes(M, -1, -2))
        dL = par.dchol(L)  # (b, K, t, t)
        D = dL @ np.swapaxes(L, -1, -2)[:, None]
        D = D + np.swapaxes(D, -1, -2)  # ∂Σ/∂θ_j
        grad = np.einsum("bvw,bjvw->bj", M, D)
        out.grad = grad
        if order == 1:
            return out

        # Hessian ---------------------------------------------------------------------
        Dc = D[:, None]  # (b, 1, K, t, t)
        Pc = P[:, :, None]  # (b, nc, 1, t, t)
        PD = Pc @ Dc  # (b, nc, K, t, t)
        T1 = (cells.n[:, :, None, None] * _tr_pairs(PD, PD)).sum(axis=1)
        UD = U[:, :, None] @ Dc
        T4a = _tr_pairs(UD, PD).sum(axis=1)
        PDP = PD @ Pc  # P D_j P
        G = (
            np.swapaxes(PDP.reshape(b, nc, K * t * t), 1, 2) @ cells.S.reshape(b, nc, q * q)
        ).reshape(b, K, t, t, q, q)
        G = G.transpose(0, 1, 2, 4, 3, 5).reshape(b, K, p, p)  # G_j = Σ_c P D_j P ⊗ S_c
        CG = C[:, None] @ G
        Rz = cells.Syz - Bm @ cells.S  # Σ_{i∈c} r_i z_iᵀ
        a = (PDP @ Rz[:, :, None]).sum(axis=1).reshape(b, K, p)
        T4b = a @ C @ np.swapaxes(a, -1, -2)
        fisher = T1  # expected Hessian of −2ℓ: tr(P D_j P D_k)
        if reml:
            QD = Q[:, :, None] @ Dc
            T2 = _tr_pairs(QD, PD).sum(axis=1)
            fisher = fisher - T2 - np.swapaxes(T2, -1, -2) + _tr_pairs(CG, CG)
        hess = -fisher + 2.0 * (T4a - T4b)
        # tr(M ∂²Σ/∂θ_j∂θ_k) = 2 tr(M L_j L_kᵀ) (+ tr(M D_j) on the log-diagonal)
        ML = M[:, None] @ dL
        hess = hess + 2.0 * np.einsum("bjvw,bkvw->bjk", ML, dL)
        diag = np.arange(t)
        hess[:, diag, diag] += grad[:, :t]
        hess = 0.5 * (hess + np.swapaxes(hess, -1, -2))
        out.hess = hess
        out.fisher = 0.5 * (fisher + np.swapaxes(fisher, -1, -2))
        out.CG = CG
        finite = np.all(np.isfinite(hess), axis=(1, 2)) & np.all(np.isfinite(grad), axis=1)
        out.ok = out.ok & finite
        return out


# --------------------------------------------------------------------------- optimiser


def _starting_theta(
    Y0: np.ndarray, Z: np.ndarray, obs: np.ndarray, par: _Param
) -> np.ndarray:
    """Pairwise-complete covariance of per-visit OLS residuals, divided by n_vw − q.

    For complete data per-visit OLS is GLS for any Σ (identical regressors in every
    equation) and this is the REML estimate itself. Falls back to the diagonal when the
    pairwise matrix is not comfortably positive definite (heavy missingness).
    """
    q = Z.shape[2]
    t = par.t
    w = obs.astype(float)
    Sv = np.einsum("biv,bik,bil->bvkl", w, Z, Z)  # (B, t, q, q)
    Szy = np.einsum("biv,bik->bvk", w * Y0, Z)
    # tiny ridge: keeps empty visits of non-estimable trials (skipped later) solvable
    ridge = (1e-10 * np.trace(Sv, axis1=2, axis2=3) + 1e-300)[..., None, None] * np.eye(q)
    beta = np.linalg.solve(Sv + ridge, Szy[..., None])[..., 0]  # (B, t, q)
    resid = (Y0 - np.einsum("bik,bvk->biv", Z, beta)) * w
    cross = np.einsum("biv,biw->bvw", resid, resid)
    counts = np.einsum("biv,biw->bvw", w, w)
    cov = cross / np.maximum(counts - q, 1.0)
    var = np.diagonal(cov, axis1=1, axis2=2).copy()
    positive = var > 0
    n_pos = positive.sum(axis=1)
    scale = np.where(positive, var, 0.0).sum(axis=1) / np.maximum(n_pos, 1)
    scale = np.where(n_pos > 0, np.maximum(scale, 1e-300), 1.0)
    var = np.where(var > 1e-8 * scale[:, None], var, scale[:, None])
    d = np.arange(t)
    cov[:, d, d] = var
    eig = np.linalg.eigvalsh(cov)
    pd = eig[:, 0] > 1e-3 * eig[:, -1]
    diag = np.zeros_like(cov)
    diag[:, d, d] = var
    cov = np.where(pd[:, None, None], cov, diag)
    return par.theta_of(np.linalg.cholesky(cov))


@dataclass
class _Fit:
    theta: np.ndarray
    value: np.ndarray
    beta: np.ndarray
    C: np.ndarray
    hess: np.ndarray
    CG: np.ndarray
    sigma: np.ndarray
    converged: np.ndarray
    message: np.ndarray
    iterations: np.ndarray


def _line_search(
    cells: _Cells,
    idx: np.ndarray,
    theta: np.ndarray,
    step: np.ndarray,
    grad: np.ndarray,
    f0: np.ndarray,
    par: _Param,
    q: int,
    reml: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Armijo backtracking for each trial at once; returns new θ, −2ℓ and success flags.

    Steps are capped at |Δθ| ≤ 2 (a factor e² on a standard deviation) so that one
    iteration cannot jump into an overflow region.
    """
    biggest = np.max(np.abs(step), axis=1)
    step = step * np.minimum(1.0, 2.0 / np.maximum(biggest, 1e-300))[:, None]
    slope = np.einsum("bj,bj->b", grad, step)
    size = np.ones(idx.size)
    f_best = f0.copy()
    accepted = np.zeros(idx.size, dtype=bool)
    pending = np.arange(idx.size)
    for _ in range(40):
        trial_theta = theta[pending] + size[pending, None] * step[pending]
        f_new = _evaluate(cells.take(idx[pending]), trial_theta, par, q, reml, order=0).value
        slack = _SLACK * np.maximum(1.0, np.abs(f0[pending]))
        good = f_new <= f0[pending] + 1e-4 * size[pending] * slope[pending] + slack
        accepted[pending[good]] = True
        f_best[pending[good]] = f_new[good]
        pending = pending[~good]
        if pending.size == 0:
            break
        size[pending] *= 0.5
    new_theta = np.where(accepted[:, None], theta + size[:, None] * step, theta)
    return new_theta, f_best, accepted


def _newton(
    cells: _Cells, theta0: np.ndarray, par: _Param, q: int, reml: bool, max_iter: int
) -> _Fit:
    """Batched damped Newton; see the module docstring for the convergence rule.

    Where the observed Hessian is not positive definite (far from the optimum), two
    directions are tried and the one giving the lower −2ℓ after its line search is taken:
    Newton with |eigenvalues| (follows negative curvature out of saddle regions) and Fisher
    scoring (expected information, always positive definite; SAS PROC MIXED starts with
    it). Either alone stalls on some data sets; together they did not on 10,000 simulated
    trials of this design.
    """
    b = theta0.shape[0]
    K, t, p = par.K, par.t, par.t * q
    theta = theta0.copy()
    value = np.full(b, np.nan)
    beta = np.full((b, p), np.nan)
    C = np.full((b, p, p), np.nan)
    hess = np.full((b, K, K), np.nan)
    CG = np.full((b, K, p, p), np.nan)
    sigma = np.full((b, t, t), np.nan)
    converged = np.zeros(b, dtype=bool)
    message = np.full(b, "iteration limit reached", dtype=object)
    iterations = np.zeros(b, dtype=int)
    active = np.arange(b)
    log_scale = theta0[:, :t].mean(axis=1)

    def finish(idx: np.ndarray, ev: _Eval, sel: np.ndarray, conv: bool, msg: str) -> None:
        rows = idx[sel]
        value[rows] = ev.value[sel]
        beta[rows] = ev.beta[sel]  # type: ignore[index]
        C[rows] = ev.C[sel]  # type: ignore[index]
        sigma[rows] = ev.sigma[sel]  # type: ignore[index]
        if ev.hess is not None:
            hess[rows] = ev.hess[sel]
            CG[rows] = ev.CG[sel]  # type: ignore[index]
        converged[rows] = conv
        message[rows] = msg

    for it in range(max_iter + 1):
        if active.size == 0:
            break
        th = theta[active]
        ev = _evaluate(cells.take(active), th, par, q, reml, order=2)
        iterations[active] = it
        if np.any(~ev.ok):
            finish(active, ev, ~ev.ok, False, "likelihood not finite (singular covariance)")
        g, H, F = ev.grad, ev.hess, ev.fisher
        assert g is not None and H is not None and F is not None and ev.sigma is not None
        H_safe = np.where(ev.ok[:, None, None], H, np.eye(K))
        g_safe = np.where(ev.ok[:, None], g, 0.0)
        lam, vec = np.linalg.eigh(H_safe)
        pos_def = lam[:, 0] > 1e-12 * np.maximum(np.abs(lam[:, -1]), 1e-300)
        lam_abs = np.maximum(np.abs(lam), 1e-10 * np.abs(lam[:, -1:]) + 1e-300)
        proj = np.einsum("bkj,bk->bj", vec, g_safe)
        step = -np.einsum("bkj,bj->bk", vec, proj / lam_abs)
        decrement = np.where(pos_def, 0.5 * np.einsum("bj,bj->b", proj, proj / lam_abs), np.inf)
        done = ev.ok & pos_def & (decrement < DECREMENT_TOL)
        if np.any(done):
            finish(active, ev, done, True, "converged")
        # Σ heading to a singular matrix (or a log-variance beyond the single fit's ±20
        # bounds around the starting scale): no proper optimum, stop early
        with np.errstate(invalid="ignore"):
            eig_s = np.linalg.eigvalsh(np.where(ev.ok[:, None, None], ev.sigma, np.eye(t)))
        runaway = ev.ok & ~done & (
            ~(eig_s[:, 0] > 1e-10 * eig_s[:, -1])
            | np.any(np.abs(th[:, :t] - log_scale[active, None]) > 20.0, axis=1)
        )
        if np.any(runaway):
            finish(active, ev, runaway, False, "estimated covariance matrix is (nearly) singular")
        keep = ev.ok & ~done & ~runaway
        if it == max_iter:
            if np.any(keep):
                finish(active, ev, keep, False, "iteration limit reached")
            break
        if not np.any(keep):
            active = active[:0]
            break
        local = np.flatnonzero(keep)
        idx = active[keep]
        f0 = ev.value[keep]
        new_theta, f_new, accepted = _line_search(
            cells, idx, th[keep], step[keep], g_safe[keep], f0, par, q, reml
        )
        scoring = np.flatnonzero(~pos_def[keep])
        if scoring.size:
            lam_f, vec_f = np.linalg.eigh(F[local[scoring]])
            lam_f = np.maximum(lam_f, 1e-10 * np.abs(lam_f[:, -1:]) + 1e-300)
            gs = g_safe[local[scoring]]
            step_f = -np.einsum("bkj,bj->bk", vec_f, np.einsum("bkj,bk->bj", vec_f, gs) / lam_f)
            th_f, f_f, acc_f = _line_search(
                cells, idx[scoring], th[local[scoring]], step_f, gs, f0[scoring], par, q, reml
            )
            better = acc_f & (~accepted[scoring] | (f_f < f_new[scoring]))
            new_theta[scoring[better]] = th_f[better]
            accepted[scoring[better]] = True
        theta[idx[accepted]] = new_theta[accepted]
        failed = ~accepted
        if np.any(failed):
            # Near the optimum the objective cannot decrease beyond rounding: accept as the
            # single fit does (decrement < 1e-10 and a positive-definite Hessian).
            near = pos_def[keep] & (decrement[keep] < 1e-10)
            for sel, conv, msg in (
                (failed & near, True, "converged (rounding-limited)"),
                (failed & ~near, False, "line search failed"),
            ):
                if np.any(sel):
                    mask = np.zeros(active.size, dtype=bool)
                    mask[local[sel]] = True
                    finish(active, ev, mask, conv, msg)
        active = idx[accepted]

    # Σ̂ (nearly) singular or a log-variance at the single fit's bounds: not a proper optimum
    with np.errstate(invalid="ignore"):
        eig = np.linalg.eigvalsh(np.where(np.isfinite(sigma), sigma, 0.0))
        singular = ~(eig[:, 0] > 1e-10 * eig[:, -1])
        at_bound = np.any(np.abs(theta[:, :t] - log_scale[:, None]) >= 20.0 - 1e-6, axis=1)
    flag = converged & (singular | at_bound)
    converged[flag] = False
    message[flag] = "estimated covariance matrix is (nearly) singular"
    return _Fit(theta, value, beta, C, hess, CG, sigma, converged, message, iterations)


# --------------------------------------------------------------------------- entry point


def _estimability(
    cells: _Cells, cells_per_trial: np.ndarray, obs: np.ndarray, q: int, K: int
) -> tuple[np.ndarray, np.ndarray]:
    """Which trials identify the model, and why not (checks of ``fit_mmrm_arrays``)."""
    n_trials, _, t = obs.shape
    p = t * q
    reason = np.full(n_trials, "", dtype=object)
    n_subjects = obs.any(axis=2).sum(axis=1)
    n_obs = obs.sum(axis=(1, 2))
    # per visit, the observed subjects' covariates must have full column rank
    w = cells.mask.astype(float) * (cells.n > 0)[..., None]
    Sv = np.einsum("bcv,bckl->bvkl", w, cells.S)
    diag = np.sqrt(np.maximum(np.diagonal(Sv, axis1=2, axis2=3), 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = Sv / (diag[..., :, None] * diag[..., None, :])
    corr = np.where(np.isfinite(corr), corr, 0.0)
    eig = np.linalg.eigvalsh(corr)
    rank_ok = np.all(eig[..., 0] > 1e-10 * np.maximum(eig[..., -1], 1e-300), axis=1)
    rank_ok &= np.all(diag > 0, axis=(1, 2))
    pairs = np.einsum("biv,biw->bvw", obs.astype(float), obs.astype(float))
    pairs_ok = np.all(pairs > 0, axis=(1, 2))
    reason[~pairs_ok] = "a pair of visits is never observed together (covariance not estimable)"
    reason[~rank_ok] = "fixed effects not estimable: a visit has collinear or no observations"
    few = (n_obs - p < 1) | (n_obs < p + K)
    reason[few] = "too few observations for the fixed effects and covariance parameters"
    reason[n_subjects < 2] = "fewer than 2 subjects with observations"
    reason[cells_per_trial == 0] = "no observations"
    return reason == "", reason


def fit_mmrm_batch(
    Y: np.ndarray,
    X_subject: np.ndarray | None = None,
    *,
    method: Method = "reml",
    covariate_names: Sequence[str] | None = None,
    visit_labels: Sequence[str] | None = None,
    treatment: int | str = 0,
    max_iter: int = 50,
    chunk_size: int = 1000,
) -> BatchResult:
    """Fit the MMRM ``y_iv = z_iᵀβ_v + ε_iv`` (unstructured Σ) to every trial of a batch.

    Parameters
    ----------
    Y
        ``(n_trials, n_subjects, n_visits)`` responses, NaN = missing (e.g. change from
        baseline at weeks 13/26/39/52).
    X_subject
        ``(n_trials, n_subjects, p_s)`` subject-level covariates (e.g. arm indicator 0/1,
        baseline value); each gets one coefficient per visit, next to a visit intercept.
        A subject with a non-finite covariate is dropped (complete-case, as ``fit_mmrm``
        drops rows with missing values). ``None`` = intercepts only.
    method
        ``"reml"`` (default, the SAP's) or ``"ml"``.
    treatment
        Index or name of the covariate whose per-visit coefficient is the treatment
        effect (``BatchResult.effect``, ``BatchResult.test``).
    max_iter
        Newton iterations before a trial is flagged as not converged.
    chunk_size
        Trials are processed in chunks of this size (bounded memory, tens of MB at 1000;
        trials with similar numbers of missingness patterns go together, so that the
        padding of cells stays small).

    Returns per-trial β, SE, Satterthwaite df, −2 log-likelihood, Σ̂ and a ``converged``
    flag; see :class:`BatchResult`.
    """
    if method not in ("reml", "ml"):
        raise ValueError(f"method must be 'reml' or 'ml', not {method!r}")
    Y = np.asarray(Y, dtype=float)
    if Y.ndim != 3:
        raise ValueError(f"Y must be (n_trials, n_subjects, n_visits), got shape {Y.shape}")
    n_trials, n_subj, t = Y.shape
    if X_subject is None:
        X_subject = np.zeros((n_trials, n_subj, 0))
    X_subject = np.asarray(X_subject, dtype=float)
    if X_subject.ndim != 3 or X_subject.shape[:2] != (n_trials, n_subj):
        raise ValueError(
            f"X_subject must be (n_trials, n_subjects, p_s) = ({n_trials}, {n_subj}, p_s), "
            f"got shape {X_subject.shape}"
        )
    p_s = X_subject.shape[2]
    names = tuple(covariate_names) if covariate_names is not None else tuple(
        f"x{j}" for j in range(p_s)
    )
    if len(names) != p_s:
        raise ValueError(f"{len(names)} covariate names for {p_s} covariates")
    labels = tuple(visit_labels) if visit_labels is not None else tuple(
        f"V{j + 1}" for j in range(t)
    )
    if len(labels) != t:
        raise ValueError(f"{len(labels)} visit labels for {t} visits")
    if isinstance(treatment, str):
        if treatment not in names:
            raise ValueError(f"treatment {treatment!r} is not one of the covariates {names}")
        treatment_term = 1 + names.index(treatment)
    else:
        treatment_term = 1 + int(treatment) if p_s else 0
        if p_s and not 0 <= int(treatment) < p_s:
            raise ValueError(f"treatment index {treatment} out of range for {p_s} covariates")
    reml = method == "reml"
    q = 1 + p_s
    p = t * q
    par = _Param(t)
    K = par.K

    x_ok = np.all(np.isfinite(X_subject), axis=2)
    Z = np.concatenate([np.ones((n_trials, n_subj, 1)), np.where(x_ok[..., None], X_subject, 0.0)], axis=2)
    obs = np.isfinite(Y) & x_ok[..., None]
    Y0 = np.where(obs, Y, 0.0)

    # Work on a per-trial unit scale (y / s, s = geometric mean of the starting SDs) so
    # that the off-diagonal Cholesky entries are dimensionless like the log-diagonal ones;
    # results are mapped back exactly below.
    theta0_all = _starting_theta(Y0, Z, obs, par)
    log_s = theta0_all[:, :t].mean(axis=1)
    log_s = np.where(np.isfinite(log_s), log_s, 0.0)
    s = np.exp(log_s)
    theta0_all[:, :t] -= log_s[:, None]
    theta0_all[:, t:] /= s[:, None]
    Y0 = Y0 / s[:, None, None]

    cells_all, cells_per_trial = _build_cells(Y0, Z, obs)
    estimable, reason = _estimability(cells_all, cells_per_trial, obs, q, K)

    beta = np.full((n_trials, p), np.nan)
    se = np.full((n_trials, p), np.nan)
    df = np.full((n_trials, p), np.nan)
    m2ll = np.full(n_trials, np.nan)
    converged = np.zeros(n_trials, dtype=bool)
    message = np.where(estimable, "", reason).astype(object)
    iterations = np.zeros(n_trials, dtype=int)
    sigma = np.full((n_trials, t, t), np.nan)
    theta_out = np.full((n_trials, K), np.nan)

    idx_all = np.flatnonzero(estimable)
    if idx_all.size:
        theta0 = theta0_all[idx_all]
        # group trials with similar numbers of patterns so that padding stays small
        order = np.argsort(cells_per_trial[idx_all], kind="stable")
        chunks = [order[i : i + chunk_size] for i in range(0, order.size, chunk_size)]

        def run(chunk: np.ndarray) -> tuple[np.ndarray, _Fit]:
            rows = idx_all[chunk]
            nc = max(1, int(cells_per_trial[rows].max()))
            sub = cells_all.take(rows)
            sub = _Cells(
                sub.n[:, :nc], sub.mask[:, :nc], sub.S[:, :nc], sub.Syz[:, :nc],
                sub.Syy[:, :nc], sub.n_obs,
            )
            return rows, _newton(sub, theta0[chunk], par, q, reml, max_iter)

        results = [run(c) for c in chunks]

        for rows, fit in results:
            sc = s[rows]
            n_log_s2 = (obs[rows].sum(axis=(1, 2)) - (p if reml else 0)) * 2.0 * log_s[rows]
            beta[rows] = fit.beta * sc[:, None]
            m2ll[rows] = fit.value + n_log_s2
            converged[rows] = fit.converged
            message[rows] = fit.message
            iterations[rows] = fit.iterations
            sigma[rows] = fit.sigma * (sc * sc)[:, None, None]
            theta_out[rows] = np.concatenate(
                [fit.theta[:, :t] + log_s[rows, None], fit.theta[:, t:] * sc[:, None]], axis=1
            )
            var = np.diagonal(fit.C, axis1=1, axis2=2)
            with np.errstate(invalid="ignore", divide="ignore"):
                se[rows] = np.sqrt(np.maximum(var, 0.0)) * sc[:, None]
                # Satterthwaite: g_jm = (C G_j C)_mm, A = H⁻¹ of −ℓ = 2 H⁻¹ of −2ℓ
                g = np.einsum("bjmr,brm->bjm", fit.CG, fit.C)
                hess_ok = np.all(np.isfinite(fit.hess), axis=(1, 2))
                A = 2.0 * _inv(np.where(hess_ok[:, None, None], fit.hess, np.eye(K)))
                denom = np.einsum("bjm,bjk,bkm->bm", g, A, g)
                nu = np.where(denom > 0, 2.0 * var * var / denom, np.inf)
                nu = np.where(np.isfinite(denom) & hess_ok[:, None], nu, np.nan)
            df[rows] = nu

    n_subjects = obs.any(axis=2).sum(axis=1)
    n_obs = obs.sum(axis=(1, 2))
    return BatchResult(
        beta=beta.reshape(n_trials, t, q),
        se=se.reshape(n_trials, t, q),
        df=df.reshape(n_trials, t, q),
        minus_2_log_likelihood=m2ll,
        converged=converged,
        message=message,
        iterations=iterations,
        covariance=sigma,
        theta=theta_out,
        n_subjects=n_subjects,
        n_observations=n_obs,
        term_names=("(Intercept)", *names),
        visit_labels=labels,
        treatment_term=treatment_term,
        method=method,
    )
