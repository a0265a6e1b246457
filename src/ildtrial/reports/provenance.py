"""What a report was made from: protocol, data digest, software versions, dates.

A DSMB or regulator holding two reports must be able to tell whether they came from the
same protocol and the same data with the same code; the footer answers that with digests
and versions rather than with file names or times alone.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import date, datetime
from importlib import metadata

__all__ = ["Provenance", "software_versions"]

_PACKAGES = ("numpy", "scipy", "statsmodels", "pandas", "matplotlib", "ildtrial")


def software_versions() -> dict[str, str]:
    """Versions of Python and of the packages the analysis ran on (installed metadata)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            module = __import__(name)
            out[name] = str(getattr(module, "__version__", "unknown"))
    return out


@dataclass(frozen=True)
class Provenance:
    """Footer facts of one report."""

    protocol_version: str
    protocol_sha256: str
    data_sha256: str
    data_sha256_label: str
    data_cut: date
    generated_at: datetime
    software: dict[str, str]

    def lines(self) -> list[tuple[str, str]]:
        soft = ", ".join(f"{k} {v}" for k, v in self.software.items())
        return [
            ("Protocol", f"version {self.protocol_version}, SHA-256 {self.protocol_sha256 or 'unknown'}"),
            (self.data_sha256_label, self.data_sha256),
            ("Data cut-off", self.data_cut.isoformat()),
            ("Software", soft),
            ("Generated", self.generated_at.strftime("%Y-%m-%d %H:%M:%S %Z").strip()),
        ]
