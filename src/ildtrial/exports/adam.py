"""ADaM datasets for submission: ADSL, ADAE, ADLF of :mod:`ildtrial.datasets`, with metadata.

The datasets are exactly those the statistical report analyses (same builders, same
snapshot), so the submitted analysis data cannot drift from the report. This module only
adds what a submission needs on top: variable labels, types, origins and the derivation
rule of every derived variable (``ildtrial.datasets.DERIVATIONS``) for Define-XML.

Blinded: built from the snapshot without the allocation, and the arm columns are left
out altogether (``AnalysisDatasets.frames``), so no TRT01P/TRT01A/ARM value exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ildtrial.datasets import DERIVATIONS, build_datasets
from ildtrial.datasets.raw import Snapshot
from ildtrial.exports.spec import ADAM_SPECS, DatasetSpec, adam_spec
from ildtrial.exports.xpt import normalise

__all__ = ["AdamDatasets", "build_adam"]


@dataclass(frozen=True, eq=False)
class AdamDatasets:
    """ADSL, ADAE, ADLF by upper-case name, their metadata, and whether they are blinded."""

    frames: dict[str, pd.DataFrame]
    specs: dict[str, DatasetSpec]
    blinded: bool
    studyid: str


def _numeric(frame: pd.DataFrame) -> dict[str, bool]:
    """Which columns a transport file stores as numbers (decided by the writer's own rule)."""
    data, _dates = normalise(frame)
    return {c: data[c].dtype == "float64" for c in data.columns}


def build_adam(snapshot: Snapshot, *, blinded: bool = False) -> AdamDatasets:
    """The ADaM datasets of ``snapshot`` with Define-XML metadata."""
    datasets = build_datasets(snapshot, blinded=blinded)
    frames: dict[str, pd.DataFrame] = {}
    specs: dict[str, DatasetSpec] = {}
    for name in ADAM_SPECS:
        frame = datasets.frames()[name.lower()].reset_index(drop=True)
        dates = frozenset(c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c]))
        frames[name] = frame
        specs[name] = adam_spec(name, list(frame.columns), DERIVATIONS.get(name, {}), _numeric(frame), dates)
    return AdamDatasets(frames, specs, blinded, snapshot.config.registration)
