"""The protocol file: the shipped file loads, and each kind of broken file is refused precisely."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest
import yaml

from ildtrial.cli import main
from ildtrial.core.protocol import ProtocolInvalid, json_schema, load_protocol, parse_protocol

RAW: dict[str, Any] = yaml.safe_load(
    resources.files("ildtrial.protocols").joinpath("NCT02594839.yaml").read_text(encoding="utf-8")
)


def broken(mutate) -> list[str]:
    """Apply ``mutate`` to a copy of the shipped protocol and return the refusal messages."""
    raw = copy.deepcopy(RAW)
    mutate(raw)
    with pytest.raises(ProtocolInvalid) as info:
        parse_protocol(yaml.safe_dump(raw, allow_unicode=True), "broken.yaml")
    return [str(issue) for issue in info.value.issues]


def test_shipped_protocol_loads_with_registry_facts():
    loaded = load_protocol()
    p = loaded.protocol
    assert p.identity.registration == "NCT02594839"
    assert p.identity.planned_enrolment == 20
    assert [a.code for a in p.arms] == ["MSC", "PBO"]
    assert p.arm("MSC").intervention.dose == 200 and p.arm("MSC").intervention.dose_unit == "10^6 cells"
    assert p.arm("PBO").intervention.dose == 400 and p.arm("PBO").intervention.dose_unit == "mL"
    assert p.regimen.cycles * p.regimen.infusions_per_cycle == 8
    assert len(p.infusion_visits) == 8
    assert p.masking.mode == "open_label"
    assert len(loaded.sha256) == 64


def test_schedule_matches_protocol_notes():
    p = load_protocol().protocol
    planned = {v.code: (v.anchor, v.day, v.window.before, v.window.after) for v in p.schedule.visits}
    assert planned["C1A"] == ("day0", 0, 0, 0)
    assert planned["C1B"] == ("C1A", 7, 1, 1)
    assert planned["W13"] == ("day0", 91, 7, 7)
    assert planned["C2B"] == ("W13", 7, 1, 1)
    assert planned["W26"] == ("day0", 182, 7, 7)
    assert planned["W39"] == ("day0", 273, 7, 7)
    assert planned["W52"] == ("day0", 364, 7, 7)


def test_every_label_is_bilingual():
    p = load_protocol().protocol
    for form in p.forms:
        assert form.name.en and form.name.ru
        for field in form.fields:
            assert field.label.en and field.label.ru, f"{form.code}.{field.code}"


def test_all_sixteen_criteria_keep_their_protocol_text():
    p = load_protocol().protocol
    ids = [c.id for c in p.eligibility.criteria]
    assert ids == [f"IN{i}" for i in range(1, 6)] + [f"EX{i}" for i in range(1, 12)]
    assert all(c.protocol_text for c in p.eligibility.criteria)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r["schedule"]["visits"][4]["window"].__setitem__("after", -1),
         "schedule.visits[4].window.after: must be >= 0"),
        (lambda r: r["identity"].pop("registration"), "identity.registration: is required"),
        (lambda r: r["identity"].__setitem__("registration", "NCT123"), "identity.registration: must match"),
        (lambda r: r["identity"].__setitem__("planned_enrolmnet", 20),
         "identity.planned_enrolmnet: is not a known key"),
        (lambda r: r["masking"].__setitem__("mode", "single_blind"), "masking.mode: must be one of"),
        (lambda r: r["forms"][0]["fields"][2].__setitem__("type", "float"), "forms[0].fields[2].type: must be one of"),
        (lambda r: r["eligibility"]["criteria"][0]["rule"].__setitem__("kind", "age_between"),
         "eligibility.criteria[0].rule: kind 'age_between' is unknown"),
        (lambda r: r["eligibility"]["criteria"][2]["rule"]["minimum_percent"].__setitem__("TLC", 40),
         "eligibility.criteria[2].rule.minimum_percent.TLC"),
        (lambda r: r["regimen"].__setitem__("cycles", 0), "regimen.cycles: must be >= 1"),
        (lambda r: r["regimen"].__setitem__("minimum_post_thaw_viability_percent", 120),
         "regimen.minimum_post_thaw_viability_percent: must be <= 100"),
    ],
    ids=["negative-window", "missing-registration", "bad-registration", "typo-key", "unknown-masking",
         "unknown-field-type", "unknown-rule-kind", "unknown-measure", "zero-cycles", "viability-over-100"],
)
def test_structural_errors_are_named_by_path(mutate, expected):
    messages = broken(mutate)
    assert any(m.startswith(expected) for m in messages), messages


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r["schedule"]["visits"][3]["forms"].append("ECG"),
         "schedule.visits[3].forms[6]: form 'ECG' is not defined in forms"),
        (lambda r: r["schedule"]["visits"][2].__setitem__("anchor", "W13"),
         "schedule.visits[2].anchor: must be 'day0' or the code of an earlier visit"),
        (lambda r: r["schedule"]["visits"][1].__setitem__("code", "SCR"), "schedule.visits: visit code 'SCR' is used twice"),
        (lambda r: r["schedule"]["visits"][2].__setitem__("infusion", False),
         "schedule.visits: has 7 infusion visits; the regimen needs 8"),
        (lambda r: r["randomization"].__setitem__("ratio", {"MSC": 1, "SOC": 1}),
         "randomization.ratio: must give a weight for each arm"),
        (lambda r: r["randomization"].__setitem__("block_sizes", [3]),
         "randomization.block_sizes[0]: must be a multiple of the ratio total 2"),
        (lambda r: r["randomization"]["strata"][0].__setitem__("source", "DX.diagnosis"),
         "randomization.strata[0].source: 'DX.diagnosis' is not a form.field"),
        (lambda r: r["masking"].__setitem__("unblinded_roles", ["pharmacist"]), "masking.unblinded_roles: unknown role"),
        (lambda r: r["forms"][0]["fields"][2].__setitem__("min", 300), "forms[0].fields[2].max: must be >= min"),
        (lambda r: r["forms"][0]["fields"][0].__setitem__("min", 3), "forms[0].fields[0].min: only numeric fields"),
        (lambda r: r["forms"][2]["checks"][0].__setitem__("right", "fvc"),
         "forms[2].checks[0]: names 'fvc', which is not a field of form SPIRO"),
        (lambda r: r["eligibility"]["criteria"][0]["rule"].__setitem__("max_years", 10),
         "eligibility.criteria[0].rule.max_years: must be > min_years"),
        (lambda r: r["eligibility"]["criteria"][5].__setitem__("id", "IN6"),
         "eligibility.criteria[5].id: an exclusion criterion id must start with EX"),
        (lambda r: r["eligibility"]["criteria"][8]["rule"].__setitem__("date_item", "EXCL.infection_day"),
         "eligibility.criteria[8].rule.date_item: 'EXCL.infection_day' is not a form.field"),
        (lambda r: r["analysis_windows"][1].__setitem__("low_day", 100),
         "analysis_windows[1].low_day: analysis windows must not overlap"),
        (lambda r: r["endpoints"][1]["visits"].append("W65"), "endpoints[1].visits[4]: 'W65' is not a visit code"),
        (lambda r: r["forms"][2].__setitem__("procedure_date", "fev1_l"),
         "forms[2].procedure_date: 'fev1_l' is not a date field of form SPIRO"),
    ],
    ids=["unknown-form", "anchor-later-visit", "duplicate-visit", "infusion-count", "ratio-arms", "block-size",
         "stratum-source", "unknown-role", "min-over-max", "bounds-on-date", "check-unknown-field", "age-range",
         "criterion-prefix", "rule-unknown-item", "overlapping-windows", "endpoint-visit",
         "procedure-date-not-a-date"],
)
def test_cross_reference_errors_are_named_by_path(mutate, expected):
    messages = broken(mutate)
    assert any(m.startswith(expected) for m in messages), messages


def test_every_problem_is_listed_not_just_the_first():
    def many(r):
        r["regimen"]["cycles"] = 0
        r["identity"].pop("sponsor")
        r["schedule"]["visits"][4]["window"]["after"] = -1

    messages = broken(many)
    assert len(messages) >= 3


def test_invalid_yaml_names_the_line():
    with pytest.raises(ProtocolInvalid) as info:
        parse_protocol("identity:\n  title: [unclosed\n", "x.yaml")
    assert "line" in str(info.value.issues[0])


def test_non_mapping_file_is_refused():
    with pytest.raises(ProtocolInvalid, match="mapping of sections"):
        parse_protocol("- just\n- a list\n")


def test_missing_file_is_refused_clearly(tmp_path):
    with pytest.raises(ProtocolInvalid, match="cannot read the file"):
        load_protocol(tmp_path / "absent.yaml")


def test_json_schema_describes_the_file():
    schema = json_schema()
    assert schema["title"] == "ildtrial protocol file"
    assert {"identity", "arms", "schedule", "forms", "eligibility"} <= set(schema["properties"])


def test_cli_validate_accepts_the_shipped_file(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(RAW, allow_unicode=True), encoding="utf-8")
    assert main(["protocol", "validate", str(path)]) == 0
    assert "valid protocol NCT02594839 version 1.0" in capsys.readouterr().out


def test_cli_validate_lists_every_error_and_fails(tmp_path, capsys):
    raw = copy.deepcopy(RAW)
    raw["schedule"]["visits"][4]["window"]["after"] = -1
    raw["regimen"]["cycles"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    assert main(["protocol", "validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "schedule.visits[4].window.after: must be >= 0" in err
    assert "regimen.cycles: must be >= 1" in err


def test_cli_show_prints_arms_schedule_and_criteria(capsys):
    assert main(["protocol", "show"]) == 0
    out = capsys.readouterr().out
    for text in ("MSC", "PBO", "W13", "actual W13", "IN4", "relative_decline", "SAE12"):
        assert text in out


def test_cli_show_json_round_trips(capsys):
    assert main(["protocol", "show", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert parse_protocol(yaml.safe_dump(data, allow_unicode=True)).identity.registration == "NCT02594839"
