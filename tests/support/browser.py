"""Headless Chromium for the browser tests: Debian's chromium with one set of flags, and sign-in."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def playwright(monkeypatch):
    """Playwright's sync API; the test is skipped where Debian chromium is not installed."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (bash .ci/browser-deps)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM work is plain and blocking.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as running:
        yield running


def launch(playwright, *extra: str):
    """Chromium with the shared flags and any extra ones (a fake microphone, say)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra])


@pytest.fixture
def browser(playwright):
    """A launched Chromium, closed after the test."""
    chromium = launch(playwright)
    yield chromium
    chromium.close()


def sign_in(page, url: str, *, username: str, password: str, landing: str | None = None) -> None:
    """Open `url`, which sends a signed-out visitor to the sign-in page; sign in and wait to be
    back at `url` (or at `landing`, where the site sends this person instead)."""
    page.goto(url)
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    try:
        page.wait_for_url(landing or url)
    except Exception:
        print(page.url, page.content()[:3000])
        raise
