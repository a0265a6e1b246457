"""The ``ildtrial`` console script: one entry point, subcommands discovered from ``ildtrial.commands``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from ildtrial import __version__, commands


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every command module's subcommand."""
    parser = argparse.ArgumentParser(
        prog="ildtrial",
        description="Trial platform for NCT02594839 (MSC vs placebo in rapidly progressive ILD).",
    )
    parser.add_argument("--version", action="version", version=f"ildtrial {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{module_info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand and return its exit code (also used by tests, without a subprocess)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
