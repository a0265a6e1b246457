"""The role matrix: each role is allowed what its job needs and denied the rest."""

from __future__ import annotations

import pytest

from ildtrial.core.roles import (
    Permission,
    Role,
    has_permission,
    requires_two_factor,
    sees_allocation,
)

P = Permission
# Written out independently of the module, as the specification to check it against.
EXPECTED: dict[Role, set[Permission]] = {
    Role.INVESTIGATOR: {P.VIEW_PROTOCOL, P.VIEW_PARTICIPANTS, P.VIEW_SAFETY, P.SCREEN_PARTICIPANTS, P.RECORD_CONSENT,
                        P.SIGN_ELIGIBILITY, P.RANDOMIZE, P.EMERGENCY_UNBLIND, P.ENTER_DATA, P.SIGN_FORMS,
                        P.ANSWER_QUERY, P.REPORT_AE, P.ASSESS_SAE, P.VIEW_AUDIT},
    Role.SUB_INVESTIGATOR: {P.VIEW_PROTOCOL, P.VIEW_PARTICIPANTS, P.VIEW_SAFETY, P.SCREEN_PARTICIPANTS,
                            P.RECORD_CONSENT, P.SIGN_ELIGIBILITY, P.RANDOMIZE, P.ENTER_DATA, P.SIGN_FORMS,
                            P.ANSWER_QUERY, P.REPORT_AE, P.ASSESS_SAE},
    Role.STUDY_COORDINATOR: {P.VIEW_PROTOCOL, P.VIEW_PARTICIPANTS, P.VIEW_SAFETY, P.SCREEN_PARTICIPANTS,
                             P.RECORD_CONSENT, P.RANDOMIZE, P.ENTER_DATA, P.ANSWER_QUERY, P.REPORT_AE},
    Role.MONITOR: {P.VIEW_PROTOCOL, P.VIEW_PARTICIPANTS, P.VIEW_SAFETY, P.RAISE_QUERY, P.CLOSE_QUERY,
                   P.VERIFY_SOURCE, P.VIEW_AUDIT},
    Role.DATA_MANAGER: {P.VIEW_PROTOCOL, P.VIEW_PARTICIPANTS, P.VIEW_SAFETY, P.RAISE_QUERY, P.CLOSE_QUERY,
                        P.LOCK_DATA, P.EXPORT_DATA, P.VIEW_AUDIT},
    Role.CELL_LAB: {P.VIEW_PROTOCOL, P.VIEW_PARTICIPANTS, P.MANAGE_CELL_PRODUCT},
    Role.UNBLINDED_STATISTICIAN: {P.VIEW_PROTOCOL, P.GENERATE_RANDOMIZATION_LIST, P.VIEW_SAFETY,
                                  P.VIEW_CLOSED_REPORTS, P.RUN_ANALYSIS, P.EXPORT_DATA},
    Role.DSMB_MEMBER: {P.VIEW_PROTOCOL, P.VIEW_SAFETY, P.VIEW_CLOSED_REPORTS},
    Role.SPONSOR_VIEWER: {P.VIEW_PROTOCOL, P.VIEW_SAFETY},
    Role.ADMINISTRATOR: {P.VIEW_PROTOCOL, P.MANAGE_USERS, P.VIEW_AUDIT},
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_role_matrix_grants_and_denies_as_declared(role, permission):
    assert has_permission(role, permission) is (permission in EXPECTED[role])


def test_unknown_role_or_permission_gets_nothing():
    assert not has_permission("janitor", P.VIEW_PROTOCOL)
    assert not has_permission(Role.INVESTIGATOR, "drop_tables")


def test_separation_of_duties():
    # nobody both enters and source-verifies data; nobody verifies and signs
    for role in Role:
        assert not (has_permission(role, P.ENTER_DATA) and has_permission(role, P.VERIFY_SOURCE))
        assert not (has_permission(role, P.VERIFY_SOURCE) and has_permission(role, P.SIGN_FORMS))
    # the administrator manages accounts but touches no trial data
    assert not any(has_permission(Role.ADMINISTRATOR, p) for p in (P.VIEW_PARTICIPANTS, P.ENTER_DATA, P.RANDOMIZE))


@pytest.mark.parametrize("role", list(Role))
def test_double_blind_allocation_visible_only_to_unblinded_roles(role):
    unblinded = {"cell_lab", "unblinded_statistician"}
    assert sees_allocation(role, blinded=True, unblinded_roles=unblinded) is (role.value in unblinded)


def test_open_label_allocation_visible_to_clinical_roles_not_to_administrator():
    assert sees_allocation(Role.STUDY_COORDINATOR, blinded=False)
    assert sees_allocation(Role.MONITOR, blinded=False)
    assert not sees_allocation(Role.ADMINISTRATOR, blinded=False)


@pytest.mark.parametrize("role", list(Role))
def test_two_factor_required_for_administrator_and_unblinded_roles(role):
    needs = role in {Role.ADMINISTRATOR, Role.CELL_LAB, Role.UNBLINDED_STATISTICIAN, Role.DSMB_MEMBER}
    assert requires_two_factor(role, {"cell_lab", "unblinded_statistician"}) is needs
