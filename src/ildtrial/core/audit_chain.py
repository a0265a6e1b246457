"""Tamper evidence for the audit trail: each entry is hashed together with its predecessor.

An audit trail that an administrator can edit proves nothing. Chaining every entry to the
previous one by SHA-256 means that changing, inserting or removing any entry changes every
hash after it, so ``verify`` can name the first entry that no longer fits. The canonical
form below is the contract: it must never change for stored entries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

GENESIS_HASH = "0" * 64

#: The fields of an entry that are sealed by its hash, in this order.
SEALED_FIELDS = (
    "sequence",
    "occurred_at",
    "actor_id",
    "actor_username",
    "actor_role",
    "action",
    "model",
    "object_pk",
    "object_repr",
    "changes",
    "reason",
    "protocol_version",
    "site_code",
    "source",
    "ip",
)


def json_safe(value: Any) -> Any:
    """Turn a field value into the JSON form kept in the trail (dates as ISO text, decimals as text)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [json_safe(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    return str(value)


def canonical(entry: Mapping[str, Any], previous_hash: str) -> bytes:
    """The exact bytes that are hashed for one entry."""
    body = {name: json_safe(entry.get(name)) for name in SEALED_FIELDS}
    body["previous_hash"] = previous_hash
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry: Mapping[str, Any], previous_hash: str) -> str:
    return hashlib.sha256(canonical(entry, previous_hash)).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    """Where and why the chain stops verifying."""

    sequence: int
    problem: str

    def __str__(self) -> str:
        return f"audit entry #{self.sequence}: {self.problem}"


@dataclass(frozen=True)
class ChainReport:
    checked: int
    last_sequence: int
    last_hash: str
    first_break: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.first_break is None


def verify_chain(
    entries: Iterable[Mapping[str, Any]], head: tuple[int, str] | None = None
) -> ChainReport:
    """Check entries (in sequence order) and, if given, that the last one is the recorded head.

    Each entry mapping carries the sealed fields plus ``previous_hash`` and ``entry_hash``.
    """
    expected_previous = GENESIS_HASH
    expected_sequence = 1
    checked = 0
    for e in entries:
        seq = int(e["sequence"])
        if seq != expected_sequence:
            problem = f"expected sequence #{expected_sequence} here (an entry is missing or inserted)"
            return ChainReport(checked, expected_sequence - 1, expected_previous, ChainBreak(seq, problem))
        if e["previous_hash"] != expected_previous:
            return ChainReport(
                checked, seq - 1, expected_previous, ChainBreak(seq, "does not link to the entry before it")
            )
        recomputed = entry_hash(e, e["previous_hash"])
        if recomputed != e["entry_hash"]:
            return ChainReport(
                checked, seq - 1, expected_previous, ChainBreak(seq, "its content was changed after it was written")
            )
        expected_previous = e["entry_hash"]
        expected_sequence += 1
        checked += 1
    last_sequence = expected_sequence - 1
    if head is not None and (head[0] != last_sequence or (last_sequence and head[1] != expected_previous)):
        problem = f"the trail ends at #{last_sequence} but the recorded head is #{head[0]} (entries were removed)"
        return ChainReport(checked, last_sequence, expected_previous, ChainBreak(last_sequence + 1, problem))
    return ChainReport(checked, last_sequence, expected_previous, None)
