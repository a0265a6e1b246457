"""Building the statistical report for a user of the web site (snapshot, masking, cache).

The report is rebuilt from a fresh snapshot of the EDC on every request, but two requests
on unchanged data (the HTML page, then its PDF) reuse the same built report: the cache key
is the data digest, the protocol digest, the data cut and the report kind, so new data or a
different kind can never be served from it, and a pooled request can never receive a
by-arm report.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from ildtrial.datasets.extract import take_snapshot
from ildtrial.edc.reports.access import ReportAccess, report_access
from ildtrial.reports import Report, build_report

_CACHE: OrderedDict[tuple[str, str, str, bool], Report] = OrderedDict()
_LOCK = threading.Lock()
_CACHE_SIZE = 4


def report_for(user) -> Report:  # noqa: ANN001
    """The report ``user`` may see, built from the current data. PermissionError if none."""
    access = report_access(user)
    if access == ReportAccess.NONE:
        raise PermissionError("your role may not view the statistical report")
    by_arm = access == ReportAccess.BY_ARM
    snapshot = take_snapshot()
    key = (snapshot.data_sha256, snapshot.config.protocol_sha256, snapshot.data_cut.isoformat(), by_arm)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            _CACHE.move_to_end(key)
            return cached
    report = build_report(snapshot, by_arm=by_arm)
    with _LOCK:
        _CACHE[key] = report
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return report


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
