"""``ildtrial report``: the statistical report (HTML, PDF) and the analysis datasets (CSV).

Example::

    ildtrial report --out var/report --user stats1

writes ``report.html``, ``report.pdf``, ``adsl.csv``, ``adae.csv``, ``adlf.csv`` and
``results.json`` into ``--out``.

Masking. The report is by arm only when allowed (``ildtrial.edc.reports.access``): with
``--user``, when that user may see closed reports (unblinded statistician, DSMB); without
``--user``, only in an open-label trial. In a double-blind trial without an unblinded
``--user`` the pooled report is produced and the command says so; ``--pooled`` always
asks for the pooled one. A pooled run writes datasets without any arm column.

Exit codes: 0 written; 2 unknown or inactive user, or a user who may not view reports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``report`` subcommand."""
    parser = subparsers.add_parser(
        "report",
        help="build the statistical report (HTML + PDF) and the analysis datasets (CSV)",
        description="Extract the EDC data, derive ADSL/ADAE/ADLF, run the SAP analyses and write "
        "the report. By arm only for users who may see closed reports (or open label without --user).",
    )
    parser.add_argument("--out", required=True, help="output directory (created if needed)")
    parser.add_argument("--pooled", action="store_true", help="produce the pooled (blinded) report")
    parser.add_argument("--user", help="username the report is produced for (decides by arm vs pooled)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _decide(args: argparse.Namespace) -> tuple[bool, str] | int:
    """(by_arm, reason) or an exit code when the named user may not have a report."""
    from ildtrial.edc.accounts.models import User
    from ildtrial.edc.reports.access import ReportAccess, report_access
    from ildtrial.edc.study.protocol import current_protocol

    blinded = current_protocol().is_blinded
    if args.user:
        user = User.objects.filter(username=args.user, is_active=True).first()
        if user is None:
            print(f"ildtrial report: no active user {args.user!r}", file=sys.stderr)
            return 2
        access = report_access(user)
        if access == ReportAccess.NONE:
            print(f"ildtrial report: {args.user} ({user.role_label}) may not view the statistical report",
                  file=sys.stderr)
            return 2
        if args.pooled:
            return False, "pooled report requested (--pooled)"
        if access == ReportAccess.BY_ARM:
            return True, f"by arm: {args.user} ({user.role_label}) may see closed reports"
        return False, f"pooled: {args.user} ({user.role_label}) may see only pooled reports"
    if args.pooled:
        return False, "pooled report requested (--pooled)"
    if blinded:
        return False, ("pooled: the trial is double-blind and no --user of an unblinded role was given "
                       "(pass --user to get the by-arm report)")
    return True, "by arm: open-label trial"


def run(args: argparse.Namespace) -> int:
    from ildtrial.edc import setup

    setup()
    from tqdm import tqdm

    from ildtrial.datasets.extract import take_snapshot
    from ildtrial.reports import STEPS, build_report

    decision = _decide(args)
    if isinstance(decision, int):
        return decision
    by_arm, reason = decision
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(STEPS) + 3, desc="report", unit="step", file=sys.stderr,
               disable=args.no_progress, leave=False)
    try:
        bar.set_postfix_str("extracting data")
        snapshot = take_snapshot()
        bar.update(1)

        def progress(label: str, step: int, total: int) -> None:
            bar.set_postfix_str(label)
            bar.update(1)

        report = build_report(snapshot, by_arm=by_arm, progress=progress)
        bar.set_postfix_str("PDF")
        pdf = report.pdf(base_url=str(out.resolve()))
        bar.update(1)
        bar.set_postfix_str("writing files")
        (out / "report.html").write_text(report.html, encoding="utf-8")
        (out / "report.pdf").write_bytes(pdf)
        for name in ("adsl", "adae", "adlf"):
            (out / f"{name}.csv").write_text(report.datasets.to_csv(name), encoding="utf-8")
        results = {"kind": report.kind, "reason": reason, "data_sha256": report.provenance.data_sha256,
                   "protocol_sha256": report.provenance.protocol_sha256,
                   "data_cut": report.provenance.data_cut.isoformat(), **report.analyses.to_dict()}
        (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n",
                                          encoding="utf-8")
        bar.update(1)
    finally:
        bar.close()
    print(f"{report.kind} report ({reason})")
    print(f"wrote {out}/report.html, report.pdf, adsl.csv, adae.csv, adlf.csv, results.json")
    return 0
