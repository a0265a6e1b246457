"""Form lifecycle after entry: source verification, investigator signature, form lock.

complete → source-verified (monitor; per field for key fields or per form, as the protocol
says) → signed (investigator; password re-entry, meaning shown; no unresolved queries) →
locked (data manager). Any later edit voids the signature and needs a reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from ildtrial.core.roles import Permission
from ildtrial.edc.audit.context import because
from ildtrial.edc.crfs.models import FormInstance, FormStatus, SourceVerification
from ildtrial.edc.errors import InputRefused, require, require_site
from ildtrial.edc.esign.models import Signature
from ildtrial.edc.esign.services import authenticate_signer, sign, void
from ildtrial.edc.study.protocol import current_protocol

SIGNATURE_MEANING = ("I have reviewed the data in this form and approve them as complete and accurate "
                     "(investigator approval, 21 CFR 11.50).")


def signatures(form: FormInstance) -> list[Signature]:
    return list(Signature.objects.filter(record_model=form._meta.label, record_pk=str(form.pk), voided_at__isnull=True))


def void_signatures(form: FormInstance, reason: str) -> None:
    for signature in signatures(form):
        void(signature, f"form changed after signing: {reason}")


def open_automatic_queries(form: FormInstance, warnings: Iterable[Any]) -> None:
    from ildtrial.edc.queries.services import raise_automatic

    for issue in warnings:
        raise_automatic(form, issue.field or "", issue.rule, f"{issue.message} (confirmed at entry)")


def required_verifications(form: FormInstance) -> list[str]:
    """What the protocol asks the monitor to verify: every key field, or the whole form ('')."""
    definition = current_protocol().form(form.form_code)
    if definition.sdv == "none":
        return []
    if definition.sdv == "key_fields":
        return list(definition.key_fields)
    return [""]


def outstanding_verifications(form: FormInstance) -> list[str]:
    done = {(v.field_code, v.form_revision) for v in form.verifications.all()}
    return [f for f in required_verifications(form) if (f, form.revision) not in done and ("", form.revision) not in done]


def verify(user, form: FormInstance, field_codes: Iterable[str] = ("",)) -> FormInstance:  # noqa: ANN001
    """Record source verification (whole form with '' or named fields) at the current revision."""
    require(user, Permission.VERIFY_SOURCE)
    require_site(user, form.participant.site)
    if form.status not in (FormStatus.COMPLETE, FormStatus.VERIFIED):
        raise InputRefused(None, f"{form} is {form.get_status_display().lower()}; only complete forms are verified")
    definition = current_protocol().form(form.form_code)
    if definition.sdv == "none":
        raise InputRefused(None, f"{definition.name.en} needs no source verification")
    codes = list(field_codes)
    for code in codes:
        if code:
            definition.field(code)
    with transaction.atomic():
        now = timezone.now()
        for code in codes:
            SourceVerification.objects.create(form=form, field_code=code, form_revision=form.revision,
                                              verified_by=user, verified_at=now)
        if not outstanding_verifications(form) and form.status == FormStatus.COMPLETE:
            with because("source data verified"):
                form.status = FormStatus.VERIFIED
                form.save()
    return form


def sign_forms(user, forms: list[FormInstance], password: str) -> list[Signature]:  # noqa: ANN001
    """Sign a series of forms in one continuous session with one password entry
    (21 CFR 11.200(a)(1)(i)); each form still gets its own signature record and checks."""
    if not forms:
        return []
    authenticate_signer(user, password, forms[0], forms[0].participant.site.code)
    return [sign_form(user, form, password, _authenticated=True) for form in forms]


def sign_form(user, form: FormInstance, password: str, *, _authenticated: bool = False) -> Signature:  # noqa: ANN001
    """Investigator signature (21 CFR 11.50/11.200): password re-entry, meaning stored."""
    from ildtrial.edc.queries.services import UNRESOLVED

    require(user, Permission.SIGN_FORMS)
    require_site(user, form.participant.site)
    ready = FormStatus.VERIFIED if required_verifications(form) else FormStatus.COMPLETE
    if form.status != ready and not (form.status == FormStatus.VERIFIED and ready == FormStatus.COMPLETE):
        raise InputRefused(None, f"{form} is {form.get_status_display().lower()}; it must be "
                                 f"{ready.label.lower()} before signing")
    unresolved = form.queries.filter(state__in=UNRESOLVED).count()
    if unresolved:
        raise InputRefused(None, f"{form} has {unresolved} open quer{'y' if unresolved == 1 else 'ies'}; "
                                 "resolve them before signing")
    if not _authenticated:
        authenticate_signer(user, password, form, form.participant.site.code)
    with transaction.atomic():
        signature = sign(user=user, password=password, meaning=SIGNATURE_MEANING, record=form,
                         content={"data": form.data, "revision": form.revision}, site_code=form.participant.site.code,
                         authenticated=_authenticated)
        with because("signed by the investigator"):
            form.status = FormStatus.SIGNED
            form.save()
    return signature


def lock_form(user, form: FormInstance, reason: str = "form locked") -> FormInstance:  # noqa: ANN001
    require(user, Permission.LOCK_DATA)
    if form.status != FormStatus.SIGNED:
        raise InputRefused(None, f"{form} must be signed before it is locked")
    with because(reason):
        form.status = FormStatus.LOCKED
        form.save()
    return form
