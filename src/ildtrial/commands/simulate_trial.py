"""``ildtrial simulate-trial``: play a whole simulated trial into the database through the services."""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from typing import Any

ROLES = ("investigator", "study_coordinator", "monitor", "data_manager", "unblinded_statistician", "cell_lab")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate-trial", help="screen, randomize and follow virtual patients through the real services")
    parser.add_argument("--seed", type=int, default=20151102)
    parser.add_argument("--participants", type=int, default=20, help="number to randomize (default 20)")
    parser.set_defaults(func=run)


def simulation_team() -> dict[str, Any]:
    """Accounts named sim_<role> for the simulated team; deactivated afterwards."""
    from ildtrial.edc.accounts.models import User
    from ildtrial.edc.accounts.services import create_user
    from ildtrial.edc.audit.context import acting_as
    from ildtrial.edc.study.protocol import current_protocol
    from ildtrial.simulate.trial import Actor

    site = current_protocol().identity.sites[0].code
    team = {}
    with acting_as(None, source="simulation", reason="simulation team"):
        for role in ROLES:
            password = secrets.token_urlsafe(18) + "-Aa1"
            user = User.objects.filter(username=f"sim_{role}").first()
            if user is None:
                user = create_user(username=f"sim_{role}", role=role, password=password, first_name="Simulated",
                                   last_name=role.replace("_", " "), site_codes=[] if role == "unblinded_statistician"
                                   else [site])
            else:
                user.is_active = True
                user.set_password(password)
                user.save()
            team[role] = Actor(user, password)
    return team


def retire(team: dict[str, Any]) -> None:
    from ildtrial.edc.audit.context import acting_as

    with acting_as(None, source="simulation", reason="simulation finished"):
        for actor in team.values():
            actor.user.is_active = False
            actor.user.set_unusable_password()
            actor.user.save()


def run(args: argparse.Namespace) -> int:
    from ildtrial.edc import setup

    setup()
    team = simulation_team()
    started = time.perf_counter()
    try:
        summary = play(team, seed=args.seed, n_randomized=args.participants)
    finally:
        retire(team)
    print("\n".join(summary.lines()))
    print(f"simulated in {time.perf_counter() - started:.1f} s")
    return 0


def play(team: dict[str, Any], *, seed: int, n_randomized: int):  # noqa: ANN201
    """Run the simulation with a progress bar on the terminal."""
    from tqdm import tqdm

    from ildtrial.simulate.trial import simulate_trial

    bar = tqdm(total=n_randomized, desc="simulated trial", unit="randomized", file=sys.stderr, leave=False)

    def progress(_message: str) -> None:
        bar.update(1)

    try:
        return simulate_trial(team, seed=seed, n_randomized=n_randomized, progress=progress)
    finally:
        bar.close()
