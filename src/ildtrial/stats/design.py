"""Fixed-effects design matrices for repeated-measures models (long-format data).

The model we build is the one of the statistical analysis plan
(``/work/shared/domain/statistics.md``)::

    response ~ (Intercept) + covariates + group + visit + group:visit [+ covariate:visit]

with treatment contrasts (R's ``contr.treatment``): every categorical term gets one
0/1 indicator column per non-reference level. Columns are ordered the way R orders
the terms of ``y ~ covariates + group * visit + covariate:visit``: intercept, main
effects, then interactions; so a coefficient vector can be compared with R ``mmrm`` or
SAS ``PROC MIXED`` output term by term.

Why our own builder instead of patsy/formulaic: the least-squares means need the
*reference grid* rows (covariates averaged, group and visit fixed), which are easiest
to get right when the same code maps "level weights" to columns for both the data and
the grid (:meth:`DesignSpec.build`).

Coefficient names are readable: ``(Intercept)``, ``RACE[White]``, ``WEIGHT``,
``ARMCD[TRT]``, ``AVISIT[VIS2]``, ``ARMCD[TRT]:AVISIT[VIS4]``, ``BASE:AVISIT[VIS2]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "DesignError",
    "DesignSpec",
    "Factor",
    "ModelData",
    "NumericCovariate",
    "aliased_columns",
    "build_model_data",
    "natural_key",
]

INTERCEPT = "(Intercept)"


class DesignError(ValueError):
    """Bad model input (missing column, unknown level, empty visit, aliased column ...).

    A ``ValueError`` so that callers (the CLI) can turn it into a usage error; the message
    always names the column or the rule that was violated.
    """


def natural_key(label: str) -> tuple[object, ...]:
    """Sort key that orders ``VIS2`` before ``VIS10`` (digits compared as numbers)."""
    parts = re.split(r"(\d+)", label)
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in parts if part)


@dataclass(frozen=True)
class Factor:
    """A categorical model variable with its levels and reference level.

    ``levels`` keeps the natural (or declared categorical) order; the reference level is
    not moved, but it gets no indicator column (treatment contrasts).
    ``proportions`` are the observed level frequencies in the analysed rows, used for
    "proportional" least-squares-mean weights (emmeans ``weights = "proportional"``).
    """

    column: str
    levels: tuple[str, ...]
    reference: str
    proportions: tuple[float, ...] = ()

    @property
    def contrast_levels(self) -> tuple[str, ...]:
        """The levels that get an indicator column (all but the reference)."""
        return tuple(level for level in self.levels if level != self.reference)

    def indicators(self, values: Sequence[str] | np.ndarray) -> np.ndarray:
        """One-hot matrix (n × n_levels) of ``values`` in ``levels`` order."""
        codes = pd.Categorical(np.asarray(values, dtype=object), categories=list(self.levels)).codes
        if np.any(codes < 0):
            raise DesignError(
                f"value outside the levels {list(self.levels)} of column {self.column!r}"
            )
        out = np.zeros((len(codes), len(self.levels)))
        out[np.arange(len(codes)), codes] = 1.0
        return out

    def weights(self, how: Literal["equal", "proportional"]) -> np.ndarray:
        """Level weights for averaging over this factor in a reference grid."""
        if how == "equal":
            return np.full(len(self.levels), 1.0 / len(self.levels))
        if how == "proportional":
            return np.asarray(self.proportions, dtype=float)
        raise ValueError(f"weights must be 'equal' or 'proportional', not {how!r}")

    def one_level(self, level: str) -> np.ndarray:
        """Weight vector putting all mass on ``level`` (raises for an unknown level)."""
        if level not in self.levels:
            raise DesignError(
                f"unknown level {level!r} for column {self.column!r}; levels are {list(self.levels)}"
            )
        out = np.zeros(len(self.levels))
        out[self.levels.index(level)] = 1.0
        return out


@dataclass(frozen=True)
class NumericCovariate:
    """A numeric covariate; ``mean`` is its mean over the analysed rows (emmeans default)."""

    column: str
    mean: float


Covariate = Factor | NumericCovariate


@dataclass(frozen=True)
class DesignSpec:
    """How data columns map to fixed-effect columns; reusable for reference-grid rows."""

    response: str
    subject: str
    visit: Factor
    group: Factor
    covariates: tuple[Covariate, ...]
    visit_interactions: tuple[str, ...] = ()
    column_names: tuple[str, ...] = field(default=())

    @property
    def n_columns(self) -> int:
        return len(self.column_names)

    def covariate(self, column: str) -> Covariate:
        for cov in self.covariates:
            if cov.column == column:
                return cov
        raise KeyError(column)

    @staticmethod
    def _covariate_columns(cov: Covariate, value: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Columns of one covariate: indicator weights of non-reference levels, or the value."""
        if isinstance(cov, Factor):
            keep = [j for j, level in enumerate(cov.levels) if level != cov.reference]
            names = [f"{cov.column}[{cov.levels[j]}]" for j in keep]
            return names, np.asarray(value, dtype=float)[:, keep]
        return [cov.column], np.asarray(value, dtype=float).reshape(-1, 1)

    def build(
        self,
        group: np.ndarray,
        visit: np.ndarray,
        covariates: Mapping[str, np.ndarray],
    ) -> tuple[list[str], np.ndarray]:
        """Build design columns from level-weight matrices.

        ``group`` and ``visit`` are (n × n_levels) weight matrices (one-hot for data rows),
        ``covariates[col]`` is an (n × n_levels) weight matrix for a factor or an (n,)
        vector for a numeric covariate. Every column is a product of at most two of these,
        so a weighted row is exactly the weighted average of the one-hot rows (which is
        what a least-squares mean averages, see :meth:`MMRMResult.lsmeans`).
        """
        n = group.shape[0]
        names: list[str] = [INTERCEPT]
        blocks: list[np.ndarray] = [np.ones((n, 1))]
        cov_cols: dict[str, tuple[list[str], np.ndarray]] = {}
        for cov in self.covariates:
            cov_names, cols = self._covariate_columns(cov, covariates[cov.column])
            cov_cols[cov.column] = (cov_names, cols)
            names += cov_names
            blocks.append(cols)
        g_keep = [j for j, lv in enumerate(self.group.levels) if lv != self.group.reference]
        v_keep = [j for j, lv in enumerate(self.visit.levels) if lv != self.visit.reference]
        g_names = [f"{self.group.column}[{self.group.levels[j]}]" for j in g_keep]
        v_names = [f"{self.visit.column}[{self.visit.levels[j]}]" for j in v_keep]
        names += g_names
        blocks.append(group[:, g_keep])
        names += v_names
        blocks.append(visit[:, v_keep])
        for a, g_name in zip(g_keep, g_names, strict=True):
            for b, v_name in zip(v_keep, v_names, strict=True):
                names.append(f"{g_name}:{v_name}")
                blocks.append((group[:, a] * visit[:, b]).reshape(-1, 1))
        for column in self.visit_interactions:
            cov_names, cols = cov_cols[column]
            for k, c_name in enumerate(cov_names):
                for b, v_name in zip(v_keep, v_names, strict=True):
                    names.append(f"{c_name}:{v_name}")
                    blocks.append((cols[:, k] * visit[:, b]).reshape(-1, 1))
        return names, np.hstack(blocks)

    def grid_row(
        self,
        group_level: str,
        visit_level: str,
        weights: Literal["equal", "proportional"] = "equal",
        at: Mapping[str, float | str] | None = None,
    ) -> np.ndarray:
        """Reference-grid row for one group and visit (the L vector of an LS mean).

        Covariates are averaged as emmeans does by default: numeric covariates at their
        mean over the analysed rows, categorical covariates with equal weight per level
        (or observed proportions). ``at`` fixes a covariate at a value or level instead.
        """
        at = dict(at or {})
        unknown = set(at) - {cov.column for cov in self.covariates}
        if unknown:
            raise DesignError(f"'at' names columns that are not covariates: {sorted(unknown)}")
        covs: dict[str, np.ndarray] = {}
        for cov in self.covariates:
            if isinstance(cov, Factor):
                w = cov.one_level(str(at[cov.column])) if cov.column in at else cov.weights(weights)
                covs[cov.column] = w.reshape(1, -1)
            else:
                value = float(at[cov.column]) if cov.column in at else cov.mean
                covs[cov.column] = np.array([value])
        _, row = self.build(
            self.group.one_level(group_level).reshape(1, -1),
            self.visit.one_level(visit_level).reshape(1, -1),
            covs,
        )
        return row[0]


@dataclass(frozen=True)
class ModelData:
    """Analysis-ready arrays: response, design, subject codes and visit indices."""

    spec: DesignSpec
    y: np.ndarray
    X: np.ndarray
    subject_index: np.ndarray
    subject_labels: tuple[str, ...]
    visit_index: np.ndarray
    n_dropped: int

    @property
    def n_subjects(self) -> int:
        return len(self.subject_labels)

    @property
    def n_observations(self) -> int:
        return int(self.y.shape[0])


def _levels_of(series: pd.Series) -> list[str]:
    """Levels as strings: declared order for a categorical dtype, else natural sort."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        present = set(series.dropna().astype(str))
        return [str(c) for c in series.cat.categories if str(c) in present]
    return sorted({str(v) for v in series.dropna()}, key=natural_key)


def _is_categorical(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def _split(values: str | Iterable[str] | None) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        return [v.strip() for v in values.split(",") if v.strip()]
    return [str(v) for v in values]


def build_model_data(
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
) -> ModelData:
    """Validate long-format data and build y, X, subject and visit indices.

    Rules (each violation raises :class:`DesignError` naming the column):

    * all named columns exist; the response is numeric;
    * rows with a missing response (or a missing subject/visit/group/covariate value) are
      dropped, as R's ``na.omit`` does; subjects keep their other visits (MAR);
    * a covariate is categorical when its dtype is object/category/bool/string or it is
      listed in ``categorical``; group and visit are always categorical;
    * the reference level defaults to the first level (natural sort, or category order);
      ``reference`` may only name categorical model variables and existing levels;
    * every visit and every group level must have at least one non-missing response
      (otherwise its covariance/treatment parameters are not estimable);
    * each (subject, visit) pair occurs at most once.

    ``visit_interactions`` adds ``covariate × visit`` terms (e.g. baseline × visit, as the
    SAP's change-from-baseline model); such a covariate is added as a main effect if it is
    not already listed in ``covariates``.
    """
    reference = {str(k): str(v) for k, v in (reference or {}).items()}
    cov_cols = _split(covariates)
    inter_cols = _split(visit_interactions)
    for column in inter_cols:
        if column not in cov_cols:
            cov_cols.append(column)
    forced = set(_split(categorical))
    roles = {"response": response, "subject": subject, "visit": visit, "group": group}
    for role, column in roles.items():
        if column not in data.columns:
            raise DesignError(f"{role} column {column!r} is not in the data")
    for column in cov_cols:
        if column not in data.columns:
            raise DesignError(f"covariate column {column!r} is not in the data")
        if column in roles.values():
            raise DesignError(
                f"covariate column {column!r} is already used as {[r for r, c in roles.items() if c == column][0]}"
            )
    if len(set(cov_cols)) != len(cov_cols):
        raise DesignError(f"covariates are listed twice: {cov_cols}")
    unknown_forced = forced - set(cov_cols)
    if unknown_forced:
        raise DesignError(
            f"categorical names columns that are not covariates: {sorted(unknown_forced)}"
        )
    if not pd.api.types.is_numeric_dtype(data[response]) or pd.api.types.is_bool_dtype(
        data[response]
    ):
        raise DesignError(f"response column {response!r} must be numeric")

    # Visit and group levels come from all rows, so that a visit or arm with no
    # observed response is reported instead of silently vanishing.
    visit_levels_all = _levels_of(data[visit])
    group_levels_all = _levels_of(data[group])

    used = [response, subject, visit, group, *cov_cols]
    frame = data[used].copy()
    keep = frame.notna().all(axis=1)
    n_dropped = int((~keep).sum())
    frame = frame.loc[keep]
    if frame.empty:
        raise DesignError(f"no rows with a non-missing {response!r} (and complete model variables)")

    for column in [visit, group]:
        levels_all = visit_levels_all if column == visit else group_levels_all
        present = set(frame[column].astype(str))
        missing = [lv for lv in levels_all if lv not in present]
        if missing:
            role = "visit" if column == visit else "group"
            raise DesignError(
                f"{role} column {column!r}: level(s) {missing} have no non-missing {response!r}; "
                "the model cannot estimate them"
            )

    categorical_covs = [c for c in cov_cols if c in forced or _is_categorical(frame[c])]
    factor_columns = [visit, group, *categorical_covs]
    for column in reference:
        if column not in factor_columns:
            raise DesignError(
                f"reference given for column {column!r}, which is not a categorical model variable "
                f"(categorical: {factor_columns})"
            )

    def make_factor(column: str, levels: list[str]) -> Factor:
        values = frame[column].astype(str)
        ref = reference.get(column, levels[0])
        if ref not in levels:
            raise DesignError(
                f"unknown reference level {ref!r} for column {column!r}; levels are {levels}"
            )
        counts = values.value_counts()
        props = tuple(float(counts.get(lv, 0)) / len(values) for lv in levels)
        return Factor(column=column, levels=tuple(levels), reference=ref, proportions=props)

    visit_factor = make_factor(visit, visit_levels_all)
    group_factor = make_factor(group, group_levels_all)
    if len(group_factor.levels) < 2:
        raise DesignError(
            f"group column {group!r} needs at least two levels, found {list(group_factor.levels)}"
        )
    covs: list[Covariate] = []
    cov_values: dict[str, np.ndarray] = {}
    for column in cov_cols:
        if column in categorical_covs:
            factor = make_factor(column, _levels_of(frame[column].astype(str)))
            covs.append(factor)
            cov_values[column] = factor.indicators(frame[column].astype(str).to_numpy())
        else:
            values = frame[column].to_numpy(dtype=float)
            covs.append(NumericCovariate(column=column, mean=float(values.mean())))
            cov_values[column] = values

    subject_str = frame[subject].astype(str)
    duplicated = pd.DataFrame({"s": subject_str, "v": frame[visit].astype(str)}).duplicated()
    if duplicated.any():
        row = frame.loc[duplicated.to_numpy()].iloc[0]
        raise DesignError(
            f"subject {row[subject]!r} has more than one row for {visit}={row[visit]!r}; "
            "the (subject, visit) pair must be unique"
        )

    spec = DesignSpec(
        response=response,
        subject=subject,
        visit=visit_factor,
        group=group_factor,
        covariates=tuple(covs),
        visit_interactions=tuple(inter_cols),
    )
    names, X = spec.build(
        group_factor.indicators(frame[group].astype(str).to_numpy()),
        visit_factor.indicators(frame[visit].astype(str).to_numpy()),
        cov_values,
    )
    spec = DesignSpec(
        response=spec.response,
        subject=spec.subject,
        visit=spec.visit,
        group=spec.group,
        covariates=spec.covariates,
        visit_interactions=spec.visit_interactions,
        column_names=tuple(names),
    )
    subject_codes, subject_labels = pd.factorize(subject_str, sort=True)
    visit_pos = {lv: j for j, lv in enumerate(visit_factor.levels)}
    visit_index = np.array([visit_pos[v] for v in frame[visit].astype(str)], dtype=int)
    return ModelData(
        spec=spec,
        y=frame[response].to_numpy(dtype=float),
        X=X,
        subject_index=np.asarray(subject_codes, dtype=int),
        subject_labels=tuple(str(s) for s in subject_labels),
        visit_index=visit_index,
        n_dropped=n_dropped,
    )


def aliased_columns(X: np.ndarray, names: Sequence[str], tol: float = 1e-9) -> list[str]:
    """Columns that are linear combinations of earlier columns (R's aliased coefficients).

    Uses the scaled Gram–Schmidt residual of each column against the previous ones: a
    column is aliased when its residual norm is below ``tol`` times its own norm.
    """
    aliased: list[str] = []
    basis: list[np.ndarray] = []
    for j, name in enumerate(names):
        col = X[:, j].astype(float)
        norm = np.linalg.norm(col)
        if norm == 0.0:
            aliased.append(name)
            continue
        resid = col.copy()
        for q in basis:
            resid -= q * (q @ resid)
        for q in basis:  # re-orthogonalise once for numerical safety
            resid -= q * (q @ resid)
        rnorm = np.linalg.norm(resid)
        if rnorm <= tol * norm * max(1.0, np.sqrt(X.shape[0])):
            aliased.append(name)
        else:
            basis.append(resid / rnorm)
    return aliased
