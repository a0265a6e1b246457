"""The statistical report of the trial (HTML and PDF) built from a data snapshot.

Pure layer: :func:`build_report` takes a :class:`~ildtrial.datasets.raw.Snapshot` (from
:func:`ildtrial.datasets.extract.take_snapshot`, or written by hand in tests) and returns a
:class:`Report`. The statistical content comes from ``ildtrial.stats``; this package only
derives the datasets, runs the analyses the SAP names and lays the results out.
"""

from __future__ import annotations

from ildtrial.reports.build import STEPS, ProgressCallback, Report, build_report, render_pdf

__all__ = ["STEPS", "ProgressCallback", "Report", "build_report", "render_pdf"]
