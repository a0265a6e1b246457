"""``ildtrial api-token``: create, list and revoke REST API tokens from the command line.

The administrator's path (shell access to the server): a token for any active user,
including roles that must use a second factor on the pages (see
``ildtrial.edc.api.tokens`` for why that is allowed). The secret is printed once.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("api-token", help="create, list or revoke REST API tokens")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a token for a user and print it (once)")
    create.add_argument("--user", required=True, help="username the token acts as")
    create.add_argument("--name", default="command line", help="what program uses the token")
    create.add_argument("--reason", default="API token created from the command line")
    create.set_defaults(func=run_create)
    listing = actions.add_parser("list", help="list tokens (of one user, or all)")
    listing.add_argument("--user", default=None)
    listing.set_defaults(func=run_list)
    revoke = actions.add_parser("revoke", help="revoke a token by its id or prefix")
    revoke.add_argument("token", help="token id (from 'list') or its prefix (ildt_…)")
    revoke.add_argument("--reason", default="API token revoked from the command line")
    revoke.set_defaults(func=run_revoke)


def _user(username: str) -> Any:
    from ildtrial.edc.accounts.models import User

    user = User.objects.filter(username=username).first()
    if user is None:
        print(f"ildtrial api-token: no user {username!r}", file=sys.stderr)
    return user


def run_create(args: argparse.Namespace) -> int:
    from ildtrial.edc import setup

    setup()
    from ildtrial.edc.api import tokens
    from ildtrial.edc.audit.context import acting_as
    from ildtrial.edc.errors import InputRefused

    user = _user(args.user)
    if user is None:
        return 2
    try:
        with acting_as(None, source="cli", reason=args.reason):
            token, secret = tokens.issue(None, user, args.name)
    except InputRefused as exc:
        print(f"ildtrial api-token: {exc}", file=sys.stderr)
        return 2
    print(f"token {token.pk} for {user.username} ({user.role_label}); shown once, store it now:")
    print(secret)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from ildtrial.edc import setup

    setup()
    from ildtrial.edc.api.models import ApiToken

    rows = ApiToken.objects.select_related("user").order_by("user__username", "-created_at")
    if args.user:
        rows = rows.filter(user__username=args.user)
    for t in rows:
        state = "active" if t.active else f"revoked {t.revoked_at:%Y-%m-%d %H:%M}"
        used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
        print(f"{t.pk}\t{t.prefix}…\t{t.user.username}\t{t.name}\tcreated {t.created_at:%Y-%m-%d %H:%M}\t"
              f"last used {used}\t{state}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    from ildtrial.edc import setup

    setup()
    from ildtrial.edc.api import tokens
    from ildtrial.edc.api.models import ApiToken
    from ildtrial.edc.audit.context import acting_as

    key = args.token.strip()
    matches = list(ApiToken.objects.filter(pk=int(key))) if key.isdigit() else \
        list(ApiToken.objects.filter(prefix__startswith=key[:12])) if len(key) >= 8 else []
    if len(matches) != 1:
        print(f"ildtrial api-token: {'no' if not matches else 'more than one'} token matches {key!r}",
              file=sys.stderr)
        return 2
    with acting_as(None, source="cli"):
        tokens.revoke(None, matches[0], args.reason)
    print(f"revoked token {matches[0].pk} ({matches[0].prefix}…) of {matches[0].user.username}")
    return 0
