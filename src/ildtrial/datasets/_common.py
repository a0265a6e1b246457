"""Small coercions shared by the builders (raw text/JSON scalars → typed pandas columns)."""

from __future__ import annotations

from typing import Any

import pandas as pd

DAYS_PER_YEAR = 365.25


def to_dates(values: Any) -> pd.Series:
    """ISO dates (text, date or Timestamp) → ``datetime64[ns]``; anything unreadable → NaT."""
    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    text = series.map(lambda v: None if v is None else str(v)[:10])
    return pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")


def to_numbers(values: pd.Series) -> pd.Series:
    """Numbers stored as JSON numbers or text (a decimal comma is accepted) → float."""

    def one(v: Any) -> Any:
        if isinstance(v, bool):
            return float(v)
        if isinstance(v, str):
            return v.strip().replace(",", ".")
        return v

    return pd.to_numeric(values.map(one), errors="coerce").astype(float)


def truthy(value: Any) -> bool:
    """A stored boolean: ``True`` or the text ``true``/``yes``/``y``/``1`` (any case)."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)):
        return value == 1
    return str(value).strip().lower() in {"true", "yes", "y", "1"}


def yn(flags: pd.Series) -> pd.Series:
    """Booleans → ``"Y"``/``"N"`` (ADaM population flags, SDTM seriousness flags)."""
    return flags.map(lambda f: "Y" if bool(f) else "N").astype(object)


def y_or_null(flags: pd.Series) -> pd.Series:
    """Booleans → ``"Y"``/``None`` (ADaM record-level flags such as ABLFL, ANL01FL, TRTEMFL)."""
    return flags.map(lambda f: "Y" if bool(f) else None).astype(object)


def text(value: Any) -> str | None:
    """A stored text value, stripped; empty → None."""
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    s = str(value).strip()
    return s or None


def usubjid(registration: str, subject: str) -> str:
    """Unique subject identifier: ``<registration>-<screening number>`` (stable, never reused)."""
    return f"{registration}-{subject}"
