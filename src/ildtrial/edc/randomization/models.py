"""The allocation list and its slots. The arm column is concealed from blinded roles everywhere."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from ildtrial.edc.audit.models import AuditedModel


class AllocationList(AuditedModel):
    algorithm = models.CharField(max_length=40)
    seed = models.BigIntegerField()
    seed_source = models.CharField(max_length=20)
    digest = models.CharField(max_length=64)
    config = models.JSONField()
    generated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    generated_at = models.DateTimeField()
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["generated_at"]

    def __str__(self) -> str:
        return f"allocation list {self.digest[:12]}"


class AllocationSlot(AuditedModel):
    allocation_list = models.ForeignKey(AllocationList, on_delete=models.PROTECT, related_name="slots")
    stratum = models.CharField(max_length=40)
    sequence = models.PositiveIntegerField()
    block = models.PositiveIntegerField()
    block_size = models.PositiveIntegerField()
    arm = models.CharField(max_length=8)
    number = models.CharField(max_length=20)
    participant = models.OneToOneField("participants.Participant", null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="allocation")
    allocated_at = models.DateTimeField(null=True, blank=True)
    allocated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")

    class Meta:
        ordering = ["allocation_list", "stratum", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["allocation_list", "stratum", "sequence"], name="slot_sequence_unique"),
            models.UniqueConstraint(fields=["allocation_list", "number"], name="slot_number_unique"),
        ]

    def __str__(self) -> str:  # never the arm: this text appears in audit views
        return f"slot {self.number}"


class EmergencyUnblinding(AuditedModel):
    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT, related_name="unblindings")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    unblinded_at = models.DateTimeField()

    class Meta:
        ordering = ["unblinded_at"]

    def __str__(self) -> str:
        return f"emergency unblinding of {self.participant}"

    def audit_site_code(self) -> str:
        return self.participant.site.code
