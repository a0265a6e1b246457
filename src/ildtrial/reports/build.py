"""The statistical report: one HTML document (and its PDF) from one data snapshot.

:func:`build_report` is pure: snapshot in, :class:`Report` out. The HTML is built with
plain string functions (:mod:`ildtrial.reports.format`) rather than Django templates, so
the command line, the web page and the tests produce the very same document without a
template engine, and two builds from the same snapshot with the same ``generated_at`` are
byte-identical.

Masking: ``by_arm=False`` builds everything from the blinded datasets (the allocation is
removed from the raw data before any dataset is derived), prints the data digest of the
blinded data, and never names an arm. Who gets which report is decided by the callers
(``ildtrial report`` and the reports page), not here.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from ildtrial.datasets import DERIVATIONS, AnalysisDatasets, Snapshot, StudyConfig, build_datasets
from ildtrial.datasets.bds import PARAMETER_BY_CODE, PARAMETERS
from ildtrial.reports import figures
from ildtrial.reports.analysis import Analyses, report_groups, run_analyses
from ildtrial.reports.consort import consort_counts, consort_svg
from ildtrial.reports.format import esc, notice, paragraph, rows_table, table
from ildtrial.reports.methods import derivation_rows, methods_paragraphs
from ildtrial.reports.provenance import Provenance, software_versions
from ildtrial.reports.tables import (
    baseline_table,
    descriptive_table,
    mmrm_table,
    slope_table,
    wilcoxon_table,
)

__all__ = ["STEPS", "ProgressCallback", "Report", "build_report", "render_pdf"]

#: Progress callback: ``progress(label, step, total)`` before each step.
ProgressCallback = Callable[[str, int, int], None]

STEPS: tuple[str, ...] = (
    "analysis datasets",
    "CONSORT diagram",
    "baseline characteristics",
    "safety analyses",
    *(f"efficacy: {p.paramcd}" for p in PARAMETERS),
    "random-slope model",
    "figures",
    "methods and document",
)

_AE_TABLES: tuple[tuple[str, str], ...] = (
    ("overview", "Overview of treatment-emergent adverse events"),
    ("by_term", "Adverse events by coded term"),
    ("by_max_grade", "Participants by maximum CTCAE grade"),
    ("by_seriousness", "Adverse events by seriousness"),
    ("serious_by_term", "Serious adverse events by coded term"),
    ("by_relatedness", "Adverse events by relatedness to the investigational product"),
    ("infusion_related", "Infusion-related reactions"),
    ("deaths", "Deaths"),
)

CSS = """
@page { size: A4; margin: 16mm 12mm 18mm 12mm;
  @bottom-center { content: "Page " counter(page) " of " counter(pages); font-size: 8pt; color: #555; } }
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 9.5pt; color: #111; max-width: 1100px;
  margin: 0 auto; padding: 0 12px; line-height: 1.35; }
h1 { font-size: 17pt; margin-bottom: 2px; } h2 { font-size: 13pt; border-bottom: 1px solid #999;
  margin-top: 26px; page-break-after: avoid; } h3 { font-size: 11pt; margin-top: 18px; page-break-after: avoid; }
h4 { font-size: 10pt; margin: 12px 0 4px; page-break-after: avoid; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 8.5pt; page-break-inside: auto; }
caption { text-align: left; font-weight: bold; padding: 2px 0 4px; }
th, td { border: 1px solid #bbb; padding: 2px 6px; vertical-align: top; text-align: left; }
thead th { background: #eef2f6; } tbody th { font-weight: normal; background: #fafafa; }
tr { page-break-inside: avoid; }
td { font-variant-numeric: tabular-nums; }
.note, .muted { color: #444; font-size: 8.5pt; } .notice { background: #fff6d6; border: 1px solid #e0c060;
  padding: 6px 8px; } .banner { font-weight: bold; padding: 6px 8px; border: 2px solid #333; display: inline-block; }
svg.figure, svg.consort { max-width: 100%; height: auto; display: block; margin: 6px 0; }
figure { margin: 8px 0 16px; page-break-inside: avoid; } figcaption { font-size: 8.5pt; color: #333; }
footer { margin-top: 30px; border-top: 1px solid #999; font-size: 8pt; color: #333; }
footer dt { font-weight: bold; float: left; clear: left; width: 150px; } footer dd { margin-left: 160px; word-break: break-all; }
nav ol { columns: 2; font-size: 9pt; }
"""


@dataclass(frozen=True, eq=False)
class Report:
    """A built report: the HTML document, the datasets and analyses it shows, its provenance."""

    html: str
    by_arm: bool
    datasets: AnalysisDatasets
    analyses: Analyses
    provenance: Provenance
    methods: tuple[str, ...]
    _pdf: list[bytes] = field(default_factory=list, repr=False)

    def pdf(self, base_url: str | None = None) -> bytes:
        """The PDF (WeasyPrint), rendered on first use: the web page showing HTML never pays for it."""
        if not self._pdf:
            self._pdf.append(render_pdf(self.html, base_url=base_url))
        return self._pdf[0]

    @property
    def kind(self) -> str:
        return "closed" if self.by_arm else "open"


def render_pdf(document: str, base_url: str | None = None) -> bytes:
    """HTML document → PDF bytes."""
    import logging

    import weasyprint

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    return weasyprint.HTML(string=document, base_url=base_url).write_pdf()


# --------------------------------------------------------------------------- sections


def _section(anchor: str, title: str, body: list[str]) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>' + "".join(body) + "</section>"


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _arm_legend(snapshot: Snapshot, analyses: Analyses) -> str:
    if not analyses.by_arm:
        return ""
    items = "; ".join(
        f"{g.key} = {snapshot.config.arm_name(g.key)}" for g in analyses.groups
    )
    return f'<p class="muted">Arms: {html.escape(items)}. Reference arm for differences: {html.escape(str(analyses.reference))}.</p>'


def _safety_section(analyses: Analyses, datasets: AnalysisDatasets) -> list[str]:
    body: list[str] = ["<h3>Primary endpoint: serious adverse events over 12 months</h3>"]
    if analyses.sae is None:
        body.append(notice("Not computed: " + analyses.errors.get("primary SAE analysis", "no result")))
    else:
        note = analyses.sae.note or ""
        body.append(table(analyses.sae.table(), caption="Serious adverse events (treatment-emergent, safety population)",
                          index_label="Statistic", note=note))
    if analyses.ae_tables is None:
        body.append(notice("Adverse event tables not computed: " + analyses.errors.get("adverse event tables", "")))
    else:
        for name, title in _AE_TABLES:
            body.append(f"<h4>{html.escape(title)}</h4>")
            body.append(table(analyses.ae_tables.formatted(name), index_label=name.replace("_", " ")))
    # SAE listing
    adae = datasets.adae
    sae = adae.loc[(adae["AESER"] == "Y") & adae["TRTEMFL"].eq("Y").fillna(False).astype(bool)] if not adae.empty else adae
    columns = ["SUBJID", "AESEQ", "AEDECOD", "AETERM", "ASTDY", "AETOXGR", "AEREL", "AEOUT", "INFREL"]
    if analyses.by_arm:
        columns.insert(1, "TRT01A")
    body.append("<h4>Listing of serious adverse events</h4>")
    listing = sae.loc[:, columns] if not sae.empty else pd.DataFrame(columns=columns)
    body.append(table(listing.set_index("SUBJID"), index_label="Participant"))
    return body


def _efficacy_section(analyses: Analyses) -> list[str]:
    body: list[str] = []
    groups = analyses.groups
    for p in PARAMETERS:
        pa = analyses.parameters.get(p.paramcd)
        body.append(f'<h3 id="eff-{p.paramcd}">{html.escape(p.param)} [{p.paramcd}]</h3>')
        if pa is None:
            continue
        for label, stats, decimals in (("Observed value", pa.aval, p.decimals),
                                       ("Change from baseline", pa.chg, p.decimals)):
            body.append(f"<h4>{label} ({html.escape(p.unit)}), by group and visit</h4>")
            if stats is None:
                body.append(notice("Not computed: " + pa.errors.get(f"descriptive {'AVAL' if label.startswith('Obs') else 'CHG'}", "")))
            else:
                body.append(table(descriptive_table(stats, groups, decimals + 1), index_label="Group / visit"))
        if analyses.by_arm:
            body.append(f"<h4>MMRM of the change from baseline ({html.escape(p.unit)})</h4>")
            if pa.mmrm is None:
                body.append(notice("Not computed: " + pa.errors.get("MMRM", "")))
            elif not pa.mmrm.estimable:
                body.append(notice(f"Not estimable: {pa.mmrm.reason}"))
            else:
                body.append(table(mmrm_table(pa.mmrm, groups, p.decimals + 1),
                                  note=f"{pa.mmrm.n_subjects} participants, {pa.mmrm.n_observations} observations."))
            body.append("<h4>Wilcoxon rank-sum test of the change, deaths ranked worst</h4>")
            if pa.wilcoxon is None:
                body.append(notice("Not computed: " + pa.errors.get("Wilcoxon", "")))
            else:
                body.append(table(wilcoxon_table(pa.wilcoxon, groups), note=pa.wilcoxon.rule))
    body.append('<h3 id="eff-slope">Annual rate of FVC decline (random-slope model)</h3>')
    slope = analyses.slope
    if slope is None:
        body.append(notice("Not computed: " + analyses.errors.get("random-slope FVC decline", "")))
    elif not slope.estimable:
        body.append(notice(f"Not estimable: {slope.reason}"))
    else:
        body.append(table(slope_table(slope, groups), note=f"Model status: {slope.status}."))
    return body


def _figures_section(analyses: Analyses, config: StudyConfig) -> list[str]:
    week_of = {w.label: float(w.week) for w in config.windows}
    chg = {k: v.chg for k, v in analyses.parameters.items() if v.chg is not None}
    body = [
        _figure(figures.mean_change_plot(chg, PARAMETERS, analyses.groups, week_of),
                "Mean change from baseline ± standard error by group and analysis visit."),
        _figure(figures.trajectories_plot(analyses.anl, PARAMETERS, analyses.groups,
                                          analyses.efficacy_column if analyses.by_arm else None),
                "Individual trajectories of the analysed values (baseline and one value per window)."),
    ]
    if analyses.by_arm:
        panels = []
        for p in PARAMETERS:
            pa = analyses.parameters.get(p.paramcd)
            rows = []
            if pa is not None and pa.mmrm is not None and pa.mmrm.estimable:
                for visit in pa.mmrm.visits:
                    for e in pa.mmrm.differences.get(visit, {}).values():
                        rows.append((visit, e.estimate, e.ci_lower, e.ci_upper))
            panels.append((f"{PARAMETER_BY_CODE[p.paramcd].param}", rows))
        body.append(_figure(figures.forest_plot(panels, analyses.comparison),
                            f"MMRM differences in change from baseline ({analyses.comparison}) with "
                            f"{100 * analyses.level:g}% confidence intervals, by visit."))
    return body


def _footer(prov: Provenance) -> str:
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in prov.lines())
    return f"<footer><dl>{items}</dl></footer>"


# --------------------------------------------------------------------------- build


def build_report(
    snapshot: Snapshot,
    *,
    by_arm: bool,
    progress: ProgressCallback | None = None,
    generated_at: datetime | None = None,
    level: float = 0.95,
) -> Report:
    """Build the statistical report of ``snapshot`` (see module docstring).

    ``generated_at`` is printed in the footer (default: now, UTC); pass it to get a
    byte-identical document from the same snapshot. ``progress(label, step, total)`` is
    called before each of the :data:`STEPS`.
    """
    generated = generated_at or datetime.now(UTC)
    total = len(STEPS)
    counter = iter(range(1, total + 1))

    def step(label: str) -> None:
        n = next(counter, total)
        if progress is not None:
            progress(label, n, total)

    config = snapshot.config
    step("analysis datasets")
    datasets = build_datasets(snapshot, blinded=not by_arm)
    raw = snapshot.raw.without_allocation() if not by_arm else snapshot.raw
    arm_column = "TRT01P" if by_arm else None  # FAS by arm assigned

    step("CONSORT diagram")
    groups = report_groups(config, by_arm)
    counts = consort_counts(raw, datasets.adsl, datasets.adlf, groups, arm_column,
                            infusions_planned=config.infusions_planned)
    consort = consort_svg(counts)

    step("baseline characteristics")
    table1 = baseline_table(datasets.adsl, groups, arm_column, total=by_arm)

    analyses = run_analyses(datasets, config, by_arm=by_arm, level=level, step=step)
    step("figures")
    figure_body = _figures_section(analyses, config)

    step("methods and document")
    software = software_versions()
    methods = methods_paragraphs(analyses, datasets, config, raw, software)
    prov = Provenance(
        protocol_version=config.protocol_version,
        protocol_sha256=config.protocol_sha256,
        data_sha256=snapshot.data_sha256 if by_arm else snapshot.blinded_data_sha256,
        data_sha256_label="Data snapshot SHA-256" if by_arm else "Data snapshot SHA-256 (allocation excluded)",
        data_cut=snapshot.data_cut,
        generated_at=generated,
        software=software,
    )
    frames = datasets.frames()
    derivations = rows_table(["Dataset / column", "Rule"],
                             [(f"{d}.{c}", r) for d, c, r in derivation_rows(DERIVATIONS, frames)])
    kind = ("Closed report: results by arm (unblinded)" if by_arm
            else "Open report: all participants pooled (no allocation shown)")
    sections = [
        _section("consort", "1. Participant flow (CONSORT)", [consort]),
        _section("baseline", "2. Baseline characteristics (full analysis set)",
                 [_arm_legend(snapshot, analyses), table(table1)]),
        _section("safety", "3. Safety (safety population)", _safety_section(analyses, datasets)),
        _section("efficacy", "4. Efficacy: lung function and 6-minute walk (full analysis set)",
                 _efficacy_section(analyses)),
        _section("figures", "5. Figures", figure_body),
        _section("methods", "6. Methods", [paragraph(p) for p in methods]),
        _section("derivations", "7. Derivations of the analysis datasets", [derivations]),
    ]
    toc = "".join(f'<li><a href="#{a}">{html.escape(t)}</a></li>' for a, t in (
        ("consort", "Participant flow"), ("baseline", "Baseline characteristics"), ("safety", "Safety"),
        ("efficacy", "Efficacy"), ("figures", "Figures"), ("methods", "Methods"), ("derivations", "Derivations")))
    title = f"{config.registration}: statistical report"
    document = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(config.title)}</p>"
        f'<p class="banner">{html.escape(kind)}</p>'
        f'<p class="muted">Data cut-off {esc(snapshot.data_cut.isoformat())}; protocol version '
        f"{esc(config.protocol_version)}; {len(datasets.adsl)} randomized participants.</p></header>"
        f"<nav><ol>{toc}</ol></nav>" + "".join(sections) + _footer(prov) + "</body></html>"
    )
    return Report(document, by_arm, datasets, analyses, prov, tuple(methods))

