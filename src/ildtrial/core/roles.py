"""Roles and what each may do: one declared matrix, read by pages, API and tests alike.

A trial's separation of duties is part of its validity: a coordinator enters data but
cannot verify it, a monitor verifies but cannot change it, only the unblinded statistician
and the cell-therapy lab may know the arm in a blinded trial. Keeping the matrix as data
lets a test enumerate every (role, permission) pair and check both the grant and the
denial, and lets the documentation print the same table the code enforces.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    INVESTIGATOR = "investigator"
    SUB_INVESTIGATOR = "sub_investigator"
    STUDY_COORDINATOR = "study_coordinator"
    MONITOR = "monitor"
    DATA_MANAGER = "data_manager"
    CELL_LAB = "cell_lab"
    UNBLINDED_STATISTICIAN = "unblinded_statistician"
    DSMB_MEMBER = "dsmb_member"
    SPONSOR_VIEWER = "sponsor_viewer"
    ADMINISTRATOR = "administrator"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self][0]

    @property
    def label_ru(self) -> str:
        return ROLE_LABELS[self][1]


ROLE_LABELS: dict[Role, tuple[str, str]] = {
    Role.INVESTIGATOR: ("Principal investigator", "Главный исследователь"),
    Role.SUB_INVESTIGATOR: ("Sub-investigator", "Соисследователь"),
    Role.STUDY_COORDINATOR: ("Study coordinator", "Координатор исследования"),
    Role.MONITOR: ("Monitor", "Монитор"),
    Role.DATA_MANAGER: ("Data manager", "Менеджер данных"),
    Role.CELL_LAB: ("Cell-therapy lab / pharmacist (unblinded)", "Лаборатория клеточных технологий / фармацевт (не ослеплен)"),
    Role.UNBLINDED_STATISTICIAN: ("Unblinded statistician", "Неослепленный статистик"),
    Role.DSMB_MEMBER: ("DSMB member", "Член комитета по мониторингу безопасности"),
    Role.SPONSOR_VIEWER: ("Sponsor viewer", "Представитель спонсора (просмотр)"),
    Role.ADMINISTRATOR: ("Administrator", "Администратор"),
}


class Permission(StrEnum):
    VIEW_PROTOCOL = "view_protocol"
    VIEW_PARTICIPANTS = "view_participants"
    SCREEN_PARTICIPANTS = "screen_participants"
    RECORD_CONSENT = "record_consent"
    SIGN_ELIGIBILITY = "sign_eligibility"
    RANDOMIZE = "randomize"
    GENERATE_RANDOMIZATION_LIST = "generate_randomization_list"
    EMERGENCY_UNBLIND = "emergency_unblind"
    ENTER_DATA = "enter_data"
    SIGN_FORMS = "sign_forms"
    RAISE_QUERY = "raise_query"
    ANSWER_QUERY = "answer_query"
    CLOSE_QUERY = "close_query"
    VERIFY_SOURCE = "verify_source"
    LOCK_DATA = "lock_data"
    REPORT_AE = "report_ae"
    ASSESS_SAE = "assess_sae"
    VIEW_SAFETY = "view_safety"
    VIEW_CLOSED_REPORTS = "view_closed_reports"
    MANAGE_CELL_PRODUCT = "manage_cell_product"
    RUN_ANALYSIS = "run_analysis"
    EXPORT_DATA = "export_data"
    VIEW_AUDIT = "view_audit"
    MANAGE_USERS = "manage_users"


P = Permission
_SITE_CLINICAL = {P.VIEW_PROTOCOL, P.VIEW_PARTICIPANTS, P.VIEW_SAFETY}

#: The declared matrix. Anything not listed is denied.
PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.INVESTIGATOR: frozenset(
        _SITE_CLINICAL
        | {
            P.SCREEN_PARTICIPANTS,
            P.RECORD_CONSENT,
            P.SIGN_ELIGIBILITY,
            P.RANDOMIZE,
            P.EMERGENCY_UNBLIND,
            P.ENTER_DATA,
            P.SIGN_FORMS,
            P.ANSWER_QUERY,
            P.REPORT_AE,
            P.ASSESS_SAE,
            P.VIEW_AUDIT,
        }
    ),
    Role.SUB_INVESTIGATOR: frozenset(
        _SITE_CLINICAL
        | {
            P.SCREEN_PARTICIPANTS,
            P.RECORD_CONSENT,
            P.SIGN_ELIGIBILITY,
            P.RANDOMIZE,
            P.ENTER_DATA,
            P.SIGN_FORMS,
            P.ANSWER_QUERY,
            P.REPORT_AE,
            P.ASSESS_SAE,
        }
    ),
    Role.STUDY_COORDINATOR: frozenset(
        _SITE_CLINICAL
        | {P.SCREEN_PARTICIPANTS, P.RECORD_CONSENT, P.RANDOMIZE, P.ENTER_DATA, P.ANSWER_QUERY, P.REPORT_AE}
    ),
    Role.MONITOR: frozenset(_SITE_CLINICAL | {P.RAISE_QUERY, P.CLOSE_QUERY, P.VERIFY_SOURCE, P.VIEW_AUDIT}),
    Role.DATA_MANAGER: frozenset(
        _SITE_CLINICAL | {P.RAISE_QUERY, P.CLOSE_QUERY, P.LOCK_DATA, P.EXPORT_DATA, P.VIEW_AUDIT}
    ),
    Role.CELL_LAB: frozenset({P.VIEW_PROTOCOL, P.VIEW_PARTICIPANTS, P.MANAGE_CELL_PRODUCT}),
    Role.UNBLINDED_STATISTICIAN: frozenset(
        {
            P.VIEW_PROTOCOL,
            P.GENERATE_RANDOMIZATION_LIST,
            P.VIEW_SAFETY,
            P.VIEW_CLOSED_REPORTS,
            P.RUN_ANALYSIS,
            P.EXPORT_DATA,
        }
    ),
    Role.DSMB_MEMBER: frozenset({P.VIEW_PROTOCOL, P.VIEW_SAFETY, P.VIEW_CLOSED_REPORTS}),
    Role.SPONSOR_VIEWER: frozenset({P.VIEW_PROTOCOL, P.VIEW_SAFETY}),
    Role.ADMINISTRATOR: frozenset({P.VIEW_PROTOCOL, P.MANAGE_USERS, P.VIEW_AUDIT}),
}

#: Roles that see the allocation in a double-blind trial, whatever the protocol adds.
ALWAYS_UNBLINDED: frozenset[Role] = frozenset({Role.UNBLINDED_STATISTICIAN, Role.CELL_LAB})


def has_permission(role: Role | str, permission: Permission | str) -> bool:
    """True when the declared matrix grants ``permission`` to ``role``; unknown roles get nothing."""
    try:
        return Permission(permission) in PERMISSIONS[Role(role)]
    except ValueError:
        return False


def sees_allocation(role: Role | str, blinded: bool, unblinded_roles: frozenset[str] | set[str] = frozenset()) -> bool:
    """Whether ``role`` may see a participant's arm.

    Open label: anyone allowed to see participants (or reports) sees it. Double blind:
    only the unblinded roles of the protocol (and those always unblinded), never a role
    at the bedside, whatever else it may do.
    """
    try:
        r = Role(role)
    except ValueError:
        return False
    if not blinded:
        return has_permission(r, Permission.VIEW_PARTICIPANTS) or r in ALWAYS_UNBLINDED
    return r in ALWAYS_UNBLINDED or r.value in unblinded_roles


def requires_two_factor(role: Role | str, unblinded_roles: frozenset[str] | set[str] = frozenset()) -> bool:
    """Administrators and every role that can see allocations or closed reports must use TOTP."""
    try:
        r = Role(role)
    except ValueError:
        return True
    return r in {Role.ADMINISTRATOR, Role.DSMB_MEMBER} or r in ALWAYS_UNBLINDED or r.value in unblinded_roles
