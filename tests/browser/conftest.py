"""A real browser (Debian chromium, headless) against the live test server.

Each test module skips itself when /usr/bin/chromium is absent, unless
ILDTRIAL_BROWSER_TESTS=required (as in ``make test``, whose ``browser`` target installs
chromium): then a missing browser fails the tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REQUIRED = os.environ.get("ILDTRIAL_BROWSER_TESTS") == "required"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"



def skip_without_browser() -> None:
    """Call at module level: skip the module when chromium is absent and not required."""
    if not CHROMIUM.exists() and not REQUIRED:
        pytest.skip("chromium is not installed (/usr/bin/chromium); "
                    "set ILDTRIAL_BROWSER_TESTS=required to fail instead", allow_module_level=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    # playwright's sync API keeps an event loop in this thread; the tests still use the ORM here
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
