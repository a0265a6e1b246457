"""The whole trial, played through the real services in simulated time.

Virtual patients (``patients.py``) are screened, consented, evaluated, signed off,
randomized, infused and followed for a year; visits slip within their windows; values
that look implausible are confirmed and questioned; monitors query, verify and close;
investigators sign; the data manager locks. Every step calls the same service functions
the web pages call (never a direct table write of trial data), so validation, permissions
and the audit trail are exercised exactly as in use.

Services stamp the current time (consent, randomization, audit entries), so the trial is
a discrete-event simulation: events sit in a queue ordered by their moment, the clock is
moved to each moment (``time_machine``) and the event runs; an event may schedule later
ones (randomization schedules the visits). The trial is placed in the past so that it is
over by today.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import time_machine

from ildtrial.simulate import patients

#: How long after a visit the monitor looks at its forms, and how long answers take.
MONITORING_INTERVAL_DAYS = 28
QUERY_FRACTION = 0.08
SCREENING_INTERVAL_DAYS = 9


@dataclass
class Actor:
    """A member of the trial team as the simulator uses them: the account and its password."""

    user: Any
    password: str


@dataclass
class TrialRun:
    """What the simulated trial did, counted from the services' results."""

    candidates: int = 0
    screen_failures: int = 0
    randomized: int = 0
    forms_saved: int = 0
    warnings_confirmed: int = 0
    queries_raised: int = 0
    queries_answered: int = 0
    queries_closed: int = 0
    adverse_events: int = 0
    serious_adverse_events: int = 0
    deaths: int = 0
    withdrawals: int = 0
    completed: int = 0
    visits_missed: int = 0
    deviations: int = 0
    signatures: int = 0
    failure_reasons: Counter = field(default_factory=Counter)
    first_day: date | None = None
    last_day: date | None = None

    def lines(self) -> list[str]:
        return [
            f"candidates screened        {self.candidates} ({self.screen_failures} screen failures)",
            f"randomized                 {self.randomized}",
            f"forms saved                {self.forms_saved} ({self.warnings_confirmed} implausible values confirmed)",
            f"queries                    {self.queries_raised} raised, {self.queries_answered} answered, "
            f"{self.queries_closed} closed",
            f"adverse events             {self.adverse_events} ({self.serious_adverse_events} serious)",
            f"deaths / withdrawals       {self.deaths} / {self.withdrawals}; completed {self.completed}",
            f"missed visits, deviations  {self.visits_missed}, {self.deviations}",
            f"signatures                 {self.signatures}",
            f"trial period               {self.first_day} to {self.last_day}",
        ]


class Simulation:
    """One simulated trial: an event queue, a clock, the team and the virtual patients."""

    def __init__(self, team: dict[str, Actor], *, seed: int, n_randomized: int, start: date,
                 params: patients.SimulationParameters | None = None, progress: Callable[[str], None] | None = None):
        from ildtrial.edc.study.models import Site
        from ildtrial.edc.study.protocol import current_protocol

        self.team = team
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.params = params or patients.default_parameters()
        self.n_randomized = n_randomized
        self.start = start
        self.protocol = current_protocol()
        self.site = Site.objects.get(code=self.protocol.identity.sites[0].code)
        self.tz = ZoneInfo(self.site.timezone)
        self.queue: list[tuple[datetime, int, Callable[[], None]]] = []
        self.counter = itertools.count()
        self.run = TrialRun()
        self.progress = progress or (lambda _message: None)
        self.candidate_pool: list[patients.VirtualCandidate] = []
        self.randomizing_closed = False
        self.pending_monitoring = False

    # ------------------------------------------------------------------ the clock
    def at(self, day: date, hour: float, action: Callable[[], None]) -> None:
        minutes = int(round(hour * 60))
        moment = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=self.tz)
        heapq.heappush(self.queue, (moment, next(self.counter), action))

    def play(self) -> TrialRun:
        from django.db import transaction

        from ildtrial.edc.audit.context import acting_as

        self.run.first_day = self.start
        while self.queue:
            moment, _, action = heapq.heappop(self.queue)
            with time_machine.travel(moment, tick=False), acting_as(None, source="simulation"), \
                    transaction.atomic():
                action()
            self.run.last_day = moment.date()
        return self.run

    def as_(self, role: str):  # noqa: ANN201
        from ildtrial.edc.audit.context import acting_as

        return acting_as(self.team[role].user, source="simulation")

    # ------------------------------------------------------------------ screening
    def next_candidate(self) -> patients.VirtualCandidate:
        if not self.candidate_pool:
            self.candidate_pool = patients.generate_candidates(20, self.rng, self.params,
                                                               id_prefix=f"S{self.seed % 1000:03d}")
        return self.candidate_pool.pop(0)

    def schedule_screening(self, day: date) -> None:
        self.at(day, 9.0, lambda: self.screen(day))

    def screen(self, day: date) -> None:
        from ildtrial.edc.participants import services as participants

        if self.randomizing_closed:
            return
        candidate = self.next_candidate()
        coordinator = self.team["study_coordinator"].user
        with self.as_("study_coordinator"):
            participant = participants.register_candidate(coordinator, self.site, day)
            participants.record_consent(coordinator, participant, form_version="ICF v2.1 (ru)",
                                        signed_at=datetime.combine(day, time(8, 45), tzinfo=self.tz))
        self.run.candidates += 1
        data = _shift_dates(candidate.eligibility_dict(), candidate.screening_date, day)
        self.enter_screening_forms(participant, data, candidate, day)
        self.at(day + timedelta(days=1), 11.0, lambda: self.sign_eligibility(participant.pk, candidate))
        self.schedule_screening(day + timedelta(days=int(self.rng.integers(3, SCREENING_INTERVAL_DAYS + 1))))

    def enter_screening_forms(self, participant: Any, data: dict[str, Any], candidate: Any, day: date) -> None:
        from ildtrial.edc.crfs.services import mark_not_done

        visit = participant.visits.get(code="SCR")
        for code in ("DM", "DX", "SPIRO", "DLCO", "EXCL"):
            if code in data:
                self.save(participant, visit, code, data[code])
        for code in ("PRIORLF", "PROHIB"):
            rows = data.get(code) or []
            for row in rows:
                self.save(participant, visit, code, row)
            if not rows:
                from ildtrial.edc.screening.services import NONE_REPORTED

                with self.as_("study_coordinator"):
                    mark_not_done(self.team["study_coordinator"].user, participant, visit, code, NONE_REPORTED)
        self.save(participant, visit, "SIXMWT", {
            "test_date": day.isoformat(), "distance_m": str(int(round(candidate.six_mwd_m))), "oxygen_used": "false",
            "spo2_rest": "94", "spo2_nadir": str(int(self.rng.integers(82, 92))), "stops": "0"})
        self.save(participant, visit, "VS", self.vitals(day))

    def sign_eligibility(self, participant_pk: int, candidate: Any) -> None:
        from ildtrial.edc.participants.models import Participant
        from ildtrial.edc.screening import services as screening

        participant = Participant.objects.get(pk=participant_pk)
        assessment = screening.latest(participant)
        investigator = self.team["investigator"]
        if assessment is None or assessment.status == "incomplete":
            with self.as_("study_coordinator"):
                screening.record_screen_failure(self.team["study_coordinator"].user, participant,
                                                "screening data incomplete")
            self.run.screen_failures += 1
            return
        with self.as_("investigator"):
            screening.confirm(investigator.user, assessment, investigator.password)
        participant.refresh_from_db()
        if participant.status == "screen_failed":
            self.run.screen_failures += 1
            for reason in assessment.verdict.get("reasons", []):
                self.run.failure_reasons[reason["criterion"]] += 1
            return
        if self.run.randomized >= self.n_randomized:
            with self.as_("study_coordinator"):
                screening.record_screen_failure(self.team["study_coordinator"].user, participant,
                                                "eligible, but enrolment was complete")
            self.run.screen_failures += 1
            return
        self.at(participant.screening_date + timedelta(days=2), 12.0,
                lambda: self.randomize(participant.pk, candidate))

    def randomize(self, participant_pk: int, candidate: Any) -> None:
        from ildtrial.edc.participants.models import Participant
        from ildtrial.edc.randomization import services as randomization

        participant = Participant.objects.get(pk=participant_pk)
        with self.as_("study_coordinator"):
            slot = randomization.randomize(self.team["study_coordinator"].user, participant)
        self.run.randomized += 1
        if self.run.randomized >= self.n_randomized:
            self.randomizing_closed = True
        self.progress(f"randomized {self.run.randomized}/{self.n_randomized}")
        # nature decides the course: the truth of the simulation may use the arm
        trajectory = patients.simulate_trajectories([candidate], [slot.arm], self.rng, self.params)
        day0 = participant.screening_date + timedelta(days=int(self.rng.integers(5, 15)))
        self.schedule_visit(participant.pk, "C1A", day0, trajectory, slot.arm, day0)
        for event in patients.simulate_adverse_events(trajectory, self.rng, self.params):
            onset = day0 + timedelta(days=int(event.onset_day))
            self.at(onset + timedelta(days=1), 9.5, lambda e=event, d=onset: self.adverse_event(participant.pk, e, d))

    # ------------------------------------------------------------------ safety
    def adverse_event(self, participant_pk: int, event: Any, onset: date) -> None:
        """The site learns of the event the next morning and reports it; SAEs go on to the sponsor."""
        from ildtrial.edc.participants.models import Participant
        from ildtrial.edc.safety import services as safety

        participant = Participant.objects.get(pk=participant_pk)
        if onset > self.clock_today():
            return
        onset_time = None
        if event.hours_after_infusion is not None:
            minutes = int(10 * 60 + float(event.hours_after_infusion) * 60) % (24 * 60)
            onset_time = time(minutes // 60, minutes % 60).isoformat(timespec="minutes")
        fatal = event.outcome == "fatal"
        values: dict[str, Any] = {
            "verbatim_term": event.term.lower(), "coded_term": event.term, "onset_date": onset.isoformat(),
            "onset_time": onset_time, "grade": event.grade, "serious": event.serious,
            "relatedness_product": str(event.relatedness_product),
            "relatedness_procedure": str(event.relatedness_procedure),
            "action_taken": "none", "outcome": "fatal" if fatal else "recovering",
            "resolution_date": onset.isoformat() if fatal else None,
        }
        for criterion in event.seriousness:
            values[f"sae_{criterion}"] = True
        if event.serious:
            values["awareness_at"] = datetime.combine(self.clock_today(), time(9, 0), tzinfo=self.tz).isoformat()
            values["narrative"] = f"{event.term} (grade {event.grade}) on study day {int(event.onset_day)}."
        with self.as_("study_coordinator"):
            ae = safety.report_adverse_event(self.team["study_coordinator"].user, participant, values)
        self.run.adverse_events += 1
        if event.outcome == "recovered":
            resolved = onset + timedelta(days=int(self.rng.integers(1, 4)))
            self.at(resolved + timedelta(days=1), 9.75,
                    lambda: self.resolve(ae.pk, {**values, "outcome": "recovered",
                                                 "resolution_date": resolved.isoformat()}))
        if ae.serious:
            self.run.serious_adverse_events += 1
            self.at(self.clock_today(), 15.0, lambda: self.process_sae(ae.pk))

    def resolve(self, ae_pk: int, values: dict[str, Any]) -> None:
        from ildtrial.edc.safety import services as safety
        from ildtrial.edc.safety.models import AdverseEvent

        ae = AdverseEvent.objects.get(pk=ae_pk)
        if ae.participant.status not in ("randomized", "completed"):
            return
        values = {**values, "expectedness": ae.expectedness or ""}
        with self.as_("study_coordinator"):
            safety.update_adverse_event(self.team["study_coordinator"].user, ae, values, reason="event resolved")

    def process_sae(self, ae_pk: int) -> None:
        from ildtrial.edc.safety import services as safety
        from ildtrial.edc.safety.models import AdverseEvent

        report = AdverseEvent.objects.get(pk=ae_pk).sae_report
        now = datetime.now(tz=self.tz)
        with self.as_("study_coordinator"):
            safety.record_submission(self.team["study_coordinator"].user, report, "sponsor", now)
        related = report.adverse_event.relatedness_product in ("possible", "probable", "definite")
        with self.as_("investigator"):
            report = safety.assess_susar(self.team["investigator"].user, report,
                                         relatedness_product=report.adverse_event.relatedness_product,
                                         expectedness="unexpected" if related else "expected")
            if report.susar:
                safety.record_submission(self.team["investigator"].user, report, "regulatory", now)

    # ------------------------------------------------------------------ follow-up
    def visit(self, participant_pk: int, code: str, day: date, trajectory: Any, arm: str, day0: date) -> None:
        from ildtrial.edc.participants.models import Participant
        from ildtrial.edc.visits import services as visits

        participant = Participant.objects.get(pk=participant_pk)
        if participant.status not in ("randomized",):
            return
        study_day = (day - day0).days
        # death or withdrawal ends follow-up early; the planned end (day 364) does not,
        # because the week-52 visit may fall inside its window after it
        left_on = min(float(trajectory.death_day[0]), float(trajectory.withdrawal_day[0]))
        if study_day > left_on:
            self.end_of_study(participant, trajectory, day0)
            return
        assessment = code in trajectory.visit_labels
        if assessment and code != self.protocol.schedule.day_zero:
            index = trajectory.visit_labels.index(code)
            if not bool(trajectory.observed[0, index]):
                with self.as_("study_coordinator"):
                    visits.mark_missed(self.team["study_coordinator"].user, participant, code,
                                       "participant unable to attend")
                self.run.visits_missed += 1
                self.schedule_next(participant.pk, code, day, trajectory, arm, day0)
                return
        with self.as_("study_coordinator"):
            visit = visits.record_visit(self.team["study_coordinator"].user, participant, code, day)
        self.run.deviations += visit.deviations.count()
        for form_code in self.protocol.visit(code).forms:
            values = self.form_values(form_code, code, day, trajectory, arm, participant)
            if values is not None:
                self.save(participant, visit, form_code, values)
        if code == self.protocol.schedule.visits[-1].code:
            self.run.completed += 1
        self.schedule_monitoring(day)
        self.schedule_next(participant.pk, code, day, trajectory, arm, day0)

    def schedule_next(self, participant_pk: int, code: str, day: date, trajectory: Any, arm: str, day0: date) -> None:
        visits = self.protocol.schedule.visits
        index = [v.code for v in visits].index(code)
        if index + 1 >= len(visits):
            return
        nxt = visits[index + 1]
        base = day0 if nxt.anchor == "day0" else day
        slip = int(self.rng.integers(-nxt.window.before, nxt.window.after + 1)) if self.rng.random() < 0.7 else 0
        if self.rng.random() < 0.03:
            slip = nxt.window.after + 2  # now and then a visit falls outside its window
        target = base + timedelta(days=nxt.day + slip)
        self.schedule_visit(participant_pk, nxt.code, target, trajectory, arm, day0)

    def schedule_visit(self, participant_pk: int, code: str, day: date, trajectory: Any, arm: str, day0: date) -> None:
        """The visit at 10:00; for an infusion visit the cell lab prepares the bag at 08:30 that day."""
        if self.protocol.visit(code).infusion:
            self.at(day, 8.5, lambda: self.prepare_bag(participant_pk, code, day, trajectory, arm, day0))
        self.at(day, 10.0, lambda: self.visit(participant_pk, code, day, trajectory, arm, day0))

    def will_attend(self, participant: Any, code: str, day: date, trajectory: Any, day0: date) -> bool:
        """Whether the participant comes to this visit (alive, not withdrawn, not missing it)."""
        if participant.status != "randomized":
            return False
        left_on = min(float(trajectory.death_day[0]), float(trajectory.withdrawal_day[0]))
        if (day - day0).days > left_on:
            return False
        if code in trajectory.visit_labels and code != self.protocol.schedule.day_zero:
            return bool(trajectory.observed[0, trajectory.visit_labels.index(code)])
        return True

    def prepare_bag(self, participant_pk: int, code: str, day: date, trajectory: Any, arm: str, day0: date) -> None:
        from ildtrial.edc.cellproduct import services as cells
        from ildtrial.edc.participants.models import Participant

        participant = Participant.objects.get(pk=participant_pk)
        if not self.will_attend(participant, code, day, trajectory, day0):
            return
        lab = self.team["cell_lab"].user
        now = datetime.now(tz=self.tz)
        with self.as_("cell_lab"):
            if arm == "MSC":
                lot = next(iter(cells.usable_lots(day)), None)
                cells.record_preparation(
                    lab, participant, code, prepared_at=now, location=CELL_STORE, lot=lot, vials_thawed=2,
                    thawed_at=now - timedelta(minutes=35),
                    post_thaw_viability_percent=f"{self.rng.uniform(82, 95):.1f}",
                    cell_count_millions=f"{self.rng.uniform(192, 208):.1f}", volume_ml="400")
            else:
                cells.record_preparation(lab, participant, code, prepared_at=now, location=CELL_STORE,
                                         saline_batch=f"NaCl-{day.year}-{day.month:02d}", volume_ml="400")

    def end_of_study(self, participant: Any, trajectory: Any, day0: date) -> None:
        from ildtrial.edc.visits import services as visits

        died = float(trajectory.death_day[0]) <= float(trajectory.withdrawal_day[0])
        end = day0 + timedelta(days=int(min(float(trajectory.death_day[0]), float(trajectory.withdrawal_day[0]))))
        end = min(end, self.clock_today())
        reason = "end of study: death" if died else "end of study: withdrawal"
        with self.as_("study_coordinator"):
            visit = visits.add_unscheduled(self.team["study_coordinator"].user, participant, end, reason)
        values = {"end_date": end.isoformat(), "status": "DEATH" if died else "WITHDRAWN"}
        if died:
            values.update(death_date=end.isoformat(), death_cause="Progression of respiratory failure")
            self.run.deaths += 1
        else:
            values["comment"] = "Withdrew consent"
            self.run.withdrawals += 1
        self.save(participant, visit, "EOS", values)

    def clock_today(self) -> date:
        from django.utils import timezone

        return timezone.localdate()

    # ------------------------------------------------------------------ form values
    def vitals(self, day: date, fever: bool = False) -> dict[str, str]:
        r = self.rng
        return {"assessment_date": day.isoformat(),
                "temperature_c": f"{(38.4 if fever else 36.6) + r.normal(0, 0.2):.1f}",
                "heart_rate": str(int(r.normal(80, 8))), "systolic_bp": str(int(r.normal(128, 10))),
                "diastolic_bp": str(int(r.normal(78, 6))), "respiratory_rate": str(int(r.normal(18, 2))),
                "spo2": str(int(min(99, r.normal(93, 2))))}

    def form_values(self, form_code: str, visit_code: str, day: date, trajectory: Any, arm: str,
                    participant: Any) -> dict[str, str] | None:
        r = self.rng
        iso = day.isoformat()
        index = trajectory.visit_labels.index(visit_code) if visit_code in trajectory.visit_labels else None
        if form_code == "VS":
            return self.vitals(day)
        if form_code == "INF":
            pre = self.vitals(day)
            post_fever = arm == "MSC" and r.random() < 0.15
            post = self.vitals(day, fever=post_fever)
            from ildtrial.edc.cellproduct.models import Preparation

            bag = Preparation.objects.filter(participant=participant, visit_code=visit_code).order_by("-pk").first()
            return {"bag_id": bag.bag_id if bag else "", "infusion_date": iso,
                    "start_time": "10:00", "stop_time": "11:10", "volume_ml": "400", "interrupted": "false",
                    **{f"pre_{k}": v for k, v in pre.items() if k != "assessment_date"},
                    **{f"post_{k}": v for k, v in post.items() if k != "assessment_date"},
                    "reaction": "true" if post_fever else "false", "check_24h_done": "true",
                    "check_24h_reaction": "false"}
        if index is None:
            return None
        if form_code == "SPIRO":
            fvc = float(trajectory.fvc_ml[0, index]) / 1000
            if not math.isfinite(fvc):
                return None
            ratio = min(0.95, max(0.72, r.normal(0.84, 0.04)))
            return {"test_date": iso, "fvc_l": f"{fvc:.2f}", "fev1_l": f"{fvc * ratio:.2f}"}
        if form_code == "DLCO":
            dlco = float(trajectory.dlco[0, index])
            return None if not math.isfinite(dlco) else {"test_date": iso, "dlco": f"{dlco:.1f}",
                                                           "dlco_unit": "mL/min/mmHg"}
        if form_code == "SIXMWT":
            walk = float(trajectory.six_mwd_m[0, index])
            return None if not math.isfinite(walk) else {
                "test_date": iso, "distance_m": str(max(0, int(round(walk)))), "oxygen_used": "false",
                "spo2_rest": "94", "spo2_nadir": str(int(r.integers(80, 92))), "stops": "0"}
        if form_code == "LAB":
            return {"sample_date": iso, "haemoglobin_g_dl": f"{r.normal(13.4, 1.0):.1f}",
                    "wbc_10e9_l": f"{r.normal(7.5, 1.5):.1f}", "platelets_10e9_l": str(int(r.normal(250, 50))),
                    "creatinine_umol_l": str(int(r.normal(85, 12))), "alt_u_l": str(int(r.normal(24, 6))),
                    "ast_u_l": str(int(r.normal(26, 6))), "crp_mg_l": f"{abs(r.normal(5, 3)):.1f}"}
        if form_code == "HRCT":
            return {"scan_date": iso, "pattern": str(r.choice(["UIP", "PROBABLE_UIP", "NSIP"])),
                    "fibrosis_extent_percent": str(int(r.integers(15, 45)))}
        if form_code == "EOS":
            return {"end_date": iso, "status": "COMPLETED"}
        return None

    def save(self, participant: Any, visit: Any, form_code: str, values: dict[str, Any]) -> Any:
        """Save as the coordinator would: confirm implausible values after a second look."""
        from ildtrial.edc.crfs.services import save_form

        coordinator = self.team["study_coordinator"].user
        with self.as_("study_coordinator"):
            outcome = save_form(coordinator, participant, visit, form_code, values)
            if not outcome.saved and outcome.needs_confirmation and not any(
                    i.severity == "error" for i in outcome.issues):
                outcome = save_form(coordinator, participant, visit, form_code, values,
                                    confirmed=outcome.needs_confirmation)
                self.run.warnings_confirmed += len(outcome.needs_confirmation or []) or 1
        if not outcome.saved:
            problems = "; ".join(i.message for i in outcome.issues if i.severity == "error")
            raise RuntimeError(f"simulated {form_code} for {participant} refused: {problems}")
        self.run.forms_saved += 1
        if form_code == "SPIRO" and visit.code != "SCR" and self.rng.random() < QUERY_FRACTION:
            day = visit.actual_date + timedelta(days=int(self.rng.integers(2, 6)))
            self.at(day, 15.0, lambda: self.manual_query(outcome.form.pk))
        return outcome.form

    # ------------------------------------------------------------------ monitoring
    def manual_query(self, form_pk: int) -> None:
        from ildtrial.edc.crfs.models import FormInstance
        from ildtrial.edc.queries import services as queries

        form = FormInstance.objects.get(pk=form_pk)
        with self.as_("monitor"):
            queries.raise_query(self.team["monitor"].user, form, "fvc_l",
                                "Please confirm FVC against the spirometer printout.")
        self.run.queries_raised += 1

    def schedule_monitoring(self, day: date) -> None:
        if not self.pending_monitoring:
            self.pending_monitoring = True
            self.at(day + timedelta(days=MONITORING_INTERVAL_DAYS), 14.0, self.monitoring_round)

    def monitoring_round(self) -> None:
        """Answer and close queries, verify source data, sign what is ready."""
        from ildtrial.edc.crfs import lifecycle
        from ildtrial.edc.crfs.models import FormInstance, FormStatus
        from ildtrial.edc.queries import services as queries
        from ildtrial.edc.queries.models import Query, QueryState

        self.pending_monitoring = False
        for query in Query.objects.filter(state=QueryState.OPEN).select_related("participant"):
            with self.as_("study_coordinator"):
                queries.answer(self.team["study_coordinator"].user, query,
                               "Checked against the source document: the value is correct.")
            self.run.queries_answered += 1
        for query in Query.objects.filter(state=QueryState.ANSWERED):
            with self.as_("monitor"):
                queries.close(self.team["monitor"].user, query, "Answer accepted.")
            self.run.queries_closed += 1
        monitor = self.team["monitor"].user
        for form in FormInstance.objects.filter(status=FormStatus.COMPLETE).select_related("participant__site"):
            outstanding = lifecycle.outstanding_verifications(form)
            if outstanding:
                with self.as_("monitor"):
                    lifecycle.verify(monitor, form, outstanding)
        ready = [f for f in FormInstance.objects.filter(status__in=(FormStatus.COMPLETE, FormStatus.VERIFIED))
                 .select_related("participant__site")
                 if not lifecycle.required_verifications(f) or f.status == FormStatus.VERIFIED]
        ready = [f for f in ready if not f.queries.filter(state__in=queries.UNRESOLVED).exists()]
        investigator = self.team["investigator"]
        with self.as_("investigator"):
            self.run.signatures += len(lifecycle.sign_forms(investigator.user, ready, investigator.password))

    def close_out(self) -> None:
        """After the last visit: a final monitoring round, form locks and the database lock."""
        from ildtrial.edc.crfs import lifecycle, locking
        from ildtrial.edc.crfs.models import FormInstance, FormStatus

        self.monitoring_round()
        with self.as_("data_manager"):
            for form in FormInstance.objects.filter(status=FormStatus.SIGNED):
                lifecycle.lock_form(self.team["data_manager"].user, form, "database lock at end of study")
            locking.set_lock(self.team["data_manager"].user, True, "end of study: database lock for analysis")


CELL_STORE = "LN2 tank 1"
RELEASE_RESULTS = {
    "viability": ("93", "%"), "sterility": ("no growth", ""), "mycoplasma": ("not detected", ""),
    "endotoxin": ("0.1", "EU/mL"), "cd73": ("98.7", "%"), "cd90": ("99.2", "%"), "cd105": ("97.5", "%"),
    "cd34": ("0.4", "%"), "cd45": ("0.6", "%"),
}


def stock_cell_lab(lab: Actor, start: date, *, n_lots: int) -> None:
    """Donor lots received, tested and released by the qualified person before the first screening."""
    from ildtrial.edc.audit.context import acting_as
    from ildtrial.edc.cellproduct import services as cells

    with acting_as(lab.user, source="simulation"):
        for k in range(1, n_lots + 1):
            donor = cells.register_donor(lab.user, f"DN-{k:04d}")
            lot = cells.register_lot(lab.user, donor, number=f"MSC-{start.year}-{k:03d}",
                                     manufactured_on=start - timedelta(days=40), expires_on=start + timedelta(days=900),
                                     cells_per_vial_millions="100", vials=60, location=CELL_STORE)
            for kind, (value, unit) in RELEASE_RESULTS.items():
                cells.record_release_test(lab.user, lot, kind, passed=True, value=value, unit=unit,
                                          tested_on=start - timedelta(days=20))
            cells.release_lot(lab.user, lot, lab.password)


def _shift_dates(data: Any, original: date, target: date) -> Any:
    """Move every ISO date in the candidate's data by the same number of days."""
    shift = target - original
    if isinstance(data, np.generic):
        return data.item()
    if isinstance(data, str) and len(data) >= 10 and data[4:5] == "-" and data[7:8] == "-":
        try:
            moved = date.fromisoformat(data[:10]) + shift
        except ValueError:
            return data
        return moved.isoformat() + data[10:]
    if isinstance(data, dict):
        return {k: _shift_dates(v, original, target) for k, v in data.items()}
    if isinstance(data, list):
        return [_shift_dates(v, original, target) for v in data]
    return data


def simulate_trial(team: dict[str, Actor], *, seed: int = 20151102, n_randomized: int = 20,
                   start: date | None = None, params: patients.SimulationParameters | None = None,
                   progress: Callable[[str], None] | None = None) -> TrialRun:
    """Play a whole trial into the database through the services; returns what happened.

    ``team`` maps role names (investigator, study_coordinator, monitor, data_manager,
    unblinded_statistician, cell_lab) to actors with their passwords (signatures need them).
    """
    from django.utils import timezone

    from ildtrial.edc.randomization import services as randomization

    today = timezone.localdate()
    start = start or today - timedelta(days=640)
    sim = Simulation(team, seed=seed, n_randomized=n_randomized, start=start, params=params, progress=progress)
    with time_machine.travel(datetime.combine(start - timedelta(days=3), time(10), tzinfo=sim.tz), tick=False):
        from ildtrial.edc.audit.context import acting_as

        statistician = team["unblinded_statistician"].user
        with acting_as(statistician, source="simulation"):
            randomization.generate(statistician, seed=seed)
        # every participant could be on cells: 8 infusions of 2 vials each, 60 vials a lot
        stock_cell_lab(team["cell_lab"], start, n_lots=max(2, math.ceil(n_randomized * 8 * 2 / 60)))
    sim.schedule_screening(start)
    sim.play()
    end = max(sim.run.last_day or start, start) + timedelta(days=30)
    if end > today:
        end = today
    with time_machine.travel(datetime.combine(end, time(16), tzinfo=sim.tz), tick=False):
        from ildtrial.edc.audit.context import acting_as

        with acting_as(None, source="simulation"):
            sim.close_out()
    sim.run.last_day = end
    return sim.run
