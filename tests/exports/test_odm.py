"""ODM 1.3.2 export: the metadata validates and round-trips; clinical data carries the audit trail."""

from __future__ import annotations

import pytest
from lxml import etree

from ildtrial.core.protocol import FormField, Visit, load_protocol
from ildtrial.exports import odm
from tests.edc.test_api_support import CORRECTION_REASON, build_trial, make_team

NS = {"odm": odm.ODM_NS}


@pytest.fixture(scope="module")
def protocol():
    return load_protocol().protocol


def test_metadata_is_valid_odm_1_3_2_and_round_trips_forms_fields_and_visits(protocol, tmp_path):
    path = tmp_path / odm.METADATA_FILE
    root = odm.build_metadata(protocol, blinded=True)
    odm._write(root, path)
    assert odm.schema_errors(path) == []
    assert odm._oid_errors(root) == []

    back = odm.import_metadata(path)
    assert [f["code"] for f in back["forms"]] == [f.code for f in protocol.forms]
    for form, imported in zip(protocol.forms, back["forms"], strict=True):
        assert imported["name"] == form.name.model_dump()
        assert (imported["version"], imported["repeating"], imported["sdv"]) == (form.version, form.repeating, form.sdv)
        assert imported["key_fields"] == form.key_fields and imported["procedure_date"] == form.procedure_date
        # every field (type, unit, limits, choices, en/ru labels, help) comes back identical
        assert [FormField.model_validate(f) for f in imported["fields"]] == form.fields
    assert [Visit.model_validate(v) for v in back["visits"]] == protocol.schedule.visits
    assert back["unscheduled_forms"] == protocol.schedule.unscheduled_forms
    assert back["arms"] == []  # blinded metadata has no arm code list

    text = path.read_text(encoding="utf-8")
    assert 'xml:lang="ru"' in text and "ФЖЕЛ" in text
    assert 'DataType="float"' in text and 'SoftHard="Soft"' in text and "<MeasurementUnit " in text
    assert "ARMCD" not in text


def test_unblinded_metadata_names_the_arms(protocol, tmp_path):
    path = tmp_path / odm.METADATA_FILE
    odm._write(odm.build_metadata(protocol, blinded=False), path)
    assert odm.schema_errors(path) == []
    assert [a["code"] for a in odm.import_metadata(path)["arms"]] == [a.code for a in protocol.arms]


@pytest.mark.django_db
def test_clinical_data_with_audit_records_and_no_arm_when_blinded(make_user, tmp_path):
    trial = build_trial(make_team(make_user))
    coordinator = trial.team["study_coordinator"].username
    paths = odm.write_odm(tmp_path / "blinded", blinded=True)
    assert [p.name for p in paths] == [odm.METADATA_FILE, odm.CLINICAL_FILE]
    clinical = etree.parse(str(paths[1]))
    assert odm.schema_errors(paths[1]) == []

    subject = clinical.find(f".//odm:SubjectData[@SubjectKey='{trial.participant.screening_number}']", NS)
    assert subject is not None
    spiro = subject.find("odm:StudyEventData[@StudyEventOID='SE.W13']/odm:FormData[@FormOID='F.SPIRO']", NS)
    fvc = spiro.find(".//odm:ItemData[@ItemOID='IT.SPIRO.fvc_l']", NS)
    assert fvc.get("Value") == "2.18"
    # who, when and why the current value was set
    record = fvc.find("odm:AuditRecord", NS)
    assert record.find("odm:UserRef", NS).get("UserOID") == f"USR.{coordinator}"
    assert record.find("odm:ReasonForChange", NS).text == CORRECTION_REASON
    assert record.find("odm:DateTimeStamp", NS).text
    fev1 = spiro.find(".//odm:ItemData[@ItemOID='IT.SPIRO.fev1_l']/odm:AuditRecord", NS)
    assert fev1.find("odm:ReasonForChange", NS) is None  # set at creation, never changed
    assert spiro.find("odm:AuditRecord/odm:ReasonForChange", NS).text == CORRECTION_REASON
    # the whole history of the form travels in ClinicalData/AuditRecords
    history = [r.find("odm:SourceID", NS).text for r in clinical.iterfind(".//odm:AuditRecords/odm:AuditRecord", NS)]
    spiro_history = [h for h in history if "/W13/SPIRO#1:" in h]
    assert len(spiro_history) == 2 and "create" in spiro_history[0] and "update" in spiro_history[1]
    users = {u.get("OID") for u in clinical.iterfind(".//odm:AdminData/odm:User", NS)}
    assert f"USR.{coordinator}" in users
    # blinded: randomization number, no arm
    rand = subject.find("odm:StudyEventData[@StudyEventOID='SE.RANDOMIZATION']", NS)
    values = {i.get("ItemOID"): i.get("Value") for i in rand.iterfind(".//odm:ItemData", NS)}
    assert values["IT.RANDOMIZATION.RANDNO"] == trial.participant.randomization_number
    assert "IT.RANDOMIZATION.ARMCD" not in values
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert "ARMCD" not in text and f'"{trial.arm}"' not in text

    open_paths = odm.write_odm(tmp_path / "open", blinded=False)
    opened = etree.parse(str(open_paths[1]))
    arm = opened.find(".//odm:ItemData[@ItemOID='IT.RANDOMIZATION.ARMCD']", NS)
    assert arm is not None and arm.get("Value") == trial.arm
