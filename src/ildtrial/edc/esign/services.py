"""Signing: the signer re-enters their password; the meaning is shown and stored with a hash of what is signed."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import transaction
from django.utils import timezone

from ildtrial.edc.audit.context import acting_as, current
from ildtrial.edc.audit.models import append
from ildtrial.edc.esign.models import Signature


class SignatureRefused(PermissionError):
    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


def content_digest(content: Any) -> str:
    """SHA-256 of the canonical JSON of what is signed, so a later change is detectable."""
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()


def authenticate_signer(user: Any, password: str, record: Any, site_code: str = "") -> None:
    """Each signing is a full authentication. Call it before opening the signing transaction,
    so that a refusal stays in the audit trail instead of being rolled back with it."""
    if not password or not user.check_password(password):
        append(action="signature_refused", model=record._meta.label, object_pk=record.pk,
               object_repr=str(record), reason="wrong password", site_code=site_code)
        raise SignatureRefused("password", "the password is not correct; nothing was signed")


def sign(*, user: Any, password: str, meaning: str, record: Any, content: Any, site_code: str = "",
         authenticated: bool = False) -> Signature:
    """Create a signature after re-checking the signer's password (unless the caller has just
    done so for a series of signings in one session)."""
    if not authenticated:
        authenticate_signer(user, password, record, site_code)
    ctx = current()
    with transaction.atomic(), acting_as(user, reason=f"signed: {meaning}", source=ctx.source if ctx else "web",
                                         ip=ctx.ip if ctx else ""):
        return Signature.objects.create(
            signer=user, signer_name=user.get_full_name() or user.username, signer_role=user.role,
            signed_at=timezone.now(), meaning=meaning, record_model=record._meta.label, record_pk=str(record.pk),
            content_sha256=content_digest(content), site_code=site_code)


def void(signature: Signature, reason: str) -> None:
    """An edit after signing voids the signature; the reason is kept."""
    if signature.voided_at is None:
        signature.voided_at = timezone.now()
        signature.void_reason = reason
        from ildtrial.edc.audit.context import because

        with because(reason):
            signature.save()
