"""The staff transcript page: hints and grades shown to staff in scope; learners 403, others 404."""

from __future__ import annotations

import pytest
from django.utils.html import escape

from attempts import lifecycle, messaging
from attempts.models import Message
from system.tests.factories import sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def graded(world, start):
    attempt = start(world.learner, world.home)
    chat_id = attempt.chats.order_by("position").first().pk
    messaging.attempt_message(
        actor=world.learner,
        attempt_id=attempt.pk,
        chat_id=chat_id,
        message="That sounds frustrating. What have you tried with the base case?",
    )
    lifecycle.attempt_end(actor=world.learner, attempt_id=attempt.pk, chat_id=chat_id, grade=True)
    attempt.refresh_from_db()
    return attempt


def test_staff_read_the_transcript_with_hints_and_grade(client, world, graded):
    sign_in(client, world.instructor)

    response = client.get(f"/staff/attempts/{graded.pk}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "What have you tried with the base case?" in html
    reply = Message.objects.get(chat__attempt=graded, role="assistant")
    assert escape(reply.content) in html
    assert reply.hints
    for hint in reply.hints:
        assert escape(hint["content"]) in html
    grade = graded.chats.order_by("position").first().grade
    assert f'class="grade-score">{grade.score}%<' in html
    assert f'href="/staff/groups/{graded.group_id}/"' in html


def test_the_attempts_group_page_links_to_its_transcript(client, world, graded):
    sign_in(client, world.admin)

    html = client.get(f"/staff/groups/{graded.group_id}/").content.decode()

    assert f'href="/staff/attempts/{graded.pk}/"' in html


def test_learners_get_403_and_out_of_scope_staff_404(client, world, graded, outsider):
    sign_in(client, world.learner)
    assert client.get(f"/staff/attempts/{graded.pk}/").status_code == 403
    sign_in(client, outsider)
    assert client.get(f"/staff/attempts/{graded.pk}/").status_code == 404
    assert client.get("/staff/attempts/00000000-0000-0000-0000-000000000000/").status_code == 404


@pytest.mark.parametrize("messages", [1, 5])
def test_transcript_query_count_is_constant(
    client, world, start, django_assert_max_num_queries, messages
):
    attempt = start(world.learner, world.home)
    chat_id = attempt.chats.order_by("position").first().pk
    for number in range(messages):
        messaging.attempt_message(
            actor=world.learner,
            attempt_id=attempt.pk,
            chat_id=chat_id,
            message=f"Question {number}?",
            assistant_content=f"Answer {number}.",
        )
    sign_in(client, world.admin)
    client.get("/staff/")

    # 9, plus the review form's rubric (3: rubric, groups, standards), its reviews and the
    # turn comments (1 each): none of them per message.
    with django_assert_max_num_queries(14):
        response = client.get(f"/staff/attempts/{attempt.pk}/")

    assert response.content.decode().count('data-role="assistant"') == messages
