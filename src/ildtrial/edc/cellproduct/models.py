"""Donors, lots and their release tests, the append-only stock ledger, and prepared bags.

What a record says about the arm matters here more than anywhere: a bag that has a lot
behind it holds cells. The lab (and unblinded roles) see lots and donors; everybody else
sees a bag identifier that looks the same whatever is inside. ``__str__`` of every model
therefore names identifiers only, because it is what the audit trail shows as the record.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from ildtrial.edc.audit.models import AuditedModel

#: Audit-trail model labels whose entries reveal the arm (a lot behind a bag means cells).
#: A blinded viewer's audit pages must leave these out; the audit app reads this set.
ARM_REVEALING_AUDIT_MODELS: frozenset[str] = frozenset(
    {"cellproduct.Donor", "cellproduct.Lot", "cellproduct.ReleaseTest", "cellproduct.LedgerEntry",
     "cellproduct.Preparation"})


class Donor(AuditedModel):
    """A bone-marrow donor, known here by a pseudonymous code only (identity stays with the bank)."""

    code = models.CharField(max_length=20, unique=True)
    registered_at = models.DateTimeField()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"donor {self.code}"


class Lot(AuditedModel):
    """One manufactured lot of cryopreserved MSC vials from one donor."""

    donor = models.ForeignKey(Donor, on_delete=models.PROTECT, related_name="lots")
    number = models.CharField(max_length=40, unique=True)
    manufactured_on = models.DateField()
    expires_on = models.DateField()
    cells_per_vial_millions = models.DecimalField(max_digits=7, decimal_places=1)
    vials = models.PositiveIntegerField(help_text="vials manufactured (received into stock when registered)")
    registered_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    release_signature = models.ForeignKey("esign.Signature", null=True, blank=True, on_delete=models.PROTECT,
                                          related_name="+")
    quarantined_at = models.DateTimeField(null=True, blank=True)
    quarantine_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"lot {self.number}"

    @property
    def released(self) -> bool:
        return self.released_at is not None


class ReleaseTestKind(models.TextChoices):
    VIABILITY = "viability", "Viability"
    STERILITY = "sterility", "Sterility"
    MYCOPLASMA = "mycoplasma", "Mycoplasma"
    ENDOTOXIN = "endotoxin", "Endotoxin"
    CD73 = "cd73", "CD73 (positive marker)"
    CD90 = "cd90", "CD90 (positive marker)"
    CD105 = "cd105", "CD105 (positive marker)"
    CD34 = "cd34", "CD34 (negative marker)"
    CD45 = "cd45", "CD45 (negative marker)"


class ReleaseTest(AuditedModel):
    """One release test result of a lot: pass or fail, with the measured value and its unit."""

    lot = models.ForeignKey(Lot, on_delete=models.PROTECT, related_name="release_tests")
    kind = models.CharField(max_length=20, choices=ReleaseTestKind.choices)
    passed = models.BooleanField()
    value = models.CharField(max_length=40)
    unit = models.CharField(max_length=20, blank=True)
    tested_on = models.DateField()
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["lot", "kind"]
        constraints = [models.UniqueConstraint(fields=["lot", "kind"], name="release_test_once_per_lot")]

    def __str__(self) -> str:
        return f"{self.kind} test of lot {self.lot.number}"


class LedgerKind(models.TextChoices):
    RECEIVED = "received", "Received"
    STORED = "stored", "Stored (moved to a storage location)"
    THAWED = "thawed", "Thawed"
    PREPARED = "prepared", "Prepared (bag)"
    DISPENSED = "dispensed", "Dispensed (bag)"
    ADMINISTERED = "administered", "Administered (bag)"
    DESTROYED = "destroyed", "Destroyed"
    RETURNED = "returned", "Returned"
    CORRECTION = "correction", "Correction"


class LedgerIsAppendOnly(RuntimeError):
    """A ledger entry was about to be changed or removed; corrections are new entries."""


class LedgerEntry(AuditedModel):
    """One movement of product: who, when, where, which lot (vials) and/or which bag.

    ``delta`` is the signed change of vials of ``lot`` at ``location``; a transfer (stored)
    also takes ``quantity`` vials out of ``from_location``. Stock is always the sum of these
    movements, never a counter, so the ledger and the stock cannot disagree.
    """

    kind = models.CharField(max_length=20, choices=LedgerKind.choices)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField()
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    location = models.CharField(max_length=120)
    from_location = models.CharField(max_length=120, blank=True)
    lot = models.ForeignKey(Lot, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger")
    bag = models.ForeignKey("Preparation", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger")
    quantity = models.PositiveIntegerField(null=True, blank=True)
    delta = models.IntegerField(default=0)
    corrects = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="corrections")
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["occurred_at", "pk"]
        indexes = [models.Index(fields=["lot", "location"], name="ledger_lot_location_idx")]
        constraints = [
            # a bag is infused once: the database refuses a second administration even under a race
            models.UniqueConstraint(fields=["bag"], condition=models.Q(kind="administered"),
                                    name="ledger_bag_administered_once"),
        ]

    def __str__(self) -> str:
        return f"ledger entry {self.pk} ({self.kind})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise LedgerIsAppendOnly("ledger entries cannot be changed; record a correction that refers to it")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise LedgerIsAppendOnly("ledger entries cannot be deleted; record a correction that refers to it")

    def audit_site_code(self) -> str:
        return self.bag.participant.site.code if self.bag_id else ""

    def movements(self) -> list[tuple[str, int]]:
        """The (location, signed vials) changes this entry makes to its lot's stock."""
        moves = [(self.location, self.delta)] if self.delta else []
        if self.from_location and self.quantity:
            moves.append((self.from_location, -self.quantity))
        return moves


class Preparation(AuditedModel):
    """One infusion bag prepared for one participant and one infusion visit.

    The bag identifier is random and the same shape for cells and saline, so nothing on
    the bag or in the bedside check tells a blinded person which one it is.
    """

    bag_id = models.CharField(max_length=12, unique=True)
    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT,
                                    related_name="cell_preparations")
    visit_code = models.CharField(max_length=8)
    arm = models.CharField(max_length=8)
    lot = models.ForeignKey(Lot, null=True, blank=True, on_delete=models.PROTECT, related_name="preparations")
    vials_thawed = models.PositiveSmallIntegerField(null=True, blank=True)
    thawed_at = models.DateTimeField(null=True, blank=True)
    post_thaw_viability_percent = models.DecimalField(max_digits=4, decimal_places=1, null=True, blank=True)
    cell_count_millions = models.DecimalField(max_digits=7, decimal_places=1, null=True, blank=True)
    saline_batch = models.CharField(max_length=60, blank=True)
    volume_ml = models.DecimalField(max_digits=6, decimal_places=1)
    location = models.CharField(max_length=120)
    prepared_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    prepared_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["prepared_at", "bag_id"]
        indexes = [models.Index(fields=["participant", "visit_code"], name="preparation_visit_idx")]

    def __str__(self) -> str:
        return f"bag {self.bag_id}"

    def audit_site_code(self) -> str:
        return self.participant.site.code
