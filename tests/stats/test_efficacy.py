"""Efficacy analyses (``ildtrial.stats.efficacy``): descriptive tables, change-from-baseline
MMRM, random-slope decline and the Wilcoxon test with deaths ranked worst.

Simulated data have known effects; the random-slope result is checked against statsmodels
``MixedLM`` fitted directly, and the rank imputation against ranks worked out by hand.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from ildtrial.stats.efficacy import (
    change_mmrm,
    descriptive_by_arm_visit,
    random_slope_decline,
    wilcoxon_deaths_worst,
)
from ildtrial.stats.mmrm import fit_mmrm

WEEKS = (13, 26, 39, 52)
TRUE_RATE = {"MSC": -100.0, "PBO": -200.0}  # mL/year


def simulate_bds(
    n_per_arm: int,
    seed: int,
    *,
    intercept_sd: float = 400.0,
    slope_sd: float = 60.0,
    noise_sd: float = 80.0,
) -> pd.DataFrame:
    """FVC (mL) BDS: linear decline at TRUE_RATE per arm with random intercepts and slopes.

    ``CHG = AVAL − BASE`` where BASE is the (noisy) week-0 value, so that the expected change
    at week w in arm a is ``TRUE_RATE[a] · w/52``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for arm, rate in TRUE_RATE.items():
        for i in range(n_per_arm):
            subject = f"{arm}-{i:03d}"
            b0 = rng.normal(2500.0, intercept_sd)
            b1 = rng.normal(0.0, slope_sd)
            base = b0 + rng.normal(0.0, noise_sd)
            rows.append(
                {
                    "USUBJID": subject,
                    "ARM": arm,
                    "PARAMCD": "FVC",
                    "AVISIT": "Baseline",
                    "AVISITN": 0,
                    "ABLFL": "Y",
                    "ADY": 1,
                    "TIME": 0.0,
                    "AVAL": base,
                    "BASE": base,
                    "CHG": math.nan,
                }
            )
            for week in WEEKS:
                t = week / 52.0
                aval = b0 + (rate + b1) * t + rng.normal(0.0, noise_sd)
                rows.append(
                    {
                        "USUBJID": subject,
                        "ARM": arm,
                        "PARAMCD": "FVC",
                        "AVISIT": f"Week {week}",
                        "AVISITN": week,
                        "ABLFL": "",
                        "ADY": 7 * week + 1,
                        "TIME": t,
                        "AVAL": aval,
                        "BASE": base,
                        "CHG": aval - base,
                    }
                )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- descriptive


def test_descriptive_statistics_by_hand() -> None:
    bds = pd.DataFrame(
        {
            "USUBJID": ["a", "b", "c", "d", "e", "f", "a", "e"],
            "ARM": ["MSC"] * 4 + ["PBO"] * 2 + ["MSC", "PBO"],
            "AVISIT": ["End of study"] * 6 + ["Week 13"] * 2,
            "AVISITN": [52] * 6 + [13] * 2,
            "CHG": [1.0, 2.0, 3.0, 4.0, -10.0, math.nan, 5.0, 7.0],
        }
    )
    table = descriptive_by_arm_visit(bds)
    # AVISITN orders "Week 13" before "End of study"
    assert list(table.index) == [
        ("MSC", "Week 13"),
        ("MSC", "End of study"),
        ("PBO", "Week 13"),
        ("PBO", "End of study"),
    ]
    row = table.loc[("MSC", "End of study")]
    assert row["n"] == 4
    assert row["mean"] == pytest.approx(2.5)
    assert row["sd"] == pytest.approx(math.sqrt(5 / 3))  # Σ(x − 2.5)² = 5, n − 1 = 3
    assert row["median"] == pytest.approx(2.5)
    # SAS PCTLDEF=5 / type 2: n·p = 1 and 3 are integers → average neighbours
    assert (row["q1"], row["q3"]) == pytest.approx((1.5, 3.5))
    assert (row["min"], row["max"]) == (1.0, 4.0)
    pbo = table.loc[("PBO", "End of study")]
    assert pbo["n"] == 1 and pbo["mean"] == -10.0 and math.isnan(pbo["sd"])


def test_descriptive_drops_visits_without_values_and_needs_one_parameter() -> None:
    bds = simulate_bds(3, seed=1)
    table = descriptive_by_arm_visit(bds, "CHG")
    assert "Baseline" not in table.index.get_level_values("AVISIT")
    assert list(table.loc["MSC"].index) == [f"Week {w}" for w in WEEKS]
    aval = descriptive_by_arm_visit(bds, "AVAL")
    assert aval.loc[("PBO", "Baseline"), "n"] == 3
    two = pd.concat([bds, bds.assign(PARAMCD="DLCOPP")])
    with pytest.raises(ValueError, match="several parameters"):
        descriptive_by_arm_visit(two)
    assert descriptive_by_arm_visit(two, paramcd="FVC").equals(table)


# --------------------------------------------------------------------------- MMRM


def test_change_mmrm_recovers_known_effect_and_wraps_fit_mmrm() -> None:
    bds = simulate_bds(60, seed=3)
    res = change_mmrm(bds, "FVC")
    assert res.estimable, res.reason
    assert res.status == "estimable"
    assert res.visits == tuple(f"Week {w}" for w in WEEKS)
    assert res.n_subjects == 120 and res.n_observations == 480
    for week in WEEKS:
        diff = res.differences[f"Week {week}"]["MSC - PBO"]
        true = (TRUE_RATE["MSC"] - TRUE_RATE["PBO"]) * week / 52
        assert abs(diff.estimate - true) < 3 * diff.se
        assert diff.ci_lower < true < diff.ci_upper
    wk52 = res.differences["Week 52"]["MSC - PBO"]
    assert wk52.p_value < 0.05
    # same numbers as our MMRM called directly with the SAP model
    post = bds.loc[bds["ABLFL"] != "Y"]
    direct = fit_mmrm(
        post,
        response="CHG",
        subject="USUBJID",
        visit="AVISIT",
        group="ARM",
        visit_interactions=["BASE"],
        reference={"ARM": "PBO", "AVISIT": "Week 13"},
    )
    for week in WEEKS:
        v = f"Week {week}"
        for arm in ("MSC", "PBO"):
            assert res.lsmeans[v][arm].estimate == pytest.approx(
                direct.lsmeans()[v][arm].estimate, rel=1e-9
            )
            assert res.lsmeans[v][arm].se == pytest.approx(direct.lsmeans()[v][arm].se, rel=1e-9)
        assert res.differences[v]["MSC - PBO"].df == pytest.approx(
            direct.group_differences()[v]["MSC - PBO"].df, rel=1e-9
        )
    table = res.table()
    assert len(table) == 4 * 3
    assert res.to_dict()["differences"]["Week 52"]["MSC - PBO"]["p_value"] == pytest.approx(
        wk52.p_value
    )


def test_change_mmrm_visit_subset() -> None:
    res = change_mmrm(simulate_bds(30, seed=5), "FVC", visits=["Week 26", "Week 52"])
    assert res.estimable and res.visits == ("Week 26", "Week 52")
    assert set(res.lsmeans) == {"Week 26", "Week 52"}


def test_change_mmrm_not_estimable_paths_do_not_raise() -> None:
    bds = simulate_bds(3, seed=7)
    one_msc = bds.loc[~bds["USUBJID"].isin(["MSC-001", "MSC-002"])]
    res = change_mmrm(one_msc, "FVC")
    assert not res.estimable
    assert res.status.startswith("not estimable: too few participants")
    assert "arm MSC has 1" in res.reason
    assert res.lsmeans == {} and res.to_dict()["estimable"] is False

    missing = change_mmrm(bds, "DLCOPP")
    assert missing.status == "not estimable: no rows for PARAMCD = 'DLCOPP'"

    # 2 per arm × 4 visits = 16 observations for 12 fixed effects + 10 covariance parameters
    tiny = bds.loc[bds["USUBJID"].isin(["MSC-000", "MSC-001", "PBO-000", "PBO-001"])]
    res = change_mmrm(tiny, "FVC")
    assert not res.estimable
    assert "too few observations" in res.reason

    no_change = bds.assign(CHG=math.nan)
    assert not change_mmrm(no_change, "FVC").estimable


# --------------------------------------------------------------------------- random slopes


def _direct_mixedlm(bds: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smf.mixedlm(
            "AVAL ~ TIME * C(ARM, Treatment('PBO'))", bds, groups=bds["USUBJID"], re_formula="~TIME"
        )
        return model.fit(reml=True)


def test_random_slope_matches_statsmodels_and_recovers_simulated_rates() -> None:
    bds = simulate_bds(100, seed=11)
    res = random_slope_decline(bds)
    assert res.estimable and res.converged, res.warnings
    assert res.n_subjects == 200 and res.n_observations == 1000

    direct = _direct_mixedlm(bds)
    names = list(direct.fe_params.index)
    inter = "TIME:C(ARM, Treatment('PBO'))[T.MSC]"
    cov = direct.cov_params().loc[names, names]
    pbo_rate = direct.fe_params["TIME"]
    msc_rate = direct.fe_params["TIME"] + direct.fe_params[inter]
    msc_var = cov.loc["TIME", "TIME"] + cov.loc[inter, inter] + 2 * cov.loc["TIME", inter]
    assert res.rates["PBO"].estimate == pytest.approx(pbo_rate, rel=1e-6)
    assert res.rates["PBO"].se == pytest.approx(direct.bse_fe["TIME"], rel=1e-5)
    assert res.rates["MSC"].estimate == pytest.approx(msc_rate, rel=1e-6)
    assert res.rates["MSC"].se == pytest.approx(math.sqrt(msc_var), rel=1e-5)
    diff = res.differences["MSC - PBO"]
    assert diff.estimate == pytest.approx(direct.fe_params[inter], rel=1e-6)
    assert diff.se == pytest.approx(direct.bse_fe[inter], rel=1e-5)
    assert diff.p_value == pytest.approx(direct.pvalues[inter], rel=1e-4)
    assert res.residual_variance == pytest.approx(direct.scale, rel=1e-5)

    # recovery of the simulated rates (−100 vs −200 mL/year)
    for arm, rate in TRUE_RATE.items():
        est = res.rates[arm]
        assert abs(est.estimate - rate) < 3 * est.se
        assert est.ci_lower < rate < est.ci_upper
    assert abs(diff.estimate - 100.0) < 3 * diff.se
    assert diff.ci_lower < 100.0 < diff.ci_upper
    q = stats.norm.ppf(0.975)
    assert diff.ci_upper - diff.ci_lower == pytest.approx(2 * q * diff.se)
    assert res.random_effects_cov is not None
    assert math.sqrt(res.random_effects_cov[1][1]) == pytest.approx(60.0, rel=0.5)


def test_random_slope_units_days_and_litres() -> None:
    bds = simulate_bds(20, seed=13)
    ref = random_slope_decline(bds)
    litres = bds.assign(AVAL=bds["AVAL"] / 1000.0)
    res = random_slope_decline(litres, time="ADY", time_unit="days", scale=1000.0)
    # ADY = 7w + 1 → TIME' = (7w + 1)/365.25, a near-identical time axis: rates agree closely
    assert res.rates["PBO"].estimate == pytest.approx(ref.rates["PBO"].estimate, rel=0.05)
    assert res.rate_unit == "mL/year"


def test_random_slope_not_estimable_paths() -> None:
    bds = simulate_bds(3, seed=17)
    one = bds.loc[~bds["USUBJID"].isin(["PBO-001", "PBO-002"])]
    res = random_slope_decline(one)
    assert not res.estimable
    assert res.status.startswith("not estimable: arm PBO has 1 participant")
    assert res.rates == {} and res.to_dict()["estimable"] is False
    baseline_only = bds.loc[bds["ABLFL"] == "Y"]
    assert "two different times" in random_slope_decline(baseline_only).reason


def test_random_slope_reports_statsmodels_warnings_and_non_convergence(monkeypatch) -> None:
    from statsmodels.regression.mixed_linear_model import MixedLM
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    original = MixedLM.fit

    def failing_fit(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        message = "The MLE may be on the boundary of the parameter space."
        warnings.warn(message, ConvergenceWarning, stacklevel=2)
        warnings.warn(message, ConvergenceWarning, stacklevel=2)
        result.converged = False
        return result

    monkeypatch.setattr(MixedLM, "fit", failing_fit)
    res = random_slope_decline(simulate_bds(10, seed=23))
    assert res.estimable and not res.converged
    assert res.warnings == (
        "ConvergenceWarning: The MLE may be on the boundary of the parameter space.",
    )  # deduplicated
    assert res.status.startswith("not converged")
    assert res.to_dict()["warnings"] == list(res.warnings)


def test_random_slope_boundary_fit_is_reported() -> None:
    # no random slope in the data: the slope variance sits near its boundary and statsmodels
    # retries optimisers; whatever happens, the result says so instead of raising
    res = random_slope_decline(simulate_bds(10, seed=1, slope_sd=0.0))
    assert res.estimable
    assert res.status in {
        "converged",
        "converged with warnings",
        "not converged: the estimates are unreliable (see warnings)",
    }
    assert (res.status == "converged") == (res.converged and not res.warnings)


# --------------------------------------------------------------------------- Wilcoxon, deaths worst


@pytest.fixture
def small_trial() -> tuple[pd.DataFrame, dict[str, float]]:
    """Change from baseline at weeks 13 (day 92) and 26 (day 183); None = not measured.

    A2 died on day 150 after its week-13 visit; B3 on day 120; A3 and B2 on day 60. A4 is
    alive but missed week 13.
    """
    values = {
        "A1": ("MSC", [10.0, 5.0]),
        "A2": ("MSC", [-20.0, None]),
        "A3": ("MSC", [None, None]),
        "A4": ("MSC", [None, 8.0]),
        "B1": ("PBO", [0.0, -30.0]),
        "B2": ("PBO", [None, None]),
        "B3": ("PBO", [-5.0, None]),
    }
    rows = []
    for subject, (arm, chg) in values.items():
        rows.append(
            {
                "USUBJID": subject,
                "ARM": arm,
                "PARAMCD": "FVC",
                "AVISIT": "Baseline",
                "AVISITN": 0,
                "ABLFL": "Y",
                "ADY": 1,
                "CHG": math.nan,
            }
        )
        for week, x in zip((13, 26), chg, strict=True):
            rows.append(
                {
                    "USUBJID": subject,
                    "ARM": arm,
                    "PARAMCD": "FVC",
                    "AVISIT": f"Week {week}",
                    "AVISITN": week,
                    "ABLFL": "",
                    "ADY": 7 * week + 1,
                    "CHG": math.nan if x is None else x,
                }
            )
    deaths = {"A2": 150.0, "A3": 60.0, "B2": 60.0, "B3": 120.0}
    return pd.DataFrame(rows), deaths


def test_wilcoxon_deaths_worst_ranks_by_hand(small_trial) -> None:
    bds, deaths = small_trial
    res = wilcoxon_deaths_worst(bds, deaths, visit_days={"Week 13": 92, "Week 26": 183})
    ranks = res.ranks.set_index(["visit", "USUBJID"])
    # Week 13: observed A1 10, A2 −20, B1 0, B3 −5; A3 and B2 dead by day 92 (same day)
    # → both min − 1 = −21; A4 alive and missing → excluded.
    wk13 = {"A3": 1.5, "B2": 1.5, "A2": 3.0, "B3": 4.0, "B1": 5.0, "A1": 6.0}
    assert {s: ranks.loc[("Week 13", s), "rank"] for s in wk13} == wk13
    assert ranks.loc[("Week 13", "A3"), "value"] == -21.0
    assert ("Week 13", "A4") not in ranks.index
    # Week 26: observed A1 5, A4 8, B1 −30; dead A2 (day 150), B3 (120), A3 and B2 (60):
    # latest death −31, then −32, the two earliest −33.
    wk26 = {"A3": 1.5, "B2": 1.5, "B3": 3.0, "A2": 4.0, "B1": 5.0, "A1": 6.0, "A4": 7.0}
    assert {s: ranks.loc[("Week 26", s), "rank"] for s in wk26} == wk26
    assert [ranks.loc[("Week 26", s), "value"] for s in ("A2", "B3", "A3", "B2")] == [
        -31,
        -32,
        -33,
        -33,
    ]

    v13, v26 = res.visit("Week 13"), res.visit("Week 26")
    assert v13.n == {"MSC": 3, "PBO": 3} and v13.n_deaths_imputed == {"MSC": 1, "PBO": 1}
    assert v13.rank_sum == {"MSC": 10.5, "PBO": 10.5}
    assert v13.u_statistic == 4.5  # R1 − n1(n1 + 1)/2 = 10.5 − 6
    assert v26.n == {"MSC": 4, "PBO": 3} and v26.n_deaths_imputed == {"MSC": 2, "PBO": 2}
    assert v26.rank_sum == {"MSC": 18.5, "PBO": 9.5}
    assert v26.u_statistic == 8.5  # 18.5 − 10
    assert v26.mean_rank["MSC"] == pytest.approx(18.5 / 4)
    ref = stats.mannwhitneyu([5, 8, -31, -33], [-30, -32, -33], alternative="two-sided")
    assert v26.p_value == pytest.approx(ref.pvalue)
    assert v26.method == "asymptotic"  # ties among the deaths
    assert "min(observed) - k" in res.rule
    assert len(res.table()) == 2


def test_wilcoxon_defaults_mirror_and_deaths_frame(small_trial) -> None:
    bds, deaths = small_trial
    ref = wilcoxon_deaths_worst(bds, deaths, visit_days={"Week 13": 92, "Week 26": 183})
    # target days from the median ADY of the observed rows (92 and 183 here)
    by_ady = wilcoxon_deaths_worst(bds, deaths)
    assert [v.target_day for v in by_ady.visits] == [92.0, 183.0]
    assert by_ady.ranks["rank"].tolist() == ref.ranks["rank"].tolist()
    # lower-is-better mirror: negate values → identical ranks and p-values
    mirrored = wilcoxon_deaths_worst(bds.assign(CHG=-bds["CHG"]), deaths, higher_is_better=False)
    assert mirrored.ranks["rank"].tolist() == ref.ranks["rank"].tolist()
    assert [v.p_value for v in mirrored.visits] == pytest.approx([v.p_value for v in ref.visits])
    # a death with no BDS row, arm from the deaths frame: the earliest death ranks alone last
    frame = pd.DataFrame(
        {
            "USUBJID": [*deaths, "B9"],
            "DTHDY": [*deaths.values(), 10.0],
            "ARM": ["MSC", "MSC", "PBO", "PBO", "PBO"],
        }
    )
    res = wilcoxon_deaths_worst(bds, frame)
    r13 = res.ranks.loc[res.ranks["visit"] == "Week 13"].set_index("USUBJID")
    assert r13.loc["B9", "rank"] == 1.0 and r13.loc["B9", "value"] == -22.0
    assert r13.loc["A3", "rank"] == 2.5 and r13.loc["B2", "rank"] == 2.5
    with pytest.raises(ValueError, match="no row in the BDS"):
        wilcoxon_deaths_worst(bds, {**deaths, "Z1": 5.0})


def test_wilcoxon_exact_when_no_ties() -> None:
    rows = [
        {"USUBJID": f"{arm}{i}", "ARM": arm, "AVISIT": "Week 13", "ADY": 92, "CHG": float(x)}
        for arm, xs in (("MSC", [5, 7, 9]), ("PBO", [1, 2, 3, 4]))
        for i, x in enumerate(xs)
    ]
    res = wilcoxon_deaths_worst(pd.DataFrame(rows), {})
    v = res.visit("Week 13")
    assert v.method == "exact"
    assert v.u_statistic == 12.0  # every MSC value above every PBO value
    assert v.p_value == pytest.approx(2 / 35)  # 2 of C(7, 3) = 35 arrangements as extreme
