"""/api/v5/docs in headless Chromium: one family's ops drawn, the picker switches family, an
alias is named under its op. (Timings are in bench/RESULTS.md; tests check behaviour.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from tests.integration.conftest import static_uvicorn_server

SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def docs_server(services_env, tmp_path):
    with static_uvicorn_server(services_env, tmp_path) as url:
        yield url


@pytest.fixture
def page(browser):
    return browser.new_page(viewport={"width": 1280, "height": 900})


def test_the_reference_page_reads_by_headings_and_works_with_the_keyboard_on_a_phone(
    docs_server, page
):
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"{docs_server}/api/v5/docs?family=attempt")
    start = page.get_by_role("region", name="POST /api/v5/artifacts/attempt/start", exact=True)
    assert start.get_by_role("cell", name="home_id", exact=True).is_visible()
    assert "Give exactly one of home_id or practice_id." in start.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways page
    page.screenshot(path=str(SCREENSHOTS / "api-docs-375.png"), full_page=False)
    picker = page.get_by_role("navigation", name="API families")
    assert (
        picker.get_by_role("link", name="attempt", exact=True).get_attribute("aria-current")
        == "page"
    )
    # Keyboard: tab to the persona family and follow it.
    persona = picker.get_by_role("link", name="persona", exact=True)
    persona.focus()
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Glow API reference: persona").wait_for()
    page.set_viewport_size({"width": 1440, "height": 900})
    page.screenshot(path=str(SCREENSHOTS / "api-docs-1440.png"), full_page=False)
    page.get_by_role("link", name="Try these ops in Swagger UI").click()
    page.get_by_text("/api/v5/artifacts/persona/search", exact=True).wait_for()


def test_swagger_ui_draws_one_familys_ops_and_the_picker_switches_family(docs_server, page):
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{docs_server}/api/v5/docs/try?family=persona")
    search = page.get_by_text("/api/v5/artifacts/persona/search", exact=True)
    search.wait_for()
    drawn = page.locator(".opblock-summary-path").all_inner_texts()
    assert drawn and all(path.startswith("/api/v5/artifacts/persona/") for path in drawn), drawn
    assert "/api/v5/artifacts/persona/file_download" not in drawn  # an alias, not a path
    assert "/api/v5/artifacts/persona/file/download" in drawn
    assert not any("//" in path for path in drawn)

    picker = page.get_by_role("navigation", name="API families")
    picker.get_by_role("link", name="attempt", exact=True).click()
    page.get_by_text("/api/v5/artifacts/attempt/start", exact=True).wait_for()
    current = picker.get_by_role("link", name="attempt", exact=True)
    assert current.get_attribute("aria-current") == "page"
    drawn = page.locator(".opblock-summary-path").all_inner_texts()
    assert all(path.startswith("/api/v5/artifacts/attempt/") for path in drawn), drawn

    # An op opens to its description, which names its alias.
    page.get_by_text("/api/v5/artifacts/attempt/file/download", exact=True).click()
    page.get_by_text("/api/v5/artifacts/attempt/file_download").first.wait_for()
    assert errors == []
