"""``ildtrial lungfunction``: reference values for one test session, as JSON.

Lets an investigator or a data manager check a % predicted, z-score or LLN from the
command line with the same code the eCRF uses (``ildtrial.core.lungfunction``), e.g.::

    ildtrial lungfunction --sex M --age 65 --height 175 --fvc 2.5 --fev1 2.1 --dlco 14

Bad input prints one line naming the field and the rule on stderr and exits with 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from typing import Any

from ildtrial.core import lungfunction as lf

PROG_ERROR = "ildtrial lungfunction: error:"


def _iso_date(text: str) -> date:
    """argparse type for ``YYYY-MM-DD`` dates."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date YYYY-MM-DD (got {text!r})") from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``lungfunction`` subcommand."""
    spirometry_sets = [e.id for e in lf.EQUATION_SETS.values() if e.kind == "spirometry"]
    parser = subparsers.add_parser(
        "lungfunction",
        help="%% predicted, z-score and LLN of spirometry, DLCO and 6MWD (GLI, Enright)",
        description=(
            "Compute reference values (predicted, %% predicted, z-score, LLN) for the "
            "measures given and print them as JSON. Spirometry: GLI-2012 or GLI Global 2022; "
            "DLCO: GLI-2017; 6-minute walk: Enright & Sherrill 1998 (needs --weight)."
        ),
    )
    parser.add_argument("--sex", required=True, metavar="{M,F}", help="sex: M or F")
    parser.add_argument("--age", type=float, help="exact decimal age in years on the test date")
    parser.add_argument(
        "--birth-date", type=_iso_date, metavar="YYYY-MM-DD", help="instead of --age"
    )
    parser.add_argument(
        "--test-date", type=_iso_date, metavar="YYYY-MM-DD", help="with --birth-date"
    )
    parser.add_argument(
        "--height", type=float, required=True, metavar="HEIGHT_CM", help="standing height, cm"
    )
    parser.add_argument(
        "--ethnicity",
        default="caucasian",
        help=f"GLI-2012 group: {', '.join(lf.ETHNICITIES)} (default caucasian)",
    )
    parser.add_argument(
        "--equations",
        default="gli2012",
        help=f"spirometry equations: {', '.join(spirometry_sets)} (default gli2012)",
    )
    parser.add_argument("--fvc", type=float, metavar="LITRES", help="FVC, L")
    parser.add_argument("--fev1", type=float, metavar="LITRES", help="FEV1, L")
    parser.add_argument("--dlco", type=float, help="DLCO in --dlco-unit")
    parser.add_argument(
        "--dlco-unit",
        default=lf.DLCO_UNITS[0],
        help=f"unit of --dlco: {', '.join(lf.DLCO_UNITS)} (default {lf.DLCO_UNITS[0]})",
    )
    parser.add_argument(
        "--weight", type=float, metavar="WEIGHT_KG", help="body weight, kg (adds the 6MWD)"
    )
    parser.set_defaults(func=run)


def _age(args: argparse.Namespace) -> float:
    """The age from --age, or from --birth-date and --test-date (never both)."""
    dates = (args.birth_date, args.test_date)
    if args.age is not None:
        if any(d is not None for d in dates):
            raise lf.LungFunctionInputError(
                "age", "give either --age or --birth-date with --test-date, not both"
            )
        return float(args.age)
    if args.birth_date is None and args.test_date is None:
        raise lf.LungFunctionInputError(
            "age", "required: give --age or --birth-date with --test-date"
        )
    if args.birth_date is None:
        raise lf.LungFunctionInputError("birth_date", "required with --test-date")
    if args.test_date is None:
        raise lf.LungFunctionInputError("test_date", "required with --birth-date")
    return lf.decimal_age(args.birth_date, args.test_date)


def _results(args: argparse.Namespace, age: float) -> dict[str, dict[str, Any]]:
    """Reference values for every measure given, keyed by measure code."""
    common = {"sex": args.sex, "age": age, "height_cm": args.height}
    spiro = {**common, "equations": args.equations, "ethnicity": args.ethnicity}
    results: dict[str, dict[str, Any]] = {}
    if args.fvc is not None:
        results["FVC"] = lf.spirometry(measure="FVC", value=args.fvc, **spiro).to_dict()
    if args.fev1 is not None:
        results["FEV1"] = lf.spirometry(measure="FEV1", value=args.fev1, **spiro).to_dict()
    if args.fvc is not None and args.fev1 is not None:
        ratio = args.fev1 / args.fvc
        results["FEV1FVC"] = lf.spirometry(measure="FEV1FVC", value=ratio, **spiro).to_dict()
    if args.dlco is not None:
        results["DLCO"] = lf.dlco(value=args.dlco, unit=args.dlco_unit, **common).to_dict()
    if args.weight is not None:
        walk = lf.six_minute_walk_predicted(weight_kg=args.weight, **common)
        results["SIX_MINUTE_WALK"] = {
            "measure": "SIX_MINUTE_WALK",
            "unit": "m",
            "weight_kg": args.weight,
            "predicted": walk.predicted_m,
            "lln": walk.lln_m,
            "equations": lf.SIX_MINUTE_WALK_EQUATIONS,
        }
    return results


def run(args: argparse.Namespace) -> int:
    """Print the reference values as JSON; exit code 2 on bad input."""
    try:
        if all(v is None for v in (args.fvc, args.fev1, args.dlco, args.weight)):
            raise lf.LungFunctionInputError(
                "measures", "give at least one of --fvc, --fev1, --dlco, --weight"
            )
        age = _age(args)
        results = _results(args, age)
    except lf.LungFunctionInputError as error:
        print(f"{PROG_ERROR} {error}", file=sys.stderr)
        return 2
    report = {
        "sex": args.sex,
        "age": age,
        "height_cm": args.height,
        "ethnicity": args.ethnicity,
        "results": results,
    }
    print(json.dumps(report, indent=2))
    return 0
