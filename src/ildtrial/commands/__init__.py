"""Subcommands of the ``ildtrial`` console script.

Each module here exposes ``register(subparsers)``; it adds its parser and sets
``func`` (a callable taking the parsed arguments and returning an exit code) as the
parser default. ``ildtrial.cli`` discovers the modules, so adding a command never
means editing a shared list.
"""
