"""Safety e-mails: who is told about a new SAE, a SUSAR, a follow-up, an overdue clock or a
triggered stopping rule, and the log of each sending.

Who must act, and therefore who is told:

* **new SAE, follow-up, overdue sponsor clock** — the investigators of the participant's
  site (principal and sub-investigators: they assess causality and sign the report) and
  every sponsor viewer (the sponsor receives every SAE within 24 h, whatever the site);
* **SUSAR (and its overdue regulatory clocks)** — the same, plus the unblinded
  statistician, who prepares the unblinded information the regulator may ask for;
* **stopping rule triggered** — every investigator of every site (dosing halts
  trial-wide), the sponsor viewers and the DSMB members (who review the halt).

No message ever contains the treatment arm, in any masking mode: an e-mail is forwarded,
printed and archived beyond the reach of the role matrix, so the only safe rule is that
the arm is never written into one. Each recipient gets a separate message (recipients do
not see each other's addresses). A sending failure is recorded on the notification log and
shown on the safety dashboard rather than swallowed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.utils import timezone

from ildtrial.core.roles import Role
from ildtrial.edc.safety.models import SAEReport, SafetyNotification, StoppingRuleEvent
from ildtrial.edc.study.protocol import current_protocol


def _users(**filters: object) -> list:
    from ildtrial.edc.accounts.models import User

    return list(User.objects.filter(is_active=True, **filters).order_by("username"))


def site_investigators(site) -> list:  # noqa: ANN001 - a Site
    """Principal and sub-investigators assigned to the site."""
    return _users(role__in=[Role.INVESTIGATOR, Role.SUB_INVESTIGATOR], sites=site)


def all_investigators() -> list:
    return _users(role__in=[Role.INVESTIGATOR, Role.SUB_INVESTIGATOR])


def sponsor_viewers() -> list:
    return _users(role=Role.SPONSOR_VIEWER)


def dsmb_members() -> list:
    return _users(role=Role.DSMB_MEMBER)


def unblinded_statisticians() -> list:
    return _users(role=Role.UNBLINDED_STATISTICIAN)


def sae_recipients(report: SAEReport) -> list:
    """Site investigators and sponsor viewers (see the module docstring)."""
    return _dedupe([*site_investigators(report.adverse_event.participant.site), *sponsor_viewers()])


def susar_recipients(report: SAEReport) -> list:
    return _dedupe([*sae_recipients(report), *unblinded_statisticians()])


def stopping_rule_recipients() -> list:
    return _dedupe([*all_investigators(), *sponsor_viewers(), *dsmb_members()])


def _dedupe(users: Iterable) -> list:
    seen: set[int] = set()
    out = []
    for u in users:
        if u.pk not in seen:
            seen.add(u.pk)
            out.append(u)
    return out


def local(moment: datetime | None, tz_name: str) -> str:
    """A moment as the site reads it, with the zone named (a deadline without a zone is ambiguous)."""
    if moment is None:
        return "—"
    value = moment.astimezone(ZoneInfo(tz_name))
    return f"{value:%Y-%m-%d %H:%M} {value.tzname()} ({tz_name})"


def _link(path: str) -> str:
    base = getattr(settings, "ILDTRIAL_BASE_URL", "") or os.environ.get("ILDTRIAL_BASE_URL", "")
    return f"{base.rstrip('/')}{path}"


def sae_facts(report: SAEReport) -> list[str]:
    """The lines describing an SAE in a message: identifiers, term, criteria, clocks. Never the arm."""
    ae = report.adverse_event
    p = ae.participant
    tz = report.site_timezone
    lines = [
        f"Participant: {p.label} (site {p.site.code})",
        f"Adverse event: AE {ae.ae_number} — {ae.coded_term} (verbatim: {ae.verbatim_term})",
        f"Onset: {ae.onset_date:%Y-%m-%d}{f' {ae.onset_time:%H:%M}' if ae.onset_time else ''}",
        f"CTCAE grade: {ae.grade}",
        f"Seriousness criteria: {', '.join(ae.criteria_labels) or '—'}",
        f"Relatedness to the product: {ae.get_relatedness_product_display()}; "
        f"to the infusion procedure: {ae.get_relatedness_procedure_display()}",
        f"Expectedness: {ae.get_expectedness_display() or 'not assessed'}",
        f"Outcome: {ae.get_outcome_display()}",
        f"Site aware: {local(report.awareness_at, tz)}",
        f"Report to the sponsor due: {local(report.sponsor_due_at, tz)}",
    ]
    if report.regulatory_due_at:
        lines.append(f"SUSAR report to regulators/ethics due: {local(report.regulatory_due_at, tz)}")
    if report.regulatory_complete_due_at:
        lines.append(f"Complete SUSAR report due: {local(report.regulatory_complete_due_at, tz)}")
    lines.append(f"Report: {_link(f'/safety/sae/{report.pk}/')}")
    return lines


def send(kind: str, subject: str, body: str, users: Iterable, *, report: SAEReport | None = None,
         stopping_event: StoppingRuleEvent | None = None) -> SafetyNotification | None:
    """Send one message per recipient with an address and log the sending (needs an audit context)."""
    recipients = [u for u in _dedupe(users) if u.email]
    if not recipients:
        return None
    registration = current_protocol().identity.registration
    full_subject = f"[{registration}] {subject}"[:250]
    messages = [EmailMessage(subject=full_subject, body=body, to=[u.email]) for u in recipients]
    error = ""
    try:
        get_connection().send_messages(messages)
    except Exception as exc:  # any transport failure: recorded and shown, never silently lost
        error = f"{type(exc).__name__}: {exc}"
    return SafetyNotification.objects.create(
        kind=kind, report=report, stopping_event=stopping_event, subject=full_subject,
        recipients=[u.username for u in recipients], sent_at=timezone.now(), error=error)


def notify_new_sae(report: SAEReport) -> SafetyNotification | None:
    ae = report.adverse_event
    body = "\n".join([
        "A serious adverse event was reported. The site must report it to the sponsor within "
        f"{current_protocol().safety.sponsor_report_hours} hours of becoming aware; the investigator "
        "assesses causality and expectedness (SUSAR assessment).", "", *sae_facts(report)])
    return send("sae_new", f"SAE reported: {ae.participant.label} AE {ae.ae_number} ({ae.coded_term})", body,
                sae_recipients(report), report=report)


def notify_susar(report: SAEReport) -> SafetyNotification | None:
    ae = report.adverse_event
    body = "\n".join([
        "The investigator assessed this serious adverse event as a SUSAR (suspected unexpected serious "
        "adverse reaction). It must be reported to the regulator and the ethics committee by the "
        "deadline below.", "", *sae_facts(report)])
    return send("susar", f"SUSAR: {ae.participant.label} AE {ae.ae_number} ({ae.coded_term})", body,
                susar_recipients(report), report=report)


def notify_follow_up(report: SAEReport, information: str) -> SafetyNotification | None:
    ae = report.adverse_event
    body = "\n".join(["Follow-up information was recorded for this SAE.", "", information.strip(), "",
                      *sae_facts(report)])
    return send("sae_follow_up", f"SAE follow-up: {ae.participant.label} AE {ae.ae_number}", body,
                sae_recipients(report), report=report)


def notify_overdue(report: SAEReport, clock: str, clock_label: str, late_by: str) -> SafetyNotification | None:
    ae = report.adverse_event
    users = susar_recipients(report) if clock.startswith("regulatory") else sae_recipients(report)
    body = "\n".join([f"OVERDUE: {clock_label} is overdue by {late_by}.", "", *sae_facts(report)])
    return send(f"reminder:{clock}", f"OVERDUE {clock_label}: {ae.participant.label} AE {ae.ae_number}", body,
                users, report=report)


def notify_stopping_rule(event: StoppingRuleEvent) -> SafetyNotification | None:
    body = "\n".join([
        f"Stopping rule {event.rule_id} was triggered: {event.description}",
        f"{event.count} serious adverse events counted (threshold {event.threshold}): "
        f"{', '.join(event.counted_sae_ids)}.",
        "Dosing is halted pending DSMB review. Do not give further infusions until the DSMB decides.",
        f"Safety dashboard: {_link('/safety/')}",
    ])
    return send("stopping_rule", f"STOPPING RULE TRIGGERED: {event.rule_id}", body, stopping_rule_recipients(),
                stopping_event=event)
