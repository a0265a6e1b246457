"""``ildtrial randomization generate|balance``: the allocation list from the command line.

The command acts as a named user (the unblinded statistician), so the same permission
check and audit trail apply as on the page.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("randomization", help="generate or check the allocation list")
    sub = parser.add_subparsers(dest="randomization_command", required=True, metavar="ACTION")
    generate = sub.add_parser("generate", help="generate and store the allocation list from a seed")
    generate.add_argument("--user", required=True, help="username of the unblinded statistician generating it")
    generate.add_argument("--seed", type=int, default=None, help="seed (default: a cryptographic seed, recorded)")
    generate.set_defaults(func=run_generate)
    balance = sub.add_parser("balance", help="print the balance report of the active list (JSON)")
    balance.add_argument("--user", required=True)
    balance.set_defaults(func=run_balance)


def _user(username: str):  # noqa: ANN202
    from ildtrial.edc.accounts.models import User

    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise LookupError(f"user: no active user {username!r}")
    return user


def run_generate(args: argparse.Namespace) -> int:
    from ildtrial.edc import setup

    setup()
    from django.core.exceptions import PermissionDenied

    from ildtrial.edc.audit.context import acting_as
    from ildtrial.edc.errors import InputRefused
    from ildtrial.edc.randomization import services

    try:
        user = _user(args.user)
        with acting_as(user, source="cli", reason="allocation list generated"):
            stored = services.generate(user, args.seed)
    except (LookupError, InputRefused, PermissionDenied) as exc:
        print(f"ildtrial randomization generate: {exc}", file=sys.stderr)
        return 2
    print(f"allocation list generated: {stored.slots.count()} slots, seed {stored.seed} ({stored.seed_source}), "
          f"digest {stored.digest}")
    return 0


def run_balance(args: argparse.Namespace) -> int:
    from ildtrial.edc import setup

    setup()
    from django.core.exceptions import PermissionDenied

    from ildtrial.edc.errors import InputRefused
    from ildtrial.edc.randomization import services

    try:
        report = services.balance(_user(args.user))
    except (LookupError, InputRefused, PermissionDenied) as exc:
        print(f"ildtrial randomization balance: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0
