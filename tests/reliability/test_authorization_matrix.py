"""Every page of the site, requested by every role (and by nobody): the declared matrix holds.

The matrix below is declared here, page by page, from the permission each page needs
(``ildtrial.core.roles``); a page that is not listed is denied to everyone, so a new page
fails this test until someone decides who may open it. Allowed roles get a page (200), a
redirect (302), or 404/405 when the object or method does not fit; denied roles get 403;
the anonymous visitor is sent to the login page; nothing answers 500.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from ildtrial.core.roles import PERMISSIONS, Permission, Role
from tests.conftest import sign_in

P = Permission
ALL_ROLES = frozenset(Role)


def having(*permissions: Permission) -> frozenset[Role]:
    return frozenset(r for r in Role if all(p in PERMISSIONS[r] for p in permissions))


#: Pages open to anyone, signed in or not.
PUBLIC = {"accounts:login", "set_language"}
#: Pages for any signed-in user (the second factor pages belong to the sign-in itself).
SIGNED_IN = {"home", "accounts:otp_setup", "accounts:otp_verify"}
#: Not requested: the API has its own token tests; logout ends the session under test.
SKIPPED = {"accounts:logout", "api_tokens", "api_token_revoke"}

REPORT_ROLES = having(P.RUN_ANALYSIS) | having(P.VIEW_CLOSED_REPORTS) | (having(P.VIEW_SAFETY) - having(P.ENTER_DATA))

#: url name -> roles allowed to GET it. Anything absent: denied.
MATRIX: dict[str, frozenset[Role]] = {
    **dict.fromkeys(SIGNED_IN, ALL_ROLES),
    "accounts:user_list": having(P.MANAGE_USERS),
    "accounts:user_create": having(P.MANAGE_USERS),
    "accounts:user_edit": having(P.MANAGE_USERS),
    **{f"study:{n}": having(P.VIEW_PROTOCOL) for n in ("protocol", "schedule", "forms", "form", "criteria")},
    **{f"audit:{n}": having(P.VIEW_AUDIT) for n in ("log", "export", "history")},
    **{f"participants:{n}": having(P.VIEW_PARTICIPANTS) for n in ("list", "screening_log", "detail", "casebook")},
    "participants:register": having(P.SCREEN_PARTICIPANTS),
    "participants:evaluate": having(P.SCREEN_PARTICIPANTS),
    "participants:screen_fail": having(P.SCREEN_PARTICIPANTS),
    "participants:consent": having(P.RECORD_CONSENT),
    "participants:withdraw": having(P.RECORD_CONSENT),
    "participants:sign_eligibility": having(P.SIGN_ELIGIBILITY),
    "participants:randomize": having(P.RANDOMIZE),
    "participants:unblind": having(P.EMERGENCY_UNBLIND),
    **{f"visits:{n}": having(P.VIEW_PARTICIPANTS) for n in ("due", "calendar", "ics")},
    **{f"visits:{n}": having(P.ENTER_DATA) for n in ("record", "missed", "unscheduled")},
    "randomization:list": having(P.GENERATE_RANDOMIZATION_LIST),
    "crfs:queries": having(P.VIEW_PARTICIPANTS),
    "crfs:edit": having(P.VIEW_PARTICIPANTS),
    "crfs:query_action": having(P.VIEW_PARTICIPANTS),
    "crfs:lock": having(P.LOCK_DATA),
    "crfs:lock_form": having(P.LOCK_DATA),
    **{f"crfs:{n}": having(P.ENTER_DATA) for n in ("new", "not_done", "check")},
    "crfs:verify": having(P.VERIFY_SOURCE),
    "crfs:sign": having(P.SIGN_FORMS),
    "crfs:raise_query": having(P.RAISE_QUERY),
    **{f"safety:{n}": having(P.VIEW_SAFETY) for n in (
        "dashboard", "participant", "event", "sae", "sae_print", "sae_pdf", "sae_submit", "dsmb_open",
        "dsmb_open_pdf")},
    **{f"safety:{n}": having(P.REPORT_AE) for n in ("new_event", "edit_event", "sae_follow_up", "sae_narrative")},
    "safety:sae_assess": having(P.ASSESS_SAE),
    "safety:dsmb_closed": having(P.VIEW_CLOSED_REPORTS),
    "safety:dsmb_closed_pdf": having(P.VIEW_CLOSED_REPORTS),
    "safety:dictionary": having(P.LOCK_DATA),
    **{f"reports:{n}": REPORT_ROLES for n in ("index", "statistical", "statistical_pdf")},
    **{f"cellproduct:{n}": having(P.MANAGE_CELL_PRODUCT) for n in (
        "to_prepare", "prepare", "lots", "lot", "ledger", "correct")},
    **{f"cellproduct:{n}": having(P.VIEW_PARTICIPANTS) for n in (
        "label", "lot_recall", "lot_recall_csv", "donor_recall", "donor_recall_csv", "trace", "trace_csv")},
    "cellproduct:bedside": having(P.ENTER_DATA),
}
#: Pages whose documents are slow to build (PDFs): requested by one allowed and one denied role only.
SLOW = {"reports:statistical_pdf", "reports:statistical", "safety:sae_pdf", "safety:dsmb_open_pdf",
        "safety:dsmb_closed_pdf"}


def _walk(patterns, prefix: str = "", namespace: str = ""):  # noqa: ANN001, ANN202
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = namespace + (f"{p.namespace}:" if p.namespace else "")
            yield from _walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), namespace + (p.name or ""), p


def _concrete(route: str, values: dict[str, str]) -> str:
    route = route.lstrip("^").rstrip("$")

    def fill(match: re.Match) -> str:
        name = match.group(2)
        return str(values.get(name, "999999" if match.group(1) == "int" else "missing"))

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, route)


@pytest.fixture
def world(make_user):
    from ildtrial.edc.audit.context import acting_as
    from ildtrial.edc.participants import services as participants
    from ildtrial.edc.study.models import Site

    coordinator = make_user("study_coordinator")
    with acting_as(coordinator, source="test"):
        participant = participants.register_candidate(
            coordinator, Site.objects.get(code="MOW01"), timezone.localdate() - timedelta(days=2))
    visit = participant.visits.get(code="SCR")
    return {"participant": participant, "coordinator": coordinator, "visit": visit}


def test_every_page_against_the_declared_matrix(make_user, world):
    participant = world["participant"]
    values = {"pk": participant.pk, "visit_code": "SCR", "form_code": "DM", "code": "DM",
              "model": "participants.Participant", "instance": 1}
    urls = [(name, _concrete(route, values), pattern) for route, name, pattern in _walk(get_resolver().url_patterns)
            if not route.startswith("api/") and name not in SKIPPED]
    unlisted = sorted(n for n, _, _ in urls if n not in MATRIX and n not in PUBLIC)
    assert not unlisted, f"pages without a declared row in the matrix (denied to all): {unlisted}"

    # The matrix agrees with what each view declares it needs.
    for name, _, pattern in urls:
        required = getattr(pattern.callback, "required_permissions", None)
        if required:
            assert MATRIX[name] == having(*required), name

    clients: dict[Role | None, Client] = {None: Client()}
    for role in Role:
        client = Client()
        sign_in(client, world["coordinator"] if role == Role.STUDY_COORDINATOR else make_user(role.value))
        clients[role] = client

    failures: list[str] = []
    for name, url, _ in urls:
        allowed = ALL_ROLES if name in PUBLIC else MATRIX[name]
        roles: list[Role | None] = [None, *Role]
        if name in SLOW:
            roles = [None, *sorted(allowed)[:1], *sorted(ALL_ROLES - allowed)[:1]]
        for role in roles:
            response = clients[role].get(url)
            status = response.status_code
            who = role.value if role else "anonymous"
            if status == 405 and (role is None or role not in allowed):
                # A POST-only action: the refusal must come before the form is even read.
                response = clients[role].post(url, {})
                status = response.status_code
            if status >= 500:
                failures.append(f"{who} GET {url} ({name}) -> {status}")
            elif role is None and name not in PUBLIC:
                if status != 302 or "/accounts/login/" not in response["Location"]:
                    failures.append(f"anonymous GET {url} ({name}) -> {status}, expected redirect to login")
            elif role is not None and role in allowed and status not in (200, 302, 404, 405):
                failures.append(f"{who} GET {url} ({name}) -> {status}, expected allowed")
            elif role is not None and role not in allowed and status != 403:
                failures.append(f"{who} GET {url} ({name}) -> {status}, expected 403")
    assert not failures, "\n".join(failures)


def test_coordinator_of_another_site_gets_404(make_user, world):
    from django.urls import reverse

    from ildtrial.edc.audit.context import acting_as
    from ildtrial.edc.study.models import Site

    pk = world["participant"].pk
    with acting_as(None, source="test", reason="second site"):
        Site.objects.create(code="OTH01", name="Other site", city="Kazan", country="RU")
    other = make_user("study_coordinator", sites=("OTH01",))
    client = Client()
    sign_in(client, other)
    for name in ("participants:detail", "participants:casebook", "visits:calendar", "safety:participant",
                 "cellproduct:trace"):
        assert client.get(reverse(name, args=[pk])).status_code == 404, name
    own = Client()
    sign_in(own, world["coordinator"])
    assert own.get(reverse("participants:detail", args=[pk])).status_code == 200
