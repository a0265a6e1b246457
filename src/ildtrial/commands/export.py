"""``ildtrial export sdtm|adam|odm|fhir|csv``: the trial data in submission and exchange formats.

Examples::

    ildtrial export sdtm --out var/export/sdtm --user stats1
    ildtrial export adam --out var/export/adam
    ildtrial export csv  --out var/export/csv

``sdtm`` and ``adam`` write one SAS transport v5 file per dataset, ``define.xml`` and the
conformance report (``conformance.txt``/``.csv``), print the report, and exit 1 when it
has errors. ``csv`` writes every SDTM and ADaM dataset as CSV (formula-safe). ``odm``
and ``fhir`` hand over to :mod:`ildtrial.exports.odm` and :mod:`ildtrial.exports.fhir`.

Masking. Arm-level content (arms, treatment names, doses, lots) is exported only when
the trial is open label or ``--user`` names an active user who may see the allocation
(:meth:`User.sees_allocation`); otherwise the export is blinded and the command says so.

Exit codes: 0 written; 1 conformance errors (files are still written, for review);
2 unknown or inactive user, or an export module that is not installed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

FORMATS = ("sdtm", "adam", "odm", "fhir", "csv")


def register(subparsers: Any) -> None:
    """Add the ``export`` subcommand."""
    parser = subparsers.add_parser(
        "export",
        help="export SDTM/ADaM (XPT + Define-XML), ODM, FHIR or CSV",
        description="Export the trial data. SDTM and ADaM packages are checked for conformance (exit 1 on "
        "errors). Arm-level content only for open-label trials or a --user who may see the allocation.",
    )
    parser.add_argument("format", choices=FORMATS, help="what to export")
    parser.add_argument("--out", required=True, type=Path, help="output directory (created if needed)")
    parser.add_argument("--user", help="username the export is produced for (decides blinded or not)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def decide_blinding(username: str | None) -> tuple[bool, str] | int:
    """(blinded, reason), or exit code 2 when ``username`` is not an active user."""
    from ildtrial.edc.accounts.models import User
    from ildtrial.edc.study.protocol import current_protocol

    protocol = current_protocol()
    user = None
    if username:
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            print(f"ildtrial export: no active user {username!r}", file=sys.stderr)
            return 2
    if not protocol.is_blinded:
        return False, "with arms: the trial is open label"
    if user is not None and user.sees_allocation():
        return False, f"with arms: {username} ({user.role_label}) may see the allocation"
    if user is not None:
        return True, f"BLINDED: {username} ({user.role_label}) may not see the allocation; no arm is exported"
    return True, "BLINDED: the trial is double-blind and no --user who may see the allocation was given"


def _exchange(fmt: str, out: Path, blinded: bool) -> int:
    """ODM or FHIR, written by their own modules (imported only when asked for)."""
    module_name, function = ("odm", "write_odm") if fmt == "odm" else ("fhir", "write_bundle")
    try:
        module = __import__(f"ildtrial.exports.{module_name}", fromlist=[function])
        writer = getattr(module, function)
    except (ImportError, AttributeError) as error:
        print(f"ildtrial export: {fmt.upper()} export is not available "
              f"(ildtrial.exports.{module_name}.{function}: {error})", file=sys.stderr)
        return 2
    written = writer(out, blinded=blinded)
    paths = written if isinstance(written, list) else [written]
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def run(args: argparse.Namespace) -> int:
    from ildtrial.edc import setup

    setup()
    from tqdm import tqdm

    decision = decide_blinding(args.user)
    if isinstance(decision, int):
        return decision
    blinded, reason = decision
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    print(f"{args.format} export {reason}")
    if args.format in ("odm", "fhir"):
        return _exchange(args.format, out, blinded)

    from ildtrial.exports import package
    from ildtrial.exports.sdtm import DOMAINS
    from ildtrial.exports.source import collect_source

    steps = {"sdtm": 2 * len(DOMAINS) + 3, "adam": 7, "csv": 2 * len(DOMAINS) + 4}[args.format]
    bar = tqdm(total=steps, desc=f"export {args.format}", unit="step", file=sys.stderr,
               disable=args.no_progress, leave=False)

    def progress(label: str) -> None:
        bar.set_postfix_str(label)
        bar.update(1)

    try:
        progress("reading the EDC")
        source = collect_source()
        if args.format == "csv":
            files = package.write_csv(out, source, blinded=blinded, progress=progress)
            result = None
        elif args.format == "sdtm":
            result = package.write_sdtm_package(out, source, blinded=blinded, progress=progress)
            files = result.files
        else:
            result = package.write_adam_package(out, source, blinded=blinded, progress=progress)
            files = result.files
    finally:
        bar.close()
    print(f"wrote {len(files)} files to {out}")
    if result is None:
        return 0
    print(result.report.table())
    if not result.ok:
        print(f"ildtrial export: {len(result.report.errors)} conformance error(s); see {out / 'conformance.txt'}",
              file=sys.stderr)
        return 1
    return 0
