"""The Django shell around the pure core: persistence, pages, permissions, audit."""

from __future__ import annotations

import os


def setup(settings_module: str = "ildtrial.edc.settings") -> None:
    """Configure Django for command-line use (idempotent)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    import django

    django.setup()
