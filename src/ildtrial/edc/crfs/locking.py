"""Study-wide database lock and unlock by the data manager, each recorded with its reason."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from ildtrial.core.roles import Permission
from ildtrial.edc.audit.context import because
from ildtrial.edc.crfs.models import StudyLock
from ildtrial.edc.errors import InputRefused, require


def is_locked() -> bool:
    return StudyLock.objects.filter(pk=1, locked=True).exists()


def ensure_unlocked() -> None:
    if is_locked():
        raise InputRefused(None, "the study database is locked; no data can be changed")


def set_lock(user, locked: bool, reason: str) -> StudyLock:  # noqa: ANN001
    require(user, Permission.LOCK_DATA)
    if not reason.strip():
        raise InputRefused("reason", "is required to lock or unlock the database")
    with transaction.atomic(), because(reason.strip()):
        lock = StudyLock.objects.select_for_update().filter(pk=1).first()
        if lock is None:
            lock = StudyLock.objects.create(pk=1, locked=locked, changed_by=user, changed_at=timezone.now())
            return lock
        if lock.locked == locked:
            raise InputRefused(None, f"the database is already {'locked' if locked else 'unlocked'}")
        lock.locked = locked
        lock.changed_by = user
        lock.changed_at = timezone.now()
        lock.save()
    return lock
