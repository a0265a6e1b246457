"""Forms of the cell product pages. They only gather values; ``services`` holds every rule."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ildtrial.edc.cellproduct.models import LedgerKind, Lot, ReleaseTestKind
from ildtrial.edc.cellproduct.services import MANUAL_KINDS

_DATE = {"widget": forms.DateInput(attrs={"type": "date"})}


def _moment(label: Any, required: bool = True) -> forms.DateTimeField:
    return forms.DateTimeField(label=label, required=required,
                               widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"))


def _now() -> str:
    return timezone.localtime().strftime("%Y-%m-%dT%H:%M")


class DonorForm(forms.Form):
    code = forms.CharField(label=_("Pseudonymous donor code"), max_length=20)


class LotForm(forms.Form):
    donor = forms.ModelChoiceField(label=_("Donor"), queryset=None)
    number = forms.CharField(label=_("Lot number"), max_length=40)
    manufactured_on = forms.DateField(label=_("Manufactured on"), **_DATE)
    expires_on = forms.DateField(label=_("Expires on"), **_DATE)
    cells_per_vial_millions = forms.DecimalField(label=_("Cells per vial (×10^6)"), max_digits=7, decimal_places=1)
    vials = forms.IntegerField(label=_("Vials"), min_value=1)
    location = forms.CharField(label=_("Received at (location)"), max_length=120)

    def __init__(self, *args: Any, donors: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["donor"].queryset = donors


class ReleaseTestForm(forms.Form):
    kind = forms.ChoiceField(label=_("Test"), choices=[(v, _(label)) for v, label in ReleaseTestKind.choices])
    passed = forms.TypedChoiceField(label=_("Result"), choices=[("pass", _("pass")), ("fail", _("fail"))],
                                    coerce=lambda v: v == "pass")
    value = forms.CharField(label=_("Value"), max_length=40)
    unit = forms.CharField(label=_("Unit"), max_length=20, required=False)
    tested_on = forms.DateField(label=_("Tested on"), **_DATE)
    reason = forms.CharField(label=_("Reason (when correcting a recorded test)"), max_length=500, required=False)


class PasswordForm(forms.Form):
    password = forms.CharField(label=_("Your password (to sign the release)"), widget=forms.PasswordInput)


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=1000)


class MovementForm(forms.Form):
    kind = forms.ChoiceField(label=_("Movement"), choices=[(k.value, _(k.label)) for k in LedgerKind if k in MANUAL_KINDS])
    lot = forms.ModelChoiceField(label=_("Lot (vials)"), queryset=Lot.objects.none(), required=False)
    bag_id = forms.CharField(label=_("or bag identifier (bag returned or destroyed)"), max_length=12, required=False)
    quantity = forms.IntegerField(label=_("Vials"), min_value=1, required=False)
    location = forms.CharField(label=_("Location"), max_length=120)
    from_location = forms.CharField(label=_("From location (moves)"), max_length=120, required=False)
    occurred_at = _moment(_("When"))
    reason = forms.CharField(label=_("Reason / note"), max_length=1000, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["lot"].queryset = Lot.objects.order_by("number")
        self.fields["occurred_at"].initial = _now()


class CorrectionForm(forms.Form):
    entry = forms.IntegerField(label=_("Ledger entry no."), min_value=1)
    delta = forms.IntegerField(label=_("Change in vials (negative removes)"))
    location = forms.CharField(label=_("Location (default: the entry's)"), max_length=120, required=False)
    reason = forms.CharField(label=_("Reason"), max_length=1000)


class PreparationForm(forms.Form):
    """Cell fields or the saline fields, never both: the lab sees only what this bag needs."""

    CELL_FIELDS = ("lot", "vials_thawed", "thawed_at", "post_thaw_viability_percent", "cell_count_millions")

    location = forms.CharField(label=_("Prepared at (location; vials are thawed from here)"), max_length=120)
    lot = forms.ModelChoiceField(label=_("Lot"), queryset=Lot.objects.none(), required=False)
    vials_thawed = forms.IntegerField(label=_("Vials thawed (empty: enough for one dose)"), min_value=1,
                                      required=False)
    thawed_at = _moment(_("Thawed at"), required=False)
    post_thaw_viability_percent = forms.DecimalField(label=_("Post-thaw viability (%)"), max_digits=4,
                                                     decimal_places=1, required=False)
    cell_count_millions = forms.DecimalField(label=_("Cell count (×10^6)"), max_digits=7, decimal_places=1,
                                             required=False)
    saline_batch = forms.CharField(label=_("Saline lot / batch"), max_length=60, required=False)
    volume_ml = forms.DecimalField(label=_("Volume (mL)"), max_digits=6, decimal_places=1, required=False)
    prepared_at = _moment(_("Prepared at"))
    expires_at = _moment(_("Expires at (empty: preparation + shelf life)"), required=False)
    dispensed_to = forms.CharField(label=_("Dispensed to (default: the site's infusion unit)"), max_length=120,
                                   required=False)

    def __init__(self, *args: Any, cells: bool, lots: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if cells:
            del self.fields["saline_batch"]
            self.fields["lot"].queryset = lots if lots is not None else Lot.objects.none()
        else:
            for name in self.CELL_FIELDS:
                del self.fields[name]
        self.fields["prepared_at"].initial = _now()


class BedsideForm(forms.Form):
    participant = forms.ChoiceField(label=_("Participant"))
    visit_code = forms.ChoiceField(label=_("Infusion visit"))
    bag_id = forms.CharField(label=_("Bag identifier (scan or type)"), max_length=40)
    at = _moment(_("Infusion time"))

    def __init__(self, *args: Any, participants: Any = (), visits: Any = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["participant"].choices = [(str(p.pk), p.label) for p in participants]
        self.fields["visit_code"].choices = [(v.code, v.code) for v in visits]
        self.fields["at"].initial = _now()
