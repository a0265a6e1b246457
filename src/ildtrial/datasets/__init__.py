"""Analysis datasets (ADaM-like ADSL, ADAE and the lung-function BDS ADLF).

Layering, and why: :mod:`ildtrial.datasets.extract` is the only module that imports
Django; it turns the EDC into plain raw frames (:class:`~ildtrial.datasets.raw.RawData`).
The builders (:func:`build_adsl`, :func:`build_adae`, :func:`build_adlf`) are pure
functions of those frames, so they are tested on frames written by hand, with answers
worked out by hand, and give the same datasets from any database.

Every derived column is documented in a ``DERIVATIONS`` dict (column → rule text); the
report prints them in its methods appendix and Define-XML can reuse them
(:data:`DERIVATIONS` collects the three).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ildtrial.datasets import adae as _adae
from ildtrial.datasets import adsl as _adsl
from ildtrial.datasets import bds as _bds
from ildtrial.datasets.adae import SAFETY_COLUMNS, build_adae
from ildtrial.datasets.adsl import build_adsl
from ildtrial.datasets.bds import PARAMETERS, analysis_records, build_adlf
from ildtrial.datasets.raw import RawData, Snapshot, StudyConfig, WindowSpec

__all__ = [
    "ARM_COLUMNS",
    "DERIVATIONS",
    "PARAMETERS",
    "SAFETY_COLUMNS",
    "AnalysisDatasets",
    "RawData",
    "Snapshot",
    "StudyConfig",
    "WindowSpec",
    "analysis_records",
    "build_adae",
    "build_adlf",
    "build_adsl",
    "build_datasets",
]

#: Dataset → column → derivation rule.
DERIVATIONS: dict[str, dict[str, str]] = {
    "ADSL": _adsl.DERIVATIONS,
    "ADAE": _adae.DERIVATIONS,
    "ADLF": _bds.DERIVATIONS,
}

#: Columns that reveal the allocation (empty in blinded datasets, dropped from blinded exports).
ARM_COLUMNS: frozenset[str] = frozenset(
    {"ARMCD", "ARM", "ACTARMCD", "ACTARM", "TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "TRTP", "TRTA"}
)


@dataclass(frozen=True, eq=False)
class AnalysisDatasets:
    """ADSL, ADAE and ADLF built from one snapshot; ``blinded`` when built without allocation."""

    adsl: pd.DataFrame
    adae: pd.DataFrame
    adlf: pd.DataFrame
    blinded: bool

    def frames(self) -> dict[str, pd.DataFrame]:
        """The datasets by name; blinded ones without the arm columns at all."""
        out = {"adsl": self.adsl, "adae": self.adae, "adlf": self.adlf}
        if self.blinded:
            out = {k: v.drop(columns=[c for c in v.columns if c in ARM_COLUMNS]) for k, v in out.items()}
        return out

    def to_csv(self, name: str) -> str:
        """One dataset as CSV text (dates ISO, fixed column order; deterministic)."""
        frame = self.frames()[name]
        return frame.to_csv(index=False, date_format="%Y-%m-%d", lineterminator="\n")


def build_datasets(snapshot: Snapshot, *, blinded: bool = False) -> AnalysisDatasets:
    """ADSL, then ADAE and ADLF from it. ``blinded=True`` builds from the data without allocation.

    Building the blinded datasets from data that never held the allocation (rather than
    dropping columns afterwards) is what guarantees a pooled report cannot show an arm.
    """
    raw = snapshot.raw.without_allocation() if blinded else snapshot.raw
    adsl = build_adsl(raw, snapshot.config, snapshot.data_cut)
    adae = build_adae(raw, adsl, snapshot.config)
    adlf = build_adlf(raw, adsl, snapshot.config)
    return AnalysisDatasets(adsl, adae, adlf, blinded)
