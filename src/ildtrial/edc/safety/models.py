"""Safety records: adverse events, SAE reports and their follow-ups, stopping-rule events,
DSMB report runs, imported term dictionaries and the log of safety notifications.

The field names of :class:`AdverseEvent` and :class:`SAEReport` are a contract: the analysis
datasets (ADAE) are built from them, so rename nothing without changing those too.

Seriousness is stored as six separate ICH E2A criteria next to the ``serious`` flag, and the
CTCAE grade is a separate field: severity is not seriousness (shared/domain/safety.md).
Nothing here ever stores or prints the treatment arm; only the closed DSMB report joins AEs
to the allocation, at the moment it is generated.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models

from ildtrial.core import safety as core
from ildtrial.edc.audit.models import AuditedModel


class Relatedness(models.TextChoices):
    """The causality scale of core.safety (same values), for product and procedure alike."""

    NOT_RELATED = core.Relatedness.NOT_RELATED.value, "Not related"
    UNLIKELY = core.Relatedness.UNLIKELY.value, "Unlikely"
    POSSIBLE = core.Relatedness.POSSIBLE.value, "Possible"
    PROBABLE = core.Relatedness.PROBABLE.value, "Probable"
    DEFINITE = core.Relatedness.DEFINITE.value, "Definite"


class Expectedness(models.TextChoices):
    EXPECTED = core.Expectedness.EXPECTED.value, "Expected (listed in the reference safety information)"
    UNEXPECTED = core.Expectedness.UNEXPECTED.value, "Unexpected"


class Outcome(models.TextChoices):
    """The outcome of the event (CDISC AEOUT values, as in core.safety.Outcome)."""

    RECOVERED = core.Outcome.RECOVERED.value, "Recovered/resolved"
    RECOVERING = core.Outcome.RECOVERING.value, "Recovering/resolving"
    NOT_RECOVERED = core.Outcome.NOT_RECOVERED.value, "Not recovered/not resolved"
    RECOVERED_WITH_SEQUELAE = core.Outcome.RECOVERED_WITH_SEQUELAE.value, "Recovered/resolved with sequelae"
    FATAL = core.Outcome.FATAL.value, "Fatal"
    UNKNOWN = core.Outcome.UNKNOWN.value, "Unknown"


class ActionTaken(models.TextChoices):
    """What was done with the investigational product because of the event."""

    NONE = "none", "None"
    DOSE_INTERRUPTED = "dose_interrupted", "Infusion interrupted and resumed"
    INFUSION_STOPPED = "infusion_stopped", "Infusion stopped"
    DRUG_WITHDRAWN = "drug_withdrawn", "Product permanently withdrawn"
    NOT_APPLICABLE = "not_applicable", "Not applicable (no infusion given or planned)"
    OTHER = "other", "Other"


#: the six ICH E2A criteria as model fields, in ICH order, with the core's criterion names
CRITERIA_FIELDS: tuple[tuple[str, core.SeriousnessCriterion, str], ...] = (
    ("sae_death", core.SeriousnessCriterion.DEATH, "Results in death"),
    ("sae_life_threatening", core.SeriousnessCriterion.LIFE_THREATENING, "Life-threatening"),
    ("sae_hospitalisation", core.SeriousnessCriterion.HOSPITALISATION,
     "Requires or prolongs inpatient hospitalisation"),
    ("sae_disability", core.SeriousnessCriterion.DISABILITY, "Persistent or significant disability/incapacity"),
    ("sae_congenital_anomaly", core.SeriousnessCriterion.CONGENITAL_ANOMALY, "Congenital anomaly/birth defect"),
    ("sae_important_medical_event", core.SeriousnessCriterion.IMPORTANT_MEDICAL_EVENT, "Important medical event"),
)


class AdverseEvent(AuditedModel):
    """One adverse event of one participant, numbered 1..n per participant."""

    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT,
                                    related_name="adverse_events")
    ae_number = models.PositiveIntegerField()
    verbatim_term = models.CharField(max_length=250)
    coded_term = models.CharField(max_length=250)
    meddra_code = models.CharField(max_length=32, blank=True)
    soc = models.CharField(max_length=200, blank=True)
    #: which dictionary the coded term came from (the shipped CTCAE list or an imported file)
    term_source = models.CharField(max_length=200, blank=True)
    onset_date = models.DateField()
    onset_time = models.TimeField(null=True, blank=True)
    resolution_date = models.DateField(null=True, blank=True)
    ongoing = models.BooleanField(default=True)
    grade = models.PositiveSmallIntegerField()
    serious = models.BooleanField(default=False)
    sae_death = models.BooleanField(default=False)
    sae_life_threatening = models.BooleanField(default=False)
    sae_hospitalisation = models.BooleanField(default=False)
    sae_disability = models.BooleanField(default=False)
    sae_congenital_anomaly = models.BooleanField(default=False)
    sae_important_medical_event = models.BooleanField(default=False)
    relatedness_product = models.CharField(max_length=20, choices=Relatedness.choices)
    relatedness_procedure = models.CharField(max_length=20, choices=Relatedness.choices)
    expectedness = models.CharField(max_length=12, choices=Expectedness.choices, blank=True)
    action_taken = models.CharField(max_length=20, choices=ActionTaken.choices, default=ActionTaken.NONE)
    outcome = models.CharField(max_length=30, choices=Outcome.choices)
    infusion_related = models.BooleanField(default=False)
    infusion_visit = models.CharField(max_length=8, blank=True)
    reported_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reported_at = models.DateTimeField()
    protocol_version = models.CharField(max_length=20)

    class Meta:
        ordering = ["participant", "ae_number"]
        constraints = [models.UniqueConstraint(fields=["participant", "ae_number"], name="ae_number_unique")]
        indexes = [models.Index(fields=["serious"], name="ae_serious_idx")]

    def __str__(self) -> str:
        return f"AE {self.ae_number} of {self.participant}"

    def audit_site_code(self) -> str:
        return self.participant.site.code

    @property
    def seriousness(self) -> core.Seriousness:
        return core.Seriousness(**{criterion.value: bool(getattr(self, name))
                                   for name, criterion, _label in CRITERIA_FIELDS})

    @property
    def criteria_labels(self) -> list[str]:
        return [label for name, _c, label in CRITERIA_FIELDS if getattr(self, name)]

    @property
    def is_death(self) -> bool:
        """A death attributed to this event: the death criterion with a fatal outcome."""
        return self.sae_death and self.outcome == Outcome.FATAL

    @property
    def sae_id(self) -> str:
        """How the event is named in stopping-rule messages and listings (never with the arm)."""
        return f"{self.participant.label}/AE{self.ae_number}"


class SAEStatus(models.TextChoices):
    """The first reporting obligation still open (or why none is)."""

    AWAITING_SPONSOR = "awaiting_sponsor", "Awaiting report to the sponsor"
    AWAITING_ASSESSMENT = "awaiting_assessment", "Awaiting SUSAR assessment"
    AWAITING_REGULATORY = "awaiting_regulatory", "SUSAR: awaiting expedited report"
    AWAITING_COMPLETE = "awaiting_complete", "SUSAR: awaiting complete report"
    REPORTED = "reported", "Reporting complete (follow-up continues)"
    DOWNGRADED = "downgraded", "No longer serious"


OPEN_STATUSES = (SAEStatus.AWAITING_SPONSOR, SAEStatus.AWAITING_ASSESSMENT, SAEStatus.AWAITING_REGULATORY,
                 SAEStatus.AWAITING_COMPLETE)


class SAEReport(AuditedModel):
    """The expedited report of a serious AE and its clocks.

    Every clock starts at ``awareness_at`` (when the site first knew), not at onset. The
    deadlines are stored in UTC with the site zone used for the calendar-day SUSAR clocks,
    so a later change to the site's zone cannot move a deadline already communicated.
    """

    adverse_event = models.OneToOneField(AdverseEvent, on_delete=models.PROTECT, related_name="sae_report")
    awareness_at = models.DateTimeField()
    site_timezone = models.CharField(max_length=64)
    sponsor_due_at = models.DateTimeField()
    sponsor_submitted_at = models.DateTimeField(null=True, blank=True)
    susar = models.BooleanField(null=True, blank=True)  # None = not assessed yet
    susar_assessed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                          on_delete=models.PROTECT, related_name="+")
    susar_assessed_at = models.DateTimeField(null=True, blank=True)
    regulatory_due_at = models.DateTimeField(null=True, blank=True)
    regulatory_complete_due_at = models.DateTimeField(null=True, blank=True)
    regulatory_submitted_at = models.DateTimeField(null=True, blank=True)
    regulatory_complete_submitted_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=24, choices=SAEStatus.choices, default=SAEStatus.AWAITING_SPONSOR)
    narrative = models.TextField(blank=True)
    protocol_version = models.CharField(max_length=20)

    class Meta:
        ordering = ["sponsor_due_at"]

    def __str__(self) -> str:
        return f"SAE report of {self.adverse_event}"

    def audit_site_code(self) -> str:
        return self.adverse_event.participant.site.code


class SAEFollowUp(AuditedModel):
    """Information received after the initial report (the sponsor gets it as it arrives)."""

    report = models.ForeignKey(SAEReport, on_delete=models.PROTECT, related_name="follow_ups")
    received_at = models.DateTimeField()
    information = models.TextField()
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["received_at", "pk"]

    def __str__(self) -> str:
        return f"follow-up of {self.report}"

    def audit_site_code(self) -> str:
        return self.report.adverse_event.participant.site.code


class StoppingRuleEvent(AuditedModel):
    """A stopping rule of the protocol reached its threshold: dosing halts for DSMB review.

    Recorded once per rule; its existence is the study flag shown on the safety dashboard.
    Lifting the halt is a DSMB/sponsor decision outside this platform, recorded in
    ``lifted_at``/``lifted_reason`` when it is made.
    """

    rule_id = models.CharField(max_length=64)
    description = models.TextField()
    triggered_at = models.DateTimeField()
    count = models.PositiveIntegerField()
    threshold = models.PositiveIntegerField()
    counted_sae_ids = models.JSONField(default=list)
    trigger_event = models.ForeignKey(AdverseEvent, null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="+")
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_reason = models.TextField(blank=True)
    protocol_version = models.CharField(max_length=20)

    class Meta:
        ordering = ["triggered_at"]

    def __str__(self) -> str:
        return f"stopping rule {self.rule_id} triggered"


class DSMBReportKind(models.TextChoices):
    OPEN = "open", "Open report (pooled)"
    CLOSED = "closed", "Closed report (by arm)"


class DSMBReportRun(AuditedModel):
    """Who generated which DSMB report when: a closed report is unblinded data, so each run is kept."""

    kind = models.CharField(max_length=8, choices=DSMBReportKind.choices)
    output_format = models.CharField(max_length=8)
    generated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    generated_at = models.DateTimeField()
    masking_mode = models.CharField(max_length=20)
    sha256 = models.CharField(max_length=64)
    protocol_version = models.CharField(max_length=20)

    class Meta:
        ordering = ["-generated_at"]

    def __str__(self) -> str:
        return f"{self.kind} DSMB report ({self.output_format}) of {self.generated_at:%Y-%m-%d %H:%M}"


class TermDictionary(AuditedModel):
    """An adverse-event dictionary file a site imported (full CTCAE or a MedDRA extract).

    The terms themselves are reference data (:class:`DictionaryTerm`, not audited one by
    one); this header records who imported which file (by SHA-256) and when.
    """

    name = models.CharField(max_length=200)
    filename = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    term_count = models.PositiveIntegerField()
    imported_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    imported_at = models.DateTimeField()
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["-imported_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.term_count} terms)"


class DictionaryTerm(models.Model):
    """One term of an imported dictionary."""

    dictionary = models.ForeignKey(TermDictionary, on_delete=models.CASCADE, related_name="terms")
    term = models.CharField(max_length=250)
    term_key = models.CharField(max_length=250, db_index=True)
    code = models.CharField(max_length=32, blank=True, db_index=True)
    soc = models.CharField(max_length=200, blank=True)
    term_ru = models.CharField(max_length=250, blank=True)

    class Meta:
        ordering = ["dictionary", "term"]

    def __str__(self) -> str:
        return self.term


class SafetyNotification(AuditedModel):
    """One notification sent (or attempted): evidence of who was told what and when.

    Recipients are stored by username; the message itself is not kept (it is rebuilt from
    the records on demand, and keeping it would copy clinical text into a second place).
    """

    audit_reason_required: ClassVar[bool] = False

    kind = models.CharField(max_length=40)
    report = models.ForeignKey(SAEReport, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="notifications")
    stopping_event = models.ForeignKey(StoppingRuleEvent, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="notifications")
    subject = models.CharField(max_length=250)
    recipients = models.JSONField(default=list)
    sent_at = models.DateTimeField()
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-sent_at"]

    def __str__(self) -> str:
        return f"{self.kind} notification: {self.subject}"

    def audit_site_code(self) -> str:
        return self.report.adverse_event.participant.site.code if self.report_id else ""
