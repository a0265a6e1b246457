"""The report built from hand-made data: sections, masking, determinism, PDF, methods."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from ildtrial.datasets import build_datasets
from ildtrial.reports import STEPS, build_report
from ildtrial.reports.analysis import report_groups, run_analyses
from ildtrial.reports.consort import consort_counts
from ildtrial.reports.methods import methods_paragraphs
from tests.datasets.factory import small_trial

WHEN = datetime(2026, 6, 2, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def snapshot():
    return small_trial(5)


@pytest.fixture(scope="module")
def closed(snapshot):
    return build_report(snapshot, by_arm=True, generated_at=WHEN)


@pytest.fixture(scope="module")
def pooled(snapshot):
    return build_report(snapshot, by_arm=False, generated_at=WHEN)


def test_closed_report_has_every_section(closed, snapshot):
    html = closed.html
    for text in ("Participant flow (CONSORT)", 'aria-label="CONSORT flow diagram"', "Baseline characteristics",
                 "Age (years), mean (SD)", "Primary endpoint: serious adverse events",
                 "95% CI (Clopper-Pearson)", "Fisher&#x27;s exact test", "Newcombe",
                 "SAE incidence per participant-year", "Adverse events by coded term",
                 "Participants by maximum CTCAE grade", "Adverse events by relatedness",
                 "Infusion-related reactions", "Deaths", "Listing of serious adverse events",
                 "MMRM of the change from baseline", "Difference MSC - PBO", "LS mean MSC",
                 "Wilcoxon rank-sum test", "Annual rate of FVC decline", "Rate PBO",
                 "6. Methods", "7. Derivations", "ADLF.ANL01FL"):
        assert text in html, text
    assert html.count('<svg class="figure"') == 3  # mean change, trajectories, forest plot
    # footer: protocol version and digest, data digest, software, date
    config = snapshot.config
    assert f"version {config.protocol_version}, SHA-256 {config.protocol_sha256}" in html
    assert snapshot.data_sha256 in html
    for package in ("python", "numpy", "scipy", "statsmodels", "pandas", "ildtrial"):
        assert re.search(rf"{package} \d", html), package
    assert "2026-06-02 09:30:00" in html


def test_closed_report_models_were_estimable_and_the_methods_say_so(closed):
    for pa in closed.analyses.parameters.values():
        assert pa.mmrm is not None and pa.mmrm.estimable, pa.mmrm and pa.mmrm.reason
    assert closed.analyses.slope is not None and closed.analyses.slope.estimable
    methods = " ".join(closed.methods)
    assert "FVC converged (10 participants" in methods
    assert "Satterthwaite" in methods and "Model status: converged" in methods


def test_pooled_report_names_no_arm(pooled, snapshot):
    html = pooled.html
    for arm in snapshot.config.arms:
        assert arm.code not in html
        assert arm.name.lower() not in html.lower()
    assert "placebo" not in html.lower()
    assert "Open report: all participants pooled" in html
    assert "All participants" in html and "Annual rate of FVC decline" in html
    # no comparisons at all, and the digest printed is that of the data without allocation
    assert "MMRM of the change" not in html and "Fisher" not in html and "Wilcoxon rank-sum test" not in html
    assert snapshot.data_sha256 not in html
    assert snapshot.blinded_data_sha256 in html
    assert pooled.datasets.blinded and pooled.analyses.groups[0].key == "All"
    summary = pooled.analyses.to_dict()
    assert summary["mmrm"] == {} and summary["wilcoxon"] == {} and summary["groups"] == ["All"]


def test_same_data_same_report_and_progress_for_every_step(closed, snapshot):
    seen = []
    again = build_report(snapshot, by_arm=True, generated_at=WHEN,
                         progress=lambda label, step, total: seen.append((label, step, total)))
    assert again.html == closed.html
    assert [s[0] for s in seen] == list(STEPS)
    assert [s[1] for s in seen] == list(range(1, len(STEPS) + 1))
    assert {s[2] for s in seen} == {len(STEPS)}


def test_pdf_is_rendered(pooled):
    pdf = pooled.pdf()
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    assert pooled.pdf() is pdf  # rendered once


def test_consort_counts_people_not_attempts(snapshot):
    ds = build_datasets(snapshot)
    groups = report_groups(snapshot.config, True)
    counts = consort_counts(snapshot.raw, ds.adsl, ds.adlf, groups, "TRT01P")
    # 10 randomized + S101/S102 (one person re-screened) + S103 (failed) + S104 (screening)
    assert (counts.assessed, counts.attempts, counts.randomized, counts.excluded) == (13, 14, 10, 3)
    assert (counts.not_eligible, counts.pending, counts.other_excluded) == (2, 1, 0)
    assert counts.failed_criteria == {"EX2": 1, "IN3": 1, "IN4": 1}  # the last attempt's reasons
    msc, pbo = counts.groups
    assert (msc.allocated, msc.infused, msc.deaths, msc.completed) == (5, 5, 1, 4)
    assert pbo.discontinued == {"DEATH": 1}


def test_methods_say_when_models_are_not_estimable():
    snap = small_trial(1)  # one participant per arm: no model can be fitted
    ds = build_datasets(snap)
    analyses = run_analyses(ds, snap.config, by_arm=True)
    methods = " ".join(methods_paragraphs(analyses, ds, snap.config, snap.raw, {"python": "3"}))
    assert "FVC not estimable (too few participants" in methods
    assert "Model status: not estimable" in methods


def test_pooled_analyses_refuse_unblinded_datasets(snapshot):
    with pytest.raises(ValueError, match="blinded"):
        run_analyses(build_datasets(snapshot), snapshot.config, by_arm=False)


def test_a_trial_without_data_still_gives_a_report():
    from ildtrial.datasets import RawData, Snapshot
    from tests.datasets.factory import DATA_CUT, config

    report = build_report(Snapshot(RawData.from_rows(), config(), DATA_CUT), by_arm=True, generated_at=WHEN)
    assert "Assessed for eligibility (n=0)" in report.html and "No data." in report.html
    assert "not estimable" in " ".join(report.methods)
