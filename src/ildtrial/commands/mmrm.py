"""``ildtrial mmrm``: fit the SAP's MMRM to a long-format CSV and print JSON.

Example (the R ``mmrm`` benchmark data)::

    ildtrial mmrm fev_data.csv --response FEV1 --subject USUBJID --visit AVISIT \\
        --group ARMCD --covariates RACE,SEX --reference ARMCD=PBO --reference RACE=Asian

Exit codes: 0 success; 2 bad input (unreadable file, missing column, unknown reference
level, malformed option: the message on stderr names the column or rule); 1 the model
could not be fitted (degenerate data, no convergence).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``mmrm`` subcommand."""
    parser = subparsers.add_parser(
        "mmrm",
        help="fit an MMRM (unstructured covariance, REML, Satterthwaite df) and print JSON",
        description=(
            "Fit response ~ covariates + group * visit [+ covariate:visit] with an unstructured "
            "within-subject covariance and print coefficients, covariance, fit criteria and "
            "least-squares means per visit as JSON."
        ),
    )
    parser.add_argument("data", help="long-format CSV, one row per subject and visit")
    parser.add_argument("--response", required=True, help="response column, e.g. FEV1 or CHG")
    parser.add_argument("--subject", required=True, help="subject identifier column")
    parser.add_argument("--visit", required=True, help="visit column (categorical)")
    parser.add_argument("--group", required=True, help="treatment-arm column (categorical)")
    parser.add_argument("--covariates", default="", help="comma-separated covariate columns")
    parser.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="COLUMN=LEVEL",
        help="reference level of a categorical variable (repeatable); default: first level",
    )
    parser.add_argument("--method", choices=["reml", "ml"], default="reml")
    parser.add_argument(
        "--visit-interaction",
        action="append",
        default=[],
        metavar="COLUMN",
        help="add a covariate × visit interaction, e.g. the baseline value (repeatable or comma-separated)",
    )
    parser.add_argument(
        "--categorical",
        action="append",
        default=[],
        metavar="COLUMN",
        help="treat a numeric covariate as categorical (repeatable or comma-separated)",
    )
    parser.add_argument(
        "--conf-level", type=float, default=0.95, help="confidence level (default 0.95)"
    )
    parser.add_argument(
        "--text", action="store_true", help="print the text summary instead of JSON"
    )
    parser.set_defaults(func=run)


def _split_all(values: list[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _parse_references(values: list[str]) -> dict[str, str]:
    from ildtrial.stats.design import DesignError

    references: dict[str, str] = {}
    for value in values:
        column, sep, level = value.partition("=")
        if not sep or not column.strip() or not level.strip():
            raise DesignError(f"--reference must look like COLUMN=LEVEL, got {value!r}")
        references[column.strip()] = level.strip()
    return references


def run(args: argparse.Namespace) -> int:
    # the statistics stack loads only when a model is fitted, not on every `ildtrial` start
    import pandas as pd

    from ildtrial.stats.design import DesignError
    from ildtrial.stats.mmrm import MMRMError, fit_mmrm

    """Read the CSV, fit, print JSON (or text); return the exit code."""
    path = Path(args.data)
    try:
        if not 0.0 < args.conf_level < 1.0:
            raise DesignError(f"--conf-level must be between 0 and 1, got {args.conf_level}")
        references = _parse_references(args.reference)
        try:
            data = pd.read_csv(path)
        except (
            OSError,
            pd.errors.ParserError,
            pd.errors.EmptyDataError,
            UnicodeDecodeError,
        ) as exc:
            raise DesignError(f"cannot read {str(path)!r}: {exc}") from exc
        result = fit_mmrm(
            data,
            response=args.response,
            subject=args.subject,
            visit=args.visit,
            group=args.group,
            covariates=_split_all([args.covariates]),
            reference=references,
            visit_interactions=_split_all(args.visit_interaction),
            categorical=_split_all(args.categorical),
            method=args.method,
        )
    except DesignError as exc:
        print(f"ildtrial mmrm: error: {exc}", file=sys.stderr)
        return 2
    except MMRMError as exc:
        print(f"ildtrial mmrm: model could not be fitted: {exc}", file=sys.stderr)
        return 1
    if args.text:
        print(result.summary(conf_level=args.conf_level))
    else:
        print(json.dumps(result.to_dict(conf_level=args.conf_level), indent=2, allow_nan=False))
    return 0
