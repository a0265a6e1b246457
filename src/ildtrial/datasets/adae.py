"""ADAE: one row per adverse event of a randomized participant (pure pandas).

Column names are those :class:`ildtrial.stats.safety_tables.SafetyColumns` reads by
default (``AEDECOD``, ``AETERM``, ``AESOC``, ``AETOXGR``, ``AESER``, ``AEREL``,
``TRTEMFL``, ``INFREL``, ``AESTDY``), so the safety tables run on ADAE as built. The one
column the caller must name is the arm: the safety population is analysed by treatment
received, ``TRT01A`` (:data:`SAFETY_COLUMNS`).

Why the treatment-emergent window has an upper end: the primary endpoint counts SAEs over
the 12-month observation period, and the exposure-adjusted rate needs every counted event
inside the participant's days at risk (``1 … TRTDURD``). An event after the end of that
period is kept in ADAE (listings) but is not ``TRTEMFL = "Y"``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ildtrial.datasets._common import text, to_dates, to_numbers, truthy, usubjid, y_or_null, yn
from ildtrial.datasets.raw import RawData, StudyConfig
from ildtrial.stats.safety_tables import SafetyColumns

__all__ = ["ADAE_COLUMNS", "DERIVATIONS", "OUTCOME", "RELATEDNESS", "SAFETY_CRITERIA", "SAFETY_COLUMNS", "build_adae"]

#: The safety tables' column names for ADSL/ADAE as built here (arm = treatment received).
SAFETY_COLUMNS = SafetyColumns(arm="TRT01A")

#: EDC relatedness codes → the labels of the safety tables (increasing strength).
RELATEDNESS: dict[str, str] = {
    "not_related": "NOT RELATED",
    "unlikely": "UNLIKELY RELATED",
    "possible": "POSSIBLY RELATED",
    "probable": "PROBABLY RELATED",
    "definite": "DEFINITELY RELATED",
}

#: EDC outcome → CDISC OUT codelist (used by ADAE and by SDTM AE)
OUTCOME: dict[str, str] = {
    "recovered": "RECOVERED/RESOLVED",
    "recovering": "RECOVERING/RESOLVING",
    "not_recovered": "NOT RECOVERED/NOT RESOLVED",
    "recovered_with_sequelae": "RECOVERED/RESOLVED WITH SEQUELAE",
    "fatal": "FATAL",
    "unknown": "UNKNOWN",
}

#: SDTM/ADaM seriousness flag → AdverseEvent field (shared with SDTM AE)
SAFETY_CRITERIA: dict[str, str] = {
    "AESDTH": "sae_death",
    "AESLIFE": "sae_life_threatening",
    "AESHOSP": "sae_hospitalisation",
    "AESDISAB": "sae_disability",
    "AESCONG": "sae_congenital_anomaly",
    "AESMIE": "sae_important_medical_event",
}

ADAE_COLUMNS: tuple[str, ...] = (
    "STUDYID",
    "USUBJID",
    "SUBJID",
    "SITEID",
    "TRT01P",
    "TRT01A",
    "TRTA",
    "SAFFL",
    "AESEQ",
    "AESPID",
    "AETERM",
    "AEDECOD",
    "AELLTCD",
    "AESOC",
    "AETOXGR",
    "AESER",
    *SAFETY_CRITERIA,
    "AEREL",
    "AERELPR",
    "AEEXPECT",
    "AEACN",
    "AEOUT",
    "ASTDT",
    "ASTDTF",
    "ASTTM",
    "AENDT",
    "AEONGO",
    "ASTDY",
    "AESTDY",
    "AENDY",
    "TRTEMFL",
    "INFREL",
    "INFVIS",
)

DERIVATIONS: dict[str, str] = {
    "AESEQ": "Sequence number within USUBJID, by ASTDT then the EDC event number.",
    "AESPID": "EDC adverse event number (ae_number).",
    "AETERM": "Verbatim term as reported.",
    "AEDECOD": "Coded term (CTCAE v5.0 term of the trial's dictionary); empty if not yet coded "
    "(the tables then use AETERM).",
    "AELLTCD": "MedDRA lowest-level term code of the coded term, where known.",
    "AESOC": "System organ class of the coded term.",
    "AETOXGR": "CTCAE grade 1-5 as text.",
    "AESER": "'Y' if the event is serious (any ICH E2A criterion), else 'N'.",
    **{k: f"'Y' if the seriousness criterion {v} is ticked, else 'N'." for k, v in SAFETY_CRITERIA.items()},
    "AEREL": "Relatedness to the investigational product: NOT RELATED, UNLIKELY RELATED, POSSIBLY "
    "RELATED, PROBABLY RELATED, DEFINITELY RELATED (EDC not_related/unlikely/possible/probable/definite).",
    "AERELPR": "Relatedness to the infusion procedure, same scale as AEREL.",
    "AEEXPECT": "Expectedness against the reference safety information, as recorded.",
    "AEACN": "Action taken with the study treatment, as recorded.",
    "AEOUT": "Outcome in CDISC terms (RECOVERED/RESOLVED, RECOVERING/RESOLVING, NOT RECOVERED/NOT "
    "RESOLVED, RECOVERED/RESOLVED WITH SEQUELAE, FATAL, UNKNOWN).",
    "ASTDT": "Onset date; when missing, imputed as TRTSDT (conservative: treatment-emergent).",
    "ASTDTF": "'Y' when ASTDT was imputed (onset date missing), else empty.",
    "ASTTM": "Onset time as recorded (HH:MM).",
    "AENDT": "Resolution date; empty while ongoing.",
    "AEONGO": "'Y' if the event is ongoing at the data cut, else 'N'.",
    "ASTDY": "ASTDT - TRTSDT + 1 if ASTDT >= TRTSDT, else ASTDT - TRTSDT (day 1 = day of the first "
    "infusion; no day 0).",
    "AESTDY": "Equal to ASTDY (the onset day the safety tables read; no partial dates to impute "
    "beyond ASTDTF).",
    "AENDY": "AENDT study day, as ASTDY.",
    "TRTEMFL": "'Y' if the participant was infused (TRTSDT known), ASTDT >= TRTSDT and ASTDY <= "
    "TRTDURD (onset on or after the first infusion and within the 12-month observation period); "
    "else empty.",
    "INFREL": "'Y' if the event is recorded as infusion-related in the EDC (onset within "
    "24 h of an infusion, confirmed by the investigator), else 'N'.",
    "INFVIS": "Infusion visit the event is related to, if infusion-related.",
    "TRT01A": "Actual treatment from ADSL (analysis arm of the safety tables).",
    "TRTA": "Equal to TRT01A (single-period trial).",
    "SAFFL": "Safety population flag from ADSL.",
}


def _study_day(day: pd.Series, reference: pd.Series) -> pd.Series:
    """SDTM/ADaM study day: +1 on or after the reference date, no day 0."""
    diff = (day - reference).dt.days.astype(float)
    return diff.where(diff < 0, diff + 1)


def build_adae(raw: RawData, adsl: pd.DataFrame, config: StudyConfig) -> pd.DataFrame:
    """ADAE of the participants in ``adsl``, sorted by USUBJID and AESEQ (see DERIVATIONS).

    Events of participants who were never randomized (reported during screening) are not
    in ADAE: they are not analysed (no ADSL record, no treatment).
    """
    aes = raw.aes
    if aes.empty or adsl.empty:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in ADAE_COLUMNS})
    frame = aes.copy()
    frame["USUBJID"] = [usubjid(config.registration, str(s)) for s in frame["subject"]]
    keep = ["USUBJID", "SUBJID", "SITEID", "TRT01P", "TRT01A", "SAFFL", "TRTSDT", "TRTDURD"]
    frame = frame.merge(adsl.loc[:, keep], on="USUBJID", how="inner", validate="many_to_one")
    if frame.empty:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in ADAE_COLUMNS})
    onset = to_dates(frame["onset_date"])
    imputed = onset.isna() & frame["TRTSDT"].notna()
    frame["ASTDT"] = onset.where(~imputed, frame["TRTSDT"])
    frame["ASTDTF"] = y_or_null(imputed)
    frame["AENDT"] = to_dates(frame["resolution_date"])
    frame["ASTDY"] = _study_day(frame["ASTDT"], frame["TRTSDT"])
    frame["AESTDY"] = frame["ASTDY"]
    frame["AENDY"] = _study_day(frame["AENDT"], frame["TRTSDT"])
    emergent = (
        frame["TRTSDT"].notna()
        & frame["ASTDT"].notna()
        & (frame["ASTDT"] >= frame["TRTSDT"])
        & (frame["ASTDY"] <= pd.to_numeric(frame["TRTDURD"], errors="coerce"))
    )
    frame["TRTEMFL"] = y_or_null(emergent.fillna(False))
    frame["INFREL"] = yn(frame["infusion_related"].map(truthy))
    frame["INFVIS"] = [
        text(v) if truthy(r) else None
        for v, r in zip(frame["infusion_visit"], frame["infusion_related"], strict=True)
    ]
    frame["AESER"] = yn(frame["serious"].map(truthy))
    for column, source in SAFETY_CRITERIA.items():
        frame[column] = yn(frame[source].map(truthy))
    frame["AETERM"] = frame["verbatim_term"].map(text)
    frame["AEDECOD"] = frame["coded_term"].map(text)
    frame["AELLTCD"] = frame["meddra_code"].map(text)
    frame["AESOC"] = frame["soc"].map(text)
    grade = to_numbers(frame["grade"])
    frame["AETOXGR"] = grade.map(lambda g: None if np.isnan(g) else str(int(g))).astype(object)
    frame["AEREL"] = frame["relatedness_product"].map(
        lambda v: RELATEDNESS.get(str(v).strip().lower(), text(v)) if text(v) else None
    )
    frame["AERELPR"] = frame["relatedness_procedure"].map(
        lambda v: RELATEDNESS.get(str(v).strip().lower(), text(v)) if text(v) else None
    )
    frame["AEEXPECT"] = frame["expectedness"].map(text)
    frame["AEACN"] = frame["action_taken"].map(text)
    frame["AEOUT"] = frame["outcome"].map(
        lambda v: OUTCOME.get(str(v).strip().lower(), text(v)) if text(v) else None
    )
    frame["ASTTM"] = frame["onset_time"].map(lambda v: text(v)[:5] if text(v) else None)
    frame["AEONGO"] = yn(frame["ongoing"].map(truthy))
    frame["AESPID"] = pd.to_numeric(frame["ae_number"], errors="coerce")
    frame["STUDYID"] = config.registration
    frame["TRTA"] = frame["TRT01A"]
    frame = frame.sort_values(
        ["USUBJID", "ASTDT", "AESPID"], kind="mergesort", na_position="last"
    ).reset_index(drop=True)
    frame["AESEQ"] = frame.groupby("USUBJID").cumcount().astype(float) + 1.0
    return frame.loc[:, list(ADAE_COLUMNS)]
