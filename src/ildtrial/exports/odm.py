"""CDISC ODM 1.3.2 export: the protocol as study metadata, the EDC as clinical data.

Why ODM and why this shape: ODM is how EDC metadata and data travel between systems
(shared/domain/cdisc.md), so another EDC, a data warehouse or a CDISC tool can read the
trial without knowing this platform. Two files are written:

* ``odm-metadata.xml``: one ``Study`` with a ``MetaDataVersion`` built from the protocol
  file only (visits → ``StudyEventDef``, forms → ``FormDef`` with one ``ItemGroupDef``
  each, fields → ``ItemDef`` with DataType, Length, SignificantDigits, units as
  ``MeasurementUnit``, limits as ``RangeCheck`` (hard = refused, soft = confirmed),
  choices as ``CodeList``), every label as ``TranslatedText`` in English and Russian. The
  protocol attributes ODM has no element for (visit day, anchor and window, form version,
  SDV level, ``not_in_future``) are carried as ``Alias`` elements with an ``ildtrial:``
  context, so :func:`import_metadata` rebuilds the protocol's forms, fields and visits
  exactly (tested as a round trip).
* ``odm-clinical.xml``: ``AdminData`` (the users named in the audit records and the sites
  as locations) and ``ClinicalData`` with one ``SubjectData`` per participant (subject key
  = screening number, stable from the first visit), ``StudyEventData`` per recorded visit,
  ``FormData``/``ItemGroupData``/``ItemData`` per stored form instance (repeat key =
  instance). Audit records come from the hash-chained audit trail: each ``ItemData``
  carries the record of the change that set its current value, each ``FormData`` the
  record of the form's latest change, and ``ClinicalData/AuditRecords`` lists every
  change to every exported form (``SourceID`` = the trail's sequence number), so the
  history travels with the data.

Blinding: with ``blinded=True`` nothing in either file names an arm. The randomization
event then carries only the randomization number, date and stratum; the unblinded export
adds ``ARMCD`` (and its code list) to it. The randomization event is not part of the
protocol's schedule and is skipped by :func:`import_metadata`.

Validation: odmlib ships the ODM 1.3.2 XSD (``odmlib/schemas/odm/1.3.2``), so every
written file is validated against the schema offline (:func:`schema_errors`); the
metadata file is also checked with odmlib's OID checker (unique OIDs, every Ref has a
Def) and the clinical file's references are checked against the metadata. A file that
fails is not returned: :class:`OdmInvalid` is raised with the problems.

Derived values (% predicted and the like) are not protocol items and are not exported
here; the SDTM/ADaM and FHIR exports carry them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import odmlib.odm_1_3_2.model as ODM

from ildtrial import __version__
from ildtrial.core.protocol import Form, FormField, Protocol, Text, Visit

__all__ = [
    "CLINICAL_FILE",
    "METADATA_FILE",
    "OdmInvalid",
    "build_clinical",
    "build_metadata",
    "import_metadata",
    "schema_errors",
    "write_odm",
]

METADATA_FILE = "odm-metadata.xml"
CLINICAL_FILE = "odm-clinical.xml"
ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"

#: ODM DataType of each protocol field type (choices are text with a CodeList).
DATA_TYPES: dict[str, str] = {
    "integer": "integer",
    "decimal": "float",
    "text": "text",
    "date": "date",
    "datetime": "datetime",
    "time": "time",
    "choice": "text",
    "boolean": "boolean",
}

#: Not protocol visits: names longer than a protocol visit code (8), so they never collide.
UNSCHEDULED = "UNSCHEDULED"
RANDOMIZATION = "RANDOMIZATION"
RAND_FORM = "RANDOMIZATION"
_ALIAS = "ildtrial:"


class OdmInvalid(ValueError):
    """A generated ODM file failed schema or reference validation; ``errors`` lists why."""

    def __init__(self, path: Path, errors: Sequence[str]):
        self.path = path
        self.errors = list(errors)
        shown = "\n".join(f"  - {e}" for e in self.errors[:20])
        super().__init__(f"{path.name} is not valid ODM 1.3.2 ({len(self.errors)} problem(s)):\n{shown}")


# --------------------------------------------------------------------------- OIDs
def se_oid(visit_code: str) -> str:
    return f"SE.{visit_code}"


def form_oid(form_code: str) -> str:
    return f"F.{form_code}"


def ig_oid(form_code: str) -> str:
    return f"IG.{form_code}"


def item_oid(form_code: str, field_code: str) -> str:
    return f"IT.{form_code}.{field_code}"


def codelist_oid(form_code: str, field_code: str) -> str:
    return f"CL.{form_code}.{field_code}"


def study_oid(protocol: Protocol) -> str:
    return f"ST.{protocol.identity.registration}"


def mdv_oid(protocol: Protocol) -> str:
    return f"MDV.{protocol.identity.registration}.{protocol.version}"


def _unit_oids(protocol: Protocol) -> dict[str, str]:
    """A stable OID per unit text ('%' → MU.PCT, 'mL/min/mmHg' → MU.mL_min_mmHg)."""
    units = sorted({f.unit for form in protocol.forms for f in form.fields if f.unit})
    out: dict[str, str] = {}
    for unit in units:
        base = "MU." + (re.sub(r"[^A-Za-z0-9]+", "_", unit.replace("%", "PCT").replace("°", "DEG")).strip("_") or "UNIT")
        oid, n = base, 2
        while oid in out.values():
            oid, n = f"{base}_{n}", n + 1
        out[unit] = oid
    return out


# --------------------------------------------------------------------------- helpers
def _tt(text: Text | str, ru: str | None = None) -> list[ODM.TranslatedText]:
    """TranslatedText in English and Russian (a plain string is used for both)."""
    if isinstance(text, Text):
        return [ODM.TranslatedText(_content=text.en, lang="en"), ODM.TranslatedText(_content=text.ru, lang="ru")]
    return [ODM.TranslatedText(_content=text, lang="en"), ODM.TranslatedText(_content=ru or text, lang="ru")]


def _alias(name: str, value: Any) -> ODM.Alias:
    if isinstance(value, bool):
        value = "true" if value else "false"
    return ODM.Alias(Context=f"{_ALIAS}{name}", Name=str(value))


def _number(value: float) -> str:
    """A limit as text that parses back to the same float ('100', '0.1')."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _yes(flag: bool) -> str:
    return "Yes" if flag else "No"


def _int_digits(*bounds: float | None) -> int | None:
    known = [abs(b) for b in bounds if b is not None]
    return len(str(int(max(known)))) if known else None


def _length(f: FormField) -> tuple[int | None, int | None]:
    """ODM Length and SignificantDigits of a field, from its protocol limits."""
    if f.type == "text":
        return f.max_length, None
    if f.type == "choice":
        return max(len(c.code) for c in f.choices or []), None
    if f.type == "integer":
        return _int_digits(f.min, f.max) or 9, None
    if f.type == "decimal":
        digits = _int_digits(f.min, f.max) or 9
        return digits + (f.decimals or 0), f.decimals
    return None, None


_COMPARATORS = (("min", "GE", "Hard"), ("max", "LE", "Hard"), ("soft_min", "GE", "Soft"), ("soft_max", "LE", "Soft"))


def _range_checks(f: FormField, unit_oid: str | None) -> list[ODM.RangeCheck]:
    checks = []
    for attr, comparator, strength in _COMPARATORS:
        bound = getattr(f, attr)
        if bound is None:
            continue
        op = "≥" if comparator == "GE" else "≤"
        verb_en = "must be" if strength == "Hard" else "is usually"
        verb_ru = "должно быть" if strength == "Hard" else "обычно"
        unit = f" {f.unit}" if f.unit else ""
        # children in schema order: CheckValue, MeasurementUnitRef, ErrorMessage
        check = ODM.RangeCheck(Comparator=comparator, SoftHard=strength,
                               CheckValue=[ODM.CheckValue(_content=_number(bound))])
        if unit_oid:
            check.MeasurementUnitRef = ODM.MeasurementUnitRef(MeasurementUnitOID=unit_oid)
        check.ErrorMessage = ODM.ErrorMessage(TranslatedText=_tt(
            f"{f.label.en} {verb_en} {op} {_number(bound)}{unit}",
            f"{f.label.ru}: {verb_ru} {op} {_number(bound)}{unit}"))
        checks.append(check)
    return checks


# --------------------------------------------------------------------------- metadata
def _field_defs(form: Form, units: dict[str, str]) -> tuple[list[ODM.ItemDef], list[ODM.CodeList]]:
    items: list[ODM.ItemDef] = []
    codelists: list[ODM.CodeList] = []
    for f in form.fields:
        length, digits = _length(f)
        item = ODM.ItemDef(OID=item_oid(form.code, f.code), Name=f.code, DataType=DATA_TYPES[f.type])
        if length is not None:
            item.Length = length
        if digits is not None:
            item.SignificantDigits = digits
        item.SASFieldName = f.code.upper()[:8]
        if f.help is not None:
            item.Description = ODM.Description(TranslatedText=_tt(f.help))
        item.Question = ODM.Question(TranslatedText=_tt(f.label))
        unit_oid = units.get(f.unit) if f.unit else None
        if unit_oid:
            item.MeasurementUnitRef = [ODM.MeasurementUnitRef(MeasurementUnitOID=unit_oid)]
        item.RangeCheck = _range_checks(f, unit_oid)
        if f.choices:
            oid = codelist_oid(form.code, f.code)
            item.CodeListRef = ODM.CodeListRef(CodeListOID=oid)
            codelists.append(ODM.CodeList(
                OID=oid, Name=f"{form.code}.{f.code}", DataType="text",
                CodeListItem=[ODM.CodeListItem(CodedValue=c.code, OrderNumber=i,
                                               Decode=ODM.Decode(TranslatedText=_tt(c.label)))
                              for i, c in enumerate(f.choices, start=1)]))
        aliases = [_alias("type", f.type)]
        if f.decimals is not None and f.type != "decimal":
            aliases.append(_alias("decimals", f.decimals))
        if f.not_in_future:
            aliases.append(_alias("not_in_future", True))
        item.Alias = aliases
        items.append(item)
    return items, codelists


def _visit_def(visit: Visit, order_of_forms: Sequence[str]) -> ODM.StudyEventDef:
    event = ODM.StudyEventDef(OID=se_oid(visit.code), Name=visit.code, Repeating="No", Type="Scheduled",
                              Category=visit.kind, Description=ODM.Description(TranslatedText=_tt(visit.name)))
    event.FormRef = [ODM.FormRef(FormOID=form_oid(code), OrderNumber=i, Mandatory="Yes")
                     for i, code in enumerate(order_of_forms, start=1)]
    aliases = [_alias("kind", visit.kind), _alias("anchor", visit.anchor), _alias("day", visit.day),
               _alias("window.before", visit.window.before), _alias("window.after", visit.window.after),
               _alias("infusion", visit.infusion)]
    if visit.cycle is not None:
        aliases.append(_alias("cycle", visit.cycle))
    event.Alias = aliases
    return event


def _randomization_defs(protocol: Protocol, *, blinded: bool) -> tuple[ODM.StudyEventDef, ODM.FormDef,
                                                                       ODM.ItemGroupDef, list[ODM.ItemDef],
                                                                       list[ODM.CodeList]]:
    """The randomization record: number, date, stratum, and the arm only when unblinded."""
    event = ODM.StudyEventDef(OID=se_oid(RANDOMIZATION), Name=RANDOMIZATION, Repeating="No", Type="Common",
                              Description=ODM.Description(TranslatedText=_tt("Randomization", "Рандомизация")),
                              FormRef=[ODM.FormRef(FormOID=form_oid(RAND_FORM), OrderNumber=1, Mandatory="Yes")],
                              Alias=[_alias("role", "randomization")])
    fields: list[tuple[str, str, Text, int | None]] = [
        ("RANDNO", "text", Text(en="Randomization number", ru="Номер рандомизации"), 20),
        ("RANDDTC", "datetime", Text(en="Date and time of randomization", ru="Дата и время рандомизации"), None),
        ("STRATUM", "text", Text(en="Randomization stratum", ru="Страта рандомизации"), 40),
    ]
    if not blinded:
        fields.append(("ARMCD", "text", Text(en="Allocated arm", ru="Группа рандомизации"),
                       max(len(a.code) for a in protocol.arms)))
    items, codelists = [], []
    for name, data_type, label, length in fields:
        item = ODM.ItemDef(OID=item_oid(RAND_FORM, name), Name=name, DataType=data_type,
                           Question=ODM.Question(TranslatedText=_tt(label)))
        if length is not None:
            item.Length = length
        if name == "ARMCD":
            oid = codelist_oid(RAND_FORM, name)
            item.CodeListRef = ODM.CodeListRef(CodeListOID=oid)
            codelists.append(ODM.CodeList(OID=oid, Name="ARMCD", DataType="text", CodeListItem=[
                ODM.CodeListItem(CodedValue=a.code, OrderNumber=i, Decode=ODM.Decode(TranslatedText=_tt(a.name)))
                for i, a in enumerate(protocol.arms, start=1)]))
        items.append(item)
    form = ODM.FormDef(OID=form_oid(RAND_FORM), Name=RAND_FORM, Repeating="No",
                       Description=ODM.Description(TranslatedText=_tt("Randomization", "Рандомизация")),
                       ItemGroupRef=[ODM.ItemGroupRef(ItemGroupOID=ig_oid(RAND_FORM), Mandatory="Yes")])
    group = ODM.ItemGroupDef(OID=ig_oid(RAND_FORM), Name=RAND_FORM, Repeating="No",
                             ItemRef=[ODM.ItemRef(ItemOID=i.OID, OrderNumber=n, Mandatory="Yes")
                                      for n, i in enumerate(items, start=1)])
    return event, form, group, items, codelists


def _root(file_oid: str, description: str) -> ODM.ODM:
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    return ODM.ODM(Description=description, FileType="Snapshot", FileOID=file_oid, CreationDateTime=now,
                   ODMVersion="1.3.2", Originator="ildtrial", SourceSystem="ildtrial",
                   SourceSystemVersion=__version__)


def build_metadata(protocol: Protocol, *, blinded: bool) -> ODM.ODM:
    """The study metadata (an odmlib ``ODM`` object) of ``protocol``."""
    units = _unit_oids(protocol)
    root = _root(f"{study_oid(protocol)}.METADATA.{protocol.version}",
                 f"Study metadata of {protocol.identity.registration}, protocol {protocol.version}")
    study = ODM.Study(OID=study_oid(protocol), GlobalVariables=ODM.GlobalVariables(
        StudyName=ODM.StudyName(_content=protocol.identity.short_title),
        StudyDescription=ODM.StudyDescription(_content=protocol.identity.title),
        ProtocolName=ODM.ProtocolName(_content=protocol.identity.registration)))
    if units:
        study.BasicDefinitions = ODM.BasicDefinitions(MeasurementUnit=[
            ODM.MeasurementUnit(OID=oid, Name=unit, Symbol=ODM.Symbol(TranslatedText=[
                ODM.TranslatedText(_content=unit, lang="en")]))
            for unit, oid in units.items()])
    mdv = ODM.MetaDataVersion(OID=mdv_oid(protocol), Name=f"Protocol {protocol.version}",
                              Description=protocol.protocol.description[:2000])
    visits = protocol.schedule.visits
    refs = [ODM.StudyEventRef(StudyEventOID=se_oid(v.code), OrderNumber=i, Mandatory="Yes")
            for i, v in enumerate(visits, start=1)]
    refs.append(ODM.StudyEventRef(StudyEventOID=se_oid(UNSCHEDULED), OrderNumber=len(refs) + 1, Mandatory="No"))
    event_defs = [_visit_def(v, v.forms) for v in visits]
    unscheduled = ODM.StudyEventDef(OID=se_oid(UNSCHEDULED), Name=UNSCHEDULED, Repeating="Yes", Type="Unscheduled",
                                    Description=ODM.Description(TranslatedText=_tt("Unscheduled visit",
                                                                                   "Внеплановый визит")))
    unscheduled.FormRef = [ODM.FormRef(FormOID=form_oid(code), OrderNumber=i, Mandatory="No")
                           for i, code in enumerate(protocol.schedule.unscheduled_forms, start=1)]
    unscheduled.Alias = [_alias("role", "unscheduled")]
    event_defs.append(unscheduled)
    form_defs, group_defs, item_defs, codelists = [], [], [], []
    for form in protocol.forms:
        aliases = [_alias("version", form.version), _alias("sdv", form.sdv)]
        if form.key_fields:  # one Alias per context (ODM unique constraint): the list comma-separated
            aliases.append(_alias("key_fields", ",".join(form.key_fields)))
        if form.procedure_date:
            aliases.append(_alias("procedure_date", form.procedure_date))
        form_defs.append(ODM.FormDef(OID=form_oid(form.code), Name=form.code, Repeating=_yes(form.repeating),
                                     Description=ODM.Description(TranslatedText=_tt(form.name)),
                                     ItemGroupRef=[ODM.ItemGroupRef(ItemGroupOID=ig_oid(form.code), Mandatory="Yes")],
                                     Alias=aliases))
        group_defs.append(ODM.ItemGroupDef(
            OID=ig_oid(form.code), Name=form.code, Repeating="No", SASDatasetName=form.code[:8],
            Description=ODM.Description(TranslatedText=_tt(form.name)),
            ItemRef=[ODM.ItemRef(ItemOID=item_oid(form.code, f.code), OrderNumber=i, Mandatory=_yes(f.required))
                     for i, f in enumerate(form.fields, start=1)]))
        items, lists = _field_defs(form, units)
        item_defs += items
        codelists += lists
    r_event, r_form, r_group, r_items, r_lists = _randomization_defs(protocol, blinded=blinded)
    refs.append(ODM.StudyEventRef(StudyEventOID=r_event.OID, OrderNumber=len(refs) + 1, Mandatory="No"))
    mdv.Protocol = ODM.Protocol(Description=ODM.Description(TranslatedText=_tt(protocol.identity.title)),
                                StudyEventRef=refs)
    mdv.StudyEventDef = [*event_defs, r_event]
    mdv.FormDef = [*form_defs, r_form]
    mdv.ItemGroupDef = [*group_defs, r_group]
    mdv.ItemDef = [*item_defs, *r_items]
    mdv.CodeList = [*codelists, *r_lists]
    study.MetaDataVersion = [mdv]
    root.Study = [study]
    return root


# --------------------------------------------------------------------------- clinical data
@dataclass
class _Trail:
    """The audit entries of the exported forms, by form primary key, oldest first."""

    by_form: dict[str, list[Any]]

    @classmethod
    def load(cls, form_pks: Iterable[int]) -> _Trail:
        from ildtrial.edc.audit.models import AuditEntry

        keys = [str(pk) for pk in form_pks]
        by_form: dict[str, list[Any]] = {k: [] for k in keys}
        # chunked: SQLite limits the number of query parameters
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            for entry in AuditEntry.objects.filter(model="crfs.FormInstance", object_pk__in=chunk).order_by("sequence"):
                by_form[entry.object_pk].append(entry)
        return cls(by_form)


def _user_oid(username: str) -> str:
    return "USR." + (re.sub(r"\s+", "_", username) or "unknown")


def _location_oid(site_code: str) -> str:
    return f"LOC.{site_code}"


def _audit_record(entry: Any, site_code: str, *, with_id: bool = False, source: str = "") -> ODM.AuditRecord:
    record = ODM.AuditRecord(UserRef=ODM.UserRef(UserOID=_user_oid(entry.actor_username)),
                             LocationRef=ODM.LocationRef(LocationOID=_location_oid(site_code)),
                             DateTimeStamp=ODM.DateTimeStamp(_content=entry.occurred_at.astimezone(UTC).isoformat()))
    if with_id:
        record.ID = f"AR.{entry.sequence}"
    if entry.reason:
        record.ReasonForChange = ODM.ReasonForChange(_content=entry.reason)
    record.SourceID = ODM.SourceID(_content=source or f"audit trail entry {entry.sequence} ({entry.action})")
    return record


def _value(f: FormField, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if f.type == "decimal" and isinstance(value, int | float):
        return f"{float(value):.{f.decimals}f}" if f.decimals is not None else repr(float(value))
    if f.type == "integer" and isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _visit_key(protocol: Protocol, visit: Any) -> tuple[str, str | None]:
    """(StudyEventOID, repeat key) of a recorded visit; unscheduled UNSn → (SE.UNSCHEDULED, n)."""
    if visit.unscheduled:
        return se_oid(UNSCHEDULED), visit.code.removeprefix("UNS") or "1"
    return se_oid(visit.code), None


def _form_data(protocol: Protocol, form: Any, entries: list[Any], site_code: str, subject: str,
               event_key: str) -> ODM.FormData:
    definition = protocol.form(form.form_code)
    data = ODM.FormData(FormOID=form_oid(form.form_code))
    if definition.repeating:
        data.FormRepeatKey = str(form.instance)
    if entries:
        data.AuditRecord = _audit_record(entries[-1], site_code, source=f"{subject}/{event_key}/{form.form_code}"
                                         f"#{form.instance} revision {form.revision}")
    if form.status == "not_done":
        data.Annotation = [ODM.Annotation(SeqNum=1, Comment=ODM.Comment(
            SponsorOrSite="Site", _content=f"Not done: {form.not_done_reason}"[:2000]))]
        return data
    data.Annotation = [ODM.Annotation(SeqNum=1, Comment=ODM.Comment(SponsorOrSite="Site",
                                                                    _content=f"status: {form.status}"))]
    last_set: dict[str, Any] = {}
    for entry in entries:
        for key in entry.changes:
            if key.startswith("data."):
                last_set[key[5:]] = entry
    items = []
    for f in definition.fields:
        value = (form.data or {}).get(f.code)
        if value is None or value == "":
            continue
        item = ODM.ItemData(ItemOID=item_oid(form.form_code, f.code), Value=_value(f, value))
        if f.code in last_set:
            item.AuditRecord = _audit_record(last_set[f.code], site_code)
        items.append(item)
    data.ItemGroupData = [ODM.ItemGroupData(ItemGroupOID=ig_oid(form.form_code), ItemData=items)]
    return data


def _randomization_event(participant: Any, *, blinded: bool) -> ODM.StudyEventData | None:
    if not participant.randomization_number:
        return None
    items = [ODM.ItemData(ItemOID=item_oid(RAND_FORM, "RANDNO"), Value=participant.randomization_number)]
    if participant.randomized_at:
        items.append(ODM.ItemData(ItemOID=item_oid(RAND_FORM, "RANDDTC"),
                                  Value=participant.randomized_at.astimezone(UTC).isoformat()))
    if participant.stratum:
        items.append(ODM.ItemData(ItemOID=item_oid(RAND_FORM, "STRATUM"), Value=participant.stratum))
    if not blinded:
        slot = getattr(participant, "allocation", None)
        if slot is not None:
            items.append(ODM.ItemData(ItemOID=item_oid(RAND_FORM, "ARMCD"), Value=slot.arm))
    return ODM.StudyEventData(StudyEventOID=se_oid(RANDOMIZATION), FormData=[ODM.FormData(
        FormOID=form_oid(RAND_FORM), ItemGroupData=[ODM.ItemGroupData(ItemGroupOID=ig_oid(RAND_FORM),
                                                                      ItemData=items)])])


def build_clinical(protocol: Protocol, *, blinded: bool) -> ODM.ODM:
    """AdminData and ClinicalData (an odmlib ``ODM`` object) of every participant in the database.

    The export is trial-wide: whoever may export (``EXPORT_DATA``) gets the whole trial;
    whether arms are included is the caller's ``blinded`` decision.
    """
    from django.core.exceptions import ObjectDoesNotExist

    from ildtrial.edc.crfs.models import FormInstance
    from ildtrial.edc.participants.models import Participant
    from ildtrial.edc.study.models import Site

    participants = list(Participant.objects.select_related("site").order_by("screening_number"))
    forms = list(FormInstance.objects.select_related("visit").order_by("participant_id", "pk"))
    known_forms = {f.code for f in protocol.forms}
    forms = [f for f in forms if f.form_code in known_forms]
    trail = _Trail.load(f.pk for f in forms)
    by_participant: dict[int, list[Any]] = {}
    for form in forms:
        by_participant.setdefault(form.participant_id, []).append(form)

    visit_order = {v.code: i for i, v in enumerate(protocol.schedule.visits)}
    form_order = {f.code: i for i, f in enumerate(protocol.forms)}
    clinical = ODM.ClinicalData(StudyOID=study_oid(protocol), MetaDataVersionOID=mdv_oid(protocol))
    history: list[ODM.AuditRecord] = []
    usernames: set[str] = set()
    for participant in participants:
        site_code = participant.site.code
        subject = ODM.SubjectData(SubjectKey=participant.screening_number,
                                  SiteRef=ODM.SiteRef(LocationOID=_location_oid(site_code)))
        events: dict[tuple[str, str | None], ODM.StudyEventData] = {}
        ordering: dict[tuple[str, str | None], tuple[int, int]] = {}
        subject_forms = sorted(by_participant.get(participant.pk, []), key=lambda f: (
            f.visit.unscheduled, visit_order.get(f.visit.code, 999), f.visit.code, form_order.get(f.form_code, 999),
            f.instance))
        for form in subject_forms:
            key = _visit_key(protocol, form.visit)
            event = events.get(key)
            if event is None:
                event = ODM.StudyEventData(StudyEventOID=key[0])
                if key[1] is not None:
                    event.StudyEventRepeatKey = key[1]
                events[key] = event
                ordering[key] = (int(form.visit.unscheduled), visit_order.get(form.visit.code, 999))
            entries = trail.by_form.get(str(form.pk), [])
            event_label = form.visit.code
            event.FormData.append(_form_data(protocol, form, entries, site_code, participant.screening_number,
                                             event_label))
            for entry in entries:
                usernames.add(entry.actor_username)
                history.append(_audit_record(entry, site_code, with_id=True, source=(
                    f"{participant.screening_number}/{event_label}/{form.form_code}#{form.instance}: {entry.action} "
                    + ", ".join(sorted(k.removeprefix("data.") for k in entry.changes))[:500])))
        subject.StudyEventData = [events[k] for k in sorted(events, key=lambda k: (ordering[k], k))]
        try:
            randomization = _randomization_event(participant, blinded=blinded)
        except ObjectDoesNotExist:
            randomization = None
        if randomization is not None:
            subject.StudyEventData.append(randomization)
        clinical.SubjectData.append(subject)
    history.sort(key=lambda r: int(r.ID.split(".")[1]))
    if history:
        clinical.AuditRecords = [ODM.AuditRecords(AuditRecord=history)]

    admin = ODM.AdminData(StudyOID=study_oid(protocol))
    admin.User = [ODM.User(OID=_user_oid(name), LoginName=ODM.LoginName(_content=name))
                  for name in sorted(usernames | {"system"})]
    admin.Location = [ODM.Location(OID=_location_oid(site.code), Name=site.name, LocationType="Site",
                                   MetaDataVersionRef=[ODM.MetaDataVersionRef(
                                       StudyOID=study_oid(protocol), MetaDataVersionOID=mdv_oid(protocol),
                                       EffectiveDate=protocol.protocol.effective_date.isoformat())])
                      for site in Site.objects.order_by("code")]
    root = _root(f"{study_oid(protocol)}.CLINICAL.{datetime.now(UTC):%Y%m%dT%H%M%S}",
                 f"Clinical data of {protocol.identity.registration}" + (" (blinded)" if blinded else ""))
    root.AdminData = [admin]
    root.ClinicalData = [clinical]
    return root


# --------------------------------------------------------------------------- validation and writing
def schema_errors(path: str | Path) -> list[str]:
    """Problems found by validating ``path`` against the ODM 1.3.2 XSD shipped with odmlib."""
    from odmlib.odm_parser import ODMSchemaValidator

    validator = ODMSchemaValidator(standard="odm", version="1.3.2")
    return [f"{e.path}: {e.reason}" for e in validator.xsd.iter_errors(str(path))]


def _oid_errors(root: ODM.ODM) -> list[str]:
    from odmlib.oid_generator import create_oid_checker

    return [str(e) for e in root.validate(collect_errors=True, oid_checker=create_oid_checker("odm_1_3_2"))]


def _reference_errors(metadata: ODM.ODM, clinical: ODM.ODM) -> list[str]:
    """Every OID the clinical data uses must be defined in the metadata (they are separate files)."""
    mdv = metadata.Study[0].MetaDataVersion[0]
    defined = {d.OID for d in [*mdv.StudyEventDef, *mdv.FormDef, *mdv.ItemGroupDef, *mdv.ItemDef]}
    users = {u.OID for u in clinical.AdminData[0].User}
    locations = {loc.OID for loc in clinical.AdminData[0].Location}
    errors: list[str] = []

    def check_record(record: ODM.AuditRecord | None, where: str) -> None:
        if record is None or record.UserRef is None:  # odmlib gives an empty element for an unset one
            return
        if record.UserRef.UserOID not in users:
            errors.append(f"{where}: UserOID {record.UserRef.UserOID} not in AdminData")
        if record.LocationRef.LocationOID not in locations:
            errors.append(f"{where}: LocationOID {record.LocationRef.LocationOID} not in AdminData")

    for subject in clinical.ClinicalData[0].SubjectData:
        for event in subject.StudyEventData:
            if event.StudyEventOID not in defined:
                errors.append(f"{subject.SubjectKey}: StudyEventOID {event.StudyEventOID} is not defined")
            for form in event.FormData:
                where = f"{subject.SubjectKey}/{event.StudyEventOID}/{form.FormOID}"
                if form.FormOID not in defined:
                    errors.append(f"{where}: FormOID is not defined")
                check_record(form.AuditRecord, where)
                for group in form.ItemGroupData:
                    for item in group.ItemData:
                        if item.ItemOID not in defined:
                            errors.append(f"{where}: ItemOID {item.ItemOID} is not defined")
                        check_record(item.AuditRecord, f"{where}/{item.ItemOID}")
    for records in clinical.ClinicalData[0].AuditRecords:
        for record in records.AuditRecord:
            check_record(record, record.ID)
    return errors


def _write(root: ODM.ODM, path: Path) -> None:
    """Write with odmlib, then indent (lxml) so the file diffs and reads well."""
    from lxml import etree

    root.write_xml(str(path))
    tree = etree.parse(str(path))
    etree.indent(tree, space="  ")
    tree.write(str(path), xml_declaration=True, encoding="UTF-8", pretty_print=True)


def write_odm(out_dir: str | Path, *, blinded: bool, protocol: Protocol | None = None) -> list[Path]:
    """Write ``odm-metadata.xml`` and ``odm-clinical.xml`` into ``out_dir``; both are validated.

    ``blinded`` decides whether the allocated arm appears (the caller decides from the
    user: ``protocol.is_blinded and not user.sees_allocation()``). Raises
    :class:`OdmInvalid` when a file fails the ODM 1.3.2 schema or the reference checks.
    """
    if protocol is None:
        from ildtrial.edc.study.protocol import current_protocol

        protocol = current_protocol()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metadata = build_metadata(protocol, blinded=blinded)
    clinical = build_clinical(protocol, blinded=blinded)
    paths = [out / METADATA_FILE, out / CLINICAL_FILE]
    problems = {paths[0]: _oid_errors(metadata), paths[1]: _reference_errors(metadata, clinical)}
    for root, path in zip((metadata, clinical), paths, strict=True):
        _write(root, path)
        errors = problems[path] + schema_errors(path)
        if errors:
            raise OdmInvalid(path, errors)
    return paths


# --------------------------------------------------------------------------- import
def _texts(container: Any) -> dict[str, str]:
    if container is None:
        return {}
    return {(t.lang or "en"): t._content for t in container.TranslatedText}


def _text(container: Any, default: str | None = None) -> dict[str, str] | None:
    """{"en", "ru"} from TranslatedText (odmlib gives an empty element, not None, when absent)."""
    texts = {k: v for k, v in _texts(container).items() if v}
    en = texts.get("en") or next(iter(texts.values()), default)
    if not en:
        return None
    return {"en": en, "ru": texts.get("ru") or en}


def _aliases(element: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for alias in getattr(element, "Alias", []) or []:
        if alias.Context and alias.Context.startswith(_ALIAS):
            out.setdefault(alias.Context[len(_ALIAS):], []).append(alias.Name)
    return out


def _parse_number(text: str) -> float:
    return float(text)


def _bool(text: str | None) -> bool:
    return (text or "").lower() in {"true", "yes", "1"}


def import_metadata(path: str | Path) -> dict[str, Any]:
    """Read an ODM metadata file back into protocol structures.

    Returns ``{"study": {...}, "visits": [...], "unscheduled_forms": [...], "forms": [...],
    "arms": [...]}`` where each visit is a dict accepted by
    :class:`ildtrial.core.protocol.Visit` and each form's ``fields`` entries are dicts
    accepted by :class:`ildtrial.core.protocol.FormField` (so a round trip can be checked
    field by field). Cross-field checks are not carried by this export. Works on any ODM
    1.3.2 metadata: without the ``ildtrial:`` aliases, types come from DataType alone.
    """
    from odmlib import loader, odm_loader

    odm_reader = loader.ODMLoader(odm_loader.XMLODMLoader(model_package="odm_1_3_2", ns_uri=ODM_NS))
    odm_reader.open_odm_document(str(path))
    study = odm_reader.Study()
    mdv = odm_reader.MetaDataVersion()
    items = {d.OID: d for d in mdv.ItemDef}
    groups = {d.OID: d for d in mdv.ItemGroupDef}
    codelists = {c.OID: c for c in mdv.CodeList}
    units: dict[str, str] = {}
    if study.BasicDefinitions is not None:
        units = {u.OID: u.Name for u in study.BasicDefinitions.MeasurementUnit}
    form_names = {d.OID: d.Name for d in mdv.FormDef}

    forms = []
    for form_def in mdv.FormDef:
        if form_oid(RAND_FORM) == form_def.OID:  # not a protocol form
            continue
        aliases = _aliases(form_def)
        fields = []
        for group_ref in form_def.ItemGroupRef:
            for ref in groups[group_ref.ItemGroupOID].ItemRef:
                fields.append(_field_from(items[ref.ItemOID], ref, codelists, units))
        form: dict[str, Any] = {
            "code": form_def.Name,
            "name": _text(form_def.Description, form_def.Name),
            "version": int(aliases.get("version", ["1"])[0]),
            "repeating": form_def.Repeating == "Yes",
            "sdv": aliases.get("sdv", ["full"])[0],
            "key_fields": [k for k in aliases.get("key_fields", [""])[0].split(",") if k],
            "procedure_date": aliases.get("procedure_date", [None])[0],
            "fields": fields,
        }
        forms.append(form)

    visits, unscheduled_forms = [], []
    events = {d.OID: d for d in mdv.StudyEventDef}
    order = [r.StudyEventOID for r in sorted(mdv.Protocol.StudyEventRef, key=lambda r: r.OrderNumber or 0)] \
        if mdv.Protocol is not None else list(events)
    for oid in order:
        event = events[oid]
        aliases = _aliases(event)
        role = aliases.get("role", [None])[0]
        form_codes = [form_names[r.FormOID] for r in sorted(event.FormRef, key=lambda r: r.OrderNumber or 0)]
        if role == "randomization":
            continue
        if role == "unscheduled" or event.Type == "Unscheduled":
            unscheduled_forms = form_codes
            continue
        visit: dict[str, Any] = {
            "code": event.Name,
            "name": _text(event.Description, event.Name),
            "kind": aliases.get("kind", [event.Category or "assessment"])[0],
            "anchor": aliases.get("anchor", ["day0"])[0],
            "day": int(aliases.get("day", ["0"])[0]),
            "window": {"before": int(aliases.get("window.before", ["0"])[0]),
                       "after": int(aliases.get("window.after", ["0"])[0])},
            "cycle": int(aliases["cycle"][0]) if "cycle" in aliases else None,
            "infusion": _bool(aliases.get("infusion", ["false"])[0]),
            "forms": form_codes,
        }
        visits.append(visit)

    arms = []
    arm_list = codelists.get(codelist_oid(RAND_FORM, "ARMCD"))
    if arm_list is not None:
        arms = [{"code": c.CodedValue, "name": _text(c.Decode, c.CodedValue)} for c in arm_list.CodeListItem]
    globals_ = study.GlobalVariables
    return {
        "study": {"oid": study.OID, "name": globals_.StudyName._content,
                  "description": globals_.StudyDescription._content, "protocol_name": globals_.ProtocolName._content,
                  "metadata_version": mdv.OID, "metadata_version_name": mdv.Name},
        "visits": visits,
        "unscheduled_forms": unscheduled_forms,
        "forms": forms,
        "arms": arms,
    }


_TYPES_BACK = {"integer": "integer", "float": "decimal", "double": "decimal", "text": "text", "string": "text",
               "date": "date", "datetime": "datetime", "time": "time", "boolean": "boolean"}


def _field_from(item: Any, ref: Any, codelists: dict[str, Any], units: dict[str, str]) -> dict[str, Any]:
    aliases = _aliases(item)
    if item.CodeListRef is not None:
        field_type = "choice"
    else:
        field_type = aliases.get("type", [_TYPES_BACK.get(item.DataType, "text")])[0]
    field: dict[str, Any] = {
        "code": item.Name,
        "label": _text(item.Question, item.Name),
        "type": field_type,
        "unit": units.get(item.MeasurementUnitRef[0].MeasurementUnitOID) if item.MeasurementUnitRef else None,
        "required": ref.Mandatory == "Yes",
        "min": None, "max": None, "soft_min": None, "soft_max": None,
        "decimals": None,
        "max_length": item.Length if field_type == "text" else None,
        "choices": None,
        "help": _text(item.Description),
        "not_in_future": _bool(aliases.get("not_in_future", ["false"])[0]),
    }
    if item.SignificantDigits is not None:
        field["decimals"] = item.SignificantDigits
    elif "decimals" in aliases:
        field["decimals"] = int(aliases["decimals"][0])
    for check in item.RangeCheck:
        if not check.CheckValue:
            continue
        value = _parse_number(check.CheckValue[0]._content)
        name = {("GE", "Hard"): "min", ("LE", "Hard"): "max", ("GE", "Soft"): "soft_min",
                ("LE", "Soft"): "soft_max"}.get((check.Comparator, check.SoftHard))
        if name:
            field[name] = value
    if item.CodeListRef is not None:
        codelist = codelists[item.CodeListRef.CodeListOID]
        entries = sorted(codelist.CodeListItem, key=lambda c: c.OrderNumber or 0)
        field["choices"] = [{"code": c.CodedValue, "label": _text(c.Decode, c.CodedValue)} for c in entries]
    return field
