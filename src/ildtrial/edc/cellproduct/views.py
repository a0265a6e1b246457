"""Cell product pages: what to prepare, preparing a bag and its label, lots and release, the ledger,
the bedside check, traceability and recall (with CSV).

Pages that show arms, lots or donors need MANAGE_CELL_PRODUCT (or, for recall, a user who
may see the allocation); the bedside check, labels and the participant's bag list are for
site staff too and show only what is the same for every bag.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from ildtrial.core.roles import Permission
from ildtrial.edc.cellproduct import services
from ildtrial.edc.cellproduct.forms import (
    BedsideForm,
    CorrectionForm,
    DonorForm,
    LotForm,
    MovementForm,
    PasswordForm,
    PreparationForm,
    ReasonForm,
    ReleaseTestForm,
)
from ildtrial.edc.cellproduct.models import Donor, LedgerEntry, Lot, Preparation, ReleaseTestKind
from ildtrial.edc.errors import Denied, InputRefused
from ildtrial.edc.esign.services import SignatureRefused
from ildtrial.edc.participants.models import ParticipantStatus
from ildtrial.edc.participants.services import get_for, visible_to
from ildtrial.edc.permissions import require_permission
from ildtrial.edc.study.protocol import current_protocol


def _attempt(request: HttpRequest, form: Any, action: Callable[[], Any], success: str) -> Any:
    """Run a service call; a refusal goes on the form's field when it has one, else on the page."""
    try:
        result = action()
    except (InputRefused, SignatureRefused) as exc:
        field = getattr(exc, "field", None)
        if form is not None and field in getattr(form, "fields", {}):
            form.add_error(field, getattr(exc, "message", None) or str(exc).split(": ", 1)[-1])
        else:
            messages.error(request, str(exc))
        return None
    messages.success(request, success)
    return result if result is not None else True


def _csv(body: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --------------------------------------------------------------------------- preparation
@require_permission(Permission.MANAGE_CELL_PRODUCT)
def to_prepare(request: HttpRequest) -> HttpResponse:
    """The lab's list of coming infusions with the product for each (the one page showing the arm)."""
    try:
        days = max(0, min(int(request.GET.get("days", 7)), 366))
    except ValueError:
        days = 7
    rows = services.to_prepare(request.user, days=days)
    low, high = services.dose_range()
    return render(request, "cellproduct/to_prepare.html", {
        "rows": rows, "days": days, "low": low, "high": high,
        "minimum_viability": current_protocol().regimen.minimum_post_thaw_viability_percent})


@require_permission(Permission.MANAGE_CELL_PRODUCT)
def prepare(request: HttpRequest, pk: int, visit_code: str) -> HttpResponse:
    participant = get_for(request.user, pk)
    if participant.status != ParticipantStatus.RANDOMIZED or visit_code not in {
            v.code for v in current_protocol().infusion_visits}:
        raise Http404("no infusion to prepare")
    arm = participant.allocation.arm
    cells = services.is_cells(arm)
    lots = Lot.objects.filter(pk__in=[lot.pk for lot in services.usable_lots()]).order_by("expires_on", "number")
    form = PreparationForm(request.POST or None, cells=cells, lots=lots)
    if request.method == "POST" and form.is_valid():
        values = {k: v for k, v in form.cleaned_data.items() if v not in (None, "")}
        bag = _attempt(request, form, lambda: services.record_preparation(
            request.user, participant, visit_code, **values), _("Bag prepared."))
        if bag:
            return redirect("cellproduct:label", bag.bag_id)
    low, high = services.dose_range()
    return render(request, "cellproduct/prepare.html", {
        "participant": participant, "visit_code": visit_code, "arm": arm, "cells": cells,
        "product": services.product_text(arm), "form": form, "low": low, "high": high,
        "shelf_life_hours": f"{services.BAG_SHELF_LIFE.total_seconds() / 3600:g}",
        "minimum_viability": current_protocol().regimen.minimum_post_thaw_viability_percent})


@require_permission(Permission.VIEW_PARTICIPANTS)
def label(request: HttpRequest, bag_id: str) -> HttpResponse:
    """The printable bag label; site staff may open it too, since it shows nothing of the product."""
    bag = (Preparation.objects.select_related("participant__site")
           .filter(bag_id=services.normalise_bag_id(bag_id), participant__in=visible_to(request.user)).first())
    if bag is None:
        raise Http404("no such bag")
    return render(request, "cellproduct/label.html", {"bag": bag, "lines": services.label_lines(bag)})


# --------------------------------------------------------------------------- lots
@require_permission(Permission.MANAGE_CELL_PRODUCT)
def lots(request: HttpRequest) -> HttpResponse:
    donors = Donor.objects.order_by("code")
    donor_form = DonorForm(request.POST if request.POST.get("action") == "donor" else None)
    lot_form = LotForm(request.POST if request.POST.get("action") == "lot" else None, donors=donors)
    if request.method == "POST":
        if request.POST.get("action") == "donor" and donor_form.is_valid():
            if _attempt(request, donor_form, lambda: services.register_donor(
                    request.user, donor_form.cleaned_data["code"]), _("Donor registered.")):
                return redirect("cellproduct:lots")
        elif request.POST.get("action") == "lot" and lot_form.is_valid():
            data = lot_form.cleaned_data
            lot = _attempt(request, lot_form, lambda: services.register_lot(
                request.user, data["donor"], number=data["number"], manufactured_on=data["manufactured_on"],
                expires_on=data["expires_on"], cells_per_vial_millions=data["cells_per_vial_millions"],
                vials=data["vials"], location=data["location"]), _("Lot registered and received."))
            if lot:
                return redirect("cellproduct:lot", lot.pk)
    all_lots = list(Lot.objects.select_related("donor").prefetch_related("release_tests").order_by("number"))
    stock = services.stock(all_lots)
    rows = [{"lot": lot, "problems": services.usability_problems(lot),
             "vials": sum(n for (lot_id, _loc), n in stock.items() if lot_id == lot.pk)} for lot in all_lots]
    return render(request, "cellproduct/lots.html", {"rows": rows, "donors": donors, "donor_form": donor_form,
                                                     "lot_form": lot_form})


@require_permission(Permission.MANAGE_CELL_PRODUCT)
def lot(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_object_or_404(Lot.objects.select_related("donor", "released_by", "release_signature"), pk=pk)
    action = request.POST.get("action")
    test_form = ReleaseTestForm(request.POST if action == "test" else None)
    release_form = PasswordForm(request.POST if action == "release" else None)
    quarantine_form = ReasonForm(request.POST if action == "quarantine" else None)
    if request.method == "POST":
        done = None
        if action == "test" and test_form.is_valid():
            d = test_form.cleaned_data
            done = _attempt(request, test_form, lambda: services.record_release_test(
                request.user, item, d["kind"], passed=d["passed"], value=d["value"], unit=d["unit"],
                tested_on=d["tested_on"], reason=d["reason"]), _("Release test recorded."))
        elif action == "release" and release_form.is_valid():
            done = _attempt(request, release_form, lambda: services.release_lot(
                request.user, item, release_form.cleaned_data["password"]), _("Lot released."))
        elif action == "quarantine" and quarantine_form.is_valid():
            done = _attempt(request, quarantine_form, lambda: services.quarantine_lot(
                request.user, item, quarantine_form.cleaned_data["reason"]), _("Lot quarantined."))
        if done:
            return redirect("cellproduct:lot", pk)
    recorded = {t.kind: t for t in item.release_tests.all()}
    tests = [{"kind": kind, "test": recorded.get(kind.value)} for kind in ReleaseTestKind]
    return render(request, "cellproduct/lot.html", {
        "lot": item, "tests": tests, "problems": services.usability_problems(item),
        "stock": services.stock_of(item), "ledger": item.ledger.select_related("recorded_by", "bag"),
        "test_form": test_form, "release_form": release_form, "quarantine_form": quarantine_form,
        "meaning": services.RELEASE_MEANING.format(number=item.number)})


# --------------------------------------------------------------------------- ledger
@require_permission(Permission.MANAGE_CELL_PRODUCT)
def ledger(request: HttpRequest) -> HttpResponse:
    form = MovementForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        bag = None
        if d["bag_id"]:
            bag = Preparation.objects.filter(bag_id=services.normalise_bag_id(d["bag_id"])).first()
            if bag is None:
                form.add_error("bag_id", _("no such bag"))
        if not form.errors and _attempt(request, form, lambda: services.record_movement(
                request.user, d["kind"], location=d["location"], occurred_at=d["occurred_at"], lot=d["lot"],
                bag=bag, quantity=d["quantity"], from_location=d["from_location"], reason=d["reason"]),
                _("Movement recorded.")):
            return redirect("cellproduct:ledger")
    entries = (LedgerEntry.objects.select_related("lot", "bag", "recorded_by", "corrects")
               .order_by("-occurred_at", "-pk")[:300])
    stock = services.stock()
    numbers = dict(Lot.objects.values_list("pk", "number"))
    rows = sorted((numbers[lot_id], location, n) for (lot_id, location), n in stock.items())
    return render(request, "cellproduct/ledger.html", {"entries": entries, "stock": rows, "form": form,
                                                       "correction_form": CorrectionForm()})


@require_POST
@require_permission(Permission.MANAGE_CELL_PRODUCT)
def correct(request: HttpRequest) -> HttpResponse:
    form = CorrectionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect("cellproduct:ledger")
    d = form.cleaned_data
    entry = get_object_or_404(LedgerEntry, pk=d["entry"])
    _attempt(request, None, lambda: services.correct(request.user, entry, delta=d["delta"], reason=d["reason"],
                                                     location=d["location"]), _("Correction recorded."))
    return redirect("cellproduct:ledger")


# --------------------------------------------------------------------------- bedside
@require_permission(Permission.ENTER_DATA)
def bedside(request: HttpRequest) -> HttpResponse:
    """Scan or type the bag id for a participant and visit: OK, or the reason not to infuse."""
    participants = list(visible_to(request.user).filter(status=ParticipantStatus.RANDOMIZED)
                        .order_by("randomization_number"))
    form = BedsideForm(request.POST or None, participants=participants, visits=current_protocol().infusion_visits)
    result: dict[str, Any] | None = None
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        participant = get_for(request.user, int(d["participant"]))
        try:
            bag = services.check_bag(request.user, participant, d["visit_code"], d["bag_id"], d["at"])
        except InputRefused as exc:
            result = {"ok": False, "message": exc.message, "participant": participant, "visit_code": d["visit_code"]}
        else:
            result = {"ok": True, "bag": bag, "participant": participant, "visit_code": d["visit_code"],
                      "expires": timezone.localtime(bag.expires_at)}
    return render(request, "cellproduct/bedside.html", {"form": form, "result": result})


# --------------------------------------------------------------------------- traceability
def _may_recall(request: HttpRequest) -> None:
    """Checked before looking the lot or donor up, so a blinded user cannot even probe which exist."""
    if not services.may_recall(request.user):
        raise Denied(_("lots and donors are shown to the cell lab and unblinded roles only"))


@require_permission(Permission.VIEW_PARTICIPANTS)
def trace(request: HttpRequest, pk: int) -> HttpResponse:
    participant = get_for(request.user, pk)
    rows, unblinded = services.participant_trace(request.user, participant)
    return render(request, "cellproduct/trace.html", {"participant": participant, "rows": rows,
                                                      "unblinded": unblinded})


@require_permission(Permission.VIEW_PARTICIPANTS)
def trace_csv(request: HttpRequest, pk: int) -> HttpResponse:
    participant = get_for(request.user, pk)
    rows, unblinded = services.participant_trace(request.user, participant)
    return _csv(services.to_csv(rows, unblinded), f"bags-{participant.label}.csv")


@require_permission(Permission.VIEW_PARTICIPANTS)
def lot_recall(request: HttpRequest, pk: int) -> HttpResponse:
    _may_recall(request)
    item = get_object_or_404(Lot.objects.select_related("donor"), pk=pk)
    rows = services.recall(request.user, lot=item)
    return render(request, "cellproduct/recall.html", {"subject": item, "lot": item, "rows": rows,
                                                       "csv": "cellproduct:lot_recall_csv"})


@require_permission(Permission.VIEW_PARTICIPANTS)
def lot_recall_csv(request: HttpRequest, pk: int) -> HttpResponse:
    _may_recall(request)
    item = get_object_or_404(Lot, pk=pk)
    return _csv(services.to_csv(services.recall(request.user, lot=item), True), f"recall-lot-{item.pk}.csv")


@require_permission(Permission.VIEW_PARTICIPANTS)
def donor_recall(request: HttpRequest, pk: int) -> HttpResponse:
    _may_recall(request)
    donor = get_object_or_404(Donor, pk=pk)
    rows = services.recall(request.user, donor=donor)
    return render(request, "cellproduct/recall.html", {"subject": donor, "donor": donor, "rows": rows,
                                                       "csv": "cellproduct:donor_recall_csv"})


@require_permission(Permission.VIEW_PARTICIPANTS)
def donor_recall_csv(request: HttpRequest, pk: int) -> HttpResponse:
    _may_recall(request)
    donor = get_object_or_404(Donor, pk=pk)
    return _csv(services.to_csv(services.recall(request.user, donor=donor), True), f"recall-donor-{donor.pk}.csv")
