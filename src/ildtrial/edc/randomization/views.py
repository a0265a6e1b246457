"""The allocation list page: generation from a seed, verification and balance (unblinded statistician)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from ildtrial.core.roles import Permission
from ildtrial.edc.errors import InputRefused
from ildtrial.edc.participants.forms import GenerateListForm
from ildtrial.edc.permissions import require_permission
from ildtrial.edc.randomization import services


@require_permission(Permission.GENERATE_RANDOMIZATION_LIST)
def allocation_list(request: HttpRequest) -> HttpResponse:
    form = GenerateListForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            stored = services.generate(request.user, form.cleaned_data["seed"])
        except InputRefused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, _("Allocation list generated (seed %(seed)s).") % {"seed": stored.seed})
            return redirect("randomization:list")
    current = services.active_list()
    report = services.balance(request.user) if current else None
    slots = current.slots.select_related("participant").order_by("stratum", "sequence") if current else []
    return render(request, "randomization/list.html", {"form": form, "current": current, "report": report,
                                                        "slots": slots})
