"""One small simulated trial for every export test, read once and rolled back.

Simulating a trial takes about ten seconds, so it runs once per session: inside a
transaction that is rolled back after the EDC has been read into an
:class:`~ildtrial.exports.source.ExportSource` (plain frames). No other test ever sees
the simulated participants, and the export tests themselves are pure pandas.
"""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD

ROLES = ("investigator", "study_coordinator", "monitor", "data_manager", "unblinded_statistician", "cell_lab")


@pytest.fixture(scope="session")
def simulated_source(django_db_setup, django_db_blocker):
    """The export source of a 4-participant simulated trial (screen failures included)."""
    from django.db import transaction

    from ildtrial.edc.accounts.services import create_user
    from ildtrial.edc.audit.context import acting_as
    from ildtrial.exports.source import collect_source
    from ildtrial.simulate.trial import Actor, simulate_trial

    with django_db_blocker.unblock(), transaction.atomic():
        team = {}
        for role in ROLES:
            with acting_as(None, source="test", reason="test account"):
                user = create_user(username=f"export_{role}", role=role, password=PASSWORD,
                                   site_codes=() if role == "unblinded_statistician" else ("MOW01",))
            team[role] = Actor(user, PASSWORD)
        simulate_trial(team, seed=11, n_randomized=4)
        source = collect_source()
        transaction.set_rollback(True)
    return source


@pytest.fixture(scope="session")
def sdtm(simulated_source):
    from ildtrial.exports.sdtm import build_sdtm

    return build_sdtm(simulated_source, blinded=False)


@pytest.fixture(scope="session")
def sdtm_blinded(simulated_source):
    from ildtrial.exports.sdtm import build_sdtm

    return build_sdtm(simulated_source, blinded=True)


@pytest.fixture(scope="session")
def adam(simulated_source):
    from ildtrial.exports.adam import build_adam

    return build_adam(simulated_source.snapshot, blinded=False)


@pytest.fixture(scope="session")
def adam_blinded(simulated_source):
    from ildtrial.exports.adam import build_adam

    return build_adam(simulated_source.snapshot, blinded=True)
