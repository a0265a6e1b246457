"""``ildtrial eligibility``: evaluate candidates against the protocol's eligibility criteria.

The same engine as the screening pages (``ildtrial.core.eligibility``), from a JSON file, so
a pre-screening list can be checked before anyone is invited, e.g.::

    ildtrial eligibility evaluate candidates.json --language ru

The file holds one candidate object (a verdict object is printed) or a list of them (a
list of verdicts, in the same order). The input format is documented in
``docs/eligibility-input.md``. Bad input (unreadable file, invalid JSON, a malformed
value, an invalid protocol file) prints every problem on stderr and exits with 2; a
verdict of any status is a success (exit 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ildtrial.core.eligibility import LANGUAGES, CandidateData, CandidateDataError, evaluate
from ildtrial.core.protocol import LoadedProtocol, ProtocolInvalid, load_protocol

PROG_ERROR = "ildtrial eligibility: error:"
INPUT_DOC = "docs/eligibility-input.md"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``eligibility`` command and its ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "eligibility",
        help="evaluate candidates against the protocol's inclusion and exclusion criteria",
        description="Eligibility of screening candidates under the protocol file.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    evaluate_parser = actions.add_parser(
        "evaluate",
        help="print the verdict(s) for a candidate JSON file",
        description=(
            "Evaluate every criterion of the protocol (met / not_met / unknown, with the "
            "evidence) and the overall verdict (eligible / not_eligible / incomplete) for "
            "the candidate(s) in CANDIDATE.json, and print them as JSON. The file holds one "
            "candidate object or a list of candidates. Input format: "
            f"{INPUT_DOC} (example: docs/examples/candidate.json)."
        ),
    )
    evaluate_parser.add_argument(
        "candidates", metavar="CANDIDATE.json", help=f"candidate data, see {INPUT_DOC}"
    )
    evaluate_parser.add_argument(
        "--protocol",
        metavar="FILE",
        help="protocol YAML file (default: the packaged NCT02594839 protocol)",
    )
    evaluate_parser.add_argument(
        "--language",
        choices=LANGUAGES,
        default="en",
        help="language of the sentences (default en)",
    )
    evaluate_parser.set_defaults(func=run_evaluate)
    parser.set_defaults(func=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _fail(message: str) -> int:
    print(f"{PROG_ERROR} {message}", file=sys.stderr)
    return 2


def _read_json(path: str) -> Any:
    """The parsed file; OSError / ValueError carry a message naming the file and the problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise OSError(f"{path}: cannot read the file ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None


def _label(index: int, raw: Any) -> str:
    """How a candidate of a list is named in an error: its position and id if it has one."""
    cid = raw.get("candidate_id") if isinstance(raw, dict) else None
    return f"candidate[{index}]" + (f" ({cid})" if cid is not None else "")


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate and print the verdict(s) as JSON; 2 with every problem on stderr if refused."""
    try:
        protocol: LoadedProtocol = load_protocol(args.protocol)
    except ProtocolInvalid as error:
        return _fail(str(error))
    try:
        data = _read_json(args.candidates)
    except (OSError, ValueError) as error:
        return _fail(str(error))
    single = isinstance(data, dict)
    if not single and not isinstance(data, list):
        return _fail(
            f"{args.candidates}: must hold a candidate object or a list of them (see {INPUT_DOC})"
        )
    items = [data] if single else data
    if not items:
        return _fail(f"{args.candidates}: the list of candidates is empty")
    candidates: list[CandidateData] = []
    problems: list[str] = []
    for index, raw in enumerate(items):
        prefix = "" if single else f"{_label(index, raw)}: "
        try:
            candidates.append(CandidateData.from_dict(raw, protocol))
        except CandidateDataError as error:
            problems.extend(f"{prefix}{path}: {rule}" for path, rule in error.issues)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        return _fail(
            f"{args.candidates}: {len(problems)} problem(s) in the candidate data "
            f"(format: {INPUT_DOC}):\n{lines}"
        )
    verdicts = [evaluate(protocol, c, language=args.language).to_dict() for c in candidates]
    output = verdicts[0] if single else verdicts
    print(json.dumps(output, indent=2, ensure_ascii=False))
    return 0
