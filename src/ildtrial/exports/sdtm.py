"""SDTM IG 3.4 tabulation datasets of the trial, built from the raw EDC frames.

Public API::

    source = collect_source()                 # Django: read the EDC once
    sdtm = build_sdtm(source, blinded=False)  # pure pandas
    sdtm.frames["DM"], sdtm.specs["DM"]       # datasets and their metadata

Domains: DM, IE, EX, AE, RE, FT, VS, CM, MH, DS, SV and the trial design TA, TE, TV,
TI, TS. Each builder lives in :mod:`ildtrial.exports.sdtm_domains` and documents its
mapping; the conventions every domain shares (ISO 8601 text kept partial when partial,
study days with day 1 = RFSTDTC = first infusion and no day 0, EPOCH, VISITNUM, --SEQ
per USUBJID) are in :mod:`ildtrial.exports.sdtm_domains._common`.

Why SDTM is built from the raw frames rather than from ADaM: SDTM tabulates what was
collected, ADaM is derived for analysis (windows, imputations, populations). Building
SDTM from ADaM would carry analysis decisions into the tabulation and lose records ADaM
leaves out (screen failures, unscheduled results).

Masking: ``blinded=True`` builds from :meth:`ExportSource.without_allocation`, so no
arm, treatment name, dose or lot can appear (DM shows ``BLINDED``, EX ``BLINDED``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from ildtrial.exports.sdtm_domains import design, events, findings, interventions, subjects
from ildtrial.exports.sdtm_domains._common import Context
from ildtrial.exports.source import ExportSource
from ildtrial.exports.spec import SDTM_SPECS, DatasetSpec

__all__ = ["BUILDERS", "DOMAINS", "SdtmDatasets", "build_sdtm"]

#: Domain → builder, in the order datasets are written and listed in Define-XML.
BUILDERS: dict[str, Callable[[Context], pd.DataFrame]] = {
    "DM": subjects.build_dm,
    "IE": subjects.build_ie,
    "EX": interventions.build_ex,
    "AE": events.build_ae,
    "RE": findings.build_re,
    "FT": findings.build_ft,
    "VS": findings.build_vs,
    "CM": interventions.build_cm,
    "MH": events.build_mh,
    "DS": subjects.build_ds,
    "SV": subjects.build_sv,
    "TA": design.build_ta,
    "TE": design.build_te,
    "TV": design.build_tv,
    "TI": design.build_ti,
    "TS": design.build_ts,
}
DOMAINS: tuple[str, ...] = tuple(BUILDERS)


@dataclass(frozen=True, eq=False)
class SdtmDatasets:
    """The SDTM datasets by domain, their metadata, and whether they were built blinded."""

    frames: dict[str, pd.DataFrame]
    blinded: bool
    studyid: str

    @property
    def specs(self) -> dict[str, DatasetSpec]:
        """Each domain's spec restricted to the variables present (Permissible ones may be left out)."""
        out = {}
        for name, frame in self.frames.items():
            spec = SDTM_SPECS[name]
            present = tuple(v for v in spec.variables if v.name in frame.columns)
            out[name] = DatasetSpec(spec.name, spec.label, spec.cls, spec.structure, spec.keys, present,
                                    spec.standard)
        return out


def build_sdtm(source: ExportSource, *, blinded: bool = False,
               progress: Callable[[str], None] | None = None) -> SdtmDatasets:
    """All SDTM domains of ``source``; ``blinded`` builds from the source without allocation."""
    if blinded and not source.blinded:
        source = source.without_allocation()
    ctx = Context.build(source)
    frames: dict[str, pd.DataFrame] = {}
    for domain, builder in BUILDERS.items():
        if progress:
            progress(domain)
        frames[domain] = builder(ctx)
    return SdtmDatasets(frames, source.blinded, ctx.studyid)
