"""``ildtrial audit verify`` and ``ildtrial audit export``: check and read the audit trail."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("audit", help="verify or export the audit trail")
    sub = parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = sub.add_parser("verify", help="check the hash chain; name the first broken entry")
    verify.set_defaults(func=run_verify)
    export = sub.add_parser("export", help="write the trail (or one record's history) as CSV")
    export.add_argument("--out", default="-", help="file to write (default: standard output)")
    export.add_argument("--model", default="", help="record type, e.g. accounts.User")
    export.add_argument("--object", default="", help="record id")
    export.set_defaults(func=run_export)


def run_verify(args: argparse.Namespace) -> int:
    from ildtrial.edc import setup

    setup()
    from ildtrial.edc.audit.services import verify

    report = verify()
    if report.ok:
        print(f"audit trail verified: {report.checked} entries, head #{report.last_sequence} {report.last_hash[:16]}")
        return 0
    print(f"audit trail BROKEN after {report.checked} good entries: {report.first_break}", file=sys.stderr)
    return 1


def run_export(args: argparse.Namespace) -> int:
    from ildtrial.edc import setup

    setup()
    from ildtrial.edc.audit.models import AuditEntry
    from ildtrial.edc.audit.services import to_csv

    entries = AuditEntry.objects.order_by("sequence")
    if args.model:
        entries = entries.filter(model=args.model)
    if args.object:
        entries = entries.filter(object_pk=args.object)
    body = to_csv(entries.iterator(chunk_size=2000))
    if args.out == "-":
        sys.stdout.write(body)
    else:
        Path(args.out).write_text(body, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0
