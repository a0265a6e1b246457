"""Building participants in tests: screening forms stored as the form pages store them."""

from __future__ import annotations

import copy
import json
from datetime import date, datetime, timedelta
from pathlib import Path

from django.utils import timezone

from ildtrial.edc.audit.context import acting_as
from ildtrial.edc.crfs.models import FormInstance, FormStatus
from ildtrial.edc.participants import services as participants
from ildtrial.edc.screening import services as screening
from ildtrial.edc.study.models import Site
from tests.conftest import PASSWORD

EXAMPLE = json.loads((Path(__file__).resolve().parents[2] / "docs" / "examples" / "candidate.json").read_text())


def shifted_example(screening_date: date, **overrides: dict) -> dict:
    """The documented eligible candidate, with every date moved so screening falls on ``screening_date``."""
    original = date.fromisoformat(EXAMPLE["screening_date"])
    shift = screening_date - original

    def move(value):  # noqa: ANN001, ANN202
        if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
            return (date.fromisoformat(value) + shift).isoformat()
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, list):
            return [move(v) for v in value]
        return value

    data = move(copy.deepcopy({k: v for k, v in EXAMPLE.items() if not k.startswith("_")}))
    for form, values in overrides.items():
        data[form] = values if isinstance(values, list) else {**data.get(form, {}), **values}
    return data


def store_screening_forms(participant, data: dict) -> None:  # noqa: ANN001
    """Store the candidate's forms as completed screening forms of the participant."""
    visit = participant.visits.get(code="SCR")
    with acting_as(None, source="test", reason="test data"):
        for code in ("DM", "DX", "SPIRO", "DLCO", "EXCL"):
            if code in data:
                FormInstance.objects.create(participant=participant, visit=visit, form_code=code, form_version=1,
                                            status=FormStatus.COMPLETE, data=data[code], protocol_version="1.0")
        for code in ("PRIORLF", "PROHIB"):
            rows = data.get(code)
            if rows == []:
                FormInstance.objects.create(participant=participant, visit=visit, form_code=code, form_version=1,
                                            status=FormStatus.NOT_DONE, not_done_reason=screening.NONE_REPORTED,
                                            protocol_version="1.0")
            for i, row in enumerate(rows or [], start=1):
                FormInstance.objects.create(participant=participant, visit=visit, form_code=code, form_version=1,
                                            instance=i, status=FormStatus.COMPLETE, data=row, protocol_version="1.0")


def eligible_participant(coordinator, investigator, *, screening_date: date | None = None,  # noqa: ANN001
                         diagnosis: str = "CTD_ILD", sign: bool = True, password: str = PASSWORD):  # noqa: ANN201
    """A participant screened, consented, evaluated eligible and (by default) signed off."""
    screening_date = screening_date or (timezone.localdate() - timedelta(days=3))
    site = Site.objects.get(code="MOW01")
    with acting_as(coordinator, source="test"):
        participant = participants.register_candidate(coordinator, site, screening_date)
        participants.record_consent(coordinator, participant, form_version="v2.1",
                                    signed_at=timezone.make_aware(datetime.combine(screening_date, datetime.min.time())))
        data = shifted_example(screening_date, DX={"diagnosis_group": diagnosis})
        store_screening_forms(participant, data)
        assessment = screening.evaluate(coordinator, participant)
    assert assessment.status == "eligible", assessment.verdict
    if sign:
        with acting_as(investigator, source="test"):
            screening.confirm(investigator, assessment, password)
        participant.refresh_from_db()
    return participant
