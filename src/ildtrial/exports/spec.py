"""Dataset and variable metadata: one table per domain, read by every export step.

Why one table: the SDTM builders order and label their columns from it, the XPT writer
takes the labels from it, Define-XML describes exactly it, and the conformance checker
reads the required/expected variables and the code lists from it. A variable added in
one place therefore cannot be missing from the others.

``core`` follows the SDTM IG: ``Req`` (must be present and never null), ``Exp``
(must be present, may be null), ``Perm`` (may be left out). ``origin`` is the Define-XML
2.1 origin type. ``codelist`` names a list of :mod:`ildtrial.exports.terminology`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "ADAM_LABELS",
    "ADAM_SPECS",
    "SDTM_SPECS",
    "DatasetSpec",
    "Variable",
    "adam_spec",
    "sdtm_derivation",
]


@dataclass(frozen=True)
class Variable:
    """One variable: name, label (≤ 40), type (``Char``/``Num``), core, origin, code list."""

    name: str
    label: str
    type: str = "Char"
    core: str = "Perm"
    origin: str = "Collected"
    codelist: str | None = None
    #: ISO 8601 text (SDTM --DTC) or SAS date (ADaM *DT): checked and described as such
    kind: str | None = None
    derivation: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: name, label, class, structure, key variables, variables in order."""

    name: str
    label: str
    cls: str
    structure: str
    keys: tuple[str, ...]
    variables: tuple[Variable, ...] = field(default_factory=tuple)
    standard: str = "SDTMIG"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables)

    def variable(self, name: str) -> Variable:
        for v in self.variables:
            if v.name == name:
                return v
        raise KeyError(f"{self.name} has no variable {name}")

    @property
    def labels(self) -> dict[str, str]:
        return {v.name: v.label for v in self.variables}


def _v(name: str, label: str, core: str = "Perm", origin: str = "Collected", codelist: str | None = None,
       type: str = "Char", kind: str | None = None) -> Variable:  # noqa: A002
    return Variable(name, label, type, core, origin, codelist, kind)


def _ident(domain: str, seq: bool = True) -> tuple[Variable, ...]:
    out = (
        _v("STUDYID", "Study Identifier", "Req", "Assigned"),
        _v("DOMAIN", "Domain Abbreviation", "Req", "Assigned"),
        _v("USUBJID", "Unique Subject Identifier", "Req", "Derived"),
    )
    if seq:
        out += (_v(f"{domain}SEQ", "Sequence Number", "Req", "Derived", type="Num"),)
    return out


def _visit(core: str = "Perm") -> tuple[Variable, ...]:
    return (
        _v("VISITNUM", "Visit Number", core, "Derived", type="Num"),
        _v("VISIT", "Visit Name", "Perm", "Derived"),
    )


_EPOCH = _v("EPOCH", "Epoch", "Perm", "Derived", "EPOCH")


def _dtc(name: str, label: str, core: str = "Exp", origin: str = "Collected") -> Variable:
    return _v(name, label, core, origin, kind="dtc")


def _dy(name: str, label: str) -> Variable:
    return _v(name, label, "Perm", "Derived", type="Num")


def _findings(d: str, test: str, testcd_cl: str | None, cat_cl: str | None, extra: tuple[Variable, ...] = (),
              tail: tuple[Variable, ...] = ()) -> tuple[Variable, ...]:
    """Variables of a findings domain with numeric results (RE, FT, VS)."""
    return (
        *_ident(d),
        _v(f"{d}TESTCD", f"{test} Short Name"[:40], "Req", "Assigned", testcd_cl),
        _v(f"{d}TEST", f"{test} Name"[:40], "Req", "Assigned"),
        *((_v(f"{d}CAT", f"Category for {test}"[:40], "Perm", "Assigned", cat_cl),) if cat_cl else ()),
        *extra,
        _v(f"{d}ORRES", "Result or Finding in Original Units", "Exp"),
        _v(f"{d}ORRESU", "Original Units", "Exp", "Collected", "UNIT"),
        _v(f"{d}STRESC", "Character Result/Finding in Std Format", "Exp", "Derived"),
        _v(f"{d}STRESN", "Numeric Result/Finding in Standard Units", "Exp", "Derived", type="Num"),
        _v(f"{d}STRESU", "Standard Units", "Exp", "Assigned", "UNIT"),
        _v(f"{d}LOBXFL", "Last Observation Before Exposure Flag", "Exp", "Derived", "NY"),
        *tail,
        *_visit("Exp"),
        _EPOCH,
        _dtc(f"{d}DTC", "Date/Time of Measurement"),
        _dy(f"{d}DY", "Study Day of Measurement"),
    )


SDTM_SPECS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        DatasetSpec(
            "DM", "Demographics", "SPECIAL PURPOSE", "One record per subject", ("STUDYID", "USUBJID"),
            (
                *_ident("DM", seq=False),
                _v("SUBJID", "Subject Identifier for the Study", "Req"),
                _dtc("RFSTDTC", "Subject Reference Start Date/Time", origin="Derived"),
                _dtc("RFENDTC", "Subject Reference End Date/Time", origin="Derived"),
                _dtc("RFXSTDTC", "Date/Time of First Study Treatment", origin="Derived"),
                _dtc("RFXENDTC", "Date/Time of Last Study Treatment", origin="Derived"),
                _dtc("RFICDTC", "Date/Time of Informed Consent"),
                _dtc("RFPENDTC", "Date/Time of End of Participation", origin="Derived"),
                _dtc("DTHDTC", "Date/Time of Death"),
                _v("DTHFL", "Subject Death Flag", "Exp", "Derived", "NY"),
                _v("SITEID", "Study Site Identifier", "Req", "Assigned"),
                _v("AGE", "Age", "Exp", "Derived", type="Num"),
                _v("AGEU", "Age Units", "Exp", "Assigned", "AGEU"),
                _v("SEX", "Sex", "Req", "Collected", "SEX"),
                _v("RACE", "Race", "Exp", "Collected", "RACE"),
                _v("ARMCD", "Planned Arm Code", "Exp", "Assigned", "ARMCD"),
                _v("ARM", "Description of Planned Arm", "Exp", "Assigned"),
                _v("ACTARMCD", "Actual Arm Code", "Exp", "Derived", "ARMCD"),
                _v("ACTARM", "Description of Actual Arm", "Exp", "Derived"),
                _v("COUNTRY", "Country", "Req", "Assigned", "COUNTRY"),
                _dtc("DMDTC", "Date/Time of Collection", "Perm"),
                _dy("DMDY", "Study Day of Collection"),
            ),
        ),
        DatasetSpec(
            "IE", "Inclusion/Exclusion Criteria Not Met", "FINDINGS",
            "One record per inclusion/exclusion criterion not met per subject",
            ("STUDYID", "USUBJID", "IETESTCD"),
            (
                *_ident("IE"),
                _v("IETESTCD", "Inclusion/Exclusion Criterion Short Name", "Req", "Assigned", "IETESTCD"),
                _v("IETEST", "Inclusion/Exclusion Criterion", "Req", "Assigned"),
                _v("IECAT", "Inclusion/Exclusion Category", "Req", "Assigned", "IECAT"),
                _v("IEORRES", "I/E Criterion Original Result", "Req", "Derived", "NY"),
                _v("IESTRESC", "I/E Criterion Result in Std Format", "Req", "Derived", "NY"),
                *_visit("Exp"),
                _EPOCH,
                _dtc("IEDTC", "Date/Time of Collection", "Perm", "Derived"),
                _dy("IEDY", "Study Day of Collection"),
            ),
        ),
        DatasetSpec(
            "EX", "Exposure", "INTERVENTIONS", "One record per infusion given per subject",
            ("STUDYID", "USUBJID", "EXTRT", "EXSTDTC"),
            (
                *_ident("EX"),
                _v("EXREFID", "Reference ID"),
                _v("EXLOT", "Lot Number", "Perm", "Collected"),
                _v("EXTRT", "Name of Treatment", "Req", "Assigned"),
                _v("EXDOSE", "Dose", "Exp", "Protocol", type="Num"),
                _v("EXDOSU", "Dose Units", "Exp", "Protocol", "UNIT"),
                _v("EXDOSFRM", "Dose Form", "Exp", "Protocol", "FRM"),
                _v("EXDOSFRQ", "Dosing Frequency per Interval", "Perm", "Protocol", "FREQ"),
                _v("EXROUTE", "Route of Administration", "Perm", "Protocol", "ROUTE"),
                _v("EXVAMT", "Treatment Vehicle Amount", "Perm", "Collected", type="Num"),
                _v("EXVAMTU", "Treatment Vehicle Amount Units", "Perm", "Assigned", "UNIT"),
                _v("EXADJ", "Reason for Dose Adjustment"),
                *_visit(),
                _EPOCH,
                _dtc("EXSTDTC", "Start Date/Time of Treatment"),
                _dtc("EXENDTC", "End Date/Time of Treatment"),
                _dy("EXSTDY", "Study Day of Start of Treatment"),
                _dy("EXENDY", "Study Day of End of Treatment"),
            ),
        ),
        DatasetSpec(
            "AE", "Adverse Events", "EVENTS", "One record per adverse event per subject",
            ("STUDYID", "USUBJID", "AEDECOD", "AESTDTC"),
            (
                *_ident("AE"),
                _v("AESPID", "Sponsor-Defined Identifier"),
                _v("AETERM", "Reported Term for the Adverse Event", "Req"),
                _v("AELLTCD", "Lowest Level Term Code", "Perm", "Assigned", type="Num"),
                _v("AEDECOD", "Dictionary-Derived Term", "Req", "Assigned"),
                _v("AEBODSYS", "Body System or Organ Class", "Exp", "Assigned"),
                _v("AESOC", "Primary System Organ Class", "Perm", "Assigned"),
                _v("AESER", "Serious Event", "Exp", "Collected", "NY"),
                _v("AEACN", "Action Taken with Study Treatment", "Exp", "Collected", "ACN"),
                _v("AEACNOTH", "Other Action Taken"),
                _v("AEREL", "Causality", "Exp", "Collected", "REL"),
                _v("AEOUT", "Outcome of Adverse Event", "Perm", "Collected", "OUT"),
                _v("AESCONG", "Congenital Anomaly or Birth Defect", "Perm", "Collected", "NY"),
                _v("AESDISAB", "Persist or Signif Disability/Incapacity", "Perm", "Collected", "NY"),
                _v("AESDTH", "Results in Death", "Perm", "Collected", "NY"),
                _v("AESHOSP", "Requires or Prolongs Hospitalization", "Perm", "Collected", "NY"),
                _v("AESLIFE", "Is Life Threatening", "Perm", "Collected", "NY"),
                _v("AESMIE", "Other Medically Important Serious Event", "Perm", "Collected", "NY"),
                _v("AETOXGR", "Standard Toxicity Grade", "Perm", "Collected", "TOXGR"),
                _EPOCH,
                _dtc("AESTDTC", "Start Date/Time of Adverse Event"),
                _dtc("AEENDTC", "End Date/Time of Adverse Event"),
                _dy("AESTDY", "Study Day of Start of Adverse Event"),
                _dy("AEENDY", "Study Day of End of Adverse Event"),
                _v("AEENRTPT", "End Relative to Reference Time Point", "Perm", "Derived", "STENRF"),
                _v("AEENTPT", "End Reference Time Point", "Perm", "Assigned"),
            ),
        ),
        DatasetSpec(
            "RE", "Respiratory System Findings", "FINDINGS",
            "One record per test per visit per subject", ("STUDYID", "USUBJID", "RETESTCD", "VISITNUM", "REDTC"),
            _findings("RE", "Respiratory Test", "RETESTCD", "RECAT",
                      tail=(_v("REDRVFL", "Derived Flag", "Perm", "Derived", "NY"),)),
        ),
        DatasetSpec(
            "FT", "Functional Tests", "FINDINGS", "One record per test per visit per subject",
            ("STUDYID", "USUBJID", "FTTESTCD", "VISITNUM", "FTDTC"),
            _findings("FT", "Functional Test", "FTTESTCD", "FTCAT"),
        ),
        DatasetSpec(
            "VS", "Vital Signs", "FINDINGS", "One record per vital sign measurement per time point per visit "
            "per subject", ("STUDYID", "USUBJID", "VSTESTCD", "VISITNUM", "VSTPTNUM"),
            _findings(
                "VS", "Vital Signs Test", "VSTESTCD", None,
                tail=(
                    _v("VSTPT", "Planned Time Point Name", "Perm", "Assigned", "VSTPT"),
                    _v("VSTPTNUM", "Planned Time Point Number", "Perm", "Assigned", type="Num"),
                    _v("VSTPTREF", "Time Point Reference", "Perm", "Assigned"),
                    _dtc("VSRFTDTC", "Date/Time of Reference Time Point", "Perm"),
                ),
            ),
        ),
        DatasetSpec(
            "CM", "Concomitant/Prior Medications", "INTERVENTIONS",
            "One record per recorded medication per subject", ("STUDYID", "USUBJID", "CMTRT", "CMSTDTC"),
            (
                *_ident("CM"),
                _v("CMTRT", "Reported Name of Drug, Med, or Therapy", "Req"),
                _v("CMCAT", "Category for Medication", "Perm", "Assigned", "CMCAT"),
                _v("CMCLAS", "Medication Class", "Perm", "Collected"),
                _v("CMINDC", "Indication"),
                _EPOCH,
                _dtc("CMSTDTC", "Start Date/Time of Medication", "Perm"),
                _dtc("CMENDTC", "End Date/Time of Medication", "Perm"),
                _dy("CMSTDY", "Study Day of Start of Medication"),
                _dy("CMENDY", "Study Day of End of Medication"),
                _v("CMENRTPT", "End Relative to Reference Time Point", "Perm", "Derived", "STENRF"),
                _v("CMENTPT", "End Reference Time Point", "Perm", "Assigned"),
            ),
        ),
        DatasetSpec(
            "MH", "Medical History", "EVENTS", "One record per medical history event per subject",
            ("STUDYID", "USUBJID", "MHCAT", "MHTERM"),
            (
                *_ident("MH"),
                _v("MHTERM", "Reported Term for the Medical History", "Req"),
                _v("MHCAT", "Category for Medical History", "Perm", "Assigned", "MHCAT"),
                _dtc("MHSTDTC", "Start Date/Time of Medical History Event", "Perm"),
                _v("MHENRTPT", "End Relative to Reference Time Point", "Perm", "Derived", "STENRF"),
                _v("MHENTPT", "End Reference Time Point", "Perm", "Assigned"),
                _dtc("MHDTC", "Date/Time of History Collection", "Perm"),
                _dy("MHDY", "Study Day of History Collection"),
            ),
        ),
        DatasetSpec(
            "DS", "Disposition", "EVENTS", "One record per disposition status or protocol milestone per subject",
            ("STUDYID", "USUBJID", "DSSTDTC", "DSDECOD"),
            (
                *_ident("DS"),
                _v("DSTERM", "Reported Term for the Disposition Event", "Req"),
                _v("DSDECOD", "Standardized Disposition Term", "Req", "Assigned", "DSDECOD"),
                _v("DSCAT", "Category for Disposition Event", "Exp", "Assigned", "DSCAT"),
                _EPOCH,
                _dtc("DSSTDTC", "Start Date/Time of Disposition Event"),
                _dy("DSSTDY", "Study Day of Start of Disposition Event"),
            ),
        ),
        DatasetSpec(
            "SV", "Subject Visits", "SPECIAL PURPOSE", "One record per actual visit per subject",
            ("STUDYID", "USUBJID", "VISITNUM"),
            (
                *_ident("SV", seq=False),
                _v("VISITNUM", "Visit Number", "Req", "Derived", type="Num"),
                _v("VISIT", "Visit Name", "Perm", "Derived"),
                _v("VISITDY", "Planned Study Day of Visit", "Perm", "Protocol", type="Num"),
                _EPOCH,
                _dtc("SVSTDTC", "Start Date/Time of Visit"),
                _dtc("SVENDTC", "End Date/Time of Visit"),
                _dy("SVSTDY", "Study Day of Start of Visit"),
                _dy("SVENDY", "Study Day of End of Visit"),
                _v("SVUPDES", "Description of Unplanned Visit"),
            ),
        ),
        DatasetSpec(
            "TA", "Trial Arms", "TRIAL DESIGN", "One record per planned Element per Arm",
            ("STUDYID", "ARMCD", "TAETORD"),
            (
                _v("STUDYID", "Study Identifier", "Req", "Assigned"),
                _v("DOMAIN", "Domain Abbreviation", "Req", "Assigned"),
                _v("ARMCD", "Planned Arm Code", "Req", "Protocol", "ARMCD"),
                _v("ARM", "Description of Planned Arm", "Req", "Protocol"),
                _v("TAETORD", "Planned Order of Element within Arm", "Req", "Protocol", type="Num"),
                _v("ETCD", "Element Code", "Req", "Protocol", "ETCD"),
                _v("ELEMENT", "Description of Element", "Perm", "Protocol"),
                _v("TABRANCH", "Branch", "Exp", "Protocol"),
                _v("TATRANS", "Transition Rule", "Exp", "Protocol"),
                _v("EPOCH", "Epoch", "Req", "Protocol", "EPOCH"),
            ),
        ),
        DatasetSpec(
            "TE", "Trial Elements", "TRIAL DESIGN", "One record per planned Element", ("STUDYID", "ETCD"),
            (
                _v("STUDYID", "Study Identifier", "Req", "Assigned"),
                _v("DOMAIN", "Domain Abbreviation", "Req", "Assigned"),
                _v("ETCD", "Element Code", "Req", "Protocol", "ETCD"),
                _v("ELEMENT", "Description of Element", "Req", "Protocol"),
                _v("TESTRL", "Rule for Start of Element", "Req", "Protocol"),
                _v("TEENRL", "Rule for End of Element", "Perm", "Protocol"),
                _v("TEDUR", "Planned Duration of Element", "Perm", "Protocol"),
            ),
        ),
        DatasetSpec(
            "TV", "Trial Visits", "TRIAL DESIGN", "One record per planned Visit per Arm", ("STUDYID", "VISITNUM"),
            (
                _v("STUDYID", "Study Identifier", "Req", "Assigned"),
                _v("DOMAIN", "Domain Abbreviation", "Req", "Assigned"),
                _v("VISITNUM", "Visit Number", "Req", "Protocol", type="Num"),
                _v("VISIT", "Visit Name", "Perm", "Protocol"),
                _v("VISITDY", "Planned Study Day of Visit", "Perm", "Protocol", type="Num"),
                _v("ARMCD", "Planned Arm Code", "Exp", "Protocol", "ARMCD"),
                _v("TVSTRL", "Visit Start Rule", "Req", "Protocol"),
                _v("TVENRL", "Visit End Rule", "Perm", "Protocol"),
            ),
        ),
        DatasetSpec(
            "TI", "Trial Inclusion/Exclusion Criteria", "TRIAL DESIGN", "One record per I/E criterion",
            ("STUDYID", "IETESTCD"),
            (
                _v("STUDYID", "Study Identifier", "Req", "Assigned"),
                _v("DOMAIN", "Domain Abbreviation", "Req", "Assigned"),
                _v("IETESTCD", "Incl/Excl Criterion Short Name", "Req", "Protocol", "IETESTCD"),
                _v("IETEST", "Inclusion/Exclusion Criterion", "Req", "Protocol"),
                _v("IECAT", "Inclusion/Exclusion Category", "Req", "Protocol", "IECAT"),
                _v("TIVERS", "Protocol Criteria Versions", "Perm", "Protocol"),
            ),
        ),
        DatasetSpec(
            "TS", "Trial Summary", "TRIAL DESIGN", "One record per trial summary parameter value",
            ("STUDYID", "TSPARMCD", "TSSEQ"),
            (
                _v("STUDYID", "Study Identifier", "Req", "Assigned"),
                _v("DOMAIN", "Domain Abbreviation", "Req", "Assigned"),
                _v("TSSEQ", "Sequence Number", "Req", "Assigned", type="Num"),
                _v("TSPARMCD", "Trial Summary Parameter Short Name", "Req", "Protocol", "TSPARMCD"),
                _v("TSPARM", "Trial Summary Parameter", "Req", "Protocol"),
                _v("TSVAL", "Parameter Value", "Exp", "Protocol"),
                _v("TSVALNF", "Parameter Null Flavor", "Perm", "Assigned"),
                _v("TSVALCD", "Parameter Value Code", "Exp", "Assigned"),
                _v("TSVCDREF", "Name of the Reference Terminology", "Exp", "Assigned"),
                _v("TSVCDVER", "Version of the Reference Terminology", "Exp", "Assigned"),
            ),
        ),
    )
}

# --------------------------------------------------------------------------- ADaM

#: Labels of the ADaM variables built by :mod:`ildtrial.datasets` (≤ 40 characters).
ADAM_LABELS: dict[str, str] = {
    "STUDYID": "Study Identifier",
    "USUBJID": "Unique Subject Identifier",
    "SUBJID": "Subject Identifier for the Study",
    "SITEID": "Study Site Identifier",
    "RANDNO": "Randomization Number",
    "ARMCD": "Planned Arm Code",
    "ARM": "Description of Planned Arm",
    "ACTARMCD": "Actual Arm Code",
    "ACTARM": "Description of Actual Arm",
    "TRT01P": "Planned Treatment for Period 01",
    "TRT01PN": "Planned Treatment for Period 01 (N)",
    "TRT01A": "Actual Treatment for Period 01",
    "TRT01AN": "Actual Treatment for Period 01 (N)",
    "TRTP": "Planned Treatment",
    "TRTA": "Actual Treatment",
    "FASFL": "Full Analysis Set Population Flag",
    "SAFFL": "Safety Population Flag",
    "RANDDT": "Date of Randomization",
    "TRTSDT": "Date of First Exposure to Treatment",
    "TRTEDT": "Date of Last Exposure to Treatment",
    "NINF": "Number of Infusions Received",
    "EOSDT": "End of Study Date",
    "EOSSTT": "End of Study Status",
    "DCSREAS": "Reason for Discontinuation from Study",
    "DTHFL": "Subject Died Flag",
    "DTHDT": "Date of Death",
    "DTHDY": "Relative Day of Death",
    "DCUTDT": "Data Cutoff Date",
    "TRTDURD": "Days at Risk in Observation Period",
    "AGE": "Age",
    "AGEU": "Age Units",
    "SEX": "Sex",
    "ETHNIC": "Ethnic Group (GLI reference equations)",
    "HEIGHT": "Height at Screening (cm)",
    "WEIGHT": "Weight at Screening (kg)",
    "BMI": "Body Mass Index (kg/m2)",
    "DIAGGRP": "Diagnosis Group (Stratum)",
    "FVCBL": "Baseline FVC (mL)",
    "FVCPPBL": "Baseline FVC (% predicted)",
    "DLCOPPBL": "Baseline DLCO (% predicted)",
    "SIXMWDBL": "Baseline 6-Minute Walk Distance (m)",
    # ADAE
    "AESEQ": "Sequence Number",
    "AESPID": "Sponsor-Defined Identifier",
    "AETERM": "Reported Term for the Adverse Event",
    "AEDECOD": "Dictionary-Derived Term",
    "AELLTCD": "Lowest Level Term Code",
    "AESOC": "Primary System Organ Class",
    "AETOXGR": "Standard Toxicity Grade",
    "AESER": "Serious Event",
    "AESDTH": "Results in Death",
    "AESLIFE": "Is Life Threatening",
    "AESHOSP": "Requires or Prolongs Hospitalization",
    "AESDISAB": "Persist or Signif Disability/Incapacity",
    "AESCONG": "Congenital Anomaly or Birth Defect",
    "AESMIE": "Other Medically Important Serious Event",
    "AEREL": "Causality",
    "AERELPR": "Relationship to Infusion Procedure",
    "AEEXPECT": "Expectedness",
    "AEACN": "Action Taken with Study Treatment",
    "AEOUT": "Outcome of Adverse Event",
    "ASTDT": "Analysis Start Date",
    "ASTDTF": "Analysis Start Date Imputation Flag",
    "ASTTM": "Analysis Start Time",
    "AENDT": "Analysis End Date",
    "AEONGO": "Ongoing Event",
    "ASTDY": "Analysis Start Relative Day",
    "AESTDY": "Study Day of Start of Adverse Event",
    "AENDY": "Analysis End Relative Day",
    "TRTEMFL": "Treatment Emergent Analysis Flag",
    "INFREL": "Infusion-Related Event Flag",
    "INFVIS": "Infusion Visit of Related Event",
    # ADLF
    "PARAMCD": "Parameter Code",
    "PARAM": "Parameter",
    "AVALU": "Analysis Value Unit",
    "ADT": "Analysis Date",
    "ADY": "Analysis Relative Day",
    "TIME": "Years Since First Infusion",
    "AVISIT": "Analysis Visit",
    "AVISITN": "Analysis Visit (N)",
    "AWTARGET": "Analysis Window Target",
    "AWLO": "Analysis Window Beginning Timepoint",
    "AWHI": "Analysis Window Ending Timepoint",
    "AVAL": "Analysis Value",
    "BASE": "Baseline Value",
    "CHG": "Change from Baseline",
    "PCHG": "Percent Change from Baseline",
    "ABLFL": "Baseline Record Flag",
    "ANL01FL": "Analysis Flag 01",
    "SRCFORM": "Source Form",
    "SRCVIS": "Source Visit",
    "SRCINST": "Source Form Instance",
}

_ADAM_CODELISTS: dict[str, str] = {
    "SAFFL": "NY", "FASFL": "NY", "DTHFL": "NY", "AESER": "NY", "AESDTH": "NY", "AESLIFE": "NY",
    "AESHOSP": "NY", "AESDISAB": "NY", "AESCONG": "NY", "AESMIE": "NY", "INFREL": "NY", "AEONGO": "NY",
    "TRTEMFL": "NY", "ABLFL": "NY", "ANL01FL": "NY", "ASTDTF": "NY", "SEX": "SEX", "AGEU": "AGEU",
    "ARMCD": "ARMCD", "ACTARMCD": "ARMCD", "TRT01P": "TRT01P", "TRT01A": "TRT01P", "TRTP": "TRT01P",
    "TRTA": "TRT01P", "AEREL": "REL", "AERELPR": "REL", "AEOUT": "OUT", "AETOXGR": "TOXGR",
    "PARAMCD": "PARAMCD",
}

_ADAM_META: dict[str, tuple[str, str, str]] = {
    "ADSL": ("Subject-Level Analysis Dataset", "SUBJECT LEVEL ANALYSIS DATASET", "One record per subject"),
    "ADAE": ("Adverse Events Analysis Dataset", "OCCURRENCE DATA STRUCTURE", "One record per adverse event "
             "per subject"),
    "ADLF": ("Lung Function and 6MWT Analysis Dataset", "BASIC DATA STRUCTURE", "One record per subject per "
             "parameter per measurement"),
}
_ADAM_KEYS: dict[str, tuple[str, ...]] = {
    "ADSL": ("STUDYID", "USUBJID"),
    "ADAE": ("STUDYID", "USUBJID", "AESEQ"),
    "ADLF": ("STUDYID", "USUBJID", "PARAMCD", "ADT", "SRCINST"),
}
_ADAM_REQUIRED = frozenset({"STUDYID", "USUBJID", "SUBJID", "SITEID", "PARAMCD", "PARAM", "AVAL"})


def adam_spec(name: str, columns: tuple[str, ...] | list[str], derivations: Mapping[str, str],
              numeric: Mapping[str, bool], dates: frozenset[str] = frozenset()) -> DatasetSpec:
    """The metadata of one ADaM dataset as built (its columns), with derivations as rule text.

    ADaM datasets are built by :mod:`ildtrial.datasets`, whose column order is the
    contract; this adds labels, types, origins (Derived when a rule exists) and code lists.
    """
    label, cls, structure = _ADAM_META[name]
    variables = []
    for column in columns:
        rule = derivations.get(column)
        variables.append(
            Variable(
                column,
                ADAM_LABELS.get(column, column.title())[:40],
                "Num" if numeric.get(column, False) else "Char",
                "Req" if column in _ADAM_REQUIRED else "Exp",
                "Derived" if rule else "Predecessor",
                _ADAM_CODELISTS.get(column),
                "date" if column in dates else None,
                rule,
            )
        )
    return DatasetSpec(name, label, cls, structure, _ADAM_KEYS[name], tuple(variables), standard="ADaMIG")


#: Names of the ADaM datasets this package exports.
ADAM_SPECS: tuple[str, ...] = ("ADSL", "ADAE", "ADLF")


# --------------------------------------------------------------------------- SDTM derivations

#: Rules of the derived SDTM variables, by exact name (checked first) ...
_SDTM_RULES: dict[str, str] = {
    "USUBJID": "STUDYID, site code and screening number joined by hyphens (NCT02594839-<site>-S<nnn>); "
    "never reused, also across re-screening.",
    "VISITNUM": "Scheduled visits numbered 1, 2, ... in protocol order; an unscheduled visit: number of the last "
    "scheduled visit on or before it plus 0.01, 0.02, ...",
    "VISIT": "Protocol visit name (English); UNSCHEDULED <VISITNUM> for unscheduled visits.",
    "EPOCH": "SCREENING before the first infusion (a finding on the day of the first infusion is taken before it, "
    "unless a post-infusion time point); TREATMENT from the first to the last infusion (open while infusions are "
    "due); FOLLOW-UP after the last infusion.",
    "RFSTDTC": "Date of the first infusion (earliest INF infusion_date).",
    "RFXSTDTC": "Date of the first infusion (earliest INF infusion_date).",
    "RFXENDTC": "Date of the last infusion (latest INF infusion_date).",
    "RFENDTC": "End-of-study date (EOS end_date) of randomized participants; empty while ongoing.",
    "RFPENDTC": "EOS end_date; for screen failures the date of the eligibility verdict; otherwise the latest visit "
    "date.",
    "DTHFL": "'Y' if a date of death is known (EOS death_date, EOS end_date with status DEATH, or the end of an AE "
    "with fatal outcome or grade 5) or the participant's status is died; else empty.",
    "AGE": "Completed years from DM birth_date to the informed consent date (the screening date if none).",
    "ACTARMCD": "ARMCD if at least one infusion was given, else NOTTRT; SCRNFAIL for screen failures.",
    "ACTARM": "Arm name of ACTARMCD; 'Not Treated' for NOTTRT; 'Screen Failure' for SCRNFAIL.",
    "IEORRES": "'N' for an inclusion criterion not met, 'Y' for an exclusion criterion that applies, from the "
    "latest eligibility verdict.",
    "IESTRESC": "Equal to IEORRES.",
    "IEDTC": "Date of the latest eligibility verdict.",
    "REDRVFL": "'Y' for results derived by the EDC (% predicted by the protocol's reference equations, FEV1/FVC, "
    "haemoglobin-corrected DLCO).",
    "AEENRTPT": "'ONGOING' when the event is ongoing without an end date; the reference point AEENTPT is the data "
    "cut-off date.",
    "MHENRTPT": "'ONGOING' for the primary diagnosis and history items ongoing at screening, else 'BEFORE'; the "
    "reference point MHENTPT is the screening date.",
    "CMENRTPT": "'ONGOING' when no stop date was recorded; reference CMENTPT: the data cut for concomitant "
    "medication, the screening date for prior treatment.",
}
#: ... then by suffix (after the two-letter domain prefix).
_SDTM_SUFFIX_RULES: dict[str, str] = {
    "SEQ": "Sequence number within USUBJID, in chronological order of the record.",
    "DY": "Study day: date - RFSTDTC + 1 on or after RFSTDTC, date - RFSTDTC before it (no day 0); empty for "
    "partial dates or without a first infusion.",
    "STDY": "Study day of the start date (see --DY).",
    "ENDY": "Study day of the end date (see --DY).",
    "LOBXFL": "'Y' on the last non-missing result of each test on or before the first infusion (a result on the "
    "day of the first infusion counts unless post-infusion).",
    "STRESC": "Original result converted to the standard unit (DLCO in mmol/min/kPa × 2.987 → mL/min/mmHg; "
    "FEV1/FVC ratio × 100 → %), as text.",
    "STRESN": "Numeric value of --STRESC.",
}


def sdtm_derivation(name: str) -> str | None:
    """The rule text of a derived SDTM variable (for Define-XML MethodDefs)."""
    if name in _SDTM_RULES:
        return _SDTM_RULES[name]
    for suffix in sorted(_SDTM_SUFFIX_RULES, key=len, reverse=True):
        if len(name) == len(suffix) + 2 and name.endswith(suffix):
            return _SDTM_SUFFIX_RULES[suffix]
    return None
