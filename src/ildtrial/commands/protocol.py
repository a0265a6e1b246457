"""``ildtrial protocol validate FILE`` / ``show`` / ``schema``: the protocol file from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ildtrial.core.protocol import ProtocolInvalid, json_schema, load_protocol


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("protocol", help="validate or show a protocol file")
    sub = parser.add_subparsers(dest="protocol_command", required=True, metavar="ACTION")
    validate = sub.add_parser("validate", help="validate a protocol file and list every problem")
    validate.add_argument("file")
    validate.set_defaults(func=run_validate)
    show = sub.add_parser("show", help="print the protocol in force (or FILE) as a readable summary or JSON")
    show.add_argument("file", nargs="?", help="protocol file (default: the packaged NCT02594839 file)")
    show.add_argument("--json", action="store_true", help="print the whole validated protocol as JSON")
    show.set_defaults(func=run_show)
    schema = sub.add_parser("schema", help="print the JSON Schema of protocol files")
    schema.set_defaults(func=lambda args: print(json.dumps(json_schema(), indent=2)) or 0)


def run_validate(args: argparse.Namespace) -> int:
    try:
        loaded = load_protocol(args.file)
    except ProtocolInvalid as exc:
        print(str(exc), file=sys.stderr)
        return 1
    p = loaded.protocol
    print(f"{args.file}: valid protocol {p.identity.registration} version {p.version} "
          f"({len(p.arms)} arms, {len(p.schedule.visits)} visits, {len(p.forms)} forms, "
          f"{len(p.eligibility.criteria)} criteria; sha256 {loaded.sha256[:16]})")
    return 0


def run_show(args: argparse.Namespace) -> int:
    try:
        loaded = load_protocol(args.file)
    except ProtocolInvalid as exc:
        print(str(exc), file=sys.stderr)
        return 1
    p = loaded.protocol
    if args.json:
        print(json.dumps(p.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return 0
    out = [
        f"{p.identity.registration}  {p.identity.title}",
        f"protocol {p.version} effective {p.protocol.effective_date}  sha256 {loaded.sha256[:16]}  ({loaded.source})",
        f"phase {p.identity.phase}, {p.identity.design}, {p.masking.mode}, planned n={p.identity.planned_enrolment}",
        "",
        "Arms:",
    ]
    for arm in p.arms:
        i = arm.intervention
        out.append(f"  {arm.code:<4} {arm.name.en}: {i.dose:g} {i.dose_unit} {i.route.lower()} per infusion")
    r = p.regimen
    out += ["", f"Regimen: {r.cycles} cycles x {r.infusions_per_cycle} infusions, {r.days_between_infusions_in_cycle} days apart",
            "", "Schedule (day 0 = first infusion):"]
    for v in p.schedule.visits:
        anchor = "day 0" if v.anchor == "day0" else f"actual {v.anchor}"
        forms = ", ".join(v.forms)
        out.append(f"  {v.code:<4} day {v.day:>4} from {anchor:<11} -{v.window.before}/+{v.window.after}  {v.name.en}  [{forms}]")
    out += ["", "Forms:"]
    for f in p.forms:
        out.append(f"  {f.code:<7} v{f.version} {len(f.fields):>2} fields  sdv={f.sdv:<10} {f.name.en}")
    out += ["", "Eligibility:"]
    for c in p.eligibility.criteria:
        out.append(f"  {c.id:<5} {c.rule.kind:<22} {c.summary.en}")
    out += ["", "Endpoints:"]
    for e in p.endpoints:
        out.append(f"  {e.type:<9} {e.id:<11} {e.title.en}")
    print("\n".join(out))
    return 0
