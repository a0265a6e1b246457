"""Safety tables (``ildtrial.stats.safety_tables``) on a hand-built dataset counted by hand.

Safety population: MSC M1–M4 (N = 4), PBO P1–P3 (N = 3). P4 was randomized but never
infused (SAFFL = N): its AE must not count. M4's only AE started before the first infusion
(TRTEMFL = N): M4 has no treatment-emergent AE.

    subj arm  term                grade ser rel          infusion day  TE
    M1   MSC  Pyrexia             1     N   POSSIBLE     Y        2    Y
    M1   MSC  Chills              1     N   PROBABLE     Y        2    Y
    M1   MSC  Pyrexia             2     N   POSSIBLE     N        30   Y
    M2   MSC  Pyrexia             1     N   NOT RELATED  Y        9    Y
    M3   MSC  Pneumonia           3     Y   UNLIKELY     N        100  Y
    M3   MSC  Respiratory failure 5     Y   NOT RELATED  N        200  Y
    M4   MSC  Headache            1     N   NOT RELATED  N        -3   N
    P1   PBO  Dyspnoea            2     N   NOT RELATED  N        40   Y
    P2   PBO  Respiratory failure 5     Y   NOT RELATED  N        150  Y
    P2   PBO  Pneumonia           3     Y   UNLIKELY     N        60   Y
    P2   PBO  Pneumonia           3     Y   NOT RELATED  N        100  Y
    P4   PBO  Pyrexia             1     N   NOT RELATED  Y        2    Y   (not in safety pop.)

Days at risk (TRTDURD): M1 365, M2 365, M3 200 (died), M4 365, P1 365, P2 150 (died), P3 365.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ildtrial.stats.binary import (
    clopper_pearson,
    exact_poisson_rate,
    fisher_exact_two_sided,
    newcombe_difference,
)
from ildtrial.stats.safety_tables import (
    SafetyColumns,
    ae_summary_tables,
    primary_sae_analysis,
)


@pytest.fixture
def adsl() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "USUBJID": ["M1", "M2", "M3", "M4", "P1", "P2", "P3", "P4"],
            "ARM": ["MSC"] * 4 + ["PBO"] * 4,
            "SAFFL": ["Y"] * 7 + ["N"],
            "TRTDURD": [365, 365, 200, 365, 365, 150, 365, 0],
            "DTHFL": ["", "", "Y", "", "", "Y", "", ""],
        }
    )


@pytest.fixture
def adae() -> pd.DataFrame:
    rows = [
        ("M1", "MSC", "Pyrexia", "General", 1, "N", "POSSIBLE", "Y", 2, "Y"),
        ("M1", "MSC", "Chills", "General", 1, "N", "PROBABLE", "Y", 2, "Y"),
        ("M1", "MSC", "Pyrexia", "General", 2, "N", "POSSIBLE", "N", 30, "Y"),
        ("M2", "MSC", "Pyrexia", "General", 1, "N", "NOT RELATED", "Y", 9, "Y"),
        ("M3", "MSC", "Pneumonia", "Infections", 3, "Y", "UNLIKELY", "N", 100, "Y"),
        ("M3", "MSC", "Respiratory failure", "Respiratory", 5, "Y", "NOT RELATED", "N", 200, "Y"),
        ("M4", "MSC", "Headache", "Nervous", 1, "N", "NOT RELATED", "N", -3, "N"),
        ("P1", "PBO", "Dyspnoea", "Respiratory", 2, "N", "NOT RELATED", "N", 40, "Y"),
        ("P2", "PBO", "Respiratory failure", "Respiratory", 5, "Y", "NOT RELATED", "N", 150, "Y"),
        ("P2", "PBO", "Pneumonia", "Infections", 3, "Y", "UNLIKELY", "N", 60, "Y"),
        ("P2", "PBO", "Pneumonia", "Infections", 3, "Y", "NOT RELATED", "N", 100, "Y"),
        ("P4", "PBO", "Pyrexia", "General", 1, "N", "NOT RELATED", "Y", 2, "Y"),
    ]
    cols = [
        "USUBJID",
        "ARM",
        "AEDECOD",
        "AESOC",
        "AETOXGR",
        "AESER",
        "AEREL",
        "INFREL",
        "AESTDY",
        "TRTEMFL",
    ]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- primary analysis


def test_primary_sae_counts_by_hand(adsl: pd.DataFrame, adae: pd.DataFrame) -> None:
    res = primary_sae_analysis(adsl, adae)
    msc, pbo = res.group("MSC"), res.group("PBO")
    assert (msc.n_participants, msc.n_events, msc.n_with_event) == (4, 2, 1)
    assert (pbo.n_participants, pbo.n_events, pbo.n_with_event) == (3, 3, 1)
    assert msc.proportion == clopper_pearson(1, 4)
    assert pbo.proportion == clopper_pearson(1, 3)


def test_primary_sae_incidence_censored_at_first_sae(
    adsl: pd.DataFrame, adae: pd.DataFrame
) -> None:
    res = primary_sae_analysis(adsl, adae)
    # MSC: M1 365 + M2 365 + M3 100 (first SAE on day 100) + M4 365 = 1195 days
    # PBO: P1 365 + P2 60 (first SAE on day 60, not the fatal one on day 150) + P3 365 = 790
    for arm, days in (("MSC", 1195), ("PBO", 790)):
        inc = res.group(arm).incidence
        assert inc is not None
        assert inc.n_with_event == 1
        assert inc.participant_years == pytest.approx(days / 365.25, rel=1e-12)
        ref = exact_poisson_rate(1, days / 365.25)
        assert (inc.rate, inc.lower, inc.upper) == pytest.approx((ref.rate, ref.lower, ref.upper))


def test_primary_sae_comparison(adsl: pd.DataFrame, adae: pd.DataFrame) -> None:
    res = primary_sae_analysis(adsl, adae)
    assert res.comparison is not None
    assert res.comparison.label == "MSC - PBO"
    assert res.comparison.difference == newcombe_difference(1, 4, 1, 3)
    assert res.comparison.difference.estimate == pytest.approx(1 / 4 - 1 / 3)
    # [[1, 3], [1, 2]]: P(a) = (3, 12, 6)/21 for a = 0, 1, 2; a = 1 is the mode → p = 1
    assert res.comparison.fisher == fisher_exact_two_sided(1, 3, 1, 2)
    assert res.comparison.fisher.p_value == pytest.approx(1.0)


def test_primary_sae_outputs(adsl: pd.DataFrame, adae: pd.DataFrame) -> None:
    res = primary_sae_analysis(adsl, adae)
    table = res.table()
    assert list(table.columns) == ["MSC", "PBO", "MSC - PBO"]
    assert table.loc["Participants with >= 1 SAE, n (%)", "MSC"] == "1 (25.0%)"
    assert table.loc["Participants with >= 1 SAE, n (%)", "PBO"] == "1 (33.3%)"
    assert table.loc["Number of SAEs", "PBO"] == "3"
    d = res.to_dict()
    assert d["groups"]["MSC"]["n_events"] == 2
    assert d["comparison"]["fisher"]["p_value"] == pytest.approx(1.0)


def test_primary_sae_pooled_never_reads_the_arm(adsl: pd.DataFrame, adae: pd.DataFrame) -> None:
    res = primary_sae_analysis(adsl.drop(columns="ARM"), adae.drop(columns="ARM"), pooled=True)
    assert res.comparison is None
    (group,) = res.groups
    assert group.group == "All"
    assert (group.n_participants, group.n_events, group.n_with_event) == (7, 5, 2)
    assert group.incidence is not None
    assert group.incidence.participant_years == pytest.approx((1195 + 790) / 365.25)
    assert list(res.table().columns) == ["All"]


def test_primary_sae_empty_arm_is_reported_not_raised(
    adsl: pd.DataFrame, adae: pd.DataFrame
) -> None:
    only_msc = adsl.loc[adsl["ARM"] == "MSC"]
    res = primary_sae_analysis(only_msc, adae.loc[adae["ARM"] == "MSC"])
    assert res.group("PBO").n_participants == 0
    assert res.group("PBO").proportion is None
    assert res.comparison is None
    assert "not estimable" in res.note


def test_primary_sae_rejects_inconsistent_data(adsl: pd.DataFrame, adae: pd.DataFrame) -> None:
    wrong_arm = adae.copy()
    wrong_arm.loc[0, "ARM"] = "PBO"
    with pytest.raises(ValueError, match="differs from ADSL"):
        primary_sae_analysis(adsl, wrong_arm)
    unknown = pd.concat([adae, adae.iloc[[0]].assign(USUBJID="X9")])
    with pytest.raises(ValueError, match="not in ADSL"):
        primary_sae_analysis(adsl, unknown)
    no_onset = adae.copy()
    no_onset.loc[4, "AESTDY"] = math.nan
    with pytest.raises(ValueError, match="no AESTDY"):
        primary_sae_analysis(adsl, no_onset)
    late = adae.copy()
    late.loc[4, "AESTDY"] = 250  # after M3's 200 days at risk (and its fatal SAE on day 200)
    with pytest.raises(ValueError, match="outside the days at risk"):
        primary_sae_analysis(adsl, late)
    other_arm = adsl.copy()
    other_arm.loc[0, "ARM"] = "XYZ"
    with pytest.raises(ValueError, match="outside the arms"):
        primary_sae_analysis(other_arm, adae.drop(columns="ARM"))


# --------------------------------------------------------------------------- AE summary tables


def test_ae_by_term_counts_and_order(adsl: pd.DataFrame, adae: pd.DataFrame) -> None:
    t = ae_summary_tables(adsl, adae).by_term
    # ties at 2 participants sorted by term; Headache (not TE) and P4's event absent
    assert list(t.index) == ["Pneumonia", "Pyrexia", "Respiratory failure", "Chills", "Dyspnoea"]
    expected = {  # term: (MSC n, MSC events, PBO n, PBO events, Total n, Total events)
        "Pneumonia": (1, 1, 1, 2, 2, 3),
        "Pyrexia": (2, 3, 0, 0, 2, 3),
        "Respiratory failure": (1, 1, 1, 1, 2, 2),
        "Chills": (1, 1, 0, 0, 1, 1),
        "Dyspnoea": (0, 0, 1, 1, 1, 1),
    }
    for term, counts in expected.items():
        row = t.loc[term]
        got = tuple(
            int(row[c])
            for c in ["MSC n", "MSC events", "PBO n", "PBO events", "Total n", "Total events"]
        )
        assert got == counts, term
    assert t.loc["Pyrexia", "MSC %"] == pytest.approx(50.0)
    assert t.loc["Pneumonia", "PBO %"] == pytest.approx(100 / 3)
    assert t.loc["Pyrexia", "Total %"] == pytest.approx(200 / 7)
    assert t.loc["Pneumonia", "SOC"] == "Infections"


def test_ae_overview(adsl: pd.DataFrame, adae: pd.DataFrame) -> None:
    o = ae_summary_tables(adsl, adae).overview
    expected = {  # (MSC n, MSC events, PBO n, PBO events)
        "Any adverse event": (3, 6, 2, 4),
        "Any serious adverse event": (1, 2, 1, 3),
        "Any CTCAE grade >= 3 adverse event": (1, 2, 1, 3),
        "Any related adverse event": (1, 3, 0, 0),
        "Any infusion-related reaction": (2, 3, 0, 0),
        "Any fatal (grade 5) adverse event": (1, 1, 1, 1),
    }
    assert list(o.index) == list(expected)
    for label, counts in expected.items():
        got = tuple(int(o.loc[label, c]) for c in ["MSC n", "MSC events", "PBO n", "PBO events"])
        assert got == counts, label


def test_ae_by_max_grade(adsl: pd.DataFrame, adae: pd.DataFrame) -> None:
    g = ae_summary_tables(adsl, adae).by_max_grade
    # MSC: M1 max 2, M2 1, M3 5, M4 none; PBO: P1 2, P2 5, P3 none
    assert list(g.index) == [
        "No adverse event",
        "Grade 1",
        "Grade 2",
        "Grade 3",
        "Grade 4",
        "Grade 5",
    ]
    assert list(g["MSC n"]) == [1, 1, 1, 0, 0, 1]
    assert list(g["PBO n"]) == [1, 0, 1, 0, 0, 1]
    assert list(g["Total n"]) == [2, 1, 2, 0, 0, 2]
    assert g["MSC n"].sum() == 4 and g["PBO n"].sum() == 3  # each participant exactly once
    assert "MSC events" not in g.columns


def test_ae_by_seriousness_and_serious_terms(adsl: pd.DataFrame, adae: pd.DataFrame) -> None:
    tables = ae_summary_tables(adsl, adae)
    s = tables.by_seriousness
    assert tuple(s.loc["Serious", ["MSC n", "MSC events", "PBO n", "PBO events"]]) == (1, 2, 1, 3)
    assert tuple(s.loc["Non-serious", ["MSC n", "MSC events", "PBO n", "PBO events"]]) == (
        2,
        4,
        1,
        1,
    )
    st = tables.serious_by_term
    assert list(st.index) == ["Pneumonia", "Respiratory failure"]
    assert tuple(st.loc["Pneumonia", ["MSC events", "PBO events"]]) == (1, 2)


def test_ae_by_relatedness(adsl: pd.DataFrame, adae: pd.DataFrame) -> None:
    r = ae_summary_tables(adsl, adae).by_relatedness
    assert list(r.index) == [
        "NOT RELATED",
        "UNLIKELY RELATED",
        "POSSIBLY RELATED",
        "PROBABLY RELATED",
        "Any related (possibly, probably, definitely)",
    ]
    expected = {  # (MSC n, MSC events, PBO n, PBO events)
        "NOT RELATED": (2, 2, 2, 3),
        "UNLIKELY RELATED": (1, 1, 1, 1),
        "POSSIBLY RELATED": (1, 2, 0, 0),
        "PROBABLY RELATED": (1, 1, 0, 0),
        "Any related (possibly, probably, definitely)": (1, 3, 0, 0),
    }
    for label, counts in expected.items():
        got = tuple(int(r.loc[label, c]) for c in ["MSC n", "MSC events", "PBO n", "PBO events"])
        assert got == counts, label


def test_infusion_related_reactions_and_deaths(adsl: pd.DataFrame, adae: pd.DataFrame) -> None:
    tables = ae_summary_tables(adsl, adae)
    irr = tables.infusion_related
    assert list(irr.index) == ["Any infusion-related reaction", "Pyrexia", "Chills"]
    assert tuple(irr.loc["Any infusion-related reaction", ["MSC n", "MSC events", "PBO n"]]) == (
        2,
        3,
        0,
    )
    assert tuple(irr.loc["Pyrexia", ["MSC n", "MSC events"]]) == (2, 2)
    d = tables.deaths
    assert tuple(d.loc["Deaths (all causes)", ["MSC n", "PBO n", "Total n"]]) == (1, 1, 2)
    assert d.loc["Deaths (all causes)", "MSC %"] == pytest.approx(25.0)
    assert tuple(d.loc["Fatal AE: Respiratory failure", ["MSC n", "PBO n"]]) == (1, 1)


def test_pooled_tables_have_one_group_and_ignore_arms(
    adsl: pd.DataFrame, adae: pd.DataFrame
) -> None:
    tables = ae_summary_tables(adsl.drop(columns="ARM"), adae.drop(columns="ARM"), pooled=True)
    assert tables.groups == ("All",)
    assert tables.n_by_group == {"All": 7}
    t = tables.by_term
    assert list(t.columns) == ["SOC", "All n", "All %", "All events"]
    assert tuple(t.loc["Pyrexia", ["All n", "All events"]]) == (2, 3)
    assert t.loc["Pyrexia", "All %"] == pytest.approx(200 / 7)
    assert not any(
        "MSC" in c or "PBO" in c for name in tables.tables for c in tables.table(name).columns
    )


def test_formatted_and_dict_outputs(adsl: pd.DataFrame, adae: pd.DataFrame) -> None:
    tables = ae_summary_tables(adsl, adae)
    f = tables.formatted("by_term")
    assert f.loc["Pyrexia", "MSC n (%)"] == "2 (50.0%)"
    assert f.loc["Pyrexia", "Total n (%)"] == "2 (28.6%)"
    d = tables.to_dict()
    assert d["n_by_group"] == {"MSC": 4, "PBO": 3}
    first = d["by_term"][0]
    assert first["term"] == "Pneumonia" and first["PBO events"] == 2


def test_term_falls_back_to_verbatim_and_custom_columns(
    adsl: pd.DataFrame, adae: pd.DataFrame
) -> None:
    ae = adae.copy()
    ae["AETERM"] = ae["AEDECOD"].str.upper()
    ae.loc[ae["AEDECOD"] == "Chills", "AEDECOD"] = None
    assert "CHILLS" in ae_summary_tables(adsl, ae).by_term.index
    renamed = adsl.rename(columns={"ARM": "TRT01A"})
    cols = SafetyColumns(arm="TRT01A")
    res = primary_sae_analysis(renamed, adae.drop(columns="ARM"), columns=cols)
    assert res.group("MSC").n_with_event == 1


def test_invalid_grade_is_rejected(adsl: pd.DataFrame, adae: pd.DataFrame) -> None:
    bad = adae.copy()
    bad.loc[0, "AETOXGR"] = 7
    with pytest.raises(ValueError, match="CTCAE grade"):
        ae_summary_tables(adsl, bad)
