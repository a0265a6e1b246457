"""Template helpers of the pages' wording: statuses in words, numbers as the reader writes them."""

from __future__ import annotations

import re
from typing import Any

from django import template
from django.utils import formats
from django.utils.translation import gettext

from ildtrial.edc.dashboards import DERIVED_LABELS, UNIT_LABELS, VISIT_STATUS_LABELS

register = template.Library()

_DECIMAL = re.compile(r"^-?\d+\.\d+$")


@register.filter
def visit_status(code: Any) -> str:
    """``{{ row.status|visit_status }}``: "overdue", "due today" … in the page's language."""
    label = VISIT_STATUS_LABELS.get(str(code))
    return gettext(label) if label else str(code)


@register.filter
def derived_label(key: Any) -> str:
    """The clinician's name of a derived value key (``fvc_percent_predicted`` → "FVC, % predicted")."""
    label = DERIVED_LABELS.get(str(key))
    return gettext(label) if label else str(key)


@register.filter
def unit(code: Any) -> str:
    """A unit as the reader writes it ("L" → "л", "mmHg" → "мм рт. ст." in Russian); others unchanged."""
    label = UNIT_LABELS.get(str(code or ""))
    return gettext(label) if label else str(code or "")


@register.filter
def localnum(value: Any) -> str:
    """A decimal kept as text ("1.74") written with the page's decimal separator ("1,74" in Russian).

    Anything that is not a plain decimal number (what a person typed and was refused, a
    date, a code) is returned as it is, so a refused value is never lost or altered.
    """
    if value is None:
        return ""
    text = str(value)
    if _DECIMAL.match(text):
        return text.replace(".", formats.get_format("DECIMAL_SEPARATOR"))
    return text
