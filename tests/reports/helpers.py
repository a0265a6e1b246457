"""A small trial entered through the EDC services (randomized participants, week-13 data, an AE)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.utils import timezone

from ildtrial.edc.audit.context import acting_as
from ildtrial.edc.crfs.services import save_form
from ildtrial.edc.participants import services as participants
from ildtrial.edc.randomization import services as randomization
from ildtrial.edc.screening import services as screening
from ildtrial.edc.study.models import Site
from ildtrial.edc.visits import services as visits
from tests.edc.enrolment_helpers import eligible_participant

INF = {"bag_id": "BAG-{n}", "infusion_date": None, "start_time": "09:00", "stop_time": "09:45", "volume_ml": "400",
       "interrupted": "false", "pre_temperature_c": "36.6", "pre_heart_rate": "72", "pre_systolic_bp": "120",
       "pre_diastolic_bp": "78", "pre_respiratory_rate": "16", "pre_spo2": "95", "post_temperature_c": "36.8",
       "post_heart_rate": "76", "post_systolic_bp": "122", "post_diastolic_bp": "80", "post_respiratory_rate": "17",
       "post_spo2": "95", "reaction": "false"}
WEEK13 = {
    "SPIRO": {"test_date": None, "fev1_l": "1,74", "fvc_l": "2,08"},
    "DLCO": {"test_date": None, "dlco": "9.6", "dlco_unit": "mL/min/mmHg", "haemoglobin_g_dl": "13.1"},
    "SIXMWT": {"test_date": None, "distance_m": "352", "spo2_rest": "95", "spo2_nadir": "86",
               "heart_rate_rest": "76", "heart_rate_end": "112", "borg_dyspnoea": "4", "borg_fatigue": "3",
               "oxygen_used": "false", "stops": "0"},
}


def _save(user, participant, visit, code, values):  # noqa: ANN001, ANN202
    with acting_as(user):
        outcome = save_form(user, participant, visit, code, values)
    assert outcome.saved, (code, [str(i.message) for i in outcome.issues])
    return outcome.form


def prepare_bag(participant, visit_code: str, prepared: datetime):  # noqa: ANN001, ANN201
    """The cell lab's bag for this infusion (saline or cells from a released lot), as the bedside check needs."""
    from decimal import Decimal

    from ildtrial.edc.accounts.models import User
    from ildtrial.edc.accounts.services import create_user
    from ildtrial.edc.cellproduct import services as cells
    from ildtrial.edc.cellproduct.models import Lot
    from tests.conftest import PASSWORD

    prepared = timezone.make_aware(prepared)
    with acting_as(None, reason="test: cell lab"):
        lab = User.objects.filter(role="cell_lab").first() or create_user(
            username="helper_lab", role="cell_lab", password=PASSWORD, site_codes=["MOW01"])
    with acting_as(lab):
        lot = Lot.objects.filter(released_at__isnull=False).first()
        if participant.allocation.arm == "MSC" and lot is None:
            donor = cells.register_donor(lab, "DN-0001")
            lot = cells.register_lot(lab, donor, number="MSC-T-001", manufactured_on=prepared.date() - timedelta(days=30),
                                     expires_on=prepared.date() + timedelta(days=400), cells_per_vial_millions="100",
                                     vials=20, location="LN2 tank 1")
            for kind, (value, unit) in {"viability": ("93", "%"), "sterility": ("no growth", ""),
                                        "mycoplasma": ("not detected", ""), "endotoxin": ("0.1", "EU/mL"),
                                        "cd73": ("98.7", "%"), "cd90": ("99.2", "%"), "cd105": ("97.5", "%"),
                                        "cd34": ("0.4", "%"), "cd45": ("0.6", "%")}.items():
                cells.record_release_test(lab, lot, kind, passed=True, value=value, unit=unit,
                                          tested_on=prepared.date() - timedelta(days=20))
            cells.release_lot(lab, lot, PASSWORD)
        if participant.allocation.arm == "MSC":
            return cells.record_preparation(
                lab, participant, visit_code, prepared_at=prepared, location="LN2 tank 1", lot=lot, vials_thawed=2,
                thawed_at=prepared - timedelta(minutes=30), post_thaw_viability_percent=Decimal("91.0"),
                cell_count_millions=Decimal("200"), volume_ml=Decimal("400"))
        return cells.record_preparation(lab, participant, visit_code, prepared_at=prepared, location="LN2 tank 1",
                                        saline_batch="NaCl-T-1", volume_ml=Decimal("400"))


def build_trial(team: dict, n: int = 3) -> list:
    """``n`` randomized participants with day 0 and week 13 done (week-13 lung function for all
    but the last), one screen failure, and a fever the day after the first infusion of the first."""
    stat, c, inv = team["statistician"], team["coordinator"], team["investigator"]
    with acting_as(stat):
        randomization.generate(stat, seed=7)
    today = timezone.localdate()
    out = []
    for i in range(n):
        p = eligible_participant(c, inv, screening_date=today - timedelta(days=101 + i),
                                 diagnosis="CTD_ILD" if i % 2 else "IIP")
        with acting_as(c):
            randomization.randomize(c, p)
        p.refresh_from_db()
        day0 = p.screening_date + timedelta(days=7)
        with acting_as(None, reason="test: randomized the day before day 0"):
            p.randomized_at = timezone.make_aware(datetime.combine(day0 - timedelta(days=1), time(12)))
            p.save()
        with acting_as(c):
            c1a = visits.record_visit(c, p, "C1A", day0)
            visits.record_visit(c, p, "C1B", day0 + timedelta(days=7))
            w13 = visits.record_visit(c, p, "W13", day0 + timedelta(days=91))
        bag = prepare_bag(p, "C1A", datetime.combine(day0, time(8, 0)))
        _save(c, p, c1a, "INF", {**INF, "bag_id": bag.bag_id, "infusion_date": day0.isoformat()})
        if i < n - 1:
            for code, values in WEEK13.items():
                _save(c, p, w13, code, {**values, "test_date": w13.actual_date.isoformat()})
        out.append(p)
    # a fever the day after the first infusion of the first participant
    from ildtrial.edc.safety.models import AdverseEvent

    first = out[0]
    day0 = first.visits.get(code="C1A").actual_date
    with acting_as(c, reason="test: adverse event"):
        AdverseEvent.objects.create(
            participant=first, ae_number=1, verbatim_term="fever after infusion", coded_term="Fever",
            soc="General disorders and administration site conditions", onset_date=day0 + timedelta(days=1),
            onset_time=time(8, 0), resolution_date=day0 + timedelta(days=2), ongoing=False, grade=1,
            serious=False, relatedness_product="probable", relatedness_procedure="possible",
            expectedness="expected", outcome="recovered", infusion_related=True, infusion_visit="C1A",
            reported_by=c, reported_at=timezone.now(), protocol_version="1.0")
    # a screen failure for the CONSORT diagram
    site = Site.objects.get(code="MOW01")
    with acting_as(c):
        failed = participants.register_candidate(c, site, today - timedelta(days=60))
        screening.record_screen_failure(c, failed, "declined before consent")
    return out
