"""Benchmark: 10,000 simulated 20-patient trials, batched MMRM vs a loop of ``fit_mmrm``.

Run: ``.venv/bin/python bench/bench_design.py [--trials 10000] [--naive 200] [--seed 1]``

Simulates ``--trials`` trials of the NCT02594839 design (10 per arm, FVC, the packaged
parameters: deaths, withdrawals, missed visits) with ``ildtrial.simulate.design``, then

1. analyses all of them with ``ildtrial.stats.mmrm_batch.fit_mmrm_batch`` (timed);
2. analyses the first ``--naive`` of them one by one with ``ildtrial.stats.mmrm.fit_mmrm``
   on a long data frame, as a user would without the batch engine (timed, extrapolated
   to ``--trials``);
3. checks that both give the same week-52 treatment difference, SE and df on the subset.

Prints the simulation time, trials/second for both analyses, their ratio, the number of
non-converged fits and the largest batch-vs-single discrepancy.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd

from ildtrial.simulate.design import analyse_efficacy, simulate_trials
from ildtrial.simulate.patients import default_parameters, protocol_schedule
from ildtrial.stats.mmrm import MMRMConvergenceWarning, fit_mmrm


def _long_frame(change: np.ndarray, arm: np.ndarray, base: np.ndarray, labels: tuple[str, ...]) -> pd.DataFrame:
    n, t = change.shape
    frame = pd.DataFrame(
        {
            "USUBJID": np.repeat([f"S{i:02d}" for i in range(n)], t),
            "AVISIT": np.tile(labels, n),
            "ARM": np.repeat(np.where(arm > 0, "MSC", "PBO"), t),
            "BASE": np.repeat(base, t),
            "CHG": change.reshape(-1),
        }
    )
    return frame.dropna(subset=["CHG"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--naive", type=int, default=200)
    parser.add_argument("--per-arm", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    params = default_parameters()
    schedule = protocol_schedule()
    print(f"cores available: {os.cpu_count()}; numpy {np.__version__}")

    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    trials = simulate_trials(args.trials, args.per_arm, rng, params, endpoint="FVC", schedule=schedule)
    t_sim = time.perf_counter() - t0
    print(f"simulated {args.trials} trials of {2 * args.per_arm} participants in {t_sim:.2f} s")

    t0 = time.perf_counter()
    fit = analyse_efficacy(trials)
    t_batch = time.perf_counter() - t0
    test = fit.test(visit=-1)
    print(
        f"batched MMRM:  {args.trials} trials in {t_batch:.2f} s = "
        f"{args.trials / t_batch:,.0f} trials/s ({1000 * t_batch / args.trials:.2f} ms/trial); "
        f"not converged: {int((~fit.converged).sum())}"
    )

    k = min(args.naive, args.trials)
    est = np.full(k, np.nan)
    se = np.full(k, np.nan)
    df = np.full(k, np.nan)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MMRMConvergenceWarning)
        for i in range(k):
            data = _long_frame(trials.change[i], trials.arm[i], trials.baseline[i], trials.visit_labels)
            res = fit_mmrm(
                data, response="CHG", subject="USUBJID", visit="AVISIT", group="ARM",
                covariates=["BASE"], visit_interactions=["BASE"],
                reference={"ARM": "PBO", "AVISIT": trials.visit_labels[0]}, strict=False,
            )
            if res.converged:
                e = res.group_differences()[trials.visit_labels[-1]]["MSC - PBO"]
                est[i], se[i], df[i] = e.estimate, e.se, e.df
    t_naive = time.perf_counter() - t0
    rate_naive = k / t_naive
    print(
        f"loop of fit_mmrm: {k} trials in {t_naive:.2f} s = {rate_naive:,.1f} trials/s "
        f"({1000 * t_naive / k:.1f} ms/trial); extrapolated to {args.trials}: "
        f"{args.trials / rate_naive:.0f} s"
    )
    print(f"speed-up (batched / loop): {(args.trials / t_batch) / rate_naive:,.0f}x")

    both = fit.converged[:k] & np.isfinite(est)
    rel = lambda a, b: np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12))  # noqa: E731
    print(
        f"agreement on {int(both.sum())} trials: max rel. diff estimate "
        f"{rel(test.estimate[:k][both], est[both]):.1e}, SE {rel(test.se[:k][both], se[both]):.1e}, "
        f"max abs. diff df {np.max(np.abs(test.df[:k][both] - df[both])):.1e}"
    )


if __name__ == "__main__":
    main()
