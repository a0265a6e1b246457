"""Who is acting and why, carried through a request or a command without threading arguments.

Service functions and model saves read the current context; the web middleware sets the
actor for each request, commands set it explicitly, and a view that changes stored data
wraps the change in ``because(reason)``. A change to audited data with no actor is refused
rather than written anonymously.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class AuditContext:
    user: Any  # a User instance, or None for the system itself
    reason: str = ""
    source: str = "system"
    ip: str = ""

    @property
    def actor_id(self) -> int | None:
        return getattr(self.user, "pk", None) if self._authenticated else None

    @property
    def actor_username(self) -> str:
        return self.user.get_username() if self._authenticated else "system"

    @property
    def actor_role(self) -> str:
        return getattr(self.user, "role", "") if self._authenticated else "system"

    @property
    def _authenticated(self) -> bool:
        return self.user is not None and bool(getattr(self.user, "is_authenticated", False))


_current: ContextVar[AuditContext | None] = ContextVar("ildtrial_audit_context", default=None)


class AuditContextMissing(RuntimeError):
    """Audited data was about to change with nobody named as responsible."""


class ReasonRequired(ValueError):
    """A change to a record that was already saved needs a reason."""

    def __init__(self, record: str, fields: list[str]):
        self.record = record
        self.fields = fields
        super().__init__(f"reason: a reason is required to change {', '.join(fields)} of {record} after it was first saved")


def current() -> AuditContext | None:
    return _current.get()


def require() -> AuditContext:
    ctx = _current.get()
    if ctx is None:
        raise AuditContextMissing("no audit context: changes to trial data must name who makes them (use acting_as)")
    return ctx


@contextmanager
def acting_as(user: Any, *, reason: str = "", source: str = "cli", ip: str = "") -> Iterator[AuditContext]:
    """Act as ``user`` (None = the system) for the duration of the block."""
    token = _current.set(AuditContext(user=user, reason=reason, source=source, ip=ip))
    try:
        yield _current.get()  # type: ignore[misc]
    finally:
        _current.reset(token)


@contextmanager
def because(reason: str) -> Iterator[AuditContext]:
    """Give the reason for the changes made in the block, keeping the current actor."""
    ctx = require()
    token = _current.set(replace(ctx, reason=reason.strip()))
    try:
        yield _current.get()  # type: ignore[misc]
    finally:
        _current.reset(token)
