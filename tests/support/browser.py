"""Headless Chromium through Playwright, and axe-core to check pages for accessibility.

Fixtures:

- ``browser`` (session): Debian's Chromium at /usr/bin/chromium, driven by Playwright.
  Playwright never downloads a browser here: ``make install`` and ``.ci/run`` install
  Debian's ``chromium`` package. Without it the browser tests fail, saying so.
- ``page``: a fresh browser context and page for one test.
- ``axe``: ``axe(page)`` runs axe-core on the page and returns its violations.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.paths import ROOT

# Playwright's sync API runs an asyncio event loop on the thread that started it (the
# test thread) for as long as it is started, and the browser fixture keeps it started for
# the rest of the session. Django's async_unsafe guard sees that running loop and raises
# SynchronousOnlyOperation for every ORM call on the test thread from then on: creating
# the test database, a test's own rows, even in tests that use no browser (tried: without
# this line the first browser test errors in pytest-django's database setup). The ORM
# never runs inside that loop, so lift the guard, for this test process only: the live
# server answers from its own thread, and the application is not run with it. setdefault:
# an explicit value in the environment wins.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Milliseconds Playwright waits for a page, a selector or a navigation.
TIMEOUT_MS = 15_000


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"browser tests need Chromium at {CHROMIUM}: run `apt-get install chromium` "
            "(or `make install`, which does it on Debian)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def axe():
    """``axe(page)``: the axe-core violations on the page as it is now."""
    if not AXE_JS.exists():
        pytest.fail(f"axe-core is missing at {AXE_JS}: run `npm ci`", pytrace=False)

    def run(page) -> list[dict]:
        # Evaluated, not a <script> tag: the pages' CSP blocks inline scripts without a nonce.
        page.evaluate(AXE_JS.read_text())
        return page.evaluate("async () => (await axe.run()).violations")

    return run
