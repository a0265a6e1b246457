"""Building blocks of the safety tests (no tests here): sites, participants, infusions, AE values."""

from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.utils import timezone

from ildtrial.edc.audit.context import acting_as
from ildtrial.edc.crfs.models import FormInstance, FormStatus
from ildtrial.edc.participants.models import Consent, Participant, ParticipantStatus
from ildtrial.edc.randomization import services as randomization
from ildtrial.edc.study.models import Site
from ildtrial.edc.visits.models import Visit, VisitState
from tests.edc.enrolment_helpers import eligible_participant

MOSCOW = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
ARM_WORDS = ("PBO", "Placebo", "Saline", "mesenchymal", "MSC n", "PBO n")
_numbers = itertools.count(1)


def make_site(code: str, tz: str) -> Site:
    with acting_as(None, source="test", reason="test site"):
        return Site.objects.get_or_create(code=code, defaults={"name": f"Site {code}", "city": "City",
                                                               "country": "RU", "timezone": tz})[0]


def consented_participant(site_code: str = "MOW01", *, randomized: bool = False) -> Participant:
    """A participant with informed consent, stored directly (no screening forms needed for safety)."""
    site = Site.objects.get(code=site_code)
    n = next(_numbers)
    with acting_as(None, source="test", reason="test participant"):
        p = Participant.objects.create(
            site=site, screening_number=f"{site_code}-T{n:03d}", screening_date=timezone.localdate() - timedelta(60),
            status=ParticipantStatus.RANDOMIZED if randomized else ParticipantStatus.SCREENING,
            protocol_version="1.0")
        from ildtrial.edc.accounts.models import User

        staff = User.objects.filter(role="study_coordinator").first() or User.objects.first()
        Consent.objects.create(participant=p, form_version="v2.1", obtained_by=staff, protocol_version="1.0",
                               signed_at=timezone.now() - timedelta(days=60))
    return p


def randomized_participant(coordinator, investigator) -> Participant:  # noqa: ANN001
    """Screened, signed off and randomized through the real services (an allocation list must exist)."""
    p = eligible_participant(coordinator, investigator, screening_date=timezone.localdate() - timedelta(days=40))
    with acting_as(coordinator):
        randomization.randomize(coordinator, p)
    p.refresh_from_db()
    return p


def add_infusion(participant: Participant, visit_code: str, day: date, start: time) -> FormInstance:
    """A recorded infusion (INF form at an infusion visit) starting at ``start`` site time on ``day``."""
    with acting_as(None, source="test", reason="test infusion"):
        visit = Visit.objects.filter(participant=participant, code=visit_code).first()
        if visit is None:
            visit = Visit.objects.create(participant=participant, code=visit_code, state=VisitState.DONE,
                                         actual_date=day, protocol_version="1.0")
        return FormInstance.objects.create(
            participant=participant, visit=visit, form_code="INF", form_version=1, status=FormStatus.COMPLETE,
            protocol_version="1.0",
            data={"bag_id": f"BAG-{visit_code}", "infusion_date": day.isoformat(), "start_time": start.isoformat(),
                  "stop_time": (datetime.combine(day, start) + timedelta(hours=1)).time().isoformat(),
                  "volume_ml": 400, "interrupted": False, "pre_temperature_c": 36.6, "pre_heart_rate": 80})


def ae_values(**overrides: Any) -> dict[str, Any]:
    """A complete, valid non-serious grade 1 event two days ago; override anything."""
    values: dict[str, Any] = {
        "verbatim_term": "feverish in the evening", "coded_term": "Fever",
        "onset_date": timezone.localdate() - timedelta(days=2), "onset_time": None, "resolution_date": None,
        "grade": 1, "serious": False, "relatedness_product": "not_related", "relatedness_procedure": "not_related",
        "expectedness": "", "action_taken": "none", "outcome": "recovering"}
    values.update(overrides)
    return values


def sae_values(awareness: datetime | str | None = None, **overrides: Any) -> dict[str, Any]:
    """A serious event (hospitalisation) the site learnt of an hour ago, unless told otherwise."""
    values = ae_values(serious=True, sae_hospitalisation=True, grade=3, coded_term="Pneumonitis",
                       verbatim_term="pneumonitis, admitted",
                       awareness_at=awareness or timezone.now() - timedelta(hours=1))
    values.update(overrides)
    return values


def moscow(*args: int) -> datetime:
    return datetime(*args, tzinfo=MOSCOW)


def report(user, participant, values):  # noqa: ANN001, ANN201
    from ildtrial.edc.safety import services

    with acting_as(user):
        return services.report_adverse_event(user, participant, values)


def no_arm(text: str) -> bool:
    return not any(word in text for word in ARM_WORDS)
