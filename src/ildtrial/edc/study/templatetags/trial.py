"""Template helpers: the label of a bilingual protocol text in the page's language."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import get_language

register = template.Library()


@register.filter
def tr(text: Any) -> str:
    """``{{ visit.name|tr }}``: the Russian or English label of a protocol Text."""
    if text is None:
        return ""
    getter = getattr(text, "get", None)
    if callable(getter):
        return getter(get_language() or "en")
    return str(text)


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    try:
        return mapping[key]
    except (KeyError, IndexError, TypeError):
        return ""
