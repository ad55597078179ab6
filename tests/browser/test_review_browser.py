"""Human review in headless Chromium: an instructor signs in, opens a learner's transcript,
grades one criterion and comments one turn for the learner; the learner's attempt/get then
shows the comment beside that turn and the recomputed score. Screenshots land in screenshots/."""

from __future__ import annotations

import httpx
import pytest
from django.contrib.auth import get_user_model

from glow.accounts.services import api_key_create
from glow.accounts.tests.factories import (
    CohortFactory,
    DepartmentFactory,
    OrganizationFactory,
    ProfileFactory,
)
from glow.catalog.tests.factories import HomeFactory, RubricFactory, SimulationFactory
from tests.browser.test_staff_pages import PASSWORD, _shot
from tests.support.browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _person(organization, username: str, role: str, departments=()):
    user = get_user_model().objects.create_user(
        username=username, password=PASSWORD, is_staff=role != "learner"
    )
    profile = ProfileFactory(user=user, organization=organization, role=role)
    profile.departments.set(departments)
    return profile


@pytest.fixture
def reviewed_world():
    from attempts import lifecycle, messaging

    university = OrganizationFactory(name="Demo University")
    computing = DepartmentFactory(organization=university, name="Computer Science")
    _person(university, "instructor", "instructor", [computing])
    learner = _person(university, "learner1", "learner", [computing])
    cohort = CohortFactory(organization=university, department=computing)
    cohort.members.add(learner)
    rubric = RubricFactory(organization=university, department=computing, groups=2)
    simulation = SimulationFactory(
        organization=university, department=computing, rubric=rubric, title="Office hours"
    )
    home = HomeFactory(
        organization=university, department=computing, simulation=simulation, cohort=cohort
    )
    attempt = lifecycle.attempt_start(actor=learner, home_id=home.pk)
    chat = attempt.chats.order_by("position").first()
    messaging.attempt_message(
        actor=learner,
        attempt_id=attempt.pk,
        chat_id=chat.pk,
        message="Whatever, the policy is the policy.",
    )
    lifecycle.attempt_end(actor=learner, attempt_id=attempt.pk, chat_id=chat.pk, grade=True)
    chat.refresh_from_db()
    attempt.refresh_from_db()
    first_group = rubric.structure()[0]
    return {
        "attempt": attempt,
        "chat": chat,
        "criterion": first_group["standards"][0],
        "learner_key": api_key_create(profile=learner).plaintext,
    }


def test_instructor_grades_and_comments_a_turn_and_the_learner_sees_both(
    live_server,
    browser,
    reviewed_world,
):
    base = live_server.url
    attempt, chat, criterion = (
        reviewed_world["attempt"],
        reviewed_world["chat"],
        reviewed_world["criterion"],
    )
    judge_points = chat.grade.points
    judge_entry = next(e for e in chat.grade.standard_scores if e["standard_id"] == criterion["id"])
    # The instructor gives full marks where the judge gave fewer: the score must rise.
    raised = criterion["points"]
    assert judge_entry["score"] < raised
    expected = round((judge_points - judge_entry["score"] + raised) * 100 / chat.grade.total_points)

    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    sign_in(page, f"{base}/staff/attempts/{attempt.pk}/", username="instructor", password=PASSWORD)
    _shot(page, "20-review-transcript-before")

    page.get_by_label(f"Score for {criterion['name']} (0 to {criterion['points']})").fill(
        str(raised)
    )
    page.get_by_label(f"Comment on {criterion['name']}").fill("You held the boundary calmly.")
    page.get_by_role("button", name="Save review of chat 1").click()
    page.wait_for_load_state()
    assert page.locator("#attempt-score").inner_text() == f"{expected}%"

    page.get_by_text("Comment on turn 1").first.click()
    page.get_by_label("Comment on turn 1", exact=True).fill("Try naming how they feel first.")
    page.get_by_label("Who sees it (turn 1)").select_option("learner")
    page.get_by_role("button", name="Add comment to turn 1").click()
    page.wait_for_load_state()
    assert page.get_by_text("Try naming how they feel first.").count() == 1
    _shot(page, "21-review-transcript-after")

    answer = httpx.post(
        f"{base}/api/v5/artifacts/attempt/get",
        json={"attempt_id": str(attempt.pk), "chat_id": str(chat.pk)},
        headers={"X-Api-Key": reviewed_world["learner_key"]},
        timeout=10,
    ).json()
    assert answer["aggregated_results"]["score"] == expected
    grade = answer["chats"][0]["grade"]
    assert grade["source"] == "reviewed" and grade["score"] == expected
    entry = next(e for e in grade["standard_scores"] if e["standard_id"] == criterion["id"])
    assert entry["score"] == raised and entry["feedback"] == "You held the boundary calmly."
    turn = answer["messages"][0]
    assert [c["body"] for c in turn["comments"]] == ["Try naming how they feel first."]
