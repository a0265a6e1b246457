"""Account forms. Errors name the field and the rule; the reason is asked for every change."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import password_validation
from django.utils.translation import gettext_lazy as _

from ildtrial.core.roles import Role
from ildtrial.edc.accounts.models import User
from ildtrial.edc.study.models import Site


class ReasonField(forms.CharField):
    def __init__(self, **kwargs: Any):
        kwargs.setdefault("label", _("Reason for the change"))
        kwargs.setdefault("max_length", 500)
        kwargs.setdefault("widget", forms.TextInput(attrs={"autocomplete": "off"}))
        super().__init__(**kwargs)


class UserCreateForm(forms.Form):
    username = forms.CharField(label=_("Username"), max_length=150)
    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    email = forms.EmailField(label=_("Email"), required=False)
    role = forms.ChoiceField(label=_("Role"), choices=[(r.value, _(r.label)) for r in Role])
    sites = forms.ModelMultipleChoiceField(label=_("Sites"), queryset=Site.objects.all(), required=False)
    language = forms.ChoiceField(label=_("Language"), choices=[("en", "English"), ("ru", "Русский")])
    password = forms.CharField(label=_("Initial password"), widget=forms.PasswordInput(render_value=False),
                               help_text=password_validation.password_validators_help_text_html())
    reason = ReasonField(required=True)

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(_("A user with this username already exists."))
        return username


class UserEditForm(forms.Form):
    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    email = forms.EmailField(label=_("Email"), required=False)
    role = forms.ChoiceField(label=_("Role"), choices=[(r.value, _(r.label)) for r in Role])
    sites = forms.ModelMultipleChoiceField(label=_("Sites"), queryset=Site.objects.all(), required=False)
    language = forms.ChoiceField(label=_("Language"), choices=[("en", "English"), ("ru", "Русский")])
    is_active = forms.BooleanField(label=_("Active"), required=False)
    reset_two_factor = forms.BooleanField(label=_("Remove the user's authenticator (they enrol again)"),
                                          required=False)
    reason = ReasonField(required=True)


class TokenForm(forms.Form):
    token = forms.CharField(label=_("6-digit code from your authenticator app"), min_length=6, max_length=8,
                            widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                                          "autofocus": True}))

    def clean_token(self) -> str:
        token = self.cleaned_data["token"].strip().replace(" ", "")
        if not token.isdigit():
            raise forms.ValidationError(_("The code has digits only."))
        return token
