"""The protocol in force for this installation, loaded once and validated at start."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings

from ildtrial.core.protocol import LoadedProtocol, Masking, Protocol, load_protocol


@lru_cache(maxsize=8)
def _load(path: str | None, masking: str | None) -> LoadedProtocol:
    loaded = load_protocol(path)
    if masking and masking != loaded.protocol.masking.mode:
        protocol = loaded.protocol
        parties: list[Any] = (
            ["participant", "investigator", "outcomes_assessor", "care_provider"] if masking == "double_blind" else []
        )
        new_masking = Masking(mode=masking, blinded_parties=parties, unblinded_roles=protocol.masking.unblinded_roles)
        protocol = protocol.model_copy(update={"masking": new_masking})
        loaded = LoadedProtocol(protocol, f"{loaded.source} (masking: {masking})", loaded.sha256)
    return loaded


def loaded_protocol() -> LoadedProtocol:
    """The protocol file in force (settings ILDTRIAL_PROTOCOL_FILE, masking ILDTRIAL_MASKING)."""
    return _load(settings.ILDTRIAL_PROTOCOL_FILE, settings.ILDTRIAL_MASKING)


def current_protocol() -> Protocol:
    return loaded_protocol().protocol


def register_protocol(**kwargs: Any) -> None:
    """Record the protocol version in force (post-migrate), so records can point at it."""
    from ildtrial.edc.study.models import ProtocolRecord, Site

    loaded = loaded_protocol()
    ProtocolRecord.objects.get_or_create(
        version=loaded.version,
        sha256=loaded.sha256,
        defaults={"effective_date": loaded.protocol.protocol.effective_date, "source": loaded.source[:255]},
    )
    for site in loaded.protocol.identity.sites:
        if not Site.objects.filter(code=site.code).exists():
            from ildtrial.edc.audit.context import acting_as

            with acting_as(None, source="system", reason="site defined in the protocol file"):
                Site.objects.create(code=site.code, name=site.name, city=site.city, country=site.country,
                                    timezone=site.timezone)
