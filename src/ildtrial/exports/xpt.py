"""SAS transport (XPORT) version 5 files: the format regulators' review tools read.

:func:`write_xpt` writes one dataset with :func:`pyreadstat.write_xport`
(``file_format_version=5``) after normalising it (:func:`normalise`), and refuses what
version 5 cannot hold instead of letting the writer cut it silently: pyreadstat writes
character values longer than 200 bytes and truncates labels to 40 characters without a
word. :func:`read_xpt` reads a file back with :func:`pandas.read_sas`, which is how the
round-trip test proves the file holds exactly the dataset.

Types in a v5 file are only character and 8-byte numeric. Normalisation therefore turns
every column into either ``object`` text (missing → ``""``, as SAS stores it) or
``float64`` (integers, booleans as 1/0, missing → NaN); ADaM dates (``datetime64``
columns) become SAS dates, days since 1960-01-01, with the format ``DATE9.``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MAX_LABEL", "MAX_NAME", "MAX_VALUE_BYTES", "XptError", "normalise", "read_xpt", "write_xpt"]

MAX_NAME = 8
MAX_LABEL = 40
MAX_VALUE_BYTES = 200
SAS_EPOCH = date(1960, 1, 1)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,7}$")


class XptError(ValueError):
    """A dataset that a version-5 transport file cannot hold as it is."""


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _sas_date(value: Any) -> float:
    if _is_missing(value):
        return float("nan")
    if isinstance(value, (pd.Timestamp, datetime)):
        value = value.date()
    if isinstance(value, date):
        return float((value - SAS_EPOCH).days)
    return float("nan")


def normalise(frame: pd.DataFrame) -> tuple[pd.DataFrame, set[str]]:
    """The frame as a v5 file stores it, and the names of its date columns.

    Character columns become ``object`` with ``""`` for missing; numeric, boolean and
    integer columns ``float64``; ``datetime64`` and ``date`` columns SAS date numbers.
    """
    out: dict[str, pd.Series] = {}
    dates: set[str] = set()
    for name in frame.columns:
        s = frame[name]
        values = [v for v in s if not _is_missing(v)]
        if pd.api.types.is_datetime64_any_dtype(s) or (values and all(isinstance(v, date) for v in values)):
            out[name] = pd.Series([_sas_date(v) for v in s], dtype="float64")
            dates.add(name)
        elif pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            out[name] = pd.to_numeric(s, errors="coerce").astype("float64").reset_index(drop=True)
        elif values and all(isinstance(v, (int, float, np.number, bool)) and not isinstance(v, str)
                            for v in values):
            out[name] = pd.Series([float(v) if not _is_missing(v) else float("nan") for v in s], dtype="float64")
        else:
            out[name] = pd.Series(["" if _is_missing(v) else str(v) for v in s], dtype=object)
    return pd.DataFrame(out, columns=list(frame.columns)), dates


def _check(name: str, frame: pd.DataFrame, labels: Mapping[str, str], file_label: str) -> None:
    problems = []
    if not _NAME.match(name):
        problems.append(f"dataset name {name!r} is not 1-8 letters, digits or underscores")
    if len(file_label) > MAX_LABEL:
        problems.append(f"dataset label is {len(file_label)} characters (max {MAX_LABEL})")
    for column in frame.columns:
        if not _NAME.match(str(column)):
            problems.append(f"variable name {column!r} is not 1-8 letters, digits or underscores")
        label = labels.get(column, "")
        if len(label) > MAX_LABEL:
            problems.append(f"label of {column} is {len(label)} characters (max {MAX_LABEL})")
        if frame[column].dtype == object:
            longest = max((len(str(v).encode("utf-8")) for v in frame[column]), default=0)
            if longest > MAX_VALUE_BYTES:
                problems.append(f"{column} has a value of {longest} bytes (max {MAX_VALUE_BYTES})")
    if problems:
        raise XptError(f"{name}: " + "; ".join(problems))


def write_xpt(frame: pd.DataFrame, path: Path | str, *, name: str, labels: Mapping[str, str],
              file_label: str = "") -> Path:
    """Write ``frame`` as a SAS transport v5 file; raise :class:`XptError` if v5 cannot hold it."""
    import pyreadstat

    data, dates = normalise(frame)
    _check(name, data, labels, file_label)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pyreadstat.write_xport(
        data,
        str(path),
        file_label=file_label,
        column_labels={c: labels.get(c) for c in data.columns},
        table_name=name.upper(),
        file_format_version=5,
        variable_format=dict.fromkeys(dates, "DATE9."),
    )
    return path


def read_xpt(path: Path | str) -> pd.DataFrame:
    """A transport file read back with :func:`pandas.read_sas` (text decoded as UTF-8).

    pandas cannot read a file without records (its xport reader stops before the first),
    so an empty dataset is read with pyreadstat for its columns.
    """
    character: set[str] | None = None
    try:
        frame = pd.read_sas(str(path), format="xport", encoding="utf-8")
    except StopIteration:
        import pyreadstat

        frame, meta = pyreadstat.read_xport(str(path), metadataonly=True)
        character = {c for c, t in meta.readstat_variable_types.items() if t == "string"}
    out = {}
    for column in frame.columns:
        s = frame[column]
        numeric = column not in character if character is not None else pd.api.types.is_numeric_dtype(s)
        if numeric:
            out[column] = s.astype("float64")
        else:
            out[column] = pd.Series(["" if _is_missing(v) else str(v) for v in s], dtype=object)
    return pd.DataFrame(out, columns=list(frame.columns))
