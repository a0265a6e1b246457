"""The console script: every subcommand has working help."""

from __future__ import annotations

import pytest

from ildtrial.cli import build_parser, main


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("protocol", "createuser", "audit", "demo", "lungfunction", "eligibility", "mmrm"):
        assert command in out


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse has no public accessor
    for name in commands:
        if name == "manage":
            continue  # passes --help through to Django
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0, name


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
