"""Hand-made raw frames for the dataset and report tests (no database).

``form_rows`` writes one form instance as the long rows extraction produces; ``small_trial``
builds a deterministic little trial (screen failures, a re-screening, deaths, SAEs,
infusion reactions, missed visits) on the real protocol's windows.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import numpy as np

from ildtrial.core.protocol import load_protocol
from ildtrial.datasets.raw import RawData, Snapshot, StudyConfig

DATA_CUT = date(2026, 6, 1)


@lru_cache(maxsize=1)
def config() -> StudyConfig:
    loaded = load_protocol()
    return StudyConfig.from_protocol(loaded.protocol, loaded.sha256)


def form_rows(subject: str, visit: str, visit_date: date | str, form: str, data: dict[str, Any],
              derived: dict[str, Any] | None = None, *, instance: int = 1, status: str = "complete",
              unscheduled: bool = False) -> list[dict[str, Any]]:
    ident = {"subject": subject, "visit": visit, "visit_date": str(visit_date), "unscheduled": unscheduled,
             "form": form, "instance": instance, "status": status}
    rows = [{**ident, "source": "data", "field": k, "value": v} for k, v in data.items()]
    rows += [{**ident, "source": "derived", "field": k, "value": v, "method": "GLI-2012 (Quanjer 2012)"}
             for k, v in (derived or {}).items()]
    return rows


def participant(subject: str, *, status: str = "randomized", screening: date, randomized: date | None,
                number: str | None = None, stratum: str | None = "IIP", rescreen_of: str | None = None,
                reason: str | None = None) -> dict[str, Any]:
    return {"subject": subject, "site": "MOW01", "status": status, "screening_date": screening.isoformat(),
            "outcome_reason": reason, "stratum": stratum if randomized else None,
            "randomization_number": number, "randomized_date": randomized.isoformat() if randomized else None,
            "rescreen_of": rescreen_of, "protocol_version": "1.0"}


def ae(subject: str, number: int, term: str, onset: date | None, *, grade: int = 1, serious: bool = False,
       infusion: bool = False, related: str = "not_related", outcome: str = "recovered",
       resolution: date | None = None, **criteria: bool) -> dict[str, Any]:
    return {"subject": subject, "ae_number": number, "verbatim_term": term.lower(), "coded_term": term,
            "meddra_code": None, "soc": "General disorders" if term in ("Fever", "Chills") else "Respiratory",
            "onset_date": onset.isoformat() if onset else None, "onset_time": "10:00",
            "resolution_date": resolution.isoformat() if resolution else None, "ongoing": resolution is None,
            "grade": grade, "serious": serious, **{f"sae_{k}": v for k, v in criteria.items()},
            "relatedness_product": related, "relatedness_procedure": "not_related", "expectedness": "expected",
            "action_taken": "none", "outcome": outcome, "infusion_related": infusion,
            "infusion_visit": "C1A" if infusion else None, "reported_date": onset.isoformat() if onset else None}


INFUSION_DAYS = (("C1A", 0), ("C1B", 7), ("W13", 91), ("C2B", 98), ("W26", 182), ("C3B", 189),
                 ("W39", 273), ("C4B", 280))
ASSESSMENTS = (("W13", 91), ("W26", 182), ("W39", 273), ("W52", 364))


def small_trial(n_per_arm: int = 4, seed: int = 20240601) -> Snapshot:
    """A deterministic small trial: ``2 * n_per_arm`` randomized participants plus screening log.

    MSC participants gain FVC and walk distance, placebo participants lose them; the last
    placebo participant dies on day 200 and the last MSC participant on day 150 (fatal
    respiratory failure); one SAE (pneumonia) per arm; MSC infusions cause fever the day after.
    """
    rng = np.random.default_rng(seed)
    parts, allocs, forms, aes, visits, screening = [], [], [], [], [], []
    start = date(2025, 1, 6)
    n = 2 * n_per_arm
    for i in range(n):
        subject = f"MOW01-S{i + 1:03d}"
        arm = "MSC" if i % 2 == 0 else "PBO"
        scr = start + timedelta(days=4 * i)
        rnd = scr + timedelta(days=5)
        day0 = rnd + timedelta(days=2)
        dies_on = None
        if i == n - 1:
            dies_on = 200
        elif i == n - 2:
            dies_on = 150
        status = "died" if dies_on else "completed"
        parts.append(participant(subject, status=status, screening=scr, randomized=rnd, number=f"R{i + 1:03d}",
                                 stratum="IIP" if i % 3 else "CTD_ILD"))
        allocs.append({"subject": subject, "arm": arm, "allocated_date": rnd.isoformat()})
        visits.append({"subject": subject, "visit": "SCR", "state": "done", "actual_date": scr.isoformat(),
                       "unscheduled": False})
        sex = "F" if i % 2 else "M"
        forms += form_rows(subject, "SCR", scr, "DM", {"birth_date": f"{1955 + i}-05-20", "sex": sex,
                                                       "height_cm": 160 + 2 * i, "weight_kg": 60 + 3 * i,
                                                       "ethnicity": "caucasian"})
        forms += form_rows(subject, "SCR", scr, "DX", {"diagnosis_group": "IIP" if i % 3 else "CTD_ILD"})
        fvc0 = round(2.0 + 0.1 * i + rng.normal(0, 0.05), 2)
        dlco0 = round(50 + 2 * i + rng.normal(0, 2), 1)
        walk0 = int(300 + 10 * i + rng.normal(0, 10))
        forms += form_rows(subject, "SCR", scr, "SPIRO", {"test_date": scr.isoformat(), "fev1_l": round(fvc0 * 0.8, 2),
                                                          "fvc_l": fvc0}, {"fvc_percent_predicted": round(fvc0 * 30, 3)})
        forms += form_rows(subject, "SCR", scr, "DLCO", {"test_date": scr.isoformat(), "dlco": 10.0},
                           {"dlco_percent_predicted": dlco0})
        forms += form_rows(subject, "SCR", scr, "SIXMWT", {"test_date": scr.isoformat(), "distance_m": walk0})
        slope = 0.15 if arm == "MSC" else -0.2  # L per year
        for code, day in INFUSION_DAYS:
            if dies_on is not None and day > dies_on:
                break
            d = day0 + timedelta(days=day)
            visits.append({"subject": subject, "visit": code, "state": "done", "actual_date": d.isoformat(),
                           "unscheduled": False})
            forms += form_rows(subject, code, d, "INF", {"infusion_date": d.isoformat(), "start_time": "09:00"})
        for code, day in ASSESSMENTS:
            if dies_on is not None and day > dies_on:
                break
            if i == 2 and code == "W26":  # a missed assessment
                continue
            d = day0 + timedelta(days=day)
            t = day / 365.25
            fvc = round(fvc0 + slope * t + rng.normal(0, 0.04), 2)
            forms += form_rows(subject, code, d, "SPIRO", {"test_date": d.isoformat(), "fev1_l": round(fvc * 0.8, 2),
                                                           "fvc_l": fvc}, {"fvc_percent_predicted": round(fvc * 30, 3)})
            forms += form_rows(subject, code, d, "DLCO", {"test_date": d.isoformat(), "dlco": 10.0},
                               {"dlco_percent_predicted": round(dlco0 + (4 if arm == "MSC" else -4) * t
                                                                + rng.normal(0, 1.5), 1)})
            forms += form_rows(subject, code, d, "SIXMWT",
                               {"test_date": d.isoformat(),
                                "distance_m": int(walk0 + (40 if arm == "MSC" else -30) * t + rng.normal(0, 12))})
        number = 1
        if arm == "MSC":
            for _code, day in INFUSION_DAYS[:2]:
                onset = day0 + timedelta(days=day + 1)
                aes.append(ae(subject, number, "Fever", onset, infusion=True, related="probable",
                              resolution=onset + timedelta(days=1)))
                number += 1
        if i in (0, 1):
            onset = day0 + timedelta(days=120)
            aes.append(ae(subject, number, "Lung infection", onset, grade=3, serious=True, hospitalisation=True,
                          related="unlikely", resolution=onset + timedelta(days=10)))
            number += 1
        if dies_on is not None:
            death = day0 + timedelta(days=dies_on)
            aes.append(ae(subject, number, "Respiratory failure", death - timedelta(days=5), grade=5, serious=True,
                          death=True, outcome="fatal", resolution=death))
            forms += form_rows(subject, "W52", death, "EOS", {"end_date": death.isoformat(), "status": "DEATH",
                                                             "death_date": death.isoformat()})
        else:
            end = day0 + timedelta(days=364)
            forms += form_rows(subject, "W52", end, "EOS", {"end_date": end.isoformat(), "status": "COMPLETED"})
    # screening log: two screen failures (one re-screened and then randomized? no: failed twice), one pending
    scr = start + timedelta(days=60)
    parts.append(participant("MOW01-S101", status="screen_failed", screening=scr, randomized=None,
                             reason="FVC above limit"))
    parts.append(participant("MOW01-S102", status="screen_failed", screening=scr + timedelta(days=30),
                             randomized=None, rescreen_of="MOW01-S101"))
    parts.append(participant("MOW01-S103", status="screen_failed", screening=scr, randomized=None))
    parts.append(participant("MOW01-S104", status="screening", screening=scr, randomized=None))
    screening += [{"subject": "MOW01-S101", "status": "not_eligible", "evaluated_date": scr.isoformat(),
                   "failed_criteria": "IN3"},
                  {"subject": "MOW01-S102", "status": "not_eligible", "evaluated_date": scr.isoformat(),
                   "failed_criteria": "IN3;IN4"},
                  {"subject": "MOW01-S103", "status": "not_eligible", "evaluated_date": scr.isoformat(),
                   "failed_criteria": "EX2"}]
    raw = RawData.from_rows(participants=parts, allocations=allocs, forms=forms, aes=aes, visits=visits,
                            screening=screening)
    return Snapshot(raw, config(), DATA_CUT)
