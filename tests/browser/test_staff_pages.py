"""The staff drill-down in headless Chromium: as an instructor, log in, open the activity dashboard,
follow a session to its groups and a group to its runs; every page's figures equal the API's.
A learner gets 403 everywhere; another organization's session answers 404. Screenshots of each
page land in screenshots/ at the repository root."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from glow.accounts.services import api_key_create
from glow.accounts.tests.factories import (
    CohortFactory,
    DepartmentFactory,
    OrganizationFactory,
    ProfileFactory,
)
from glow.catalog.tests.factories import (
    AIModelFactory,
    HomeFactory,
    RubricFactory,
    SimulationFactory,
)
from glow.core.templatetags.glow_format import count, money
from system.tests.factories import books
from tests.support.browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(settings.BASE_DIR) / "screenshots"
PASSWORD = "instructor-glow-demo"


def _person(organization, username: str, role: str, name: str, departments=()):
    user = get_user_model().objects.create_user(
        username=username, password=PASSWORD, is_staff=role != "learner"
    )
    profile = ProfileFactory(user=user, organization=organization, role=role, display_name=name)
    profile.departments.set(departments)
    return profile


def _graded_attempt(organization, department, learner, session):
    """A practice attempt in the learner's session: one chat messaged, ended and graded."""
    from attempts import lifecycle, messaging

    cohort = CohortFactory(organization=organization, department=department, name="CS-180 TAs")
    cohort.members.add(learner)
    rubric = RubricFactory(organization=organization, department=department, groups=2)
    simulation = SimulationFactory(
        organization=organization,
        department=department,
        rubric=rubric,
        title="Office hours: CS-180",
    )
    home = HomeFactory(
        organization=organization, department=department, simulation=simulation, cohort=cohort
    )
    attempt = lifecycle.attempt_start(actor=learner, home_id=home.pk, session=session)
    chat_id = attempt.chats.order_by("position").first().pk
    messaging.attempt_message(
        actor=learner,
        attempt_id=attempt.pk,
        chat_id=chat_id,
        message="That sounds frustrating. What have you tried with the base case so far?",
        session=session,
    )
    lifecycle.attempt_end(
        actor=learner, attempt_id=attempt.pk, chat_id=chat_id, grade=True, session=session
    )
    attempt.refresh_from_db()
    return attempt


@pytest.fixture
def cast():
    """A small Demo University: an instructor of Computer Science, two of its learners, a
    Mathematics learner the instructor may not see, and another college."""
    university = OrganizationFactory(name="Demo University")
    computing = DepartmentFactory(organization=university, name="Computer Science")
    maths = DepartmentFactory(organization=university, name="Mathematics")
    instructor = _person(university, "instructor", "instructor", "Ivan Instructor", [computing])
    lena = _person(university, "learner1", "learner", "Lena Learner", [computing])
    leo = _person(university, "learner2", "learner", "Leo Learner", [computing])
    lia = _person(university, "learner3", "learner", "Lia Learner", [maths])
    model = AIModelFactory(
        organization=university,
        title="Demo GPT",
        input_price_per_million=Decimal("2.50"),
        output_price_per_million=Decimal("10.00"),
    )
    session = books(profile=lena, model=model, groups=2, runs=3)
    books(profile=leo, model=model, groups=1, runs=2)
    books(profile=lia, model=model, groups=1, runs=1)
    attempt = _graded_attempt(university, computing, lena, session)
    college = OrganizationFactory(name="Other College")
    foreign = books(profile=_person(college, "other_learner", "learner", "Olga Learner"))
    learner_client = Client()
    learner_client.force_login(lena.user)
    return {
        "instructor": instructor,
        "session": session,
        "group": session.groups.filter(family="persona").order_by("created_at").first(),
        "attempt": attempt,
        "chat_score": attempt.chats.order_by("position").first().grade.score,
        "foreign_session": foreign,
        "api_key": api_key_create(profile=instructor).plaintext,
        "learner_cookie": learner_client.cookies[settings.SESSION_COOKIE_NAME].value,
    }


def _api_op(base: str, key: str, op: str, body: dict) -> dict:
    response = httpx.post(
        f"{base}/api/v5/artifacts/{op}", json=body, headers={"X-Api-Key": key}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def _api(base: str, key: str, op: str, body: dict) -> dict:
    return _api_op(base, key, f"system/{op}", body)


def _figure(page, selector: str) -> str:
    return page.locator(selector).first.inner_text().strip()


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_instructor_drills_down_and_every_figure_matches_the_api(live_server, browser, cast):
    base = live_server.url
    key = cast["api_key"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    sign_in(page, f"{base}/staff/", username="instructor", password=PASSWORD)

    # The API call opens the instructor's API session; reload so both count the same sessions.
    activity = _api(base, key, "activity", {})
    page.reload()
    assert _figure(page, "#total-sessions") == count(activity["session_count"])
    # 6 + 2 generations, and the attempt's persona reply, hints and grade.
    assert _figure(page, "#total-runs") == count(activity["run_count"]) == str(6 + 2 + 3)
    assert _figure(page, "#total-tokens") == count(activity["total_tokens"])
    assert _figure(page, "#total-cost") == money(activity["total_cost"])
    assert page.locator("svg.chart").count() == 3
    assert "Lia Learner" not in page.content()  # another department's learner
    _shot(page, "01-staff-activity")

    page.click("nav[aria-label=Staff] >> text=Sessions")
    page.wait_for_url(f"{base}/staff/sessions/")
    sessions = _api(base, key, "sessions", {"page_size": 25})
    assert (
        int(page.locator("#session-count").get_attribute("data-count")) == (sessions["total_count"])
    )
    _shot(page, "02-staff-sessions")

    session_id = str(cast["session"].pk)
    page.click(f'tr[data-session-id="{session_id}"] th a')
    page.wait_for_url(f"{base}/staff/sessions/{session_id}/")
    detail = _api(base, key, "session", {"session_id": session_id})
    assert _figure(page, "#session-runs") == count(detail["run_count"]) == str(6 + 3)
    assert _figure(page, "#session-tokens") == count(
        sum(g["total_tokens"] for g in detail["groups"])
    )
    assert _figure(page, "#session-cost") == money(
        sum(Decimal(g["total_cost"]) for g in detail["groups"])
    )
    for group in detail["groups"]:
        row = page.locator(f'tr[data-group-id="{group["group_id"]}"]')
        assert row.locator('[data-field="total_tokens"]').inner_text() == count(
            group["total_tokens"]
        )
        assert row.locator('[data-field="total_cost"]').inner_text() == money(group["total_cost"])
    assert page.locator("#timeline li").count() == len(detail["timeline"])
    _shot(page, "03-staff-session")

    # The timeline filter: one event type, the same items the API answers for it.
    kinds = page.locator("#id_event_type option").all_inner_texts()
    chosen = "run.succeeded"
    assert chosen in kinds and "All events" in kinds
    page.select_option("#id_event_type", chosen)
    page.click("#timeline-filter button[type=submit]")
    page.wait_for_url(f"{base}/staff/sessions/{session_id}/?event_type={chosen}")
    narrowed = _api(base, key, "session", {"session_id": session_id, "event_types": [chosen]})
    shown = page.locator("#timeline li").evaluate_all(
        "items => items.map(i => i.dataset.eventType)"
    )
    assert shown == [chosen] * len(narrowed["timeline"]) and len(shown) < len(detail["timeline"])
    _shot(page, "03b-staff-session-filtered")
    page.click("#timeline-filter >> text=Clear")
    page.wait_for_url(f"{base}/staff/sessions/{session_id}/")

    group_id = str(cast["group"].pk)
    page.click(f'tr[data-group-id="{group_id}"] th a')
    page.wait_for_url(f"{base}/staff/groups/{group_id}/")
    group = _api(base, key, "group", {"group_id": group_id, "include_detail": True})
    assert _figure(page, "#group-tokens") == count(group["total_tokens"])
    assert _figure(page, "#group-cost") == money(group["total_cost"])
    assert page.locator("#runs tbody tr").count() == len(group["runs"]) == 3
    for run in group["runs"]:
        row = page.locator(f'tr[data-run-id="{run["run_id"]}"]')
        assert row.locator('[data-field="cost"]').inner_text() == money(run["cost"])
        assert row.locator('[data-field="total_tokens"]').inner_text() == count(run["total_tokens"])
        assert "Demo GPT" in row.inner_text()
    page.locator("details summary", has_text="Messages").first.click()
    assert page.get_by_text("Say hello number 0.").is_visible()
    _shot(page, "04-staff-group")

    attempt = cast["attempt"]
    page.click("nav.crumbs >> text=Session of Lena Learner")
    page.wait_for_url(f"{base}/staff/sessions/{session_id}/")
    page.click(f'tr[data-group-id="{attempt.group_id}"] th a')
    page.wait_for_url(f"{base}/staff/groups/{attempt.group_id}/")
    page.click("#artifact-link")
    page.wait_for_url(f"{base}/staff/attempts/{attempt.pk}/")
    bundle = _api_op(base, key, "attempt/get", {"attempt_id": str(attempt.pk)})
    score = bundle["aggregated_results"]["score"]
    assert _figure(page, "#attempt-score") == f"{score}%"
    assert page.locator(".grade-score").first.inner_text() == f"{cast['chat_score']}%"
    shown = page.locator(".transcript li[data-role]").count()
    assert shown == len(bundle["messages"]) == 2
    assert page.locator(".hints li").count() >= 1
    _shot(page, "05-staff-attempt")

    foreign = page.goto(f"{base}/staff/sessions/{cast['foreign_session'].pk}/")
    assert foreign.status == 404


def test_a_learner_gets_403_on_every_staff_page(live_server, browser, cast):
    base = live_server.url
    context = browser.new_context()
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cast["learner_cookie"], "url": base}]
    )
    page = context.new_page()
    pages = [
        "/staff/",
        "/staff/sessions/",
        f"/staff/sessions/{cast['session'].pk}/",
        f"/staff/groups/{cast['group'].pk}/",
    ]
    for path in pages:
        response = page.goto(f"{base}{path}")
        assert response.status == 403, path
        assert page.locator("h1").inner_text() == "Staff only"
    _shot(page, "06-staff-learner-403")
    context.close()
