"""Checks while typing: the protocol's field rules and the derived values, before anything is saved.

The eCRF page posts the whole form here each time a field is left. The answer holds the
messages of that field (and of every other field already filled, so a message caused by
a cross-field check, e.g. FEV1 above FVC, appears and clears where it belongs) and, for
spirometry, DLCO and the walk test, the derived values (% predicted, ratio) computed as
they will be stored. Nothing is written; saving goes through ``services.save_form`` as
always, which applies these checks again with the ones that need the database.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from django.utils import formats, timezone
from django.utils.translation import get_language, gettext
from django.views.decorators.http import require_POST

from ildtrial.core import crf
from ildtrial.core.roles import Permission
from ildtrial.edc.crfs.services import definition_at, derived_values
from ildtrial.edc.dashboards import DERIVED_LABELS, UNIT_LABELS
from ildtrial.edc.errors import InputRefused
from ildtrial.edc.participants.services import get_for
from ildtrial.edc.permissions import require_permission

#: forms whose derived values are shown as the values are typed
LIVE_DERIVED = ("SPIRO", "DLCO", "SIXMWT")
#: the values worth seeing while typing (the rest are shown once saved)
_SHOWN = ("_percent_predicted", "fev1_fvc_ratio", "spo2_drop", "dlco_hb_corrected")


def _shown(key: str) -> bool:
    return key.endswith(_SHOWN[0]) or key in _SHOWN[1:]


def _number(value: Any, key: str) -> str:
    decimals = 2 if key == "fev1_fvc_ratio" else 1
    return formats.number_format(round(float(value), decimals), decimal_pos=decimals, use_l10n=True)


def _derived(participant: Any, definition: Any, cleaned: dict[str, Any]) -> list[dict[str, Any]]:
    if definition.code not in LIVE_DERIVED:
        return []
    rows = []
    for key, d in derived_values(participant, definition, cleaned).items():
        value = d.get("value")
        if not _shown(key) or value is None or isinstance(value, bool):
            continue
        label = DERIVED_LABELS.get(key)
        unit = d.get("unit") if d.get("unit") not in (None, "ratio") else ""
        rows.append({"key": key, "label": gettext(label) if label else key, "value": _number(value, key),
                     "unit": gettext(UNIT_LABELS[unit]) if unit in UNIT_LABELS else unit})
    return rows


@require_POST
@require_permission(Permission.ENTER_DATA)
def check(request: HttpRequest, pk: int, visit_code: str, form_code: str) -> JsonResponse:
    """``{"field": …, "fields": {code: {"errors": [...], "warnings": [...]}}, "derived": [...]}``."""
    participant = get_for(request.user, pk)
    visit = participant.visits.filter(code=visit_code).first()
    if visit is None:
        raise Http404("this visit has not been recorded")
    try:
        definition = definition_at(visit, form_code)
    except InputRefused as exc:
        raise Http404(str(exc)) from None
    language = get_language() or "en"
    russian = language.startswith("ru")
    raw = {f.code: request.POST.get(f.code, "") for f in definition.fields}
    left = request.POST.get("field", "")
    validation = crf.validate_form(definition, raw, today=timezone.localdate(), language=language)
    # the field just left, and every field holding a value: their messages are current
    reported = {f.code for f in definition.fields if f.code == left or str(raw[f.code]).strip()}
    fields: dict[str, dict[str, list[str]]] = {code: {"errors": [], "warnings": []} for code in reported}
    for issue in validation.issues:
        if issue.field not in fields or issue.rule == "required":
            continue  # an empty field is reported when the form is saved, not while moving through it
        text = issue.message_ru if russian else issue.message
        fields[issue.field]["errors" if issue.severity == "error" else "warnings"].append(text)
    derived = [] if validation.errors else _derived(participant, definition, validation.cleaned)
    return JsonResponse({"field": left, "fields": fields, "derived": derived})
