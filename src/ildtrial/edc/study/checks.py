"""System checks that refuse a misconfigured start."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from ildtrial.core.protocol import ProtocolInvalid


@register()
def protocol_is_valid(app_configs: Any, **kwargs: Any) -> list[Error]:
    from ildtrial.edc.study.protocol import loaded_protocol

    try:
        loaded_protocol()
    except ProtocolInvalid as exc:
        return [Error(str(issue), obj=exc.source, id="ildtrial.E001") for issue in exc.issues]
    if settings.ILDTRIAL_MASKING not in (None, "open_label", "double_blind"):
        return [Error("ILDTRIAL_MASKING must be open_label or double_blind", id="ildtrial.E002")]
    return []
