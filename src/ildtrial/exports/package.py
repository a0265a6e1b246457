"""Export packages on disk: transport files, Define-XML and the conformance report together.

A package is what is handed over, so it is written as one unit: every dataset as a v5
transport file, one ``define.xml`` describing exactly the files written, and the
conformance report of the very frames written (``conformance.txt`` as a table,
``conformance.csv`` one finding per line). A dataset that a v5 file cannot hold is not
written at all (the writer refuses rather than truncating), and the report says so.

CSV exports (:func:`write_csv`) are for people with spreadsheets: every character cell
passes through :func:`ildtrial.edc.audit.services.neutralise`, so a value beginning with
``=``, ``+``, ``-`` or ``@`` cannot run as a formula. Numbers are written as numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ildtrial.exports.adam import build_adam
from ildtrial.exports.conformance import ConformanceReport, Finding, check
from ildtrial.exports.define import DefineDataset, write_define
from ildtrial.exports.sdtm import build_sdtm
from ildtrial.exports.source import ExportSource
from ildtrial.exports.spec import DatasetSpec
from ildtrial.exports.terminology import codelists
from ildtrial.exports.xpt import XptError, write_xpt

__all__ = ["ExportResult", "csv_cell", "write_adam_package", "write_csv", "write_sdtm_package"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ExportResult:
    """The files a package wrote, its conformance report, and whether it is blinded."""

    files: list[Path]
    report: ConformanceReport
    blinded: bool

    @property
    def ok(self) -> bool:
        return self.report.ok


def _write_package(out_dir: Path, frames: Mapping[str, pd.DataFrame], specs: Mapping[str, DatasetSpec], *,
                   model: str, source: ExportSource, blinded: bool, subjects: str,
                   progress: Progress | None) -> ExportResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    lists = codelists(source.protocol, blinded=blinded)
    if progress:
        progress("conformance")
    report = check(frames, specs, lists, subjects=subjects)
    files: list[Path] = []
    described: list[DefineDataset] = []
    for name, frame in frames.items():
        if progress:
            progress(f"{name.lower()}.xpt")
        spec = specs[name]
        href = f"{name.lower()}.xpt"
        try:
            files.append(write_xpt(frame, out_dir / href, name=name, labels=spec.labels, file_label=spec.label))
        except XptError as error:
            report.findings.append(Finding("error", name, None, None, "XPT_WRITE", str(error)))
            continue
        described.append(DefineDataset(spec, frame, href))
    if progress:
        progress("define.xml")
    identity = source.protocol.identity
    files.append(write_define(out_dir / "define.xml", described, model=model, studyid=identity.registration,
                              title=identity.title, codelists=lists,
                              protocol_name=f"{identity.registration} protocol {source.protocol.version}"))
    (out_dir / "conformance.txt").write_text(report.table(limit=500) + "\n", encoding="utf-8")
    (out_dir / "conformance.csv").write_text(report.to_csv(), encoding="utf-8")
    files += [out_dir / "conformance.txt", out_dir / "conformance.csv"]
    return ExportResult(files, report, blinded)


def write_sdtm_package(out_dir: Path | str, source: ExportSource, *, blinded: bool,
                       progress: Progress | None = None) -> ExportResult:
    """SDTM: every domain as ``<domain>.xpt``, ``define.xml``, the conformance report."""
    sdtm = build_sdtm(source, blinded=blinded, progress=progress)
    return _write_package(Path(out_dir), sdtm.frames, sdtm.specs, model="SDTM", source=source,
                          blinded=sdtm.blinded, subjects="DM", progress=progress)


def write_adam_package(out_dir: Path | str, source: ExportSource, *, blinded: bool,
                       progress: Progress | None = None) -> ExportResult:
    """ADaM: ADSL, ADAE, ADLF as ``.xpt``, ``define.xml``, the conformance report."""
    if progress:
        progress("ADaM datasets")
    adam = build_adam(source.snapshot, blinded=blinded)
    return _write_package(Path(out_dir), adam.frames, adam.specs, model="ADaM", source=source, blinded=blinded,
                          subjects="ADSL", progress=progress)


def csv_cell(value: Any) -> str:
    """One CSV cell: numbers as numbers, dates ISO, text neutralised against formula injection."""
    from ildtrial.edc.audit.services import neutralise

    if value is None or value is pd.NaT:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and math.isnan(value):
            return ""
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, (pd.Timestamp, datetime, date)):
        return value.strftime("%Y-%m-%d")
    return neutralise(value)


def _csv_text(frame: pd.DataFrame) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(frame.columns))
    for row in frame.itertuples(index=False, name=None):
        writer.writerow([csv_cell(v.item() if isinstance(v, (np.integer, np.floating, np.bool_)) else v)
                         for v in row])
    return out.getvalue()


def write_csv(out_dir: Path | str, source: ExportSource, *, blinded: bool,
              progress: Progress | None = None) -> list[Path]:
    """Every SDTM dataset as ``sdtm/<domain>.csv`` and every ADaM one as ``adam/<name>.csv``."""
    out = Path(out_dir)
    files = []
    sdtm = build_sdtm(source, blinded=blinded, progress=progress)
    adam = build_adam(source.snapshot, blinded=blinded)
    for folder, frames in (("sdtm", sdtm.frames), ("adam", adam.frames)):
        (out / folder).mkdir(parents=True, exist_ok=True)
        for name, frame in frames.items():
            if progress:
                progress(f"{folder}/{name.lower()}.csv")
            path = out / folder / f"{name.lower()}.csv"
            path.write_text(_csv_text(frame), encoding="utf-8")
            files.append(path)
    return files
