"""Building blocks shared by the API and export tests (no tests here).

One randomized participant with a recorded week-13 visit, its lung-function and 6MWT forms
saved through ``save_form`` (one of them corrected with a reason, so the audit trail has
an update), and one adverse event: small enough for a 2-core machine, rich enough to
exercise every exporter and endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone

from ildtrial.edc.audit.context import acting_as
from ildtrial.edc.crfs.services import save_form
from ildtrial.edc.participants.models import Participant
from ildtrial.edc.randomization import services as randomization
from ildtrial.edc.visits import services as visits
from tests.edc.enrolment_helpers import eligible_participant

ROLES = ("study_coordinator", "investigator", "monitor", "data_manager", "unblinded_statistician", "cell_lab",
         "sponsor_viewer", "dsmb_member", "administrator")

W13_VALUES: dict[str, dict[str, Any]] = {
    "VS": {"assessment_date": None, "temperature_c": "36.7", "heart_rate": "78", "systolic_bp": "128",
           "diastolic_bp": "80", "respiratory_rate": "18", "spo2": "94"},
    "SPIRO": {"test_date": None, "fev1_l": "1.74", "fvc_l": "2.08"},
    "DLCO": {"test_date": None, "dlco": "9.6", "dlco_unit": "mL/min/mmHg", "haemoglobin_g_dl": "13.1"},
    "SIXMWT": {"test_date": None, "distance_m": "352", "spo2_rest": "95", "spo2_nadir": "86",
               "heart_rate_rest": "76", "heart_rate_end": "112", "borg_dyspnoea": "4", "borg_fatigue": "3",
               "oxygen_used": "false", "stops": "0"},
}
CORRECTION_REASON = "transcription error: FVC from the printout"


@dataclass
class Trial:
    team: dict[str, Any]
    participant: Participant
    arm: str


def make_team(make_user) -> dict[str, Any]:  # noqa: ANN001
    """One user per role; trial-level roles without sites, site staff at MOW01."""
    trial_level = {"unblinded_statistician", "sponsor_viewer", "dsmb_member", "administrator"}
    return {role: make_user(role, sites=() if role in trial_level else ("MOW01",)) for role in ROLES}


def w13_values(participant: Participant, code: str) -> dict[str, Any]:
    day = participant.visits.get(code="W13").actual_date.isoformat()
    return {k: (day if v is None else v) for k, v in W13_VALUES[code].items()}


def build_trial(team: dict[str, Any]) -> Trial:
    """A randomized participant at week 13 with saved forms, a correction and an AE."""
    statistician, coordinator = team["unblinded_statistician"], team["study_coordinator"]
    with acting_as(statistician):
        randomization.generate(statistician, seed=7)
    today = timezone.localdate()
    p = eligible_participant(coordinator, team["investigator"], screening_date=today - timedelta(days=100))
    with acting_as(coordinator):
        slot = randomization.randomize(coordinator, p)
    p.refresh_from_db()
    day0 = p.screening_date + timedelta(days=7)
    with acting_as(None, reason="test: randomized before day 0"):
        p.randomized_at = timezone.now() - timedelta(days=95)
        p.save()
    with acting_as(coordinator):
        visits.record_visit(coordinator, p, "C1A", day0)
        visits.record_visit(coordinator, p, "C1B", day0 + timedelta(days=7))
        w13 = visits.record_visit(coordinator, p, "W13", day0 + timedelta(days=91))
        for code in W13_VALUES:
            outcome = save_form(coordinator, p, w13, code, w13_values(p, code))
            assert outcome.saved, (code, [i.message for i in outcome.issues])
        spiro = save_form(coordinator, p, w13, "SPIRO", {**w13_values(p, "SPIRO"), "fvc_l": "2.18"},
                          reason=CORRECTION_REASON)
        assert spiro.saved and spiro.form.revision == 2
    from ildtrial.edc.safety import services as safety

    with acting_as(coordinator):
        safety.report_adverse_event(coordinator, p, {
            "verbatim_term": "dry cough at night", "coded_term": "Cough", "onset_date": today - timedelta(days=2),
            "onset_time": None, "resolution_date": None, "grade": 2, "serious": False,
            "relatedness_product": "unlikely", "relatedness_procedure": "not_related", "expectedness": "",
            "action_taken": "none", "outcome": "recovering"})
    return Trial(team=team, participant=p, arm=slot.arm)
