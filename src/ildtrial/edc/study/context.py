"""Template context: the protocol in force and the user's role facts, on every page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from ildtrial.core.roles import Permission
from ildtrial.edc.study.protocol import loaded_protocol


def trial(request: HttpRequest) -> dict[str, Any]:
    loaded = loaded_protocol()
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    can = {p.value: bool(signed_in and user.can(p)) for p in Permission}
    return {"protocol": loaded.protocol, "protocol_sha": loaded.sha256[:12], "can": can}
