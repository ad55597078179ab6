"""The staff review pages: grading criteria and commenting turns on the transcript page, the
review queue, a rubric's calibration; learners 403, other organizations 404."""

from __future__ import annotations

import pytest

from attempts import reviews, selectors
from attempts.models import Review, TurnComment
from attempts.tests.test_reviews import criteria, judged
from system.tests.factories import sign_in

pytestmark = pytest.mark.django_db


def test_an_instructor_grades_criteria_and_comments_a_turn_on_the_transcript_page(
    client, world, start
):
    attempt, chat = judged(world, start, [0, 0, 0, 0])
    first, second, *_ = criteria(world)
    sign_in(client, world.instructor)
    page = client.get(f"/staff/attempts/{attempt.pk}/").content.decode()
    assert f"Review chat {chat.position + 1}" in page and 'name="score-' in page

    saved = client.post(
        f"/staff/attempts/{attempt.pk}/review/",
        {
            "chat_id": str(chat.pk),
            f"score-{first['id']}": "2",
            f"comment-{first['id']}": "Acknowledged the feeling first.",
            f"score-{second['id']}": "",
        },
    )
    assert saved.status_code == 302 and saved.url.endswith(f"#chat-{chat.pk}")
    review = Review.objects.get(chat=chat)
    assert (str(review.standard_id), review.score) == (first["id"], 2)
    attempt.refresh_from_db()
    assert attempt.score == 25  # 2 of 8 points

    message = selectors.chat_transcript(chat)[0]
    commented = client.post(
        f"/staff/attempts/{attempt.pk}/comment/",
        {"message_id": str(message.pk), "body": "Nice opener.", "visibility": "learner"},
    )
    assert commented.status_code == 302
    assert TurnComment.objects.get(message=message).body == "Nice opener."
    page = client.get(f"/staff/attempts/{attempt.pk}/").content.decode()
    assert "Nice opener." in page and "Acknowledged the feeling first." in page

    refused = client.post(
        f"/staff/attempts/{attempt.pk}/review/",
        {"chat_id": str(chat.pk), f"score-{first['id']}": "9"},
    )
    assert refused.status_code == 400 and "Nothing was saved" in refused.content.decode()
    assert Review.objects.get(chat=chat).score == 2


def test_review_pages_refuse_learners_and_other_organizations(client, world, start, outsider):
    attempt, chat = judged(world, start, [1, 1, 1, 1])
    body = {"chat_id": str(chat.pk), f"score-{criteria(world)[0]['id']}": "1"}
    sign_in(client, world.learner)
    assert client.post(f"/staff/attempts/{attempt.pk}/review/", body).status_code == 403
    assert client.get("/staff/reviews/").status_code == 403
    sign_in(client, outsider)
    assert client.post(f"/staff/attempts/{attempt.pk}/review/", body).status_code == 404
    assert client.get(f"/staff/rubrics/{world.rubric.pk}/calibration/").status_code == 404
    assert not Review.objects.exists()


def test_the_queue_and_calibration_pages_show_what_the_selectors_answer(client, world, start):
    world.simulation.calibration_required = True
    world.simulation.calibration_min_n = 2
    world.simulation.save()
    first = criteria(world)[0]
    _, waiting_chat = judged(world, start, [2, 1, 1, 1])
    for judge, human in [(0, 0), (2, 1)]:
        attempt, chat = judged(world, start, [judge, 1, 1, 1], learner=world.learner2)
        reviews.attempt_review(
            actor=world.instructor,
            attempt_id=attempt.pk,
            chat_id=chat.pk,
            criteria=[{"standard_id": first["id"], "score": human}],
        )
    sign_in(client, world.instructor)
    queue = client.get("/staff/reviews/").content.decode()
    assert f'data-chat-id="{waiting_chat.pk}"' in queue
    assert "criterion not calibrated" in queue
    assert 'href="/staff/reviews/"' in queue  # the navigation link
    page = client.get(f"/staff/rubrics/{world.rubric.pk}/calibration/").content.decode()
    # (0,0) and (2,1) on 0..2, weights (i-j)^2/4: observed 0.25; margins judge [1,0,1], staff
    # [1,1,0] expect 0.125 + 0.5 + 0.125 = 0.75; kappa 1 - 0.25/0.75 = 0.67 by hand.
    assert f'data-standard-id="{first["id"]}"' in page
    assert '<td class="num" data-field="kappa">0.67</td>' in page
    assert "judge (rows) against staff (columns)" in page
