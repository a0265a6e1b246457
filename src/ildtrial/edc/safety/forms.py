"""Forms of the safety pages. They only gather and redisplay values: every rule (types,
dictionary, dates, seriousness, clocks) is applied by the services, which name the field."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from ildtrial.edc.safety.models import (
    CRITERIA_FIELDS,
    ActionTaken,
    Expectedness,
    Outcome,
    Relatedness,
)

_BLANK = [("", "—")]


def _translated(choices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Model choices with their labels in the page's language (the catalogue holds the labels)."""
    return [(value, _(label)) for value, label in choices]


class AdverseEventForm(forms.Form):
    verbatim_term = forms.CharField(label=_("Adverse event (as reported)"), required=False, max_length=250)
    coded_term = forms.CharField(
        label=_("CTCAE term"), required=False, max_length=250,
        help_text=_("Choose from the list (type to search); a term of the imported site dictionary or its code "
                    "is accepted too."),
        widget=forms.TextInput(attrs={"list": "ctcae-terms", "autocomplete": "off"}))
    onset_date = forms.CharField(label=_("Onset date"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    onset_time = forms.CharField(label=_("Onset time (site time, if known)"), required=False,
                                 widget=forms.TimeInput(attrs={"type": "time"}))
    resolution_date = forms.CharField(label=_("End date (date of death if fatal)"), required=False,
                                      widget=forms.DateInput(attrs={"type": "date"}))
    grade = forms.ChoiceField(label=_("CTCAE grade (severity)"), required=False,
                              choices=_BLANK + [(str(g), str(g)) for g in range(1, 6)],
                              help_text=_("1 mild · 2 moderate · 3 severe · 4 life-threatening · 5 death. "
                                          "Severity is not seriousness."))
    serious = forms.ChoiceField(label=_("Serious (ICH E2A)?"), required=False,
                                choices=_BLANK + [("true", _("Yes")), ("false", _("No"))])
    relatedness_product = forms.ChoiceField(label=_("Relatedness to the investigational product"), required=False,
                                            choices=_BLANK + _translated(Relatedness.choices))
    relatedness_procedure = forms.ChoiceField(label=_("Relatedness to the infusion procedure"), required=False,
                                              choices=_BLANK + _translated(Relatedness.choices))
    expectedness = forms.ChoiceField(label=_("Expectedness (reference safety information)"), required=False,
                                     choices=[("", _("not assessed"))] + _translated(Expectedness.choices))
    action_taken = forms.ChoiceField(label=_("Action taken with the product"), required=False,
                                     choices=_translated(ActionTaken.choices))
    outcome = forms.ChoiceField(label=_("Outcome"), required=False, choices=_BLANK + _translated(Outcome.choices))
    awareness_at = forms.CharField(
        label=_("Site became aware (date and time, site time) — required if serious"), required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text=_("The reporting clocks start here, not at onset."))
    narrative = forms.CharField(label=_("SAE narrative (optional)"), required=False,
                                widget=forms.Textarea(attrs={"rows": 4}))

    def __init__(self, *args, **kwargs):  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        for name, _criterion, label in CRITERIA_FIELDS:
            self.fields[name] = forms.BooleanField(label=_(label), required=False)

    @property
    def criteria(self) -> list[forms.BoundField]:
        return [self[name] for name, _c, _l in CRITERIA_FIELDS]

    @property
    def main_fields(self) -> list[forms.BoundField]:
        names = ("verbatim_term", "coded_term", "onset_date", "onset_time", "resolution_date", "grade", "serious")
        return [self[n] for n in names]

    @property
    def assessment_fields(self) -> list[forms.BoundField]:
        names = ("relatedness_product", "relatedness_procedure", "expectedness", "action_taken", "outcome",
                 "awareness_at", "narrative")
        return [self[n] for n in names]


class AssessmentForm(forms.Form):
    relatedness_product = forms.ChoiceField(label=_("Relatedness to the investigational product"),
                                            choices=_translated(Relatedness.choices))
    expectedness = forms.ChoiceField(label=_("Expectedness (reference safety information)"), required=False,
                                     choices=[("", _("not applicable (not related)"))] + _translated(Expectedness.choices))
    reason = forms.CharField(label=_("Reason (when changing an assessment)"), required=False, max_length=1000)


class FollowUpForm(forms.Form):
    received_at = forms.CharField(label=_("Information received at (site time)"),
                                  widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    information = forms.CharField(label=_("Information"), widget=forms.Textarea(attrs={"rows": 3}))


class NarrativeForm(forms.Form):
    narrative = forms.CharField(label=_("Narrative"), required=False, widget=forms.Textarea(attrs={"rows": 6}))
    reason = forms.CharField(label=_("Reason (when changing)"), required=False, max_length=1000)


class DictionaryForm(forms.Form):
    name = forms.CharField(label=_("Name (e.g. CTCAE v5.0 full, MedDRA 27.0 LLT)"), required=False, max_length=200)
    file = forms.FileField(label=_("Dictionary file (.csv, UTF-8, columns term and code or meddra_code)"))
