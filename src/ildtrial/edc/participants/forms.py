"""Forms of the enrolment pages. Services hold the rules; these only gather values."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class RegisterForm(forms.Form):
    site = forms.ChoiceField(label=_("Site"))
    screening_date = forms.DateField(label=_("Screening date"), widget=forms.DateInput(attrs={"type": "date"}))
    rescreen_of = forms.ChoiceField(label=_("Re-screening of (earlier attempt)"), required=False)

    def __init__(self, *args, sites=(), failures=(), **kwargs):  # noqa: ANN001, ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.fields["site"].choices = [(s.code, str(s)) for s in sites]
        self.fields["rescreen_of"].choices = [("", "—")] + [(str(p.pk), p.screening_number) for p in failures]


class ConsentForm(forms.Form):
    form_version = forms.CharField(label=_("Consent form version"), max_length=40)
    signed_at = forms.DateTimeField(label=_("Date and time signed"),
                                    widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))


class WithdrawForm(forms.Form):
    withdrawn_at = forms.DateTimeField(label=_("Date and time of withdrawal"),
                                       widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    reason = forms.CharField(label=_("Reason"), max_length=1000)


class PasswordSignForm(forms.Form):
    password = forms.CharField(label=_("Your password (to sign)"), widget=forms.PasswordInput)


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=1000)


class UnblindForm(forms.Form):
    reason = forms.CharField(label=_("Why must the treatment be known?"), max_length=1000,
                             widget=forms.Textarea(attrs={"rows": 3}))
    password = forms.CharField(label=_("Your password"), widget=forms.PasswordInput)


class VisitDateForm(forms.Form):
    code = forms.CharField(widget=forms.HiddenInput)
    actual_date = forms.DateField(label=_("Date done"), widget=forms.DateInput(attrs={"type": "date"}))
    reason = forms.CharField(label=_("Reason (when changing a recorded date)"), required=False, max_length=500)


class MissedForm(forms.Form):
    code = forms.CharField(widget=forms.HiddenInput)
    reason = forms.CharField(label=_("Why was the visit missed?"), max_length=500)


class UnscheduledForm(forms.Form):
    actual_date = forms.DateField(label=_("Date"), widget=forms.DateInput(attrs={"type": "date"}))
    reason = forms.CharField(label=_("Reason"), max_length=500)


class GenerateListForm(forms.Form):
    seed = forms.IntegerField(label=_("Seed (leave empty to draw a cryptographic seed)"), required=False,
                              min_value=0, max_value=2**63 - 1)
