"""Who may see which statistical report: by arm, pooled, or none. One rule for page and CLI.

* **By arm** (closed report): roles that run the analysis or read closed reports
  (``RUN_ANALYSIS``: the unblinded statistician; ``VIEW_CLOSED_REPORTS``: DSMB members).
  Comparative results are their job, whatever the masking.
* **Pooled** (open report): other roles allowed to view safety data (``VIEW_SAFETY``:
  sponsor viewers, monitors, data managers). They follow the trial's safety but must not
  see accumulating comparisons, even in an open-label trial, so as not to influence its
  conduct (the usual DMC-charter separation of open and closed reports).
* **None**: everyone else, and site staff who enter data (``ENTER_DATA``: investigators,
  coordinators) even though they may view individual safety data: aggregate efficacy
  results during the trial would bias the measurements they take. They get 403.
"""

from __future__ import annotations

from enum import StrEnum

from ildtrial.core.roles import Permission


class ReportAccess(StrEnum):
    BY_ARM = "by_arm"
    POOLED = "pooled"
    NONE = "none"


def report_access(user) -> ReportAccess:  # noqa: ANN001 - the project's User model
    """The report ``user`` may see (see the module docstring)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return ReportAccess.NONE
    if user.can(Permission.RUN_ANALYSIS) or user.can(Permission.VIEW_CLOSED_REPORTS):
        return ReportAccess.BY_ARM
    if user.can(Permission.VIEW_SAFETY) and not user.can(Permission.ENTER_DATA):
        return ReportAccess.POOLED
    return ReportAccess.NONE
