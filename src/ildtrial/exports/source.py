"""What the SDTM export reads: the analysis snapshot plus the few things ADaM never needed.

Why a second extraction: :func:`ildtrial.datasets.extract.take_snapshot` reads only the
forms the analysis datasets use. SDTM tabulates everything collected (vital signs,
medical history, medications), the reason of an unscheduled visit, and for EX the bag,
lot and cell count of each infusion. :func:`collect_source` reads those too, with the same
row format, and keeps them next to the snapshot in one :class:`ExportSource`, so SDTM and
ADaM of one export come from one reading of the database.

Everything past :func:`collect_source` is pure pandas: the SDTM builders are tested on
frames extracted once from a simulated trial and on frames written by hand.

Masking. :meth:`ExportSource.without_allocation` drops the allocation *and* what would
reveal it indirectly: the arm, lot, cell count and saline batch of each prepared bag (a
cell lot exists only for the active arm). Blinded exports are built from that copy, so a
blinded file cannot show an arm it never received.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import pandas as pd

from ildtrial.core.protocol import Protocol
from ildtrial.datasets.raw import RawData, Snapshot, raw_frame

__all__ = [
    "EXTRA_FORMS",
    "PREPARATION_COLUMNS",
    "VISIT_COLUMNS",
    "ExportSource",
    "collect_source",
    "frame_of",
]

#: Forms SDTM reads beyond those of the analysis snapshot.
EXTRA_FORMS: tuple[str, ...] = ("VS", "MH", "CM", "PROHIB")

VISIT_COLUMNS: tuple[str, ...] = ("subject", "visit", "state", "actual_date", "unscheduled", "reason")
PREPARATION_COLUMNS: tuple[str, ...] = (
    "bag_id",
    "subject",
    "visit",
    "arm",
    "lot",
    "cell_count_millions",
    "volume_ml",
    "saline_batch",
)
#: Preparation columns that reveal the arm (emptied in blinded sources).
_ARM_REVEALING = ("arm", "lot", "cell_count_millions", "saline_batch")


def frame_of(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> pd.DataFrame:
    """An object-dtype frame with exactly ``columns`` (``None`` stays ``None``, never NaN)."""
    return pd.DataFrame({c: pd.Series([r.get(c) for r in rows], dtype=object) for c in columns})


@dataclass(frozen=True, eq=False)
class ExportSource:
    """The snapshot of the analysis plus the SDTM-only frames and the protocol in force.

    ``forms`` holds the snapshot's forms and :data:`EXTRA_FORMS` in the raw long format;
    ``visits`` adds the reason of each visit; ``preparations`` one row per prepared bag.
    """

    snapshot: Snapshot
    protocol: Protocol
    forms: pd.DataFrame
    visits: pd.DataFrame
    preparations: pd.DataFrame
    blinded: bool = False

    @property
    def raw(self) -> RawData:
        return self.snapshot.raw

    @property
    def data_cut(self) -> date:
        return self.snapshot.data_cut

    def without_allocation(self) -> ExportSource:
        """The same source with nothing that tells the arm: what blinded exports are built from."""
        snapshot = replace(self.snapshot, raw=self.snapshot.raw.without_allocation())
        preparations = self.preparations.copy()
        for column in _ARM_REVEALING:
            preparations[column] = pd.Series([None] * len(preparations), dtype=object)
        return replace(self, snapshot=snapshot, preparations=preparations, blinded=True)


def _extra_form_rows() -> list[dict[str, Any]]:
    from ildtrial.datasets.extract import _form_rows  # the snapshot's own row format
    from ildtrial.edc.crfs.models import FormInstance

    return _form_rows(
        FormInstance.objects.filter(form_code__in=EXTRA_FORMS).select_related("participant", "visit")
    )


def _visit_rows() -> list[dict[str, Any]]:
    from ildtrial.edc.visits.models import Visit

    return [
        {
            "subject": v.participant.screening_number,
            "visit": v.code,
            "state": v.state,
            "actual_date": v.actual_date.isoformat() if v.actual_date else None,
            "unscheduled": bool(v.unscheduled),
            "reason": v.reason or None,
        }
        for v in Visit.objects.select_related("participant").order_by("participant__screening_number", "pk")
    ]


def _preparation_rows() -> list[dict[str, Any]]:
    from ildtrial.edc.cellproduct.models import Preparation

    return [
        {
            "bag_id": p.bag_id,
            "subject": p.participant.screening_number,
            "visit": p.visit_code,
            "arm": p.arm or None,
            "lot": p.lot.number if p.lot_id else None,
            "cell_count_millions": float(p.cell_count_millions) if p.cell_count_millions is not None else None,
            "volume_ml": float(p.volume_ml) if p.volume_ml is not None else None,
            "saline_batch": p.saline_batch or None,
        }
        for p in Preparation.objects.select_related("participant", "lot").order_by("bag_id")
    ]


def collect_source(*, data_cut: date | None = None) -> ExportSource:
    """Read the EDC once for every export: the analysis snapshot and the SDTM-only frames."""
    from ildtrial.datasets.extract import take_snapshot
    from ildtrial.edc.study.protocol import current_protocol

    snapshot = take_snapshot(data_cut=data_cut)
    rows = snapshot.raw.forms.to_dict("records") + _extra_form_rows()
    return ExportSource(
        snapshot=snapshot,
        protocol=current_protocol(),
        forms=raw_frame("forms", rows),
        visits=frame_of(VISIT_COLUMNS, _visit_rows()),
        preparations=frame_of(PREPARATION_COLUMNS, _preparation_rows()),
    )
