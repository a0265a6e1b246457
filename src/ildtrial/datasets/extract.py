"""EDC → raw frames: the only module of :mod:`ildtrial.datasets` that touches Django.

It reads every participant (screening attempts included, for the CONSORT diagram), the
allocation, visits, the forms the analysis datasets use (long format, stored values and
derived values), adverse events, consents and the latest eligibility verdicts, and returns
them as :class:`~ildtrial.datasets.raw.RawData`. No filtering by user happens here:
whether a report may show arms is decided by the caller, which builds blinded reports from
:meth:`RawData.without_allocation`.

Derived values (% predicted and the like) are those stored with each form at entry. A
lung-function form stored without them (an import, or a record created before the
derivation existed) gets them recomputed by the same code the form page uses
(:func:`ildtrial.edc.crfs.services.derived_values`), so the analysis never depends on how a
record arrived.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from typing import Any

from django.utils import timezone

from ildtrial.datasets.raw import RawData, Snapshot, StudyConfig, raw_frame

__all__ = ["EXTRACTED_FORMS", "extract_raw", "take_snapshot"]

#: Forms the analysis datasets read.
EXTRACTED_FORMS: tuple[str, ...] = ("DM", "DX", "SPIRO", "DLCO", "SIXMWT", "INF", "EOS")
_DERIVED_FORMS = frozenset({"SPIRO", "DLCO", "SIXMWT"})


def _local_date(moment: Any) -> str | None:
    if moment is None:
        return None
    return timezone.localtime(moment).date().isoformat()


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _scalar(value: Any) -> Any:
    """A stored JSON value as a raw cell: scalars as they are, structures as JSON text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _derived(form: Any) -> dict[str, Any]:
    """Derived values of a lung-function form: as stored, else recomputed from the entered data."""
    if form.derived or form.form_code not in _DERIVED_FORMS:
        return dict(form.derived or {})
    from ildtrial.core import crf
    from ildtrial.edc.crfs.services import derived_values
    from ildtrial.edc.study.protocol import current_protocol

    try:
        definition = current_protocol().form(form.form_code)
    except KeyError:  # a form the protocol in force no longer has: nothing to derive
        return {}
    cleaned = crf.validate_form(definition, form.data, today=timezone.localdate()).cleaned
    return derived_values(form.participant, definition, cleaned)


def _form_rows(forms: Iterable[Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for form in forms:
        ident = {
            "subject": form.participant.screening_number,
            "visit": form.visit.code,
            "visit_date": _iso(form.visit.actual_date),
            "unscheduled": bool(form.visit.unscheduled),
            "form": form.form_code,
            "instance": int(form.instance),
            "status": form.status,
        }
        if form.status == "not_done":
            rows.append({**ident, "source": "data", "field": None, "value": None, "method": None})
            continue
        for field, value in sorted((form.data or {}).items()):
            rows.append({**ident, "source": "data", "field": field, "value": _scalar(value)})
        for field, value in sorted(_derived(form).items()):
            if isinstance(value, dict):
                rows.append(
                    {
                        **ident,
                        "source": "derived",
                        "field": field,
                        "value": _scalar(value.get("value")),
                        "method": value.get("method"),
                    }
                )
            else:
                rows.append({**ident, "source": "derived", "field": field, "value": _scalar(value)})
    return rows


def _adverse_event_rows() -> list[dict[str, Any]]:
    try:
        from ildtrial.edc.safety.models import AdverseEvent
    except ImportError:  # pragma: no cover - the safety app is part of every installation
        return []
    rows = []
    for ae in AdverseEvent.objects.select_related("participant").order_by("participant__screening_number",
                                                                            "ae_number"):
        rows.append(
            {
                "subject": ae.participant.screening_number,
                "ae_number": int(ae.ae_number),
                "verbatim_term": ae.verbatim_term,
                "coded_term": ae.coded_term or None,
                "meddra_code": ae.meddra_code or None,
                "soc": ae.soc or None,
                "onset_date": _iso(ae.onset_date),
                "onset_time": ae.onset_time.strftime("%H:%M") if ae.onset_time else None,
                "resolution_date": _iso(ae.resolution_date),
                "ongoing": bool(ae.ongoing),
                "grade": int(ae.grade) if ae.grade is not None else None,
                "serious": bool(ae.serious),
                "sae_death": bool(ae.sae_death),
                "sae_life_threatening": bool(ae.sae_life_threatening),
                "sae_hospitalisation": bool(ae.sae_hospitalisation),
                "sae_disability": bool(ae.sae_disability),
                "sae_congenital_anomaly": bool(ae.sae_congenital_anomaly),
                "sae_important_medical_event": bool(ae.sae_important_medical_event),
                "relatedness_product": ae.relatedness_product or None,
                "relatedness_procedure": ae.relatedness_procedure or None,
                "expectedness": ae.expectedness or None,
                "action_taken": ae.action_taken or None,
                "outcome": ae.outcome or None,
                "infusion_related": bool(ae.infusion_related),
                "infusion_visit": ae.infusion_visit or None,
                "reported_date": _local_date(ae.reported_at),
            }
        )
    return rows


def extract_raw() -> RawData:
    """Read the whole EDC content the analysis needs into raw frames (no masking here)."""
    from ildtrial.edc.crfs.models import FormInstance
    from ildtrial.edc.participants.models import Consent, Participant
    from ildtrial.edc.randomization.models import AllocationSlot
    from ildtrial.edc.screening.models import EligibilityAssessment
    from ildtrial.edc.visits.models import Visit

    participants = [
        {
            "subject": p.screening_number,
            "site": p.site.code,
            "status": p.status,
            "screening_date": _iso(p.screening_date),
            "outcome_reason": p.outcome_reason or None,
            "stratum": p.stratum or None,
            "randomization_number": p.randomization_number or None,
            "randomized_date": _local_date(p.randomized_at),
            "rescreen_of": p.rescreen_of.screening_number if p.rescreen_of_id else None,
            "protocol_version": p.protocol_version,
        }
        for p in Participant.objects.select_related("site", "rescreen_of")
    ]
    allocations = [
        {
            "subject": s.participant.screening_number,
            "arm": s.arm,
            "allocated_date": _local_date(s.allocated_at),
        }
        for s in AllocationSlot.objects.filter(participant__isnull=False).select_related("participant")
    ]
    visits = [
        {
            "subject": v.participant.screening_number,
            "visit": v.code,
            "state": v.state,
            "actual_date": _iso(v.actual_date),
            "unscheduled": bool(v.unscheduled),
        }
        for v in Visit.objects.select_related("participant")
    ]
    forms = _form_rows(
        FormInstance.objects.filter(form_code__in=EXTRACTED_FORMS).select_related("participant", "visit")
    )
    consents = [
        {
            "subject": c.participant.screening_number,
            "form_version": c.form_version,
            "signed_date": _local_date(c.signed_at),
            "withdrawn_date": _local_date(c.withdrawn_at),
            "withdrawal_reason": c.withdrawal_reason or None,
        }
        for c in Consent.objects.select_related("participant")
    ]
    latest: dict[str, Any] = {}
    for a in EligibilityAssessment.objects.select_related("participant").order_by("evaluated_at", "pk"):
        latest[a.participant.screening_number] = a
    screening = []
    for subject, a in latest.items():
        reasons = (a.verdict or {}).get("reasons") or []
        criteria = sorted({str(r.get("criterion")) for r in reasons if isinstance(r, dict) and r.get("criterion")})
        screening.append(
            {
                "subject": subject,
                "status": a.status,
                "evaluated_date": _local_date(a.evaluated_at),
                "failed_criteria": ";".join(criteria) or None,
            }
        )
    return RawData(
        participants=raw_frame("participants", participants),
        allocations=raw_frame("allocations", allocations),
        visits=raw_frame("visits", visits),
        forms=raw_frame("forms", forms),
        aes=raw_frame("aes", _adverse_event_rows()),
        consents=raw_frame("consents", consents),
        screening=raw_frame("screening", screening),
    )


def take_snapshot(*, data_cut: date | None = None) -> Snapshot:
    """The raw data with the protocol in force and the data cut (default: today, site time)."""
    from ildtrial.edc.study.protocol import loaded_protocol

    loaded = loaded_protocol()
    config = StudyConfig.from_protocol(loaded.protocol, loaded.sha256)
    return Snapshot(
        raw=extract_raw(),
        config=config,
        data_cut=data_cut or timezone.localdate(),
        source=f"EDC, protocol {loaded.version}",
    )
