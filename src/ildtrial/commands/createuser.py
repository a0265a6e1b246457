"""``ildtrial createuser``: create an account from the command line (for the first administrator)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from ildtrial.core.roles import Role


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("createuser", help="create a user account with a role and sites")
    parser.add_argument("--username", required=True)
    parser.add_argument("--role", required=True, help="one of: " + ", ".join(r.value for r in Role))
    parser.add_argument("--site", action="append", default=[], help="site code (repeatable)")
    parser.add_argument("--email", default="")
    parser.add_argument("--first-name", default="")
    parser.add_argument("--last-name", default="")
    parser.add_argument("--language", default="en", choices=["en", "ru"])
    parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    parser.add_argument("--reason", default="account created from the command line")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ildtrial.edc import setup

    setup()
    from ildtrial.edc.accounts.services import AccountError, create_user
    from ildtrial.edc.audit.context import acting_as

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password (again): "):
            print("password: the two entries differ", file=sys.stderr)
            return 2
    try:
        with acting_as(None, source="cli", reason=args.reason):
            user = create_user(username=args.username, role=args.role, password=password, email=args.email,
                               first_name=args.first_name, last_name=args.last_name, site_codes=args.site,
                               language=args.language)
    except AccountError as exc:
        print(f"ildtrial createuser: {exc}", file=sys.stderr)
        return 2
    print(f"created {user.username} ({user.role_label}) sites: {', '.join(user.site_codes()) or '-'}")
    return 0
