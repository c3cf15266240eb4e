"""A real headless Chromium (Debian's package) driven by Playwright, for testing our pages."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "no chromium on PATH: the page tests need a real browser (apt-get install chromium; "
        "`make setup` installs it when run as root)"
    )


def _file_urls_only(route) -> None:
    """No network: a page that asks for anything but its own file gets nothing."""
    if route.request.url.startswith("file://"):
        route.continue_()
    else:
        route.abort()


@contextmanager
def browser_page(width: int = 1400, height: int = 900) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.errors = errors  # pyright: ignore[reportAttributeAccessIssue]  # read by the tests
            page.route("**/*", _file_urls_only)
            yield page
        finally:
            browser.close()
