"""Define-XML 2.1: well formed, complete, every reference resolves, every leaf file exists.

No XSD is available offline, so the structure is checked with lxml.
"""

from __future__ import annotations

import pytest
from lxml import etree

from ildtrial.datasets import DERIVATIONS
from ildtrial.exports.define import DEF, ODM, XLINK, DefineDataset, build_define
from ildtrial.exports.package import write_adam_package, write_sdtm_package
from ildtrial.exports.terminology import codelists

pytestmark = pytest.mark.django_db
NS = {"odm": ODM, "def": DEF, "xlink": XLINK}


@pytest.fixture(scope="module")
def sdtm_package(simulated_source, tmp_path_factory):
    out = tmp_path_factory.mktemp("sdtm")
    write_sdtm_package(out, simulated_source, blinded=False)
    return out


@pytest.fixture(scope="module")
def adam_package(simulated_source, tmp_path_factory):
    out = tmp_path_factory.mktemp("adam")
    write_adam_package(out, simulated_source, blinded=False)
    return out


def _tree(folder):
    return etree.parse(str(folder / "define.xml"))


def test_define_is_well_formed_xml_with_def_namespace(sdtm_package):
    root = _tree(sdtm_package).getroot()
    assert root.tag == f"{{{ODM}}}ODM"
    assert root.nsmap["def"] == DEF and root.nsmap["xlink"] == XLINK
    assert root.get("ODMVersion") == "1.3.2" and root.get(f"{{{DEF}}}Context") == "Submission"
    mdv = root.find("odm:Study/odm:MetaDataVersion", NS)
    assert mdv.get(f"{{{DEF}}}DefineVersion") == "2.1.0"
    standards = {s.get("Name"): s.get("Version") for s in mdv.findall("def:Standards/def:Standard", NS)}
    assert standards["SDTMIG"] == "3.4"


def test_every_itemref_points_to_an_itemdef(sdtm_package, adam_package):
    for folder in (sdtm_package, adam_package):
        tree = _tree(folder)
        defs = {e.get("OID") for e in tree.iterfind(".//odm:ItemDef", NS)}
        refs = [e.get("ItemOID") for e in tree.iterfind(".//odm:ItemRef", NS)]
        assert refs and set(refs) <= defs
        assert set(refs) == defs  # and no ItemDef is left unreferenced


def test_every_codelistref_points_to_a_codelist(sdtm_package, adam_package):
    for folder in (sdtm_package, adam_package):
        tree = _tree(folder)
        lists = {e.get("OID") for e in tree.iterfind(".//odm:CodeList", NS)}
        refs = {e.get("CodeListOID") for e in tree.iterfind(".//odm:CodeListRef", NS)}
        assert refs and refs <= lists


def test_every_methodoid_points_to_a_methoddef(sdtm_package, adam_package):
    for folder in (sdtm_package, adam_package):
        tree = _tree(folder)
        methods = {e.get("OID") for e in tree.iterfind(".//odm:MethodDef", NS)}
        refs = {e.get("MethodOID") for e in tree.iterfind(".//odm:ItemRef", NS) if e.get("MethodOID")}
        assert refs and refs == methods


def test_every_leaf_file_exists(sdtm_package, adam_package):
    for folder in (sdtm_package, adam_package):
        tree = _tree(folder)
        leaves = list(tree.iterfind(".//def:leaf", NS))
        assert leaves
        for leaf in leaves:
            assert (folder / leaf.get(f"{{{XLINK}}}href")).is_file()
        archive = {g.get(f"{{{DEF}}}ArchiveLocationID") for g in tree.iterfind(".//odm:ItemGroupDef", NS)}
        assert archive == {leaf.get("ID") for leaf in leaves}


def test_every_dataset_and_variable_is_described(sdtm, sdtm_package):
    tree = _tree(sdtm_package)
    groups = {g.get("Name"): g for g in tree.iterfind(".//odm:ItemGroupDef", NS)}
    assert set(groups) == set(sdtm.frames)
    items = {e.get("OID"): e for e in tree.iterfind(".//odm:ItemDef", NS)}
    for name, frame in sdtm.frames.items():
        group = groups[name]
        assert group.find("odm:Description/odm:TranslatedText", NS).text == sdtm.specs[name].label
        assert group.find("def:Class", NS).get("Name") == sdtm.specs[name].cls
        refs = [r.get("ItemOID") for r in group.findall("odm:ItemRef", NS)]
        assert refs == [f"IT.{name}.{c}" for c in frame.columns]
        for column in frame.columns:
            item = items[f"IT.{name}.{column}"]
            assert item.get("Name") == column and item.get("SASFieldName") == column
            assert item.get("DataType") in {"text", "integer", "float", "date", "datetime"}
            assert item.find("odm:Description/odm:TranslatedText", NS).text
            assert item.find("def:Origin", NS).get("Type") in {"Collected", "Derived", "Assigned", "Protocol",
                                                                 "Predecessor"}
            if item.get("DataType") == "text":
                longest = max((len(str(v).encode()) for v in frame[column].dropna()), default=1)
                assert int(item.get("Length")) == max(longest, 1)


def test_dates_are_described_as_iso_8601_text(sdtm_package):
    tree = _tree(sdtm_package)
    items = {e.get("Name"): e for e in tree.iterfind(".//odm:ItemDef", NS) if e.get("OID").startswith("IT.EX.")}
    assert items["EXSTDTC"].get("DataType") == "datetime"
    assert items["EXSTDTC"].get("Length") is None


def test_codelists_carry_the_nci_codes_of_the_trial_notes(sdtm_package):
    tree = _tree(sdtm_package)
    lists = {e.get("OID"): e for e in tree.iterfind(".//odm:CodeList", NS)}

    def alias(el):
        a = el.find("odm:Alias", NS)
        return None if a is None else a.get("Name")

    retest = lists["CL.RETESTCD"]
    assert alias(retest) == "C111106"
    codes = {i.get("CodedValue"): alias(i) for i in retest.findall("odm:CodeListItem", NS)}
    assert codes["FVC"] == "C111361" and codes["DLCOPP"] == "C120829" and codes["FEV1FVC"] == "C111359"
    ft = {i.get("CodedValue"): alias(i) for i in lists["CL.FTTESTCD"].findall("odm:CodeListItem", NS)}
    assert ft == {"SIXMW106": "C115805"}
    assert alias(lists["CL.FTTESTCD"]) == "C115388"
    units = {i.get("CodedValue"): alias(i) for i in lists["CL.UNIT"]}
    assert units["L"] == "C48505" and units["%"] == "C25613" and units["mL/min/mmHg"] == "C67417"
    route = {i.get("CodedValue"): alias(i) for i in lists["CL.ROUTE"].findall("odm:CodeListItem", NS)}
    assert route == {"INTRAVENOUS": "C38276"}
    assert alias(lists["CL.NY"]) == "C66742" and alias(lists["CL.EPOCH"]) == "C99079"


def test_adam_derivations_are_the_dataset_derivations(adam_package):
    tree = _tree(adam_package)
    methods = {m.get("OID"): m.find("odm:Description/odm:TranslatedText", NS).text
               for m in tree.iterfind(".//odm:MethodDef", NS)}
    for dataset, rules in DERIVATIONS.items():
        for column, rule in rules.items():
            oid = f"MT.{dataset}.{column}"
            if oid in methods:
                assert methods[oid] == rule
    assert methods["MT.ADSL.TRTDURD"] == DERIVATIONS["ADSL"]["TRTDURD"]
    assert methods["MT.ADLF.ABLFL"] == DERIVATIONS["ADLF"]["ABLFL"]
    adt = next(e for e in tree.iterfind(".//odm:ItemDef", NS) if e.get("OID") == "IT.ADLF.ADT")
    assert adt.get(f"{{{DEF}}}DisplayFormat") == "DATE9." and adt.get("DataType") == "integer"
    standards = {s.get("Name") for s in tree.iterfind(".//def:Standard", NS)}
    assert "ADaMIG" in standards


def test_blinded_define_lists_blinded_as_an_arm_code(sdtm_blinded, simulated_source):
    lists = codelists(simulated_source.protocol, blinded=True)
    tree = build_define([DefineDataset(sdtm_blinded.specs["DM"], sdtm_blinded.frames["DM"], "dm.xpt")],
                        model="SDTM", studyid="NCT02594839", title="t", codelists=lists)
    armcd = next(e for e in tree.iterfind(".//odm:CodeList", NS) if e.get("OID") == "CL.ARMCD")
    assert "BLINDED" in {i.get("CodedValue") for i in armcd}
