"""Property-based run of the published OpenAPI schema against the app, in process (WSGI).

A coordinator's token, a small trial in the database, every GET operation and the form
POST, 20 generated requests per operation (valid and invalid ones): no request may
produce a 5xx. The form POST is aimed at the real participant and its week-13 visit, so
generated values reach ``save_form`` (refusals must come back as 4xx, never a crash).

Why one test looping over the operations rather than ``@schema.parametrize()``: the trial
is built once instead of once per operation (a tenth of the work on a shared 2-core
machine), and ``schemathesis.pytest.from_fixture`` of schemathesis 4.32 reads a
pytest-internal attribute that pytest 9 no longer has. The schema is loaded from the app
when the module is imported; serving it needs no database.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from ildtrial.edc.api import tokens
from ildtrial.edc.audit.context import acting_as
from ildtrial.edc.wsgi import application
from tests.edc.test_api_support import build_trial, make_team

pytestmark = pytest.mark.django_db
FORM_CODES = ("VS", "SPIRO", "DLCO", "SIXMWT", "LAB", "INF", "DM", "XX")

# GET operations and the one POST (the form write); nothing else is published
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", application).include(method=["GET", "POST"])


@pytest.fixture
def open_connections():
    """Keep the test's database connection open between the WSGI app's requests.

    Django closes the connection when a request finishes; inside the test transaction that
    would end the test's database, so (as ``django.test.Client`` does) that is switched off
    while the raw WSGI app serves the generated requests.
    """
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _strategy(operation):
    strategies = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        try:
            strategies.append(operation.as_strategy(mode))
        except Exception:  # noqa: BLE001 - an operation with nothing to make invalid has no negative cases
            continue
    return st.one_of(*strategies)


def _exercise(operation, *, participant_pk: int, headers: dict[str, str], statuses: set[int]) -> None:
    """Send up to 20 generated requests to one operation; none may be answered with a 5xx."""
    is_form_write = operation.method.upper() == "POST"

    @settings(max_examples=20, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=_strategy(operation), form_code=st.sampled_from(FORM_CODES))
    def run(case, form_code: str) -> None:
        if is_form_write:
            case.path_parameters = {**(case.path_parameters or {}), "participant_id": participant_pk,
                                    "visit_code": "W13", "form_code": form_code}
        response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
        assert response.status_code < 500, (case.method, case.formatted_path, response.status_code)
        if is_form_write and case.method.upper() == "POST":
            statuses.add(response.status_code)

    run()


def test_no_generated_request_makes_a_server_error(make_user, open_connections):
    trial = build_trial(make_team(make_user))
    with acting_as(None, source="test", reason="schemathesis token"):
        token = tokens.issue(None, trial.team["study_coordinator"], "schemathesis")[1]
    operations = [result.ok() for result in schema.get_all_operations()]
    form_write_statuses: set[int] = set()
    for operation in operations:
        _exercise(operation, participant_pk=trial.participant.pk, headers={"Authorization": f"Bearer {token}"},
                  statuses=form_write_statuses)
    exercised = {f"{op.method.upper()} {op.path}" for op in operations}
    assert len(exercised) >= 10
    assert "POST /api/participants/{participant_id}/visits/{visit_code}/forms/{form_code}" in exercised
    assert 422 in form_write_statuses  # generated values reached save_form and were refused, not crashed on
