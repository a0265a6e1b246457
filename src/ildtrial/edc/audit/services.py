"""Reading the trail: verification of the chain, a record's history, and exports."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from ildtrial.core.audit_chain import ChainReport, verify_chain
from ildtrial.edc.audit.models import AuditEntry, AuditHead

CSV_COLUMNS = ["sequence", "occurred_at", "actor_username", "actor_role", "action", "model", "object_pk",
               "object_repr", "field", "old_value", "new_value", "reason", "protocol_version", "site_code",
               "source", "ip", "entry_hash"]


def verify() -> ChainReport:
    """Check the whole chain in sequence order, streaming, and against the recorded head."""
    head = AuditHead.objects.filter(pk=1).values_list("sequence", "entry_hash").first() or (0, "")
    entries = (e.sealed() for e in AuditEntry.objects.order_by("sequence").iterator(chunk_size=2000))
    return verify_chain(entries, head=(int(head[0]), head[1]))


def history(model_label: str, object_pk: Any) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(model=model_label, object_pk=str(object_pk)).order_by("sequence"))


def neutralise(value: Any) -> str:
    """Text for a CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def rows(entries: Iterable[AuditEntry], masked_fields: frozenset[str] = frozenset()) -> Iterator[list[str]]:
    """One row per changed field (or one per entry without changes)."""
    for e in entries:
        base = [e.sequence, e.occurred_at.isoformat(), e.actor_username, e.actor_role, e.action, e.model,
                e.object_pk, e.object_repr]
        tail = [e.reason, e.protocol_version, e.site_code, e.source, e.ip, e.entry_hash]
        items = list(e.changes.items()) if isinstance(e.changes, dict) else []
        if not items:
            yield [neutralise(v) for v in [*base, "", "", "", *tail]]
        for field, values in items:
            if f"{e.model}.{field}" in masked_fields:
                values = ["(masked)", "(masked)"]
            old, new = (values + [None, None])[:2] if isinstance(values, list) else ("", values)
            yield [neutralise(v) for v in [*base, field, old, new, *tail]]


def to_csv(entries: Iterable[AuditEntry], masked_fields: frozenset[str] = frozenset()) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(rows(entries, masked_fields))
    return buffer.getvalue()
