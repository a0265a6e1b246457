"""Append-only, hash-chained audit entries and the base class that makes a model audited."""

from __future__ import annotations

from datetime import UTC
from typing import Any, ClassVar

from django.db import models, transaction
from django.utils import timezone

from ildtrial.core.audit_chain import GENESIS_HASH, entry_hash, json_safe
from ildtrial.edc.audit import context

MASK = "***"


class AuditEntry(models.Model):
    """One event in the trail. Never updated or deleted (PostgreSQL and SQLite triggers refuse it)."""

    sequence = models.BigIntegerField(unique=True)
    occurred_at = models.DateTimeField(db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    actor_username = models.CharField(max_length=150)
    actor_role = models.CharField(max_length=40, blank=True)
    action = models.CharField(max_length=40, db_index=True)
    model = models.CharField(max_length=100, blank=True)
    object_pk = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    protocol_version = models.CharField(max_length=20, blank=True)
    site_code = models.CharField(max_length=8, blank=True, db_index=True)
    source = models.CharField(max_length=20, blank=True)
    ip = models.CharField(max_length=45, blank=True)
    previous_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["sequence"]
        indexes = [models.Index(fields=["model", "object_pk"], name="audit_record_idx")]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.model}:{self.object_pk} by {self.actor_username}"

    def sealed(self) -> dict[str, Any]:
        """The entry as the mapping the chain hashes."""
        return {
            "sequence": self.sequence,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat(),
            "actor_id": self.actor_id,
            "actor_username": self.actor_username,
            "actor_role": self.actor_role,
            "action": self.action,
            "model": self.model,
            "object_pk": self.object_pk,
            "object_repr": self.object_repr,
            "changes": self.changes,
            "reason": self.reason,
            "protocol_version": self.protocol_version,
            "site_code": self.site_code,
            "source": self.source,
            "ip": self.ip,
            "previous_hash": self.previous_hash,
            "entry_hash": self.entry_hash,
        }


class AuditHead(models.Model):
    """The newest entry's sequence and hash: the lock appends take, and the check that no tail was cut."""

    sequence = models.BigIntegerField(default=0)
    entry_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"audit head #{self.sequence} {self.entry_hash[:12]}"


def append(
    *,
    action: str,
    model: str = "",
    object_pk: Any = "",
    object_repr: str = "",
    changes: dict[str, Any] | None = None,
    reason: str = "",
    site_code: str = "",
    ctx: context.AuditContext | None = None,
    actor_username: str | None = None,
) -> AuditEntry:
    """Append one entry to the chain, inside the caller's transaction.

    The head row is locked (SELECT ... FOR UPDATE on PostgreSQL; SQLite runs IMMEDIATE
    transactions, which serialise writers), so concurrent appends form one chain.
    """
    from ildtrial.edc.study.protocol import current_protocol

    ctx = ctx or context.current() or context.AuditContext(user=None)
    with transaction.atomic():
        head, _ = AuditHead.objects.select_for_update().get_or_create(pk=1)
        entry = AuditEntry(
            sequence=head.sequence + 1,
            occurred_at=timezone.now(),
            actor_id=ctx.actor_id,
            actor_username=actor_username or ctx.actor_username,
            actor_role=ctx.actor_role,
            action=action,
            model=model,
            object_pk=str(object_pk or ""),
            object_repr=str(object_repr)[:200],
            changes=json_safe(changes or {}),
            reason=reason or ctx.reason,
            protocol_version=current_protocol().version,
            site_code=site_code,
            source=ctx.source,
            ip=ctx.ip,
            previous_hash=head.entry_hash,
        )
        entry.entry_hash = entry_hash(entry.sealed(), entry.previous_hash)
        entry.save(force_insert=True)
        head.sequence = entry.sequence
        head.entry_hash = entry.entry_hash
        head.save(update_fields=["sequence", "entry_hash"])
    return entry


class AuditBypass(RuntimeError):
    """A bulk queryset write would change audited rows without audit entries."""


class AuditedQuerySet(models.QuerySet):
    """Refuses bulk writes that would skip the audit trail; save() and delete() on instances only."""

    def update(self, **kwargs: Any) -> int:
        raise AuditBypass(f"{self.model.__name__}: bulk update() would bypass the audit trail; save each record")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditBypass(f"{self.model.__name__}: bulk delete() would bypass the audit trail; delete each record")


class AuditedModel(models.Model):
    """Base for every model holding trial data: each create, update and delete is audited.

    Updates and deletes of a saved record need a reason (``context.because``) unless the
    model says otherwise; values of ``audit_masked_fields`` are recorded as changed but
    not shown; ``audit_exclude_fields`` are bookkeeping that is not trial data.
    """

    audit_exclude_fields: ClassVar[frozenset[str]] = frozenset()
    audit_masked_fields: ClassVar[frozenset[str]] = frozenset()
    audit_reason_required: ClassVar[bool] = True
    #: JSON fields holding a mapping of values: audited key by key
    audit_expand_fields: ClassVar[frozenset[str]] = frozenset()

    objects = AuditedQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        creating = self._state.adding or self.pk is None
        with transaction.atomic():
            before = None
            if not creating:
                stored = type(self)._base_manager.filter(pk=self.pk).first()
                before = stored._audit_snapshot() if stored is not None else None
                creating = stored is None
            if not creating:
                changes = self._audit_diff(before, self._audit_snapshot())
                if not changes:
                    super().save(*args, **kwargs)
                    return
                ctx = context.require()
                if self.audit_reason_required and not ctx.reason:
                    raise context.ReasonRequired(self._audit_label(), sorted(changes))
            else:
                ctx = context.require()
            super().save(*args, **kwargs)
            if creating:
                changes = self._audit_diff(None, self._audit_snapshot())
            append(
                action="create" if creating else "update",
                model=self._meta.label,
                object_pk=self.pk,
                object_repr=self._audit_label(),
                changes=changes,
                site_code=self.audit_site_code(),
                ctx=ctx,
            )

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        ctx = context.require()
        if not ctx.reason:
            raise context.ReasonRequired(self._audit_label(), ["(deletion)"])
        with transaction.atomic():
            before = self._audit_diff(None, self._audit_snapshot())
            changes = {name: [values[1], None] for name, values in before.items()}
            pk, label, site = self.pk, self._audit_label(), self.audit_site_code()
            result = super().delete(*args, **kwargs)
            append(
                action="delete",
                model=self._meta.label,
                object_pk=pk,
                object_repr=label,
                changes=changes,
                site_code=site,
                ctx=ctx,
            )
        return result

    def audit_site_code(self) -> str:
        """The site the record belongs to, for site-scoped audit views."""
        return ""

    def _audit_snapshot(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for f in self._meta.concrete_fields:
            if f.name in self.audit_exclude_fields:
                continue
            values[f.name] = json_safe(f.value_from_object(self))
        return values

    def _audit_diff(self, before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, list[Any]]:
        diff: dict[str, list[Any]] = {}
        for name, new in after.items():
            old = None if before is None else before.get(name)
            if before is not None and old == new:
                continue
            if name in self.audit_expand_fields and isinstance(new, dict | None) and isinstance(old, dict | None):
                # a JSON field of values (eCRF data): one line per key, as if each were a column
                old_map, new_map = old or {}, new or {}
                for key in sorted(set(old_map) | set(new_map)):
                    if old_map.get(key) != new_map.get(key):
                        if before is None and new_map.get(key) in (None, ""):
                            continue
                        diff[f"{name}.{key}"] = [old_map.get(key), new_map.get(key)]
                continue
            if before is None and new in (None, "") and name != self._meta.pk.name:
                continue
            if name in self.audit_masked_fields:
                diff[name] = [MASK if old not in (None, "") else None, MASK if new not in (None, "") else None]
            else:
                diff[name] = [old, new]
        return diff

    def _audit_label(self) -> str:
        return f"{self._meta.verbose_name} {self}"
