"""Issue 20 in headless Chromium over the demo data: the demo instructor edits a persona's traits
through the form and publishes, glow_demo runs again and the edit stays; the cohort page, a
transcript, the dashboard, the leaderboard (anonymised for a learner) and a report open with the
figures the API answers; the attempts count on /staff/ equals attempt/search's total.
Screenshots of the cohort page, dashboard, leaderboard and a report go to docs/screenshots/."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from glow.accounts.models import Profile
from glow.accounts.services import api_key_create
from glow.catalog.models import Persona, Simulation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOCS = Path(settings.BASE_DIR) / "docs" / "screenshots"


@pytest.fixture
def demo():
    call_command("glow_demo", stdout=StringIO())
    return {p.user.username: p for p in Profile.objects.select_related("user")}


def _sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/admin/login/?next=/staff/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"{username}-glow-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def _shot(page, name: str) -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS / f"{name}.png"), full_page=True)


def test_an_instructors_trait_edit_survives_glow_demo(live_server, browser, demo):
    base = live_server.url
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _sign_in(page, base, "instructor")

    page.get_by_role("link", name="Catalog").click()
    page.get_by_role("link", name="Casey, confused about recursion").click()
    page.get_by_role("button", name="Remove trait 4").click()
    page.get_by_role("button", name="Add trait").click()
    page.get_by_role("textbox", name="Trait 4").fill("curious")
    page.get_by_role("button", name="Move trait 4 up").click()
    page.get_by_role("button", name="Publish").click()
    assert "Published: version 2." in page.get_by_role("status").inner_text()

    call_command("glow_demo", stdout=StringIO())

    persona = Persona.objects.get(pk=Persona.objects.get(title__startswith="Casey").pk)
    assert persona.traits == ["confused", "polite", "curious", "anxious"]
    assert Persona.objects.filter(title__startswith="Casey").count() == 1
    page.reload()
    assert page.get_by_role("textbox", name="Trait 3").input_value() == "curious"
    page.close()


def test_instructor_follows_the_cohort_and_a_learner_sees_anonymous_ranks(
    live_server,
    browser,
    demo,
):
    base = live_server.url
    simulation = Simulation.objects.get(title="Office hours: CS-180")
    key = api_key_create(profile=demo["instructor"]).plaintext
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _sign_in(page, base, "instructor")

    # /staff/ counts the attempts attempt/search finds.
    search = httpx.post(
        f"{base}/api/v5/artifacts/attempt/search", json={}, headers={"X-Api-Key": key}
    ).json()
    page.goto(f"{base}/staff/")
    assert page.locator("#total-attempts").inner_text() == str(search["total_count"]) == "4"

    # The cohort page, then the simulation's learner x scenario table.
    page.get_by_role("link", name="Cohorts").click()
    page.get_by_role("link", name="Office hours: CS-180").first.click()
    table = page.locator("#cohort-table")
    assert table.get_by_role("link", name="Lena Learner").is_visible()
    assert table.get_by_role("link", name="Leo Learner").is_visible()
    assert page.locator("#attempt-total").get_attribute("data-count") == "4"
    _shot(page, "cohort-page")

    # A learner's transcript with the grader's per-criterion scores.
    page.locator("#attempt-list").get_by_role("link", name="Transcript").last.click()
    assert page.get_by_role("heading", level=1).inner_text().startswith("Office hours: CS-180")
    criteria = page.locator("table.criteria").first
    assert criteria.get_by_role("rowheader", name="Acknowledge feelings").is_visible()

    page.get_by_role("link", name="Dashboard").click()
    assert page.locator("#dash-attempts").inner_text() == "4"
    assert page.locator("#funnel").get_by_role("row", name="Completed").is_visible()
    _shot(page, "dashboard")

    page.get_by_role("link", name="Leaderboard").click()
    assert page.get_by_role("heading", level=1).inner_text() == f"Leaderboard: {simulation.title}"
    rows = page.locator("#leaderboard tbody tr")
    assert rows.count() == 2 and "Lena Learner" in rows.first.inner_text()
    _shot(page, "leaderboard")

    page.get_by_role("link", name="Reports").click()
    page.get_by_role("link", name="CS-180 TAs Fall").first.click()
    assert page.get_by_role("heading", level=1).inner_text() == "Cohort report: CS-180 TAs Fall"
    assert page.locator("#members").get_by_role("link", name="Leo Learner").is_visible()
    _shot(page, "report-cohort")
    page.locator("#members").get_by_role("link", name="Leo Learner").click()
    assert page.locator("#report-attempts").inner_text() == "2"
    _shot(page, "report-learner")
    page.close()

    # Learners sign in on the learner pages (not on this branch): a session cookie stands in.
    session = Client()
    session.force_login(demo["learner2"].user)
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": session.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": base,
            }
        ]
    )
    learner = context.new_page()
    learner.goto(f"{base}/learn/leaderboard/{simulation.pk}/")
    board = learner.locator("#leaderboard").inner_text()
    assert "Leo Learner (you)" in board
    assert "Lena Learner" not in board and "Learner 1" in board
    _shot(learner, "leaderboard-learner")
    context.close()
