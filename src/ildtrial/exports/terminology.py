"""Controlled terminology the exports use: one :class:`CodeList` per coded variable.

Why a table here rather than the CDISC CT package: the export must work offline, and it
needs only the few terms this trial produces. NCI thesaurus codes are given where the
trial's CDISC notes (``shared/domain/cdisc.md``) state them, plus a handful of long-stable
ones (NY, SEX, AGEU); a term without a code is exported without an ``Alias`` rather than
with a guessed one. Sponsor-defined lists (arms, criteria, grades, categories) are built
from the protocol by :func:`codelists`, so Define-XML and the conformance checker read the
same values the datasets are built with.

``extensible`` follows CDISC: a value outside a non-extensible list is an error, outside
an extensible one a warning (unless it is one of our declared extensions, flagged
``extended``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ildtrial.core.protocol import Protocol

__all__ = [
    "BLINDED",
    "CodeList",
    "NOT_TREATED",
    "SCREEN_FAILURE",
    "Term",
    "codelists",
    "iso3",
]

#: Arm codes that are not protocol arms (SDTM conventions) and the blinded placeholder.
SCREEN_FAILURE = ("SCRNFAIL", "Screen Failure")
NOT_TREATED = ("NOTTRT", "Not Treated")
BLINDED = "BLINDED"


@dataclass(frozen=True)
class Term:
    """One permitted value: submission value, decode, NCI code (if known), sponsor extension."""

    value: str
    decode: str | None = None
    nci: str | None = None
    extended: bool = False


@dataclass(frozen=True)
class CodeList:
    """A named list of permitted values of one or more variables."""

    name: str
    description: str
    terms: tuple[Term, ...]
    nci: str | None = None
    extensible: bool = False
    data_type: str = "text"

    @property
    def oid(self) -> str:
        return f"CL.{self.name}"

    @property
    def values(self) -> frozenset[str]:
        return frozenset(t.value for t in self.terms)

    @property
    def sponsor_defined(self) -> bool:
        return self.nci is None


def _terms(*items: tuple[str, str | None, str | None] | str) -> tuple[Term, ...]:
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(Term(item))
        else:
            out.append(Term(*item))
    return tuple(out)


#: CDISC lists that do not depend on the protocol.
_STATIC: tuple[CodeList, ...] = (
    CodeList("NY", "No Yes Response", _terms(("Y", "Yes", "C49488"), ("N", "No", "C49487")), "C66742"),
    CodeList("SEX", "Sex", _terms(("M", "Male", "C20197"), ("F", "Female", "C16576"), ("U", "Unknown", "C17998")),
             "C66731"),
    CodeList("AGEU", "Age Unit", _terms(("YEARS", "Years", "C29848")), "C66781", extensible=True),
    CodeList("ROUTE", "Route of Administration", _terms(("INTRAVENOUS", "Intravenous Route of Administration",
                                                         "C38276")), "C66729", extensible=True),
    CodeList("EPOCH", "Epoch", _terms("SCREENING", "TREATMENT", "FOLLOW-UP"), "C99079", extensible=True),
    CodeList(
        "RETESTCD",
        "Respiratory Test Code",
        _terms(
            ("FVC", "Forced Vital Capacity", "C111361"),
            ("FVCPP", "FVC Percent Predicted", "C112381"),
            ("FEV1", "Forced Expiratory Volume in 1 Second", "C38084"),
            ("FEV1PP", "FEV1 Percent Predicted", "C112376"),
            ("FEV1FVC", "FEV1/FVC", "C111359"),
            ("DLCO", "Diffusing Capacity of the Lung for CO", "C38083"),
            ("DLCOPP", "DLCO Percent Predicted", "C120829"),
            ("DLCOHC", "DLCO Hemoglobin Corrected", "C120825"),
            ("DLCOHCPP", "DLCO Hemoglobin Corrected Pct Predicted", "C120826"),
            ("DLCOVA", "DLCO/Alveolar Volume", "C120830"),
        ),
        "C111106",
        extensible=True,
    ),
    CodeList("FTTESTCD", "Functional Test Code",
             _terms(("SIXMW106", "SIXMW1-Distance at 6 Minutes", "C115805")), "C115388", extensible=True),
    CodeList(
        "UNIT",
        "Unit",
        _terms(
            ("L", "Liter", "C48505"),
            ("m", "Meter", "C41139"),
            ("%", "Percentage", "C25613"),
            ("mL/min/mmHg", "Milliliter per Minute per mmHg", "C67417"),
            ("mmol/min/kPa", "Millimole per Minute per Kilopascal", "C116242"),
            "C", "beats/min", "breaths/min", "mmHg", "cm", "kg", "kg/m2", "mL",
            ("10^6 cells", "Million cells", None, True),
        ),
        "C71620",
        extensible=True,
    ),
    CodeList(
        "VSTESTCD",
        "Vital Signs Test Code",
        _terms(("TEMP", "Temperature"), ("HR", "Heart Rate"), ("SYSBP", "Systolic Blood Pressure"),
               ("DIABP", "Diastolic Blood Pressure"), ("RESP", "Respiratory Rate"),
               ("OXYSAT", "Oxygen Saturation"), ("HEIGHT", "Height"), ("WEIGHT", "Weight"),
               ("BMI", "Body Mass Index")),
        "C66741",
        extensible=True,
    ),
    CodeList("ACN", "Action Taken with Study Treatment",
             _terms("DOSE NOT CHANGED", "DRUG INTERRUPTED", "DRUG WITHDRAWN", "NOT APPLICABLE", "UNKNOWN"),
             "C66767"),
    CodeList("OUT", "Outcome of Event",
             _terms("RECOVERED/RESOLVED", "RECOVERING/RESOLVING", "NOT RECOVERED/NOT RESOLVED",
                    "RECOVERED/RESOLVED WITH SEQUELAE", "FATAL", "UNKNOWN"), "C66768"),
    CodeList("REL", "Causality (sponsor scale of the EDC)",
             _terms("NOT RELATED", "UNLIKELY RELATED", "POSSIBLY RELATED", "PROBABLY RELATED",
                    "DEFINITELY RELATED")),
    CodeList("TOXGR", "CTCAE grade", _terms(*(str(g) for g in range(1, 6)))),
    CodeList("IECAT", "Category for Inclusion/Exclusion", _terms("INCLUSION", "EXCLUSION"), "C66797"),
    CodeList("DSCAT", "Category for Disposition Event", _terms("DISPOSITION EVENT", "PROTOCOL MILESTONE"),
             "C74558", extensible=True),
    CodeList(
        "DSDECOD",
        "Standardized disposition term (NCOMPLT and PROTMLST terms)",
        _terms("INFORMED CONSENT OBTAINED", "RANDOMIZED", "COMPLETED", "SCREEN FAILURE",
               "WITHDRAWAL BY SUBJECT", "DEATH", "LOST TO FOLLOW-UP", "PHYSICIAN DECISION"),
        extensible=True,
    ),
    CodeList(
        "RACE",
        "Race",
        _terms("WHITE", "BLACK OR AFRICAN AMERICAN", "ASIAN", ("OTHER", "Other or mixed", None, True)),
        "C74457",
        extensible=True,
    ),
    CodeList("FRM", "Pharmaceutical Dosage Form", _terms("SUSPENSION", "SOLUTION"), "C66726", extensible=True),
    CodeList("FREQ", "Frequency", _terms("ONCE"), "C71113", extensible=True),
    CodeList("STENRF", "Relation to Reference Period", _terms("BEFORE", "ONGOING"), "C66728"),
    CodeList("VSTPT", "Vital signs time point", _terms("PRE-INFUSION", "POST-INFUSION")),
    CodeList("FTCAT", "Functional test category", _terms("SIX MINUTE WALK")),
    CodeList("RECAT", "Respiratory test category", _terms("SPIROMETRY", "DIFFUSING CAPACITY")),
    CodeList("CMCAT", "Medication category",
             _terms("CONCOMITANT MEDICATION", "PRIOR ANTI-INFLAMMATORY OR ANTIFIBROTIC")),
    CodeList("MHCAT", "Medical history category", _terms("PRIMARY DIAGNOSIS", "GENERAL MEDICAL HISTORY")),
    CodeList("ETCD", "Element code", _terms(("SCRN", "Screening"), ("FU", "Follow-up"))),
    CodeList(
        "TSPARMCD",
        "Trial Summary Parameter Test Code",
        _terms(("TITLE", "Trial Title"), ("TPHASE", "Trial Phase Classification"), ("TTYPE", "Trial Type"),
               ("RANDOM", "Trial is Randomized"), ("TBLIND", "Trial Blinding Schema"),
               ("TCNTRL", "Control Type"), ("AGEMIN", "Planned Minimum Age of Subjects"),
               ("AGEMAX", "Planned Maximum Age of Subjects"), ("PLANSUB", "Planned Number of Subjects"),
               ("NARMS", "Planned Number of Arms"), ("TRT", "Investigational Therapy or Treatment"),
               ("ROUTE", "Route of Administration"), ("DOSE", "Dose per Administration"),
               ("DOSU", "Dose Units"), ("DOSFRQ", "Dosing Frequency"),
               ("INDIC", "Trial Disease/Condition Indication"), ("STYPE", "Study Type"),
               ("SEXPOP", "Sex of Participants"), ("REGID", "Registry Identifier"),
               ("SPONSOR", "Clinical Study Sponsor"), ("SDTIGVER", "SDTM IG Version"),
               ("DCUTDTC", "Data Cutoff Date")),
        "C66738",
        extensible=True,
    ),
    CodeList("PARAMCD", "ADLF parameter code",
             _terms(("FVC", "Forced vital capacity (mL)"), ("FVCPP", "FVC (% predicted)"),
                    ("DLCOPP", "DLCO (% predicted)"), ("SIXMWD", "6-minute walk distance (m)"))),
)


def codelists(protocol: Protocol, *, blinded: bool = False,
              extra_countries: Iterable[str] = ()) -> Mapping[str, CodeList]:
    """Every code list by name: the CDISC ones above plus those read from the protocol.

    Blinded exports show ``BLINDED`` instead of an arm, so it joins the arm lists then
    (and only then: in an unblinded export ``BLINDED`` would be a wrong value).
    """
    arms = [Term(a.code, a.name.en) for a in protocol.arms]
    specials = [Term(*SCREEN_FAILURE), Term(*NOT_TREATED)]
    if blinded:
        specials.append(Term(BLINDED, "Blinded"))
    criteria = tuple(Term(c.id, c.summary.en) for c in protocol.eligibility.criteria)
    countries = sorted({iso3(s.country) for s in protocol.identity.sites} | set(extra_countries))
    out = {c.name: c for c in _STATIC}
    etcd = out["ETCD"]
    out["ETCD"] = CodeList(etcd.name, etcd.description,
                           etcd.terms[:1] + tuple(arms) + etcd.terms[1:])
    out["ARMCD"] = CodeList("ARMCD", "Arm code", tuple(arms) + tuple(specials))
    out["TRT01P"] = CodeList("TRT01P", "Treatment (arm code)", tuple(arms))
    out["IETESTCD"] = CodeList("IETESTCD", "Eligibility criterion", criteria)
    out["COUNTRY"] = CodeList("COUNTRY", "ISO 3166-1 alpha-3 country code",
                              tuple(Term(c) for c in countries), extensible=True)
    return out


#: ISO 3166-1 alpha-2 → alpha-3 for the countries a site may be in (extend with new sites).
ISO3: dict[str, str] = {"RU": "RUS", "BY": "BLR", "KZ": "KAZ", "DE": "DEU", "GB": "GBR", "US": "USA",
                        "FR": "FRA", "IT": "ITA", "ES": "ESP", "NL": "NLD"}


def iso3(alpha2: str) -> str:
    """ISO 3166-1 alpha-3 code of a site's alpha-2 country (SDTM COUNTRY)."""
    return ISO3.get(alpha2.upper(), alpha2.upper())
