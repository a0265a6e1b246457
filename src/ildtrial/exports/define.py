"""Define-XML 2.1: the metadata that lets a reviewer read the transport files.

One ``define.xml`` per package (SDTM or ADaM) describes every dataset
(``ItemGroupDef`` with its ``def:leaf`` link to the ``.xpt`` file), every variable
(``ItemDef``: name, label, data type, length, origin), every code list (``CodeList`` with
the NCI codes known to :mod:`ildtrial.exports.terminology`) and every derivation
(``MethodDef``: the ADaM rules of :data:`ildtrial.datasets.DERIVATIONS`, the SDTM rules of
:func:`ildtrial.exports.spec.sdtm_derivation`).

The metadata is read from the same :class:`~ildtrial.exports.spec.DatasetSpec` that
built and labelled the datasets, and lengths and data types from the data themselves, so
the document cannot describe a column the file does not have. The CDISC XSD is not
available offline; the tests check the structure instead (every reference resolves,
every leaf file exists).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from lxml import etree

from ildtrial import __version__
from ildtrial.exports.spec import SDTM_SPECS, DatasetSpec, Variable, sdtm_derivation
from ildtrial.exports.terminology import CodeList

__all__ = ["DEF", "ODM", "XLINK", "DefineDataset", "build_define", "write_define"]

ODM = "http://www.cdisc.org/ns/odm/v1.3"
DEF = "http://www.cdisc.org/ns/def/v2.1"
XLINK = "http://www.w3.org/1999/xlink"
XML = "http://www.w3.org/XML/1998/namespace"
NSMAP = {None: ODM, "def": DEF, "xlink": XLINK}

#: Controlled terminology package the code lists are a subset of (stated in def:Standards).
CT_VERSION = "2024-09-27"
_STANDARDS = {
    "SDTM": (("SDTMIG", "IG", "3.4", None), ("CDISC/NCI", "CT", CT_VERSION, "SDTM")),
    "ADaM": (("ADaMIG", "IG", "1.3", None), ("CDISC/NCI", "CT", CT_VERSION, "ADaM")),
}


@dataclass(frozen=True)
class DefineDataset:
    """One dataset to describe: its metadata, its data (for lengths and types), its file name."""

    spec: DatasetSpec
    frame: pd.DataFrame
    href: str


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _text(parent: etree._Element, tag: str, value: str) -> etree._Element:
    """``<tag><TranslatedText xml:lang="en">value</TranslatedText></tag>`` under ``parent``."""
    el = etree.SubElement(parent, _q(ODM, tag))
    tt = etree.SubElement(el, _q(ODM, "TranslatedText"))
    tt.set(_q(XML, "lang"), "en")
    tt.text = value
    return el


def _data_type(var: Variable, values: pd.Series) -> tuple[str, int | None, int | None]:
    """(DataType, Length, SignificantDigits) of a variable from its declared type and its data."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if var.kind == "dtc":
        return ("datetime" if any("T" in str(v) for v in present) else "date"), None, None
    if var.type == "Num":
        if var.kind == "date":
            return "integer", 8, None
        numbers = [float(v) for v in present if not isinstance(v, (pd.Timestamp, datetime))]
        if all(float(n).is_integer() for n in numbers):
            digits = max((len(str(int(n))) for n in numbers), default=1)
            return "integer", max(digits, 1), None
        decimals = max((len(f"{n!r}".split(".")[1]) if "." in f"{n!r}" and "e" not in f"{n!r}" else 0
                        for n in numbers), default=1)
        return "float", 8, max(min(decimals, 8), 1)
    longest = max((len(str(v).encode("utf-8")) for v in present), default=1)
    return "text", max(longest, 1), None


def _origin(parent: etree._Element, var: Variable, dataset: str) -> None:
    origin = etree.SubElement(parent, _q(DEF, "Origin"))
    kind = var.origin
    if kind == "Predecessor":
        source = _predecessor(dataset, var.name)
        if source is None:
            kind = "Assigned"
        else:
            origin.set("Type", kind)
            _text(origin, "Description", source)
            return
    origin.set("Type", kind)
    if kind == "Collected":
        origin.set("Source", "Investigator")


def _predecessor(dataset: str, name: str) -> str | None:
    """The SDTM variable an ADaM variable is copied from, where one exists."""
    sources = {"ADSL": ("DM",), "ADAE": ("AE", "DM"), "ADLF": ("DM",)}.get(dataset, ())
    for domain in sources:
        if name in SDTM_SPECS[domain].names:
            return f"{domain}.{name}"
    return None


def _derivation(var: Variable, model: str) -> str | None:
    if var.origin != "Derived":
        return None
    return var.derivation or (sdtm_derivation(var.name) if model == "SDTM" else None) or (
        f"Derived as described in the dataset's documentation ({var.name}).")


def build_define(datasets: Sequence[DefineDataset], *, model: str, studyid: str, title: str,
                 codelists: Mapping[str, CodeList], protocol_name: str | None = None,
                 created: datetime | None = None) -> etree._ElementTree:
    """The Define-XML 2.1 document of ``datasets`` (``model`` is ``"SDTM"`` or ``"ADaM"``)."""
    if model not in _STANDARDS:
        raise ValueError(f"model must be SDTM or ADaM, not {model!r}")
    created = created or datetime.now(UTC)
    stamp = created.replace(microsecond=0).isoformat()
    root = etree.Element(_q(ODM, "ODM"), nsmap=NSMAP)
    root.set("FileType", "Snapshot")
    root.set("FileOID", f"DEF.{studyid}.{model}")
    root.set("ODMVersion", "1.3.2")
    root.set("CreationDateTime", stamp)
    root.set("Originator", "ildtrial")
    root.set("SourceSystem", "ildtrial")
    root.set("SourceSystemVersion", __version__)
    root.set(_q(DEF, "Context"), "Submission")
    study = etree.SubElement(root, _q(ODM, "Study"), OID=f"ST.{studyid}")
    gv = etree.SubElement(study, _q(ODM, "GlobalVariables"))
    etree.SubElement(gv, _q(ODM, "StudyName")).text = studyid
    etree.SubElement(gv, _q(ODM, "StudyDescription")).text = title
    etree.SubElement(gv, _q(ODM, "ProtocolName")).text = protocol_name or studyid
    mdv = etree.SubElement(study, _q(ODM, "MetaDataVersion"), OID=f"MDV.{studyid}.{model}",
                           Name=f"{studyid} {model}", Description=f"{model} datasets of {studyid}")
    mdv.set(_q(DEF, "DefineVersion"), "2.1.0")
    standards = etree.SubElement(mdv, _q(DEF, "Standards"))
    std_oids = {}
    for i, (name, kind, version, publishing) in enumerate(_STANDARDS[model], start=1):
        oid = f"STD.{i}"
        std_oids[kind] = oid
        el = etree.SubElement(standards, _q(DEF, "Standard"), OID=oid, Name=name, Type=kind, Version=version,
                              Status="Final")
        if publishing:
            el.set("PublishingSet", publishing)

    item_defs: list[etree._Element] = []
    methods: dict[str, str] = {}
    used_lists: list[str] = []
    purpose = "Tabulation" if model == "SDTM" else "Analysis"
    for ds in datasets:
        spec = ds.spec
        ig = etree.SubElement(mdv, _q(ODM, "ItemGroupDef"), OID=f"IG.{spec.name}", Name=spec.name,
                              SASDatasetName=spec.name, Repeating="No" if spec.name in ("DM", "ADSL") else "Yes",
                              IsReferenceData="Yes" if spec.cls == "TRIAL DESIGN" else "No", Purpose=purpose)
        if model == "SDTM":
            ig.set("Domain", spec.name)
        ig.set(_q(DEF, "Structure"), spec.structure)
        ig.set(_q(DEF, "StandardOID"), std_oids["IG"])
        ig.set(_q(DEF, "ArchiveLocationID"), f"LF.{spec.name}")
        _text(ig, "Description", spec.label)
        for order, var in enumerate(spec.variables, start=1):
            oid = f"IT.{spec.name}.{var.name}"
            ref = etree.SubElement(ig, _q(ODM, "ItemRef"), ItemOID=oid, OrderNumber=str(order),
                                   Mandatory="Yes" if var.core == "Req" else "No")
            if var.name in spec.keys:
                ref.set("KeySequence", str(spec.keys.index(var.name) + 1))
            rule = _derivation(var, model)
            if rule:
                method_oid = f"MT.{spec.name}.{var.name}"
                ref.set("MethodOID", method_oid)
                methods[method_oid] = rule
            values = ds.frame[var.name] if var.name in ds.frame.columns else pd.Series([], dtype=object)
            data_type, length, digits = _data_type(var, values)
            item = etree.Element(_q(ODM, "ItemDef"), OID=oid, Name=var.name, DataType=data_type,
                                 SASFieldName=var.name)
            if length is not None:
                item.set("Length", str(length))
            if digits is not None:
                item.set("SignificantDigits", str(digits))
            if var.kind == "date":
                item.set(_q(DEF, "DisplayFormat"), "DATE9.")
            _text(item, "Description", var.label)
            if var.codelist and var.codelist in codelists:
                etree.SubElement(item, _q(ODM, "CodeListRef"), CodeListOID=codelists[var.codelist].oid)
                if var.codelist not in used_lists:
                    used_lists.append(var.codelist)
            _origin(item, var, spec.name)
            item_defs.append(item)
        etree.SubElement(ig, _q(DEF, "Class"), Name=spec.cls)
        leaf = etree.SubElement(ig, _q(DEF, "leaf"), ID=f"LF.{spec.name}")
        leaf.set(_q(XLINK, "href"), ds.href)
        etree.SubElement(leaf, _q(DEF, "title")).text = ds.href
    for item in item_defs:
        mdv.append(item)
    for name in used_lists:
        _codelist(mdv, codelists[name], std_oids["CT"])
    for oid, rule in methods.items():
        _, dataset, variable = oid.split(".", 2)
        m = etree.SubElement(mdv, _q(ODM, "MethodDef"), OID=oid, Name=f"Algorithm for {dataset}.{variable}",
                             Type="Computation")
        _text(m, "Description", rule)
    return etree.ElementTree(root)


def _codelist(parent: etree._Element, cl: CodeList, ct_oid: str) -> None:
    el = etree.SubElement(parent, _q(ODM, "CodeList"), OID=cl.oid, Name=cl.description, DataType=cl.data_type)
    if not cl.sponsor_defined:
        el.set(_q(DEF, "StandardOID"), ct_oid)
    decoded = all(t.decode for t in cl.terms)
    for rank, term in enumerate(cl.terms, start=1):
        if decoded:
            item = etree.SubElement(el, _q(ODM, "CodeListItem"), CodedValue=term.value, Rank=str(rank))
        else:
            item = etree.SubElement(el, _q(ODM, "EnumeratedItem"), CodedValue=term.value, Rank=str(rank))
        if term.extended:
            item.set(_q(DEF, "ExtendedValue"), "Yes")
        if decoded:
            _text(item, "Decode", term.decode or term.value)
        if term.nci:
            etree.SubElement(item, _q(ODM, "Alias"), Context="nci:ExtCodeID", Name=term.nci)
    if cl.nci:
        etree.SubElement(el, _q(ODM, "Alias"), Context="nci:ExtCodeID", Name=cl.nci)


def write_define(path: Path | str, datasets: Sequence[DefineDataset], **kwargs: object) -> Path:
    """Write :func:`build_define` to ``path`` (UTF-8, pretty-printed, with XML declaration)."""
    tree = build_define(datasets, **kwargs)  # type: ignore[arg-type]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(str(path), xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return path
