"""Sign-in, two-factor enrolment and verification, user administration, language."""

from __future__ import annotations

import base64
import io
from typing import Any

import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language
from django_otp import login as otp_login
from django_otp import match_token
from django_otp.plugins.otp_totp.models import TOTPDevice

from ildtrial.core.roles import Permission
from ildtrial.edc.accounts.forms import TokenForm, UserCreateForm, UserEditForm
from ildtrial.edc.accounts.models import User
from ildtrial.edc.accounts.services import AccountError, create_user
from ildtrial.edc.audit.context import because
from ildtrial.edc.audit.models import append
from ildtrial.edc.permissions import require_permission


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or "/"
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return "/"


@login_required
def otp_setup(request: HttpRequest) -> HttpResponse:
    """Enrol a TOTP authenticator: show the key as a QR code, confirm with one code."""
    user = request.user
    if TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        return redirect("accounts:otp_verify")
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["token"]):
            device.confirmed = True
            device.save()
            otp_login(request, device)
            append(action="2fa_enrolled", model="accounts.User", object_pk=user.pk, object_repr=user.username)
            messages.success(request, _("Your authenticator is set up."))
            return HttpResponseRedirect(_next_url(request))
        form.add_error("token", _("This code does not match. Check the time on your phone and try the next code."))
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage)
    buffer = io.BytesIO()
    image.save(buffer)
    secret = base64.b32encode(device.bin_key).decode()
    return render(request, "accounts/otp_setup.html", {
        "form": form, "qr_svg": buffer.getvalue().decode(), "secret": secret, "next": _next_url(request)})


@login_required
def otp_verify(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        return redirect("accounts:otp_setup")
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = match_token(user, form.cleaned_data["token"])
        if device is not None:
            otp_login(request, device)
            append(action="2fa_verified", model="accounts.User", object_pk=user.pk, object_repr=user.username)
            return HttpResponseRedirect(_next_url(request))
        append(action="2fa_failed", model="accounts.User", object_pk=user.pk, object_repr=user.username)
        form.add_error("token", _("This code is not valid."))
    return render(request, "accounts/otp_verify.html", {"form": form, "next": _next_url(request)})


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Switch language; a signed-in user keeps the choice in their profile."""
    language = request.POST.get("language", "en")
    if request.user.is_authenticated and language in ("en", "ru") and request.user.language != language:
        request.user.language = language
        request.user.save(update_fields=["language"])
    return django_set_language(request)


@require_permission(Permission.MANAGE_USERS)
def user_list(request: HttpRequest) -> HttpResponse:
    users = User.objects.prefetch_related("sites").order_by("username")
    enrolled = set(TOTPDevice.objects.filter(confirmed=True).values_list("user_id", flat=True))
    rows = [{"user": u, "two_factor": u.pk in enrolled} for u in users]
    return render(request, "accounts/user_list.html", {"rows": rows})


@require_permission(Permission.MANAGE_USERS)
def user_create(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with because(data["reason"]):
                user = create_user(
                    username=data["username"], role=data["role"], password=data["password"], email=data["email"],
                    first_name=data["first_name"], last_name=data["last_name"],
                    site_codes=[s.code for s in data["sites"]], language=data["language"])
        except AccountError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, _("User %(name)s created.") % {"name": user.username})
            return redirect("accounts:user_list")
    return render(request, "accounts/user_form.html", {"form": form, "creating": True})


@require_permission(Permission.MANAGE_USERS)
def user_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(User, pk=pk)
    initial: dict[str, Any] = {
        "first_name": user.first_name, "last_name": user.last_name, "email": user.email, "role": user.role,
        "sites": list(user.sites.all()), "language": user.language, "is_active": user.is_active}
    form = UserEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if user.pk == request.user.pk and (not data["is_active"] or data["role"] != user.role):
            form.add_error(None, _("You cannot deactivate yourself or change your own role."))
        else:
            with transaction.atomic(), because(data["reason"]):
                for name in ("first_name", "last_name", "email", "role", "language", "is_active"):
                    setattr(user, name, data[name])
                user.save()
                user.sites.set(data["sites"])
                if data["reset_two_factor"]:
                    TOTPDevice.objects.filter(user=user).delete()
                    append(action="2fa_reset", model="accounts.User", object_pk=user.pk, object_repr=user.username)
            messages.success(request, _("User %(name)s updated.") % {"name": user.username})
            return redirect("accounts:user_list")
    return render(request, "accounts/user_form.html", {"form": form, "creating": False, "edited": user})
