"""Our own conformance checker, run on every SDTM and ADaM export before it is handed over.

It checks the rules a reviewer applies first (the trial's CDISC notes, "File rules a
reviewer checks first") and the per-domain variable table of
:mod:`ildtrial.exports.spec`. Each rule has a name; a finding says which rule, where
(dataset, variable, 1-based row) and what is wrong:

=======================  ========  ==========================================================
rule                     severity  what
=======================  ========  ==========================================================
DATASET_NAME             error     dataset name is 1-8 letters/digits/underscores
VARIABLE_NAME            error     variable name is 1-8 letters/digits/underscores
LABEL_LENGTH             error     dataset and variable labels at most 40 characters
VALUE_LENGTH             error     character values at most 200 bytes (UTF-8)
REQUIRED_VARIABLE        error     every Req variable of the domain is present
EXPECTED_VARIABLE        error     every Exp variable of the domain is present
REQUIRED_VALUE           error     a Req variable is never empty
UNKNOWN_VARIABLE         warning   a variable the domain's table does not define
DOMAIN_VALUE             error     DOMAIN equals the dataset name
NUMERIC_TYPE             error     a Num variable holds only numbers
CODELIST                 error     a coded value is in its code list (warning if extensible)
USUBJID_IN_DM            error     every USUBJID of any dataset exists in DM (ADSL for ADaM)
SEQ_UNIQUE               error     --SEQ unique within USUBJID
ISO8601                  error     --DTC values are ISO 8601 (partial dates allowed)
XPT_WRITE                error     (added by the package writer) a v5 file could not hold it
=======================  ========  ==========================================================

The check works on the frames as they will be written, so an export with zero errors
writes transport files that hold exactly what was checked.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from ildtrial.exports.sdtm_domains._common import DTC_PATTERN
from ildtrial.exports.spec import DatasetSpec
from ildtrial.exports.terminology import CodeList

__all__ = ["RULES", "ConformanceReport", "Finding", "check"]

RULES: tuple[str, ...] = (
    "DATASET_NAME",
    "VARIABLE_NAME",
    "LABEL_LENGTH",
    "VALUE_LENGTH",
    "REQUIRED_VARIABLE",
    "EXPECTED_VARIABLE",
    "REQUIRED_VALUE",
    "UNKNOWN_VARIABLE",
    "DOMAIN_VALUE",
    "NUMERIC_TYPE",
    "CODELIST",
    "USUBJID_IN_DM",
    "SEQ_UNIQUE",
    "ISO8601",
    "XPT_WRITE",
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,7}$")
MAX_LABEL = 40
MAX_VALUE_BYTES = 200


@dataclass(frozen=True)
class Finding:
    """One departure from a rule: severity, where (dataset, variable, 1-based row), which rule, what."""

    severity: str
    dataset: str
    variable: str | None
    row: int | None
    rule: str
    message: str


@dataclass
class ConformanceReport:
    """The findings of one check, with counts and a printable table."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings do not block an export)."""
        return not self.errors

    def rules_hit(self) -> set[str]:
        return {f.rule for f in self.findings}

    def table(self, limit: int = 60) -> str:
        """A fixed-width table of the findings (errors first), then counts by rule."""
        rows = sorted(self.findings, key=lambda f: (f.severity != "error", f.dataset, f.rule, f.row or 0))
        head = ("severity", "dataset", "variable", "row", "rule", "message")
        body = [(f.severity, f.dataset, f.variable or "", "" if f.row is None else str(f.row), f.rule,
                 f.message) for f in rows[:limit]]
        widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(head)]
        widths[-1] = len(head[-1])
        lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body]
        if len(rows) > limit:
            lines.append(f"... {len(rows) - limit} more findings")
        counts = Counter((f.severity, f.rule) for f in self.findings)
        summary = ", ".join(f"{rule} {n} {sev}" for (sev, rule), n in sorted(counts.items())) or "none"
        lines.append(f"{len(self.errors)} error(s), {len(self.warnings)} warning(s); by rule: {summary}")
        return "\n".join(lines)

    def to_csv(self) -> str:
        """All findings as CSV (one per line), for the export's conformance report file."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["severity", "dataset", "variable", "row", "rule", "message"])
        for f in self.findings:
            writer.writerow([f.severity, f.dataset, f.variable or "", "" if f.row is None else f.row, f.rule,
                             f.message])
        return out.getvalue()


def _missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _is_number(value: Any, *, dates: bool) -> bool:
    """A value a numeric transport variable can hold (ADaM dates: dates, written as SAS dates)."""
    if isinstance(value, bool):
        return False
    if dates and isinstance(value, (pd.Timestamp, datetime, date)):
        return True
    return isinstance(value, (int, float, np.integer, np.floating))


def _rows(series: pd.Series) -> Iterable[tuple[int, Any]]:
    yield from enumerate(series, start=1)


def _check_dataset(name: str, frame: pd.DataFrame, spec: DatasetSpec | None,
                   codelists: Mapping[str, CodeList], out: list[Finding]) -> None:
    def add(severity: str, variable: str | None, row: int | None, rule: str, message: str) -> None:
        out.append(Finding(severity, name, variable, row, rule, message))

    if not _NAME.match(name):
        add("error", None, None, "DATASET_NAME", f"dataset name {name!r} is not 1-8 letters, digits or _")
    if spec is None:
        add("error", None, None, "REQUIRED_VARIABLE", f"no variable table for dataset {name}")
        return
    if len(spec.label) > MAX_LABEL:
        add("error", None, None, "LABEL_LENGTH", f"dataset label has {len(spec.label)} characters (max 40)")
    defined = {v.name: v for v in spec.variables}
    for column in frame.columns:
        if not _NAME.match(str(column)):
            add("error", str(column), None, "VARIABLE_NAME", f"variable name {column!r} is not 1-8 letters, "
                "digits or _")
        if column not in defined:
            add("warning", str(column), None, "UNKNOWN_VARIABLE", f"{column} is not in the {name} variable table")
    for var in spec.variables:
        if len(var.label) > MAX_LABEL:
            add("error", var.name, None, "LABEL_LENGTH", f"label has {len(var.label)} characters (max 40)")
        if var.name not in frame.columns:
            if var.core == "Req":
                add("error", var.name, None, "REQUIRED_VARIABLE", f"required variable {var.name} is missing")
            elif var.core == "Exp":
                add("error", var.name, None, "EXPECTED_VARIABLE", f"expected variable {var.name} is missing")
            continue
        series = frame[var.name]
        codelist = codelists.get(var.codelist) if var.codelist else None
        for row, value in _rows(series):
            if _missing(value):
                if var.core == "Req":
                    add("error", var.name, row, "REQUIRED_VALUE", f"required variable {var.name} is empty")
                continue
            if var.type == "Num":
                if not _is_number(value, dates=var.kind == "date"):
                    add("error", var.name, row, "NUMERIC_TYPE", f"{value!r} is not a number")
                continue
            text = str(value)
            size = len(text.encode("utf-8"))
            if size > MAX_VALUE_BYTES:
                add("error", var.name, row, "VALUE_LENGTH", f"value of {size} bytes (max 200)")
            if var.kind == "dtc" and not DTC_PATTERN.match(text):
                add("error", var.name, row, "ISO8601", f"{text!r} is not an ISO 8601 date/time")
            if codelist is not None and text not in codelist.values:
                severity = "warning" if codelist.extensible else "error"
                add(severity, var.name, row, "CODELIST", f"{text!r} is not in code list {codelist.name}")
        if var.name == "DOMAIN":
            for row, value in _rows(series):
                if not _missing(value) and value != name:
                    add("error", "DOMAIN", row, "DOMAIN_VALUE", f"DOMAIN is {value!r}, not {name!r}")
    seq = [c for c in frame.columns if len(c) == len(name) + 3 and c.endswith("SEQ") and c.startswith(name[:2])]
    if seq and "USUBJID" in frame.columns:
        keys = frame[["USUBJID", seq[0]]]
        duplicated = keys.duplicated(keep="first")
        for row, dup in _rows(duplicated):
            if dup:
                add("error", seq[0], row, "SEQ_UNIQUE",
                    f"{seq[0]} {keys.iloc[row - 1, 1]!r} repeats within USUBJID {keys.iloc[row - 1, 0]}")


def check(frames: Mapping[str, pd.DataFrame], specs: Mapping[str, DatasetSpec],
          codelists: Mapping[str, CodeList], *, subjects: str = "DM") -> ConformanceReport:
    """Check every dataset of ``frames`` against its ``specs`` and the cross-dataset rules.

    ``subjects`` names the dataset every USUBJID must exist in (DM for SDTM, ADSL for ADaM).
    """
    findings: list[Finding] = []
    for name, frame in frames.items():
        _check_dataset(name, frame, specs.get(name), codelists, findings)
    known = set(frames[subjects]["USUBJID"]) if subjects in frames and "USUBJID" in frames[subjects] else None
    for name, frame in frames.items():
        if name == subjects or "USUBJID" not in frame.columns:
            continue
        for row, value in _rows(frame["USUBJID"]):
            if _missing(value):
                continue
            if known is None or value not in known:
                findings.append(Finding("error", name, "USUBJID", row, "USUBJID_IN_DM",
                                        f"{value} is not in {subjects}"))
    return ConformanceReport(findings)
