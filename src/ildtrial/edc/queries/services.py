"""Raising, answering, closing and re-opening queries; counts for the dashboards."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from ildtrial.core.roles import Permission
from ildtrial.edc.audit.context import because
from ildtrial.edc.crfs.models import FormInstance
from ildtrial.edc.errors import InputRefused, require, require_site
from ildtrial.edc.queries.models import Query, QueryMessage, QueryState

UNRESOLVED = (QueryState.OPEN, QueryState.ANSWERED)


def visible_to(user) -> QuerySet[Query]:  # noqa: ANN001
    if not user.can(Permission.VIEW_PARTICIPANTS):
        return Query.objects.none()
    return Query.objects.filter(participant__site__code__in=user.site_codes()).select_related(
        "participant", "form", "form__visit")


def _message(query: Query, user, action: str, text: str) -> QueryMessage:  # noqa: ANN001
    return QueryMessage.objects.create(query=query, author=user, action=action, text=text, written_at=timezone.now())


def raise_query(user, form: FormInstance, field_code: str, text: str) -> Query:  # noqa: ANN001
    require(user, Permission.RAISE_QUERY)
    require_site(user, form.participant.site)
    if not text.strip():
        raise InputRefused("text", "say what is doubtful about the value")
    from ildtrial.edc.study.protocol import current_protocol

    if field_code:
        try:
            current_protocol().form(form.form_code).field(field_code)
        except KeyError:
            raise InputRefused("field", f"{field_code!r} is not a field of form {form.form_code}") from None
    with transaction.atomic():
        query = Query.objects.create(participant=form.participant, form=form, field_code=field_code, origin="manual",
                                     text=text.strip(), raised_by=user, raised_at=timezone.now())
        _message(query, user, "raise", text.strip())
    return query


def raise_automatic(form: FormInstance, field_code: str, rule: str, text: str) -> Query | None:
    """An edit check's warning the user confirmed: a query for the monitor, once per form, field and rule."""
    if Query.objects.filter(form=form, field_code=field_code, rule=rule, state__in=UNRESOLVED).exists():
        return None
    query = Query.objects.create(participant=form.participant, form=form, field_code=field_code, rule=rule,
                                 origin="auto", text=text, raised_at=timezone.now())
    _message(query, None, "raise", text)
    return query


def answer(user, query: Query, text: str) -> Query:  # noqa: ANN001
    require(user, Permission.ANSWER_QUERY)
    require_site(user, query.participant.site)
    if query.state != QueryState.OPEN:
        raise InputRefused(None, f"the query is {query.state}; only an open query can be answered")
    if not text.strip():
        raise InputRefused("text", "the answer cannot be empty")
    with transaction.atomic(), because("query answered"):
        _message(query, user, "answer", text.strip())
        query.state = QueryState.ANSWERED
        query.save()
    return query


def close(user, query: Query, text: str = "") -> Query:  # noqa: ANN001
    require(user, Permission.CLOSE_QUERY)
    require_site(user, query.participant.site)
    if query.state == QueryState.CLOSED:
        raise InputRefused(None, "the query is already closed")
    with transaction.atomic(), because("query closed"):
        _message(query, user, "close", text.strip() or "closed")
        query.state = QueryState.CLOSED
        query.save()
    return query


def reopen(user, query: Query, text: str) -> Query:  # noqa: ANN001
    require(user, Permission.RAISE_QUERY)
    require_site(user, query.participant.site)
    if query.state == QueryState.OPEN:
        raise InputRefused(None, "the query is already open")
    if not text.strip():
        raise InputRefused("text", "say why the query is re-opened")
    with transaction.atomic(), because("query re-opened"):
        _message(query, user, "reopen", text.strip())
        query.state = QueryState.OPEN
        query.save()
    return query


def counts(queries: QuerySet[Query], by: str) -> list[dict[str, Any]]:
    """Unresolved and total queries grouped by ``participant``, ``visit`` or ``site``."""
    field = {"participant": "participant__screening_number", "visit": "form__visit__code",
             "site": "participant__site__code"}[by]
    return list(queries.values(field).annotate(
        open=Count("pk", filter=Q(state=QueryState.OPEN)),
        answered=Count("pk", filter=Q(state=QueryState.ANSWERED)),
        total=Count("pk")).order_by(field))
