"""``ildtrial demo``: a fresh demo database with the protocol and one account per role, then the web server."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="set up a fresh demo (SQLite) and start the web server")
    parser.add_argument("--data-dir", default="var/demo", help="where the demo database lives (wiped first)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="8000")
    parser.add_argument("--no-serve", action="store_true", help="set up only; do not start the server")
    parser.add_argument("--no-simulation", action="store_true", help="accounts only; no simulated trial")
    parser.add_argument("--seed", type=int, default=20151102, help="seed of the simulated trial")
    parser.set_defaults(func=run)
    code = subparsers.add_parser("demo-code", help="print the current 2FA code of a demo account")
    code.add_argument("username")
    code.add_argument("--data-dir", default="var/demo")
    code.set_defaults(func=run_code)


def _configure(data_dir: Path) -> None:
    os.environ["ILDTRIAL_DATA_DIR"] = str(data_dir.resolve())
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{(data_dir / 'ildtrial.sqlite3').resolve()}")


def run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    _configure(data_dir)
    os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
    os.environ.setdefault("ILDTRIAL_SQLITE_SYNCHRONOUS", "OFF")  # a demo database is rebuilt at every start
    from ildtrial.edc import setup

    setup()
    from ildtrial.edc import demo
    from ildtrial.edc.study.protocol import current_protocol

    protocol = current_protocol()
    print(f"Setting up the demo of {protocol.identity.registration} (protocol {protocol.version}) in {data_dir}/ ...")
    demo.migrate()
    accounts = demo.create_demo_accounts(protocol.identity.sites[0].code)
    lines = ["", "Demo accounts (username / password / role):"]
    for a in accounts:
        extra = f"  2FA key {a.totp_secret} (code: ildtrial demo-code {a.username})" if a.totp_secret else ""
        lines.append(f"  {a.username:<28} {a.password:<22} {a.role.label}{extra}")
    text = "\n".join(lines)
    print(text)
    (data_dir / "accounts.txt").write_text(text + "\n", encoding="utf-8")
    print(f"\n(also written to {data_dir}/accounts.txt)")
    if not args.no_simulation:
        simulate(accounts, args.seed)
        from ildtrial.cli import main as ildtrial

        print("\nWriting the statistical report of the simulated trial ...")
        ildtrial(["report", "--out", str(data_dir / "report"), "--user", "demo_unblinded_statistician"])
    if args.no_serve:
        return 0
    print(f"\nStarting the web server on http://{args.host}:{args.port}/  (Ctrl-C to stop)")
    sys.stdout.flush()
    from django.core.management import call_command

    call_command("runserver", f"{args.host}:{args.port}", use_reloader=False, use_threading=True)
    return 0


def run_code(args: argparse.Namespace) -> int:
    _configure(Path(args.data_dir))
    from ildtrial.edc import setup

    setup()
    from ildtrial.edc.demo import current_totp

    try:
        print(current_totp(args.username))
    except (LookupError, PermissionError) as exc:
        print(f"ildtrial demo-code: {exc}", file=sys.stderr)
        return 2
    return 0


def simulate(accounts: list[Any], seed: int) -> None:
    """Play the simulated trial with the demo team, so the demo shows a whole trial."""
    import time

    from ildtrial.commands.simulate_trial import ROLES, play
    from ildtrial.edc.accounts.models import User
    from ildtrial.simulate.trial import Actor

    team = {a.role.value: Actor(User.objects.get(username=a.username), a.password) for a in accounts
            if a.role.value in ROLES}
    print("\nSimulating the trial (screening, randomization, a year of visits, queries, signatures, lock) ...")
    started = time.perf_counter()
    summary = play(team, seed=seed, n_randomized=20)
    print("\n".join("  " + line for line in summary.lines()))
    print(f"  simulated in {time.perf_counter() - started:.1f} s")
