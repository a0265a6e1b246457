"""Cell product rules: lot release, the stock ledger, bag preparation, the bedside check, traceability.

Who may know what is the thread through this module. The cell lab is unblinded: it sees
the arm, lots and donors, and prepares either cells or saline. Everybody at the bedside is
blinded in a double-blind trial, so everything they can see of a bag — its identifier,
its label, the bedside check's answers, their traceability page — is built from fields
that are the same for cells and saline (bag id, participant, visit, expiry, state).

Integration with the infusion form (INF, field ``bag_id``): ``check_bag`` is the check to
run before saving the form, ``record_administration`` the ledger entry to add after it.
"""

from __future__ import annotations

import csv
import io
import math
import re
import secrets
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.db.models import QuerySet, Sum
from django.utils import timezone

from ildtrial.core.roles import Permission
from ildtrial.core.schedule import PlannedVisit, day0_window
from ildtrial.edc.audit.context import because
from ildtrial.edc.audit.services import neutralise
from ildtrial.edc.cellproduct.models import (
    Donor,
    LedgerEntry,
    LedgerKind,
    Lot,
    Preparation,
    ReleaseTest,
    ReleaseTestKind,
)
from ildtrial.edc.errors import Denied, InputRefused, require, require_site
from ildtrial.edc.esign.models import Signature
from ildtrial.edc.esign.services import authenticate_signer, sign
from ildtrial.edc.participants.models import Participant, ParticipantStatus
from ildtrial.edc.study.protocol import current_protocol

DOSE_TOLERANCE = Decimal("0.10")
"""Allowed relative difference between the counted cells in a bag and the protocol dose.

The protocol gives one dose (200 × 10^6 cells); a post-thaw count is never exact, and
the lab needs a stated acceptance range rather than a judgement call at the bench. ±10 %
(180–220 × 10^6) is the range the lab validates its counting against; a bag outside it
is refused so an under- or over-dose never reaches a participant unnoticed.
"""

BAG_SHELF_LIFE = timedelta(hours=4)
"""How long a prepared bag may wait before infusion (default expiry = preparation + 4 h).

Thawed MSC lose viability within hours at room temperature; the bedside check refuses a
bag past its expiry. Saline bags get the same shelf life on purpose: a different expiry
rule would let a blinded nurse tell the arms apart from the label.
"""

BAG_ID_PREFIX = "B-"
BAG_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648 base32: no 0/1/8/9 to confuse with O/I/B/g
BAG_ID_LENGTH = 8

POSITIVE_MARKER_MIN_PERCENT = Decimal("95")
"""ISCT minimal criteria for MSC (Dominici 2006): CD73, CD90 and CD105 on at least 95 % of cells."""
NEGATIVE_MARKER_MAX_PERCENT = Decimal("2")
"""ISCT minimal criteria: CD34 and CD45 on at most 2 % of cells."""

POSITIVE_MARKERS = frozenset({ReleaseTestKind.CD73, ReleaseTestKind.CD90, ReleaseTestKind.CD105})
NEGATIVE_MARKERS = frozenset({ReleaseTestKind.CD34, ReleaseTestKind.CD45})

#: Ledger kinds a person records directly; prepared/dispensed/administered come from the
#: preparation and the bedside, corrections from ``correct``.
MANUAL_KINDS = frozenset({LedgerKind.RECEIVED, LedgerKind.STORED, LedgerKind.THAWED, LedgerKind.DESTROYED,
                          LedgerKind.RETURNED})

_DONOR_CODE = re.compile(r"^(?=.*\d)[A-Z0-9][A-Z0-9-]{2,19}$")


# --------------------------------------------------------------------------- helpers
def _aware(value: datetime) -> datetime:
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def _text(value: str | None) -> str:
    return " ".join((value or "").split())


def _decimal(name: str, value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise InputRefused(name, f"{value!r} is not a number") from None
    if not number.is_finite():
        raise InputRefused(name, f"{value!r} is not a number")
    return number


def _num(value: Decimal) -> str:
    """A decimal as a person writes it: 180, 69.5 (no trailing zeros, no exponent)."""
    text = format(value.normalize(), "f")
    return text


def _not_in_future(name: str, value: datetime) -> datetime:
    value = _aware(value)
    if value > timezone.now() + timedelta(minutes=1):
        raise InputRefused(name, f"{timezone.localtime(value):%Y-%m-%d %H:%M} is in the future")
    return value


def _site_time(moment: datetime, participant: Participant) -> datetime:
    try:
        zone = ZoneInfo(participant.site.timezone)
    except Exception:  # noqa: BLE001 - an unknown zone name falls back to the server's
        zone = timezone.get_current_timezone()
    return timezone.localtime(moment, zone)


def _lab(user: Any) -> None:
    require(user, Permission.MANAGE_CELL_PRODUCT)


# --------------------------------------------------------------------------- donors and lots
def register_donor(user: Any, code: str) -> Donor:
    """A donor by pseudonymous code only: the bank keeps the identity, the trial never needs it."""
    _lab(user)
    code = _text(code).upper()
    if not _DONOR_CODE.match(code):
        raise InputRefused("code", "use the bank's pseudonymous donor code (3–20 letters, digits or '-', with at "
                                   "least one digit); never a name or a date of birth")
    if Donor.objects.filter(code=code).exists():
        raise InputRefused("code", f"donor {code} is already registered")
    return Donor.objects.create(code=code, registered_at=timezone.now())


def register_lot(user: Any, donor: Donor, *, number: str, manufactured_on: date, expires_on: date,  # noqa: PLR0913
                 cells_per_vial_millions: Decimal | float | str, vials: int, location: str) -> Lot:
    """Register a lot and receive its vials into stock at ``location`` (the ledger's first entry)."""
    _lab(user)
    number = _text(number)
    location = _text(location)
    if not number:
        raise InputRefused("number", "is required")
    if Lot.objects.filter(number=number).exists():
        raise InputRefused("number", f"lot {number} is already registered")
    if manufactured_on > timezone.localdate():
        raise InputRefused("manufactured_on", "is in the future")
    if expires_on <= manufactured_on:
        raise InputRefused("expires_on", "must be after the manufacturing date")
    per_vial = _decimal("cells_per_vial_millions", cells_per_vial_millions)
    if per_vial is None or per_vial <= 0:
        raise InputRefused("cells_per_vial_millions", "must be more than 0 (×10^6 cells)")
    if not isinstance(vials, int) or vials < 1:
        raise InputRefused("vials", "must be at least 1")
    if not location:
        raise InputRefused("location", "say where the vials are received")
    now = timezone.now()
    with transaction.atomic():
        lot = Lot.objects.create(donor=donor, number=number, manufactured_on=manufactured_on, expires_on=expires_on,
                                 cells_per_vial_millions=per_vial, vials=vials, registered_at=now)
        _append(user, LedgerKind.RECEIVED, occurred_at=now, location=location, lot=lot, quantity=vials, delta=vials)
    return lot


def _spec_verdict(kind: str, value: Decimal | None, unit: str) -> bool | None:
    """What the specification says of a numeric result (None when the test is judged by the lab)."""
    if value is None:
        return None
    if kind == ReleaseTestKind.VIABILITY:
        return value >= Decimal(str(current_protocol().regimen.minimum_post_thaw_viability_percent))
    if kind in POSITIVE_MARKERS:
        return value >= POSITIVE_MARKER_MIN_PERCENT
    if kind in NEGATIVE_MARKERS:
        return value <= NEGATIVE_MARKER_MAX_PERCENT
    return None


def record_release_test(user: Any, lot: Lot, kind: str, *, passed: bool, value: str, unit: str,  # noqa: PLR0913
                        tested_on: date, reason: str = "") -> ReleaseTest:
    """Record (or, with a reason, correct) one release test of a lot that is not yet released.

    Viability and the identity markers are checked against their specification: a result
    marked 'pass' whose value fails the specification (or the reverse) is refused, because
    a release decision must not rest on a mis-ticked box.
    """
    _lab(user)
    if kind not in ReleaseTestKind.values:
        raise InputRefused("kind", f"{kind!r} is not a release test; tests are {', '.join(ReleaseTestKind.values)}")
    if lot.released:
        raise InputRefused(None, f"lot {lot.number} is released; its release tests can no longer change")
    value, unit = _text(value), _text(unit)
    if not value:
        raise InputRefused("value", "record the measured value (or the result, e.g. 'no growth')")
    if tested_on > timezone.localdate():
        raise InputRefused("tested_on", "is in the future")
    numeric = kind == ReleaseTestKind.VIABILITY or kind in POSITIVE_MARKERS or kind in NEGATIVE_MARKERS
    if numeric:
        if unit != "%":
            raise InputRefused("unit", f"{ReleaseTestKind(kind).label} is reported in %")
        number = _decimal("value", value)
        if number is None or not Decimal(0) <= number <= Decimal(100):
            raise InputRefused("value", "must be a percentage between 0 and 100")
        verdict = _spec_verdict(kind, number, unit)
        if verdict is not None and verdict != bool(passed):
            raise InputRefused("passed", f"{value} % {'meets' if verdict else 'fails'} the specification "
                                         f"({_spec_text(kind)}); the result cannot be recorded as "
                                         f"{'failed' if verdict else 'passed'}")
    existing = ReleaseTest.objects.filter(lot=lot, kind=kind).first()
    if existing is None:
        return ReleaseTest.objects.create(lot=lot, kind=kind, passed=bool(passed), value=value, unit=unit,
                                          tested_on=tested_on, recorded_by=user)
    if not reason.strip():
        raise InputRefused("reason", f"the {kind} test of lot {lot.number} is recorded; give a reason to correct it")
    with because(reason.strip()):
        existing.passed, existing.value, existing.unit = bool(passed), value, unit
        existing.tested_on, existing.recorded_by = tested_on, user
        existing.save()
    return existing


def _spec_text(kind: str) -> str:
    if kind == ReleaseTestKind.VIABILITY:
        return f"≥ {current_protocol().regimen.minimum_post_thaw_viability_percent:g} %"
    if kind in POSITIVE_MARKERS:
        return f"≥ {POSITIVE_MARKER_MIN_PERCENT} %"
    if kind in NEGATIVE_MARKERS:
        return f"≤ {NEGATIVE_MARKER_MAX_PERCENT} %"
    return "judged by the lab"


def release_test_problems(lot: Lot) -> list[str]:
    """Release tests that are missing or failed, in test order."""
    recorded = {t.kind: t for t in lot.release_tests.all()}
    problems: list[str] = []
    for kind in ReleaseTestKind:
        test = recorded.get(kind.value)
        if test is None:
            problems.append(f"the {kind.label} test is not recorded")
        elif not test.passed:
            problems.append(f"the {kind.label} test failed ({test.value} {test.unit})".replace(" )", ")"))
    return problems


def usability_problems(lot: Lot, on: date | None = None) -> list[str]:
    """Why the lot may not be used on ``on`` (empty when it may): quarantine, release, tests, expiry."""
    on = on or timezone.localdate()
    problems: list[str] = []
    if lot.quarantined_at is not None:
        problems.append(f"it is quarantined ({lot.quarantine_reason})")
    if not lot.released:
        problems.append("it is not released by a qualified person")
    problems += release_test_problems(lot)
    if lot.expires_on < on:
        problems.append(f"it expired on {lot.expires_on.isoformat()}")
    return problems


RELEASE_MEANING = ("Qualified-person release: I certify that lot {number} met every release specification "
                   "(viability, sterility, mycoplasma, endotoxin, identity markers) and may be used for infusion.")


def release_lot(user: Any, lot: Lot, password: str) -> Signature:
    """Release by a qualified person: every test passed, in date, signed with password re-entry."""
    _lab(user)
    if lot.released:
        raise InputRefused(None, f"lot {lot.number} is already released")
    problems = [p for p in usability_problems(lot) if "not released" not in p]
    if problems:
        raise InputRefused(None, f"lot {lot.number} cannot be released: {'; '.join(problems)}")
    authenticate_signer(user, password, lot)  # before the transaction: a refusal stays in the audit trail
    tests = {t.kind: [t.passed, t.value, t.unit, t.tested_on.isoformat()] for t in lot.release_tests.all()}
    content = {"lot": lot.number, "donor": lot.donor.code, "manufactured_on": lot.manufactured_on.isoformat(),
               "expires_on": lot.expires_on.isoformat(), "cells_per_vial_millions": str(lot.cells_per_vial_millions),
               "vials": lot.vials, "tests": tests}
    with transaction.atomic():
        signature = sign(user=user, password=password, meaning=RELEASE_MEANING.format(number=lot.number), record=lot,
                         content=content, authenticated=True)
        with because("released by a qualified person (e-signature)"):
            lot.released_at = signature.signed_at
            lot.released_by = user
            lot.release_signature = signature
            lot.save()
    return signature


def quarantine_lot(user: Any, lot: Lot, reason: str) -> Lot:
    """Stop a lot from being used (e.g. a recall or an out-of-specification finding); its bags stay traceable."""
    _lab(user)
    if not reason.strip():
        raise InputRefused("reason", "say why the lot is quarantined")
    if lot.quarantined_at is not None:
        raise InputRefused(None, f"lot {lot.number} is already quarantined")
    with because(f"lot quarantined: {reason.strip()}"):
        lot.quarantined_at = timezone.now()
        lot.quarantine_reason = reason.strip()
        lot.save()
    return lot


# --------------------------------------------------------------------------- ledger
def _append(user: Any, kind: str, *, occurred_at: datetime, location: str, lot: Lot | None = None,  # noqa: PLR0913
            bag: Preparation | None = None, quantity: int | None = None, delta: int = 0, from_location: str = "",
            corrects: LedgerEntry | None = None, reason: str = "") -> LedgerEntry:
    return LedgerEntry.objects.create(kind=kind, occurred_at=occurred_at, recorded_at=timezone.now(),
                                      recorded_by=user, location=location, from_location=from_location, lot=lot,
                                      bag=bag, quantity=quantity, delta=delta, corrects=corrects, reason=reason)


def stock(lots: Iterable[Lot] | None = None) -> dict[tuple[int, str], int]:
    """Vials per (lot id, location), summed from the ledger; locations at zero are left out."""
    entries = LedgerEntry.objects.filter(lot__isnull=False)
    if lots is not None:
        entries = entries.filter(lot__in=list(lots))
    totals: dict[tuple[int, str], int] = defaultdict(int)
    for row in entries.exclude(delta=0).order_by().values("lot_id", "location").annotate(total=Sum("delta")):
        totals[(row["lot_id"], row["location"])] += row["total"]
    for row in (entries.exclude(from_location="").filter(quantity__isnull=False).order_by()
                .values("lot_id", "from_location").annotate(total=Sum("quantity"))):
        totals[(row["lot_id"], row["from_location"])] -= row["total"]
    return {key: total for key, total in totals.items() if total != 0}


def stock_of(lot: Lot) -> dict[str, int]:
    """Vials of one lot by location."""
    return {location: n for (_lot, location), n in sorted(stock([lot]).items())}


def vials_at(lot: Lot, location: str) -> int:
    return stock_of(lot).get(location, 0)


def _take(lot: Lot, location: str, quantity: int, field_name: str) -> None:
    """Refuse to take more vials from a location than the ledger says are there."""
    available = vials_at(lot, location)
    if quantity > available:
        raise InputRefused(field_name, f"lot {lot.number} has {available} vial(s) at {location}; "
                                       f"{quantity} cannot be taken")


def record_movement(user: Any, kind: str, *, location: str, occurred_at: datetime,  # noqa: PLR0913, PLR0912
                    lot: Lot | None = None, bag: Preparation | None = None, quantity: int | None = None,
                    from_location: str = "", reason: str = "") -> LedgerEntry:
    """Record a received, stored (moved), thawed, destroyed or returned movement of vials or of a bag.

    Vials: ``lot`` and ``quantity``; received and returned add at ``location``, thawed and
    destroyed take from it, stored moves from ``from_location`` to ``location``. A bag is
    only returned to the lab or destroyed (``bag``, no quantity).
    """
    _lab(user)
    if kind not in MANUAL_KINDS:
        raise InputRefused("kind", "prepared, dispensed and administered are recorded by the preparation and the "
                                   "bedside check; use a correction to correct an entry")
    location, from_location, reason = _text(location), _text(from_location), reason.strip()
    if not location:
        raise InputRefused("location", "say where the movement happened")
    occurred_at = _not_in_future("occurred_at", occurred_at)
    if kind == LedgerKind.DESTROYED and not reason:
        raise InputRefused("reason", "say why the product is destroyed")
    if bag is not None:
        if kind not in (LedgerKind.DESTROYED, LedgerKind.RETURNED):
            raise InputRefused("kind", "a bag can only be returned to the lab or destroyed")
        if quantity is not None:
            raise InputRefused("quantity", "a bag movement has no vial quantity")
        state = bag_state(bag)
        if state in ("administered", "destroyed"):
            raise InputRefused("bag", f"bag {bag.bag_id} was {state}")
        return _append(user, kind, occurred_at=occurred_at, location=location, lot=bag.lot, bag=bag, reason=reason)
    if lot is None:
        raise InputRefused("lot", "name the lot (or the bag) that moved")
    if not isinstance(quantity, int) or quantity < 1:
        raise InputRefused("quantity", "must be a whole number of vials, at least 1")
    with transaction.atomic():
        Lot.objects.select_for_update().filter(pk=lot.pk).first()  # serialise stock checks of one lot
        if kind in (LedgerKind.RECEIVED, LedgerKind.RETURNED):
            return _append(user, kind, occurred_at=occurred_at, location=location, lot=lot, quantity=quantity,
                           delta=quantity, reason=reason)
        if kind == LedgerKind.STORED:
            if not from_location:
                raise InputRefused("from_location", "say where the vials were moved from")
            if from_location == location:
                raise InputRefused("location", "a move needs two different locations")
            _take(lot, from_location, quantity, "quantity")
            return _append(user, kind, occurred_at=occurred_at, location=location, lot=lot, quantity=quantity,
                           delta=quantity, from_location=from_location, reason=reason)
        _take(lot, location, quantity, "quantity")
        return _append(user, kind, occurred_at=occurred_at, location=location, lot=lot, quantity=quantity,
                       delta=-quantity, reason=reason)


def correct(user: Any, entry: LedgerEntry, *, delta: int, reason: str, location: str = "",
            occurred_at: datetime | None = None) -> LedgerEntry:
    """Correct a ledger entry by a new entry that refers to it: a signed change of vials and a reason."""
    _lab(user)
    if not reason.strip():
        raise InputRefused("reason", "a correction needs a reason")
    if not isinstance(delta, int):
        raise InputRefused("delta", "must be a whole number of vials (negative to remove)")
    if delta and entry.lot_id is None:
        raise InputRefused("delta", "the corrected entry has no lot; only a note (delta 0) can be recorded")
    location = _text(location) or entry.location
    occurred_at = _not_in_future("occurred_at", occurred_at or timezone.now())
    with transaction.atomic():
        if entry.lot is not None:
            Lot.objects.select_for_update().filter(pk=entry.lot_id).first()
            if delta < 0:
                _take(entry.lot, location, -delta, "delta")
        return _append(user, LedgerKind.CORRECTION, occurred_at=occurred_at, location=location, lot=entry.lot,
                       bag=entry.bag, quantity=abs(delta) or None, delta=delta, corrects=entry,
                       reason=reason.strip())


# --------------------------------------------------------------------------- bags
def new_bag_id() -> str:
    """``B-`` and 8 random base32 characters: unpredictable, and the same for every product."""
    return BAG_ID_PREFIX + "".join(secrets.choice(BAG_ID_ALPHABET) for _ in range(BAG_ID_LENGTH))


def normalise_bag_id(value: str | None) -> str:
    """What a scanner or a person typed, as stored: trimmed, upper case, spaces removed."""
    return "".join((value or "").split()).upper()


def bag_state(preparation: Preparation, at: datetime | None = None) -> str:
    """administered, destroyed, returned, expired (at ``at``, default now) or ready."""
    kinds = {e.kind for e in preparation.ledger.all()}
    for final in (LedgerKind.ADMINISTERED, LedgerKind.DESTROYED, LedgerKind.RETURNED):
        if final in kinds:
            return final.value
    if (at or timezone.now()) > preparation.expires_at:
        return "expired"
    return "ready"


def is_cells(arm_code: str) -> bool:
    """Whether the arm's product is cells (a lot, a thaw) rather than the saline placebo."""
    return current_protocol().arm(arm_code).intervention.type != "placebo"


def product_text(arm_code: str) -> str:
    """What to prepare for the arm, e.g. 'Bone marrow mesenchymal stem cells, 200 × 10^6 cells'. Lab only."""
    intervention = current_protocol().arm(arm_code).intervention
    return f"{intervention.name.en}, {intervention.dose:g} {intervention.dose_unit.replace('10^6', '× 10^6')}"


def _dose() -> Decimal:
    return Decimal(str(current_protocol().arm(_cells_arm()).intervention.dose))


def _cells_arm() -> str:
    return next(a.code for a in current_protocol().arms if a.intervention.type != "placebo")


def _placebo_volume() -> Decimal | None:
    """The placebo bag's volume (mL) when the placebo is dosed in mL; cell bags match it when blinded."""
    placebo = next((a.intervention for a in current_protocol().arms if a.intervention.type == "placebo"), None)
    if placebo is None or placebo.dose_unit != "mL":
        return None
    return Decimal(str(placebo.dose))


def dose_range() -> tuple[Decimal, Decimal]:
    """The accepted cell count per bag (×10^6): the protocol dose ± ``DOSE_TOLERANCE``."""
    dose = _dose()
    return dose * (1 - DOSE_TOLERANCE), dose * (1 + DOSE_TOLERANCE)


def _arm_of(participant: Participant) -> str:
    from ildtrial.edc.randomization.models import AllocationSlot

    try:
        return participant.allocation.arm
    except AllocationSlot.DoesNotExist:
        raise InputRefused(None, f"{participant.label} is not randomized") from None


def _live_bag(participant: Participant, visit_code: str) -> Preparation | None:
    """The bag for this visit that was given or can still be given, if any."""
    for bag in (Preparation.objects.filter(participant=participant, visit_code=visit_code)
                .prefetch_related("ledger").order_by("-prepared_at")):
        if bag_state(bag) in ("administered", "ready"):
            return bag
    return None


def record_preparation(user: Any, participant: Participant, visit_code: str, *,  # noqa: PLR0913, PLR0912, PLR0915
                       prepared_at: datetime, location: str, lot: Lot | None = None,
                       vials_thawed: int | None = None, thawed_at: datetime | None = None,
                       post_thaw_viability_percent: Decimal | float | str | None = None,
                       cell_count_millions: Decimal | float | str | None = None,
                       volume_ml: Decimal | float | str | None = None, saline_batch: str = "",
                       expires_at: datetime | None = None, dispensed_to: str = "") -> Preparation:
    """Record the bag prepared for one participant's infusion visit; the ledger gets its movements.

    Cells: a usable lot (released, every test passed, in date), thaw time, post-thaw
    viability at least the protocol minimum, a cell count within ``DOSE_TOLERANCE`` of the
    dose, the vials thawed (taken from ``location``), and — when the trial is double blind —
    the placebo's volume, since a smaller bag would give the arm away. Saline: the batch
    and the protocol volume. Either way the bag gets a random identifier and expires ``BAG_SHELF_LIFE`` after
    preparation unless an earlier expiry is given. Ledger: thawed (cells), prepared, dispensed.
    """
    _lab(user)
    require_site(user, participant.site)
    protocol = current_protocol()
    if visit_code not in {v.code for v in protocol.infusion_visits}:
        raise InputRefused("visit_code", f"{visit_code!r} is not an infusion visit")
    if participant.status != ParticipantStatus.RANDOMIZED:
        raise InputRefused(None, f"{participant.label} is {participant.get_status_display().lower()}; bags are "
                                 "prepared for randomized participants on treatment only")
    arm = _arm_of(participant)
    location = _text(location)
    if not location:
        raise InputRefused("location", "say where the bag is prepared (and the vials thawed)")
    prepared_at = _not_in_future("prepared_at", prepared_at)
    latest_expiry = prepared_at + BAG_SHELF_LIFE
    expires_at = _aware(expires_at) if expires_at else latest_expiry
    if not prepared_at < expires_at <= latest_expiry:
        raise InputRefused("expires_at", f"must be after preparation and at most {BAG_SHELF_LIFE} after it "
                                         f"(by {timezone.localtime(latest_expiry):%Y-%m-%d %H:%M})")
    live = _live_bag(participant, visit_code)
    if live is not None:
        raise InputRefused(None, f"bag {live.bag_id} for {participant.label} {visit_code} is "
                                 f"{bag_state(live)}; destroy or return it before preparing another")
    volume = _decimal("volume_ml", volume_ml)
    cells = is_cells(arm)
    viability = count = None
    if cells:
        if _text(saline_batch):
            raise InputRefused("saline_batch", "this participant's bag holds cells; no saline batch")
        if lot is None:
            raise InputRefused("lot", "choose the released lot the cells are thawed from")
        problems = usability_problems(lot, timezone.localdate(prepared_at))
        if problems:
            raise InputRefused("lot", f"lot {lot.number} cannot be used: {'; '.join(problems)}")
        if thawed_at is None:
            raise InputRefused("thawed_at", "record when the vials were thawed")
        thawed_at = _not_in_future("thawed_at", thawed_at)
        if thawed_at > prepared_at:
            raise InputRefused("thawed_at", "the vials must be thawed before the bag is prepared")
        viability = _decimal("post_thaw_viability_percent", post_thaw_viability_percent)
        minimum = Decimal(str(protocol.regimen.minimum_post_thaw_viability_percent))
        if viability is None:
            raise InputRefused("post_thaw_viability_percent", "record the post-thaw viability")
        if not Decimal(0) <= viability <= Decimal(100):
            raise InputRefused("post_thaw_viability_percent", "must be a percentage between 0 and 100")
        if viability < minimum:
            raise InputRefused("post_thaw_viability_percent",
                               f"post-thaw viability {_num(viability)} % is below the protocol minimum of {_num(minimum)} %: "
                               "these cells must not be infused; record the thawed vials as destroyed and thaw "
                               "new ones")
        count = _decimal("cell_count_millions", cell_count_millions)
        low, high = dose_range()
        if count is None:
            raise InputRefused("cell_count_millions", "record the cell count (×10^6 cells)")
        if not low <= count <= high:
            raise InputRefused("cell_count_millions",
                               f"{_num(count)} × 10^6 cells is outside the dose of {_num(_dose())} × 10^6 ± "
                               f"{_num(DOSE_TOLERANCE * 100)} % ({_num(low)}–{_num(high)} × 10^6)")
        if vials_thawed is None:
            vials_thawed = max(1, math.ceil(_dose() / lot.cells_per_vial_millions))
        if not isinstance(vials_thawed, int) or vials_thawed < 1:
            raise InputRefused("vials_thawed", "must be at least 1")
        if volume is None or volume <= 0:
            raise InputRefused("volume_ml", "record the volume of the cell suspension (mL)")
        matched = _placebo_volume()
        if protocol.is_blinded and matched is not None and volume != matched:
            raise InputRefused("volume_ml", f"the trial is double blind: make the cell suspension up to "
                                            f"{_num(matched)} mL, the volume of the placebo bag, so that the bags "
                                            "cannot be told apart at the bedside")
    else:
        for name, given in (("lot", lot), ("thawed_at", thawed_at), ("vials_thawed", vials_thawed),
                            ("post_thaw_viability_percent", post_thaw_viability_percent),
                            ("cell_count_millions", cell_count_millions)):
            if given not in (None, ""):
                raise InputRefused(name, "this participant's bag holds saline; leave the cell fields empty")
        if not _text(saline_batch):
            raise InputRefused("saline_batch", "record the saline lot or batch")
        dose = Decimal(str(protocol.arm(arm).intervention.dose))
        volume = dose if volume is None else volume
        if volume != dose:
            raise InputRefused("volume_ml", f"the saline bag holds {_num(dose)} mL")
    dispensed_to = _text(dispensed_to) or f"{participant.site.code} infusion unit"
    with transaction.atomic():
        if cells:
            assert lot is not None and vials_thawed is not None and thawed_at is not None
            Lot.objects.select_for_update().filter(pk=lot.pk).first()
            _take(lot, location, vials_thawed, "vials_thawed")
        bag_id = new_bag_id()
        while Preparation.objects.filter(bag_id=bag_id).exists():
            bag_id = new_bag_id()
        bag = Preparation.objects.create(
            bag_id=bag_id, participant=participant, visit_code=visit_code, arm=arm, lot=lot if cells else None,
            vials_thawed=vials_thawed if cells else None, thawed_at=thawed_at if cells else None,
            post_thaw_viability_percent=viability, cell_count_millions=count,
            saline_batch="" if cells else _text(saline_batch), volume_ml=volume, location=location,
            prepared_at=prepared_at, expires_at=expires_at, prepared_by=user)
        if cells:
            _append(user, LedgerKind.THAWED, occurred_at=thawed_at, location=location, lot=lot, bag=bag,
                    quantity=vials_thawed, delta=-vials_thawed)
        _append(user, LedgerKind.PREPARED, occurred_at=prepared_at, location=location, lot=bag.lot, bag=bag)
        _append(user, LedgerKind.DISPENSED, occurred_at=prepared_at, location=dispensed_to, lot=bag.lot, bag=bag)
    return bag


LABEL_STATEMENT = "Investigational product for intravenous infusion. For clinical trial use only."


def label_lines(preparation: Preparation) -> list[tuple[str, str]]:
    """The bag label: the same fields, in the same format, whatever the bag holds (never the arm)."""
    protocol = current_protocol()
    participant = preparation.participant
    return [
        ("Trial", protocol.identity.registration),
        ("Bag", preparation.bag_id),
        ("Participant", participant.label),
        ("Site", participant.site.code),
        ("Visit", preparation.visit_code),
        ("Use by", f"{_site_time(preparation.expires_at, participant):%Y-%m-%d %H:%M}"),
        ("", LABEL_STATEMENT),
    ]


def label_text(preparation: Preparation) -> str:
    return "\n".join(f"{k}: {v}" if k else v for k, v in label_lines(preparation))


# --------------------------------------------------------------------------- what to prepare
@dataclass(frozen=True)
class ToPrepare:
    """One infusion coming up, with what the lab must prepare for it (arm shown: lab only)."""

    participant: Participant
    visit: PlannedVisit
    due: date | None
    by: date | None
    arm: str
    product: str
    cells: bool
    bag: Preparation | None = None
    lots: list[Lot] = field(default_factory=list)


def usable_lots(on: date | None = None) -> list[Lot]:
    """Released, passed, in-date lots that have vials in stock, oldest expiry first (use first)."""
    on = on or timezone.localdate()
    candidates = list(Lot.objects.filter(released_at__isnull=False, quarantined_at__isnull=True, expires_on__gte=on)
                      .select_related("donor").prefetch_related("release_tests").order_by("expires_on", "number"))
    in_stock = {lot_id for (lot_id, _loc), n in stock(candidates).items() if n > 0}
    return [lot for lot in candidates if lot.pk in in_stock and not usability_problems(lot, on)]


def to_prepare(user: Any, days: int = 7, today: date | None = None) -> list[ToPrepare]:
    """Infusions of the user's randomized participants in the next ``days`` days, with the product.

    A visit is listed when its window overlaps today..today+days and it is neither done
    nor missed nor already given. The first infusion has no date until it happens; it is
    listed while pending, with the last day it may fall on (screening window).
    """
    _lab(user)
    from ildtrial.edc.participants.services import visible_to
    from ildtrial.edc.visits.services import calendar

    if days < 0 or days > 366:
        raise InputRefused("days", "must be between 0 and 366")
    protocol = current_protocol()
    today = today or timezone.localdate()
    end = today + timedelta(days=days)
    lots = usable_lots(today)
    rows: list[tuple[date, str, int, ToPrepare]] = []
    participants = (visible_to(user).filter(status=ParticipantStatus.RANDOMIZED)
                    .select_related("allocation", "site").prefetch_related("visits"))
    for participant in participants:
        arm = _arm_of(participant)
        bags = list(Preparation.objects.filter(participant=participant).prefetch_related("ledger")
                    .order_by("-prepared_at"))
        for order, plan in enumerate(calendar(participant)):
            if not plan.infusion or plan.is_done or plan.missed:
                continue
            if plan.planned is None:
                if plan.code != protocol.schedule.day_zero:
                    continue
                due, by = None, day0_window(protocol, participant.screening_date)[1]
            else:
                assert plan.earliest is not None and plan.latest is not None
                if plan.earliest > end or plan.latest < today:
                    continue
                due, by = plan.planned, plan.latest
            states = {b.bag_id: bag_state(b) for b in bags if b.visit_code == plan.code}
            if "administered" in states.values():
                continue
            ready = next((b for b in bags if states.get(b.bag_id) == "ready"), None)
            cells = is_cells(arm)
            item = ToPrepare(participant=participant, visit=plan, due=due, by=by, arm=arm, product=product_text(arm),
                             cells=cells, bag=ready, lots=lots if cells else [])
            rows.append((due or by or today, participant.label, order, item))
    return [r[-1] for r in sorted(rows, key=lambda r: r[:3])]


# --------------------------------------------------------------------------- at the bedside
def check_bag(user: Any, participant: Participant, visit_code: str, bag_id: str, at: datetime) -> Preparation:
    """The bedside check: is this the right bag for this participant, this visit, at this time?

    For ENTER_DATA users (nurse, coordinator, investigator). Returns the bag when it may be
    infused; otherwise raises ``InputRefused`` on field ``bag_id`` when the bag is unknown,
    was prepared for another participant or another visit, was already administered,
    returned or destroyed, is expired at ``at`` (or ``at`` precedes its preparation), or
    does not match the allocation. Messages name the bag, the participant and visits only:
    never the product, so they are safe to show a blinded person.

    The infusion form (INF) calls it before saving a *new or changed* ``bag_id`` with
    ``at`` = infusion date + start time (site time); after saving, ``record_administration``.
    """
    require(user, Permission.ENTER_DATA)
    require_site(user, participant.site)
    code = normalise_bag_id(bag_id)
    if not code:
        raise InputRefused("bag_id", "scan or type the bag identifier printed on the label")
    at = _aware(at)
    bag = Preparation.objects.filter(bag_id=code).select_related("participant__site").first()
    if bag is None:
        raise InputRefused("bag_id", f"bag {code} is not known: check the label; never infuse a bag the system "
                                     "does not know")
    if bag.participant_id != participant.pk:
        raise InputRefused("bag_id", f"bag {code} was prepared for another participant, not {participant.label}: "
                                     "do not infuse it; return it to the cell lab")
    if bag.visit_code != visit_code:
        raise InputRefused("bag_id", f"bag {code} was prepared for visit {bag.visit_code}, not {visit_code}: "
                                     "do not infuse it; return it to the cell lab")
    state = bag_state(bag, at)
    if state == "administered":
        given = bag.ledger.filter(kind=LedgerKind.ADMINISTERED).first()
        when = f" on {_site_time(given.occurred_at, participant):%Y-%m-%d %H:%M}" if given else ""
        raise InputRefused("bag_id", f"bag {code} was already administered{when}: a bag is infused once")
    if state in ("destroyed", "returned"):
        raise InputRefused("bag_id", f"bag {code} was {state} and must not be infused")
    if at < bag.prepared_at:
        raise InputRefused("bag_id", f"the time given ({_site_time(at, participant):%Y-%m-%d %H:%M}) is before bag "
                                     f"{code} was prepared")
    if state == "expired":
        raise InputRefused("bag_id", f"bag {code} expired at {_site_time(bag.expires_at, participant):%Y-%m-%d %H:%M}:"
                                     " do not infuse it; return it to the cell lab")
    if bag.arm != _arm_of(participant):
        raise InputRefused("bag_id", f"bag {code} does not match {participant.label}'s allocation: do not infuse "
                                     "it; call the cell lab")
    return bag


def record_administration(user: Any, preparation: Preparation, at: datetime, *, location: str = "") -> LedgerEntry:
    """Record that the bag was infused at ``at``: the ledger's administered entry, linked to the bag.

    Runs ``check_bag`` again under a row lock, so two saves cannot both administer the bag
    (the database's one-administration-per-bag constraint is the last guard). ``location``
    defaults to the site's bedside. Refusals are ``InputRefused`` on ``bag_id`` (or on
    ``at`` for a time in the future).
    """
    require(user, Permission.ENTER_DATA)
    participant = preparation.participant
    require_site(user, participant.site)
    at = _aware(at)
    if at > timezone.now() + timedelta(minutes=1):
        raise InputRefused("at", "an infusion cannot be recorded in the future")
    location = _text(location) or f"{participant.site.code} bedside"
    with transaction.atomic():
        fresh = Preparation.objects.select_for_update().get(pk=preparation.pk)
        check_bag(user, participant, fresh.visit_code, fresh.bag_id, at)
        try:
            with transaction.atomic():
                return _append(user, LedgerKind.ADMINISTERED, occurred_at=at, location=location, lot=fresh.lot,
                               bag=fresh)
        except IntegrityError:
            raise InputRefused("bag_id", f"bag {fresh.bag_id} was already administered: a bag is infused once") from None


# --------------------------------------------------------------------------- traceability
def sees_lots(user: Any, participant: Participant | None = None) -> bool:
    """Whether lot and donor links may be shown: a lot behind a bag reveals the arm.

    The cell lab always; otherwise only a user who may see the arm (open label, an
    unblinded role, or their own emergency unblinding of this participant).
    """
    if user.can(Permission.MANAGE_CELL_PRODUCT):
        return True
    if participant is not None:
        from ildtrial.edc.randomization.services import sees_arm_of

        return sees_arm_of(user, participant)
    return bool(user.sees_allocation())


@dataclass(frozen=True)
class BagTrace:
    """One bag as traceability shows it. The blinded fields come first; the rest are empty for blinded users."""

    bag_id: str
    participant: str
    site: str
    visit_code: str
    expires_at: datetime
    state: str
    administered_at: datetime | None
    arm: str = ""
    product: str = ""
    lot: str = ""
    donor: str = ""
    saline_batch: str = ""
    prepared_at: datetime | None = None
    thawed_at: datetime | None = None
    post_thaw_viability_percent: Decimal | None = None
    cell_count_millions: Decimal | None = None
    volume_ml: Decimal | None = None
    lot_pk: int | None = None
    donor_pk: int | None = None


BLINDED_COLUMNS = ["bag_id", "participant", "site", "visit_code", "expires_at", "state", "administered_at"]
UNBLINDED_COLUMNS = [*BLINDED_COLUMNS, "arm", "product", "lot", "donor", "saline_batch", "prepared_at", "thawed_at",
                     "post_thaw_viability_percent", "cell_count_millions", "volume_ml"]


def _trace(bag: Preparation, unblinded: bool) -> BagTrace:
    given = next((e for e in bag.ledger.all() if e.kind == LedgerKind.ADMINISTERED), None)
    base = {"bag_id": bag.bag_id, "participant": bag.participant.label, "site": bag.participant.site.code,
            "visit_code": bag.visit_code, "expires_at": bag.expires_at, "state": bag_state(bag),
            "administered_at": given.occurred_at if given else None}
    if not unblinded:
        return BagTrace(**base)
    return BagTrace(**base, arm=bag.arm, product=product_text(bag.arm), lot=bag.lot.number if bag.lot else "",
                    donor=bag.lot.donor.code if bag.lot else "", saline_batch=bag.saline_batch,
                    prepared_at=bag.prepared_at, thawed_at=bag.thawed_at,
                    post_thaw_viability_percent=bag.post_thaw_viability_percent,
                    cell_count_millions=bag.cell_count_millions, volume_ml=bag.volume_ml,
                    lot_pk=bag.lot_id, donor_pk=bag.lot.donor_id if bag.lot else None)


def _bags() -> QuerySet[Preparation]:
    return Preparation.objects.select_related("participant__site", "lot__donor").prefetch_related("ledger")


def participant_trace(user: Any, participant: Participant) -> tuple[list[BagTrace], bool]:
    """Every bag prepared for the participant and (when the user may know) its lot and donor.

    Returns the rows and whether they carry the unblinded columns.
    """
    if not (user.can(Permission.VIEW_PARTICIPANTS) or user.can(Permission.MANAGE_CELL_PRODUCT)):
        raise Denied(f"your role ({user.role_label}) may not view participants")
    require_site(user, participant.site)
    unblinded = sees_lots(user, participant)
    return [_trace(b, unblinded) for b in _bags().filter(participant=participant).order_by("prepared_at")], unblinded


def may_recall(user: Any) -> bool:
    """The lab, or a user who sees participants and the allocation (open label, unblinded roles)."""
    return bool(user.can(Permission.MANAGE_CELL_PRODUCT)
                or (user.can(Permission.VIEW_PARTICIPANTS) and user.sees_allocation()))


def recall(user: Any, *, lot: Lot | None = None, donor: Donor | None = None) -> list[BagTrace]:
    """Every bag made from the lot (or from any lot of the donor) at the user's sites, with its participant.

    Bags not yet given are listed too, so they can be stopped; ``state`` says which were infused.
    """
    if not may_recall(user):
        raise Denied(f"your role ({user.role_label}) may not see lots and donors while the trial is blinded")
    if (lot is None) == (donor is None):
        raise InputRefused(None, "recall one lot or one donor")
    bags = _bags().filter(participant__site__code__in=user.site_codes())
    bags = bags.filter(lot=lot) if lot is not None else bags.filter(lot__donor=donor)
    return [_trace(b, True) for b in bags.order_by("participant__screening_number", "prepared_at")]


def to_csv(rows: Iterable[BagTrace], unblinded: bool) -> str:
    """CSV of traceability rows; blinded exports have the blinded columns only, every cell neutralised."""
    columns = UNBLINDED_COLUMNS if unblinded else BLINDED_COLUMNS
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        values = []
        for name in columns:
            value = getattr(row, name)
            values.append(neutralise(value.isoformat() if isinstance(value, datetime) else value))
        writer.writerow(values)
    return out.getvalue()
