"""FHIR R4 Bundle: parses with fhir.resources, LOINC-coded lung function, pseudonymised, no arm when blinded."""

from __future__ import annotations

import json

import pytest

from ildtrial.exports import fhir
from tests.edc.test_api_support import build_trial, make_team

pytestmark = pytest.mark.django_db


def _resources(bundle, kind: str) -> list:
    return [e.resource for e in bundle.entry if e.resource.__resource_type__ == kind]


def _loinc(observation) -> str:
    return next(c.code for c in observation.code.coding if c.system == fhir.LOINC_SYSTEM)


def test_bundle_parses_codes_lung_function_and_hides_the_arm_when_blinded(make_user, tmp_path):
    trial = build_trial(make_team(make_user))
    path = fhir.write_bundle(tmp_path / "blinded", blinded=True)
    bundle = fhir.parse_bundle(path)  # raises unless valid R4(B)
    assert bundle.type == "collection"
    assert {"ResearchStudy", "ResearchSubject", "Patient", "Observation", "AdverseEvent"} <= {
        e.resource.__resource_type__ for e in bundle.entry}
    # every reference resolves inside the Bundle
    urls = {e.fullUrl for e in bundle.entry}
    text = path.read_text(encoding="utf-8")
    refs = [v for k, v in _walk(json.loads(text)) if k == "reference"]
    assert refs and set(refs) <= urls

    # LOINC-coded lung function and 6MWT, with units and % predicted derived from the measurement
    observations = {_loinc(o): o for o in _resources(bundle, "Observation")
                    if o.effectiveDateTime and str(o.effectiveDateTime) == _w13(trial)}
    assert {"19870-5", "20150-9", "19926-5", "19911-7", "64098-7"} <= set(observations)
    assert float(observations["19870-5"].valueQuantity.value) == pytest.approx(2.18)
    assert observations["19870-5"].valueQuantity.code == "L"
    assert observations["19911-7"].valueQuantity.code == "mL/min/mm[Hg]"
    assert observations["64098-7"].valueQuantity.value == 352 and observations["64098-7"].valueQuantity.code == "m"
    assert float(observations["19926-5"].valueQuantity.value) == pytest.approx(100 * 1.74 / 2.18, abs=0.01)
    percent = observations.get("19872-1")
    assert percent is not None and percent.valueQuantity.code == "%" and percent.derivedFrom
    assert "19876-2" not in text  # that code is FVC pre-bronchodilation, not % predicted

    # pseudonymised patient: year of birth and gender only
    patient = next(p for p in _resources(bundle, "Patient")
                   if p.identifier[0].value == trial.participant.screening_number)
    assert patient.name is None and patient.address is None and patient.telecom is None
    assert len(str(patient.birthDate)) == 4 and patient.gender in ("male", "female")

    event = _resources(bundle, "AdverseEvent")[0]
    assert event.seriousness.coding[0].code == "Non-serious"
    assert event.severity.coding[0].code == "moderate" and event.outcome.coding[0].code == "recovering"
    assert "dry cough" not in text  # verbatim free text is not exported

    # blinded: no arm anywhere
    assert "assignedArm" not in text and "actualArm" not in text and '"arm"' not in text
    assert f'"{trial.arm}"' not in text

    opened = fhir.parse_bundle(fhir.write_bundle(tmp_path / "open", blinded=False))
    subject = next(s for s in _resources(opened, "ResearchSubject")
                   if s.identifier[0].value == trial.participant.screening_number)
    assert subject.assignedArm == trial.arm and subject.status == "on-study"
    assert {a.name for a in _resources(opened, "ResearchStudy")[0].arm} == {"MSC", "PBO"}


def _w13(trial) -> str:
    return trial.participant.visits.get(code="W13").actual_date.isoformat()


def _walk(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)
