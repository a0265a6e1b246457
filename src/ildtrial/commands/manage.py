"""``ildtrial manage ARGS``: Django's management commands (migrate, check --deploy, collectstatic, ...)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("manage", help="run a Django management command", add_help=False)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ildtrial.edc.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["ildtrial manage", *args.args])
    return 0
