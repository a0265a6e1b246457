"""``ildtrial safety remind|import-dictionary|dsmb-report``: safety work from the command line.

``remind`` is meant for a scheduler (cron, a systemd timer) every hour: it e-mails the
people who must act about every overdue SAE clock, at most once per clock per
``--every-hours`` (default 24), so an hourly run does not flood inboxes. The other
commands act as a named user, so the same permission checks and audit trail apply as on
the pages.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("safety", help="SAE reminders, term dictionary import, DSMB reports")
    sub = parser.add_subparsers(dest="safety_command", required=True, metavar="ACTION")
    remind = sub.add_parser("remind", help="e-mail reminders for overdue SAE reporting clocks")
    remind.add_argument("--every-hours", type=float, default=24.0,
                        help="remind about the same clock at most this often (default 24)")
    remind.add_argument("--dry-run", action="store_true", help="list what is overdue; send nothing")
    remind.set_defaults(func=run_remind)
    imp = sub.add_parser("import-dictionary", help="import a site's AE dictionary (CSV: term, code[, soc, term_ru])")
    imp.add_argument("file", type=Path)
    imp.add_argument("--user", required=True, help="username of the data manager importing it")
    imp.add_argument("--name", default="", help="name shown to users (default: the file name)")
    imp.set_defaults(func=run_import)
    report = sub.add_parser("dsmb-report", help="write the open (pooled) or closed (by arm) DSMB report")
    report.add_argument("--user", required=True, help="username generating it (closed: DSMB or unblinded statistician)")
    report.add_argument("--kind", choices=["open", "closed"], default="open")
    report.add_argument("--format", choices=["html", "pdf"], default="pdf", dest="output_format")
    report.add_argument("--out", type=Path, required=True)
    report.set_defaults(func=run_dsmb_report)


def _user(username: str):  # noqa: ANN202
    from ildtrial.edc.accounts.models import User

    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise LookupError(f"user: no active user {username!r}")
    return user


def run_remind(args: argparse.Namespace) -> int:
    from ildtrial.edc import setup

    setup()
    from django.utils import timezone

    from ildtrial.edc.audit.context import acting_as
    from ildtrial.edc.safety import notifications, services
    from ildtrial.edc.safety.models import SafetyNotification

    now = timezone.now()
    since: datetime = now - timedelta(hours=args.every_hours)
    sent = skipped = 0
    with acting_as(None, source="cli", reason="overdue SAE clock reminder"):
        for report, clock in services.overdue_clocks(now):
            ae = report.adverse_event
            late = services.describe_duration(clock.status.late_by)
            line = f"{ae.participant.label} AE {ae.ae_number}: {clock.label} overdue by {late}"
            recent = SafetyNotification.objects.filter(report=report, kind=f"reminder:{clock.key}",
                                                       sent_at__gte=since, error="").exists()
            if recent or args.dry_run:
                skipped += 1
                print(f"{'would remind' if args.dry_run and not recent else 'reminded recently'}: {line}")
                continue
            notice = notifications.notify_overdue(report, clock.key, clock.label, late)
            if notice is not None and notice.error:
                print(f"could not send: {line}: {notice.error}", file=sys.stderr)
            else:
                sent += 1
                print(f"reminded: {line}")
    print(f"{sent} reminder(s) sent, {skipped} skipped")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from ildtrial.edc import setup

    setup()
    from django.core.exceptions import PermissionDenied

    from ildtrial.edc.audit.context import acting_as
    from ildtrial.edc.errors import InputRefused
    from ildtrial.edc.safety import dictionary

    try:
        user = _user(args.user)
        size = args.file.stat().st_size
        if size > dictionary.MAX_DICTIONARY_BYTES:
            raise InputRefused("file", f"is {size:,} bytes; the limit is {dictionary.MAX_DICTIONARY_BYTES:,}")
        with acting_as(user, source="cli", reason="AE term dictionary imported"):
            stored = dictionary.import_site_dictionary(user, args.file.read_bytes(), args.file.name, args.name)
    except dictionary.DictionaryRefused as exc:
        print(f"ildtrial safety import-dictionary: {args.file.name} was refused:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    except (LookupError, OSError, InputRefused, PermissionDenied) as exc:
        print(f"ildtrial safety import-dictionary: {exc}", file=sys.stderr)
        return 2
    print(f"dictionary {stored.name!r} imported: {stored.term_count} terms (sha256 {stored.sha256[:12]})")
    return 0


def run_dsmb_report(args: argparse.Namespace) -> int:
    from ildtrial.edc import setup

    setup()
    from django.core.exceptions import PermissionDenied

    from ildtrial.edc.audit.context import acting_as
    from ildtrial.edc.safety import dsmb

    try:
        user = _user(args.user)
        with acting_as(user, source="cli", reason=f"{args.kind} DSMB report generated"):
            report = dsmb.build(user, args.kind)
            html = dsmb.render_html(report)
            content = dsmb.to_pdf(html) if args.output_format == "pdf" else html.encode()
            args.out.write_bytes(content)
            dsmb.record_run(user, report, args.output_format, content)
    except (LookupError, OSError, PermissionDenied) as exc:
        print(f"ildtrial safety dsmb-report: {exc}", file=sys.stderr)
        return 2
    print(f"{args.kind} DSMB report written to {args.out}")
    return 0
