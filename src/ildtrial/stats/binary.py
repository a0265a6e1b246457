"""Exact and score methods for proportions, 2 × 2 tables and event rates.

Pure numpy/scipy; no Django. These are the building blocks of the primary (safety)
analysis of the statistical analysis plan (``/work/shared/domain/statistics.md``):

* :func:`clopper_pearson` — exact CI of one proportion (Clopper & Pearson 1934);
* :func:`wilson_score` — score CI of one proportion (Wilson 1927), used by
* :func:`newcombe_difference` — hybrid score CI of a difference of two independent
  proportions (Newcombe 1998, method 10);
* :func:`fisher_exact_two_sided` — Fisher's exact test of a 2 × 2 table with odds ratios;
* :func:`exact_poisson_rate` — event rate with the exact (Garwood 1936) CI;
* :func:`exposure_adjusted_incidence` — participants with ≥ 1 event per participant-year
  at risk, time at risk censored at the first event, with the exact Poisson CI.

Every result is a small frozen dataclass with ``to_dict()`` (JSON-ready: non-finite
numbers become ``None``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats
from scipy.stats.contingency import odds_ratio as _odds_ratio

__all__ = [
    "DifferenceCI",
    "ExposureAdjustedIncidence",
    "FisherExactResult",
    "ProportionCI",
    "RateCI",
    "clopper_pearson",
    "exact_poisson_rate",
    "exposure_adjusted_incidence",
    "fisher_exact_two_sided",
    "newcombe_difference",
    "wilson_score",
]

DAYS_PER_YEAR = 365.25


def _json(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _jsonify(obj: object) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in asdict(obj).items():  # type: ignore[call-overload]
        out[key] = _json(value) if isinstance(value, float) else value
    return out


def _check_level(level: float) -> float:
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), not {level!r}")
    return level


def _check_count(x: int, n: int, what: str = "x") -> tuple[int, int]:
    if int(x) != x or int(n) != n:
        raise ValueError(f"{what} and n must be integers, got {x!r} and {n!r}")
    x, n = int(x), int(n)
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if not 0 <= x <= n:
        raise ValueError(f"{what} must be between 0 and n = {n}, got {x}")
    return x, n


# --------------------------------------------------------------------------- one proportion


@dataclass(frozen=True)
class ProportionCI:
    """A proportion ``x/n`` with a two-sided confidence interval."""

    x: int
    n: int
    estimate: float
    lower: float
    upper: float
    level: float
    method: str

    @property
    def percent(self) -> float:
        return 100.0 * self.estimate

    def to_dict(self) -> dict[str, object]:
        return _jsonify(self)


def clopper_pearson(x: int, n: int, level: float = 0.95) -> ProportionCI:
    """Exact (Clopper–Pearson 1934) confidence interval for a binomial proportion.

    With ``α = 1 − level`` the limits are quantiles of beta distributions::

        lower = B(α/2; x, n − x + 1)        (0 when x = 0)
        upper = B(1 − α/2; x + 1, n − x)    (1 when x = n)

    i.e. the values of p at which ``P(X ≥ x) = α/2`` and ``P(X ≤ x) = α/2``.
    Example: 0/10 → (0, 0.3085); 5/10 → (0.1871, 0.8129); 10/10 → (0.6915, 1).
    """
    x, n = _check_count(x, n)
    level = _check_level(level)
    alpha = 1.0 - level
    lower = 0.0 if x == 0 else float(stats.beta.ppf(alpha / 2.0, x, n - x + 1))
    upper = 1.0 if x == n else float(stats.beta.ppf(1.0 - alpha / 2.0, x + 1, n - x))
    return ProportionCI(x, n, x / n, lower, upper, level, "Clopper-Pearson exact")


def wilson_score(x: int, n: int, level: float = 0.95) -> ProportionCI:
    """Wilson (1927) score interval (Newcombe 1998a, method 3), no continuity correction.

    With ``p̂ = x/n`` and ``z = Φ⁻¹(1 − α/2)``::

        (2np̂ + z² ∓ z √(z² + 4np̂(1 − p̂))) / (2(n + z²))

    The lower limit is exactly 0 when x = 0 and the upper exactly 1 when x = n.
    """
    x, n = _check_count(x, n)
    level = _check_level(level)
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    p = x / n
    centre = 2.0 * n * p + z * z
    half = z * math.sqrt(z * z + 4.0 * n * p * (1.0 - p))
    denom = 2.0 * (n + z * z)
    lower = 0.0 if x == 0 else max(0.0, (centre - half) / denom)
    upper = 1.0 if x == n else min(1.0, (centre + half) / denom)
    return ProportionCI(x, n, p, lower, upper, level, "Wilson score")


# --------------------------------------------------------------------------- two proportions


@dataclass(frozen=True)
class DifferenceCI:
    """Difference of two independent proportions ``p1 − p2`` with a confidence interval."""

    x1: int
    n1: int
    x2: int
    n2: int
    p1: float
    p2: float
    estimate: float
    lower: float
    upper: float
    level: float
    method: str

    def to_dict(self) -> dict[str, object]:
        return _jsonify(self)


def newcombe_difference(x1: int, n1: int, x2: int, n2: int, level: float = 0.95) -> DifferenceCI:
    """Newcombe's hybrid score interval for ``p1 − p2`` (Newcombe 1998, Stat Med 17:873, method 10).

    With Wilson score limits ``(l1, u1)`` for ``p1 = x1/n1`` and ``(l2, u2)`` for
    ``p2 = x2/n2`` (:func:`wilson_score`, same level) and ``d = p1 − p2``::

        lower = d − √((p1 − l1)² + (u2 − p2)²)
        upper = d + √((u1 − p1)² + (p2 − l2)²)

    The limits never leave [−1, 1]. Worked examples of the paper (Table II, method 10):
    56/70 − 48/80 → 0.0524, 0.3339; 9/10 − 3/10 → 0.1705, 0.8090; 6/7 − 2/7 →
    0.0582, 0.8062; 5/56 − 0/29 → −0.0381, 0.1926; 0/10 − 0/20 → −0.1611, 0.2775.
    """
    level = _check_level(level)
    w1 = wilson_score(x1, n1, level)
    w2 = wilson_score(x2, n2, level)
    p1, p2 = w1.estimate, w2.estimate
    d = p1 - p2
    lower = d - math.sqrt((p1 - w1.lower) ** 2 + (w2.upper - p2) ** 2)
    upper = d + math.sqrt((w1.upper - p1) ** 2 + (p2 - w2.lower) ** 2)
    return DifferenceCI(
        w1.x,
        w1.n,
        w2.x,
        w2.n,
        p1,
        p2,
        d,
        max(-1.0, lower),
        min(1.0, upper),
        level,
        "Newcombe hybrid score (method 10)",
    )


@dataclass(frozen=True)
class FisherExactResult:
    """Fisher's exact test of the table ``[[a, b], [c, d]]`` (rows = groups, a and c = events).

    ``sample_odds_ratio`` is ``ad/bc`` (what :func:`scipy.stats.fisher_exact` returns; inf or
    nan when a cell is 0). ``conditional_odds_ratio`` is the conditional maximum-likelihood
    estimate (the one R's ``fisher.test`` reports), with its exact conditional CI
    (:func:`scipy.stats.contingency.odds_ratio`, ``kind="conditional"``).
    """

    a: int
    b: int
    c: int
    d: int
    p_value: float
    sample_odds_ratio: float
    conditional_odds_ratio: float
    or_lower: float
    or_upper: float
    level: float

    def to_dict(self) -> dict[str, object]:
        return _jsonify(self)


def fisher_exact_two_sided(
    a: int, b: int, c: int, d: int, level: float = 0.95
) -> FisherExactResult:
    """Two-sided Fisher exact test of ``[[a, b], [c, d]]`` (scipy).

    Conditioning on both margins, ``a`` is hypergeometric; the two-sided p-value is the sum
    of the probabilities of all tables with the same margins that are no more probable than
    the observed one (scipy's definition, also R's ``fisher.test``). Example (Fisher's tea
    tasting, ``[[3, 1], [1, 3]]``): p = 0.4857.

    A table with an empty row or column carries no information: p = 1 and the odds ratios
    and their limits are nan.
    """
    cells = [a, b, c, d]
    if any(int(v) != v or v < 0 for v in cells):
        raise ValueError(f"cell counts must be non-negative integers, got {cells}")
    a, b, c, d = (int(v) for v in cells)
    level = _check_level(level)
    table = np.array([[a, b], [c, d]])
    with np.errstate(divide="ignore", invalid="ignore"):
        res = stats.fisher_exact(table, alternative="two-sided")
    p_value = min(1.0, float(res.pvalue))
    sample_or = float(res.statistic)
    if np.any(table.sum(axis=0) == 0) or np.any(table.sum(axis=1) == 0):
        cond, lo, hi = math.nan, math.nan, math.nan
    else:
        ores = _odds_ratio(table, kind="conditional")
        ci = ores.confidence_interval(confidence_level=level)
        cond, lo, hi = float(ores.statistic), float(ci.low), float(ci.high)
    return FisherExactResult(a, b, c, d, p_value, sample_or, cond, lo, hi, level)


# --------------------------------------------------------------------------- rates


@dataclass(frozen=True)
class RateCI:
    """Events per unit of exposure (times ``per``) with the exact Poisson CI."""

    events: int
    exposure: float
    rate: float
    lower: float
    upper: float
    level: float
    per: float = 1.0

    def to_dict(self) -> dict[str, object]:
        return _jsonify(self)


def exact_poisson_rate(
    events: int, exposure: float, level: float = 0.95, per: float = 1.0
) -> RateCI:
    """Rate ``events / exposure`` with the exact (Garwood 1936) chi-square based CI.

    With ``α = 1 − level`` and ``χ²_q(k)`` the q-quantile of a chi-square with k df::

        lower = χ²_{α/2}(2x) / (2T)          (0 when x = 0)
        upper = χ²_{1−α/2}(2x + 2) / (2T)

    (the Poisson means at which ``P(X ≥ x) = α/2`` and ``P(X ≤ x) = α/2``), multiplied by
    ``per`` (e.g. 100 for a rate per 100 participant-years). Example, T = 10 years:
    0 events → (0, 0.3689)/yr; 5 events → (0.1623, 1.1668)/yr.
    """
    if int(events) != events or events < 0:
        raise ValueError(f"events must be a non-negative integer, got {events!r}")
    events = int(events)
    exposure = float(exposure)
    if not (math.isfinite(exposure) and exposure > 0.0):
        raise ValueError(f"exposure must be positive and finite, got {exposure!r}")
    level = _check_level(level)
    alpha = 1.0 - level
    lower = 0.0 if events == 0 else float(stats.chi2.ppf(alpha / 2.0, 2 * events)) / 2.0
    upper = float(stats.chi2.ppf(1.0 - alpha / 2.0, 2 * events + 2)) / 2.0
    scale = float(per) / exposure
    return RateCI(events, exposure, events * scale, lower * scale, upper * scale, level, float(per))


@dataclass(frozen=True)
class ExposureAdjustedIncidence:
    """Participants with ≥ 1 event per participant-year at risk (censored at first event)."""

    n_participants: int
    n_with_event: int
    participant_years: float
    rate: float
    lower: float
    upper: float
    level: float
    per: float = 1.0

    def to_dict(self) -> dict[str, object]:
        return _jsonify(self)


def exposure_adjusted_incidence(
    first_event_times: Sequence[float | None],
    follow_up: Sequence[float],
    *,
    level: float = 0.95,
    units_per_year: float = DAYS_PER_YEAR,
    per: float = 1.0,
) -> ExposureAdjustedIncidence:
    """Exposure-adjusted incidence rate (EAIR) with the exact Poisson CI.

    One entry per participant: ``first_event_times[i]`` is the time of the first event
    (``None``/NaN if none) and ``follow_up[i]`` the time at risk without an event, both
    measured from the start of the risk period in the same unit (days by default,
    ``units_per_year = 365.25``; pass 1.0 for years). Time at risk is censored at the first
    event::

        T_i  = first_event_time_i  if the participant had an event, else follow_up_i
        EAIR = (participants with ≥ 1 event) / (Σ T_i / units_per_year)

    with the CI of :func:`exact_poisson_rate` (the count of participants with an event is
    treated as Poisson with mean rate × participant-years). With study days (day 1 = day of
    first infusion) an event on day d gives d days at risk and follow-up is the number of
    days observed.

    Raises ``ValueError`` for negative times, an event after the end of follow-up, or
    zero total time at risk.
    """
    events_in = list(first_event_times)
    fup = np.asarray(list(follow_up), dtype=float)
    if len(events_in) != fup.size:
        raise ValueError(
            f"first_event_times ({len(events_in)}) and follow_up ({fup.size}) need one entry per participant"
        )
    if fup.size == 0:
        raise ValueError("no participants")
    times = np.array([math.nan if t is None else float(t) for t in events_in], dtype=float)
    if not np.all(np.isfinite(fup)) or np.any(fup < 0):
        raise ValueError("follow_up must be finite and non-negative for every participant")
    has_event = np.isfinite(times)
    if np.any(times[has_event] < 0):
        raise ValueError("first event times must be non-negative")
    late = has_event & (times > fup)
    if np.any(late):
        i = int(np.flatnonzero(late)[0])
        raise ValueError(
            f"participant #{i}: first event at {times[i]:g} is after the end of follow-up "
            f"({fup[i]:g}); fix the follow-up or the event time"
        )
    at_risk = np.where(has_event, times, fup)
    if not float(np.sum(at_risk)) > 0.0:
        raise ValueError("total time at risk is zero; the rate is not estimable")
    upy = float(units_per_year)
    if not upy > 0:
        raise ValueError("units_per_year must be positive")
    years = float(np.sum(at_risk)) / upy
    n_event = int(np.sum(has_event))
    r = exact_poisson_rate(n_event, years, level, per)
    return ExposureAdjustedIncidence(
        int(fup.size), n_event, years, r.rate, r.lower, r.upper, r.level, r.per
    )
