"""Per-user language, and the two-factor gate for administrators and unblinded roles."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import translation

#: Paths a signed-in user who still owes a second factor may reach.
_TWO_FACTOR_OPEN = ("accounts:otp_verify", "accounts:otp_setup", "accounts:logout", "set_language")


class UserLanguageMiddleware:
    """Use the language the user chose in their profile (the session/browser one otherwise)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and getattr(user, "language", None):
            translation.activate(user.language)
            request.LANGUAGE_CODE = user.language
        return self.get_response(request)


class TwoFactorRequiredMiddleware:
    """Administrators and unblinded roles reach nothing but the 2FA pages until verified."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.needs_two_factor() and not user.is_verified():
            allowed = {reverse(name) for name in _TWO_FACTOR_OPEN}
            if request.path not in allowed and not request.path.startswith("/static/"):
                from django_otp import devices_for_user

                has_device = any(True for _ in devices_for_user(user, confirmed=True))
                target = "accounts:otp_verify" if has_device else "accounts:otp_setup"
                return redirect(f"{reverse(target)}?next={request.path}")
        return self.get_response(request)
