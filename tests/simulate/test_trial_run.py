"""The simulated trial drives the real services: what it leaves in the database is a real trial."""

from __future__ import annotations

import pytest

from ildtrial.edc.audit.models import AuditEntry
from ildtrial.edc.audit.services import verify
from ildtrial.edc.crfs import locking
from ildtrial.edc.crfs.models import FormInstance, FormStatus
from ildtrial.edc.participants.models import Participant
from ildtrial.edc.randomization.models import AllocationSlot
from ildtrial.simulate.trial import Actor, simulate_trial
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(make_user):
    roles = ("investigator", "study_coordinator", "monitor", "data_manager", "unblinded_statistician", "cell_lab")
    return {r: Actor(make_user(r, sites=() if r == "unblinded_statistician" else ("MOW01",)), PASSWORD)
            for r in roles}


def test_simulated_trial_screens_randomizes_follows_and_locks(team):
    run = simulate_trial(team, seed=11, n_randomized=4)
    assert run.randomized == 4 == AllocationSlot.objects.filter(participant__isnull=False).count()
    assert run.candidates == Participant.objects.count() >= 4
    assert run.screen_failures == Participant.objects.filter(status="screen_failed").count()
    # every randomized participant's eligibility was signed by the investigator
    for p in Participant.objects.exclude(randomization_number=""):
        assert p.eligibility_assessments.filter(signature__signer=team["investigator"].user).exists()
        assert p.visits.filter(code="C1A", state="done").exists()
    # forms came through the service: created by the coordinator in the audit trail
    creates = AuditEntry.objects.filter(model="crfs.FormInstance", action="create")
    assert creates.count() == FormInstance.objects.count()
    assert set(creates.values_list("actor_username", flat=True)) == {team["study_coordinator"].user.username}
    # the end: signed, locked, and the trail intact
    assert not FormInstance.objects.filter(status__in=[FormStatus.COMPLETE, FormStatus.VERIFIED]).exclude(
        queries__state__in=["open", "answered"]).exists()
    assert locking.is_locked()
    assert verify().ok
    assert run.forms_saved == FormInstance.objects.exclude(status=FormStatus.NOT_DONE).count()
    # every infusion given is traced to a bag prepared by the cell lab (and for cells, a released lot)
    from ildtrial.edc.cellproduct.models import LedgerEntry, Preparation

    infusions = FormInstance.objects.filter(form_code="INF").exclude(status=FormStatus.NOT_DONE)
    assert infusions.count() >= 4
    for inf in infusions:
        bag = Preparation.objects.get(bag_id=inf.data["bag_id"])
        assert bag.participant_id == inf.participant_id and bag.visit_code == inf.visit.code
        assert LedgerEntry.objects.filter(kind="administered", bag=bag).count() == 1
        if bag.arm == "MSC":
            assert bag.lot.released
