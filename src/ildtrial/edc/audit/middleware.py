"""Every web request acts as its user in the audit context, with the client address."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from ildtrial.edc.audit.context import acting_as


def client_ip(request: HttpRequest) -> str:
    """The client address as the server saw it (a proxy's X-Forwarded-For is not trusted)."""
    return request.META.get("REMOTE_ADDR", "")[:45]


class AuditRequestMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with acting_as(getattr(request, "user", None), source="web", ip=client_ip(request)):
            return self.get_response(request)
