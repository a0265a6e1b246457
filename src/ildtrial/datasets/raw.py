"""Raw frames: the EDC's content as plain tables, the single input of the dataset builders.

Why a raw layer at all: the ADaM builders (:mod:`ildtrial.datasets.adsl`, ``adae``,
``bds``) must be testable with frames written by hand and must give the same answer
whatever database the data came from. So only :mod:`ildtrial.datasets.extract` touches
Django; it fills the frames described here, and everything downstream is pure pandas.

Conventions of the raw frames (all columns of object dtype):

* values are ``str``, ``int``, ``float``, ``bool`` or ``None``; dates are ISO 8601 text
  (``"2025-03-10"``), so that a frame is its own canonical serialisation;
* the participant key is ``subject`` = the screening number (unique, never reused);
* rows are sorted by the key columns of :data:`KEYS`, so that two extractions of the same
  data are equal frame for frame.

:func:`canonical_json` / :func:`data_sha256` turn a :class:`RawData` into bytes and a
SHA-256 digest (the "data snapshot hash" printed in every report footer).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from ildtrial.core.protocol import Protocol

__all__ = [
    "COLUMNS",
    "KEYS",
    "ArmInfo",
    "RawData",
    "Snapshot",
    "StudyConfig",
    "WindowSpec",
    "canonical_json",
    "data_sha256",
    "form_frame",
    "raw_frame",
]

#: Columns of each raw frame, in order.
COLUMNS: dict[str, tuple[str, ...]] = {
    "participants": (
        "subject",
        "site",
        "status",
        "screening_date",
        "outcome_reason",
        "stratum",
        "randomization_number",
        "randomized_date",
        "rescreen_of",
        "protocol_version",
    ),
    "allocations": ("subject", "arm", "allocated_date"),
    "visits": ("subject", "visit", "state", "actual_date", "unscheduled"),
    "forms": (
        "subject",
        "visit",
        "visit_date",
        "unscheduled",
        "form",
        "instance",
        "status",
        "source",
        "field",
        "value",
        "method",
    ),
    "aes": (
        "subject",
        "ae_number",
        "verbatim_term",
        "coded_term",
        "meddra_code",
        "soc",
        "onset_date",
        "onset_time",
        "resolution_date",
        "ongoing",
        "grade",
        "serious",
        "sae_death",
        "sae_life_threatening",
        "sae_hospitalisation",
        "sae_disability",
        "sae_congenital_anomaly",
        "sae_important_medical_event",
        "relatedness_product",
        "relatedness_procedure",
        "expectedness",
        "action_taken",
        "outcome",
        "infusion_related",
        "infusion_visit",
        "reported_date",
    ),
    "consents": ("subject", "form_version", "signed_date", "withdrawn_date", "withdrawal_reason"),
    "screening": ("subject", "status", "evaluated_date", "failed_criteria"),
}

#: Sort keys of each raw frame (deterministic order).
KEYS: dict[str, tuple[str, ...]] = {
    "participants": ("subject",),
    "allocations": ("subject",),
    "visits": ("subject", "visit"),
    "forms": ("subject", "form", "visit", "instance", "source", "field"),
    "aes": ("subject", "ae_number"),
    "consents": ("subject", "signed_date", "form_version"),
    "screening": ("subject",),
}


def _sort_key(value: Any) -> tuple[int, Any]:
    """Total order over mixed values: None last, numbers before text (stable across runs)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (2, "")
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, float)):
        return (0, value)
    return (1, str(value))


def _clean(value: Any) -> Any:
    """One raw cell: numpy scalars to Python, NaN/NaT to None, dates to ISO text."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return value


def raw_frame(name: str, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A raw frame ``name`` from row dicts: known columns only, cleaned, sorted by :data:`KEYS`."""
    if name not in COLUMNS:
        raise KeyError(f"unknown raw frame {name!r}; known: {sorted(COLUMNS)}")
    columns = COLUMNS[name]
    records = []
    for row in rows:
        unknown = set(row) - set(columns)
        if unknown:
            raise ValueError(f"raw frame {name!r} has no column(s) {sorted(unknown)}")
        records.append(tuple(_clean(row.get(c)) for c in columns))
    keys = [columns.index(k) for k in KEYS[name]]
    records.sort(key=lambda r: tuple(_sort_key(r[i]) for i in keys))
    # built column by column as object Series: from_records would turn None into NaN
    return pd.DataFrame(
        {c: pd.Series([r[i] for r in records], dtype=object) for i, c in enumerate(columns)}
    )


@dataclass(frozen=True, eq=False)
class RawData:
    """The extracted EDC content: one raw frame per entity (see :data:`COLUMNS`)."""

    participants: pd.DataFrame
    allocations: pd.DataFrame
    visits: pd.DataFrame
    forms: pd.DataFrame
    aes: pd.DataFrame
    consents: pd.DataFrame
    screening: pd.DataFrame

    @classmethod
    def from_rows(cls, **rows: Iterable[Mapping[str, Any]]) -> RawData:
        """Build from row dicts per frame name; frames not given are empty."""
        unknown = set(rows) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown raw frame(s) {sorted(unknown)}")
        return cls(**{name: raw_frame(name, rows.get(name, ())) for name in COLUMNS})

    def frames(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in COLUMNS}

    def without_allocation(self) -> RawData:
        """The same data with the allocation emptied: what a blinded report may be built from."""
        return RawData(**{**self.frames(), "allocations": raw_frame("allocations", ())})


def _records(frame: pd.DataFrame, columns: tuple[str, ...]) -> list[list[Any]]:
    out = []
    for row in frame.loc[:, list(columns)].itertuples(index=False, name=None):
        out.append([_clean(v) for v in row])
    return out


def canonical_json(raw: RawData) -> bytes:
    """Canonical UTF-8 JSON of the raw frames (fixed frame and column order, rows as sorted)."""
    payload = {
        name: {"columns": list(COLUMNS[name]), "rows": _records(frame, COLUMNS[name])}
        for name, frame in raw.frames().items()
    }
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8"
    )


def data_sha256(raw: RawData) -> str:
    """SHA-256 of :func:`canonical_json`: same data, same digest, on any machine."""
    return hashlib.sha256(canonical_json(raw)).hexdigest()


def form_frame(forms: pd.DataFrame, form_code: str) -> pd.DataFrame:
    """One row per form instance of ``form_code``: data fields as columns, derived as ``derived:<field>``.

    Forms marked not done are left out (they hold no values). Columns ``subject``,
    ``visit``, ``visit_date``, ``unscheduled``, ``instance`` identify the instance; values
    stay as stored (text or numbers), for the builders to coerce.
    """
    ident = ["subject", "visit", "visit_date", "unscheduled", "instance"]
    part = forms.loc[(forms["form"] == form_code) & (forms["status"] != "not_done")]
    if part.empty:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in ident})
    part = part.assign(
        column_=[f if s == "data" else f"derived:{f}" for f, s in zip(part["field"], part["source"], strict=True)]
    )
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for rec in part.itertuples(index=False):
        key = (rec.subject, rec.visit, rec.visit_date, rec.unscheduled, rec.instance)
        row = rows.setdefault(key, dict(zip(ident, key, strict=True)))
        if rec.column_ is not None and rec.field is not None:
            row[rec.column_] = rec.value
    frame = pd.DataFrame(list(rows.values()))
    return frame.sort_values(["subject", "visit", "instance"], kind="mergesort").reset_index(drop=True)


# --------------------------------------------------------------------------- study configuration


@dataclass(frozen=True)
class ArmInfo:
    """One arm of the protocol: code (e.g. ``MSC``), English name, type."""

    code: str
    name: str
    type: str


@dataclass(frozen=True)
class WindowSpec:
    """An analysis window (protocol ``analysis_windows``), in protocol study days (day 0 = first infusion)."""

    label: str
    visit: str
    target_day: int
    low_day: int
    high_day: int

    @property
    def week(self) -> int:
        """Week number of the window (``Week 13`` → 13), used as ``AVISITN``."""
        digits = "".join(ch for ch in self.label if ch.isdigit())
        return int(digits) if digits else round(self.target_day / 7)


@dataclass(frozen=True)
class StudyConfig:
    """What the builders and the report need from the protocol, as plain values.

    ``observation_days`` is the protocol day of the end-of-study visit (364 here): the
    12-month observation period of the primary endpoint runs from the first infusion
    (day 0) to that day, i.e. at most ``observation_days + 1`` days at risk.
    """

    registration: str
    title: str
    protocol_version: str
    protocol_sha256: str
    arms: tuple[ArmInfo, ...]
    reference_arm: str
    windows: tuple[WindowSpec, ...]
    observation_days: int = 364
    day_zero_visit: str = "C1A"
    reaction_window_hours: int = 24
    masking: str = "open_label"
    sites: tuple[str, ...] = ()
    infusions_planned: int = 8

    @property
    def arm_codes(self) -> tuple[str, ...]:
        return tuple(a.code for a in self.arms)

    def arm_name(self, code: str) -> str:
        for a in self.arms:
            if a.code == code:
                return a.name
        raise KeyError(code)

    @classmethod
    def from_protocol(cls, protocol: Protocol, sha256: str = "") -> StudyConfig:
        """Read the arms (experimental first), windows and clocks from a validated protocol."""
        arms = sorted(
            protocol.arms, key=lambda a: (a.type != "experimental", protocol.arms.index(a))
        )
        placebo = [a.code for a in arms if a.type == "placebo_comparator"]
        end = [v.day for v in protocol.schedule.visits if v.kind == "end_of_study" and v.anchor == "day0"]
        return cls(
            registration=protocol.identity.registration,
            title=protocol.identity.title,
            protocol_version=protocol.version,
            protocol_sha256=sha256,
            arms=tuple(ArmInfo(a.code, a.name.en, a.type) for a in arms),
            reference_arm=placebo[0] if placebo else arms[-1].code,
            windows=tuple(
                WindowSpec(w.label, w.visit, w.target_day, w.low_day, w.high_day)
                for w in sorted(protocol.analysis_windows, key=lambda w: w.target_day)
            ),
            observation_days=end[0] if end else 364,
            day_zero_visit=protocol.schedule.day_zero,
            reaction_window_hours=protocol.regimen.reaction_window_hours,
            masking=protocol.masking.mode,
            sites=tuple(s.code for s in protocol.identity.sites),
            infusions_planned=protocol.regimen.cycles * protocol.regimen.infusions_per_cycle,
        )


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Raw data plus the protocol it was collected under and the data cut: a report's whole input."""

    raw: RawData
    config: StudyConfig
    data_cut: date
    source: str = "EDC"

    @property
    def data_sha256(self) -> str:
        return data_sha256(self.raw)

    @property
    def blinded_data_sha256(self) -> str:
        """Digest of the data without the allocation: safe to print in a pooled report.

        The full digest would let someone who holds the other data test all 2^n
        allocations against it, so blinded reports print this one instead.
        """
        return data_sha256(self.raw.without_allocation())
