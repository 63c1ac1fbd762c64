"""A real headless Chromium for tests of what a person sees in a page Themis writes.

Debian's `chromium` (which `make test` installs when it is missing) driven by Playwright:
Playwright's own browser download needs a network, its driver does not. One browser per test
session; each test gets a fresh page whose console errors and uncaught exceptions are collected
(`Opened.errors`), so a test can assert a page loads cleanly. Shared by every browser test
(the HTML report, the viewer).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, sync_playwright


@attrs.define
class Opened:
    """A page opened from a file, every console error or page exception it raised, and the URL
    of every request it made (the file itself included)."""

    page: Page
    errors: list[str] = attrs.field(factory=list)
    requests: list[str] = attrs.field(factory=list)

    def screenshot(self, path: Path) -> Path:
        """Save the whole page as PNG at `path` (kept in the test's output directory)."""
        self.page.screenshot(path=str(path), full_page=True)
        return path


OpenPage = Callable[[Path | str], Opened]


def chromium_path() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is not installed: `make test` installs Debian's chromium")
    return found


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    """`open_page(path)`: the file at `path` (or the page at a URL) loaded in a fresh 1280-wide
    page, with its errors."""
    pages: list[Page] = []

    def opened(path: Path | str) -> Opened:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        pages.append(page)
        result = Opened(page)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                result.errors.append(f"console: {message.text}")

        def on_error(error: Error) -> None:
            result.errors.append(f"page error: {error.message}")

        page.on("request", lambda request: result.requests.append(request.url))
        page.on("console", on_console)
        page.on("pageerror", on_error)
        page.goto(path if isinstance(path, str) else path.resolve().as_uri(), wait_until="load")
        return result

    yield opened
    for page in pages:
        page.close()
