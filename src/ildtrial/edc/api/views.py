"""The token page: a signed-in user lists, creates and revokes their own API tokens.

Administrators issue tokens for others with ``ildtrial api-token create --user U``. The
page is reached only after sign-in (and, for roles that need it, the second factor, which
the two-factor middleware enforces before any page), so a token is never issued on a
weaker login than the pages require.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from ildtrial.edc.api import tokens
from ildtrial.edc.audit.context import because
from ildtrial.edc.errors import InputRefused


@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    new_secret = None
    if request.method == "POST":
        try:
            with because("API token created by its user"):
                _token, new_secret = tokens.issue(request.user, request.user, request.POST.get("name", ""))
        except InputRefused as exc:
            messages.error(request, str(exc))
    return render(request, "api/tokens.html", {"tokens": tokens.tokens_of(request.user), "new_secret": new_secret})


@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    token = tokens.tokens_of(request.user).filter(pk=pk).first()
    if token is None:
        raise Http404("no such token")
    tokens.revoke(request.user, token, request.POST.get("reason", "") or "revoked by its user")
    messages.success(request, _("The token was revoked."))
    return redirect("api_tokens")
