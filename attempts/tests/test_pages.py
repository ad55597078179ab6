"""The learner pages through Django's test client: sign-in, Home and Practice status, the Chat
page's plain-form fallbacks, Results, History, tenancy and query counts.

The streamed, scripted journey runs in Chromium in tests/browser/test_learner_pages.py.
"""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client

from attempts import journey, lifecycle, messaging
from attempts.models import Attempt, AttemptStatus, Message
from glow.accounts.tests.factories import ProfileFactory
from glow.catalog.tests.factories import HomeFactory, SimulationFactory
from glow.core.models import Draft

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests"  # what ProfileFactory gives every user


def signed_in(profile) -> Client:
    client = Client()
    client.force_login(profile.user)
    return client


def test_root_sends_a_visitor_to_sign_in_and_a_learner_home(world):
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/learn/")
    response = signed_in(world.learner).get("/")
    assert response["Location"] == "/learn/"


def test_sign_in_by_username_or_email_and_sign_out(world):
    world.learner.user.email = "ta@example.edu"
    world.learner.user.save()
    page = Client().get("/accounts/login/")
    assert b'<label for="id_username">Username</label>' in page.content
    assert b'<label for="id_password">Password</label>' in page.content
    assert b">Sign in</button>" in page.content
    for typed in (world.learner.user.username, "TA@example.edu"):
        client = Client()
        response = client.post("/accounts/login/", {"username": typed, "password": PASSWORD})
        assert response.status_code == 302 and response["Location"] == "/learn/"
        assert client.get("/learn/").status_code == 200
        client.post("/accounts/logout/")
        assert client.get("/learn/").status_code == 302


def test_wrong_passwords_lock_the_account_even_by_email(world, settings):
    settings.GLOW_LOGIN_MAX_FAILURES = 3
    world.learner.user.email = "locked@example.edu"
    world.learner.user.save()
    client = Client()
    for _ in range(3):
        response = client.post(
            "/accounts/login/", {"username": "locked@example.edu", "password": "nope"}
        )
        assert response.status_code == 200
        assert b"do not match" in response.content
    response = client.post(
        "/accounts/login/", {"username": "locked@example.edu", "password": PASSWORD}
    )
    assert response.status_code != 302  # locked, even with the right password


def test_password_reset_mails_a_link(world):
    world.learner.user.email = "reset@example.edu"
    world.learner.user.save()
    response = Client().post("/accounts/password_reset/", {"email": "reset@example.edu"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and "/accounts/reset/" in mail.outbox[0].body


def test_home_shows_each_assignment_with_its_status_and_one_action(world, start):
    client = signed_in(world.learner)
    title = world.simulation.title
    assert f"Start {title}" in client.get("/learn/").content.decode()
    attempt = start(world.learner, world.home)
    page = client.get("/learn/").content.decode()
    assert f"Continue {title}" in page and "Scenario 1 of" in page
    lifecycle.attempt_complete(actor=world.learner, attempt_id=attempt.pk)
    page = client.get("/learn/").content.decode()
    assert f"Review {title}" in page and "Last score" in page
    # Practice entries are listed on their own page, marked as practice.
    practice = client.get("/learn/practice/").content.decode()
    assert f"Start {title}" in practice and "Practice" in practice


def test_home_query_count_does_not_grow_with_entries(world, start, django_assert_max_num_queries):
    client = signed_in(world.learner)
    with django_assert_max_num_queries(12) as one:
        client.get("/learn/")
    for _ in range(6):
        simulation = SimulationFactory(
            organization=world.organization, department=world.department, rubric=world.rubric
        )
        entry = HomeFactory(
            organization=world.organization,
            department=world.department,
            simulation=simulation,
            cohort=world.cohort,
        )
        start(world.learner, entry)
    with django_assert_max_num_queries(len(one.captured_queries)):
        page = client.get("/learn/")
    assert page.content.decode().count("Continue ") == 6


def test_start_from_home_opens_the_chat_and_a_repeat_click_answers_the_same_attempt(world):
    client = signed_in(world.learner)
    body = {"home_id": world.home.pk, "start_key": "k1"}
    first = client.post("/learn/start/", body)
    second = client.post("/learn/start/", body)
    attempt = Attempt.objects.get(profile=world.learner)
    assert first["Location"] == second["Location"] == f"/learn/attempts/{attempt.pk}/"
    page = client.get(first["Location"]).content.decode()
    assert 'id="message"' in page and "Your message" in page
    for name in ("Send", "Stop", "Hint", "Next scenario"):
        assert f">{name}</button>" in page


def test_the_plain_send_form_stores_both_turns_and_clears_the_draft(world, start):
    attempt = start(world.learner, world.home)
    chat = attempt.chats.get(position=0)
    client = signed_in(world.learner)
    Draft.objects.create(
        organization=world.organization,
        author=world.learner,
        family="attempt",
        artifact_id=attempt.pk,
        data={"chat_id": str(chat.pk), "message": "half typed"},
    )
    assert "half typed</textarea>" in client.get(f"/learn/attempts/{attempt.pk}/").content.decode()
    response = client.post(
        f"/learn/attempts/{attempt.pk}/send/", {"chat_id": chat.pk, "message": "Hello there"}
    )
    assert response.status_code == 302
    assert list(Message.objects.filter(chat=chat).values_list("role", flat=True)) == [
        "user",
        "assistant",
    ]
    assert not Draft.objects.filter(artifact_id=attempt.pk).exists()
    page = client.get(f"/learn/attempts/{attempt.pk}/?hint=1").content.decode()
    assert "Hello there" in page and 'id="hints"' in page


def test_a_failed_send_keeps_the_typed_text_and_says_why(world, start):
    attempt = start(world.learner, world.home)
    lifecycle.attempt_complete(actor=world.learner, attempt_id=attempt.pk)
    chat = attempt.chats.get(position=0)
    client = signed_in(world.learner)
    response = client.post(
        f"/learn/attempts/{attempt.pk}/send/", {"chat_id": chat.pk, "message": "Still there?"}
    )
    assert response.status_code == 409
    assert "This attempt is completed" in response.content.decode()


def test_next_and_finish_ask_first_then_end_grade_and_complete(world, start):
    attempt = start(world.learner, world.home)
    client = signed_in(world.learner)
    url = f"/learn/attempts/{attempt.pk}/advance/"
    page = client.post(url, {"action": "finish"})
    assert page.status_code == 200 and "Finish this attempt?" in page.content.decode()
    attempt.refresh_from_db()
    assert attempt.status != AttemptStatus.COMPLETED  # nothing happened without confirm
    chat = attempt.chats.get(position=0)
    messaging.attempt_message(
        actor=world.learner, attempt_id=attempt.pk, chat_id=chat.pk, message="I hear you."
    )
    response = client.post(url, {"action": "finish", "confirm": "yes"})
    assert response["Location"] == f"/learn/attempts/{attempt.pk}/results/"
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.COMPLETED
    chat.refresh_from_db()
    assert chat.grade_id is not None
    results = client.get(response["Location"]).content.decode()
    assert "<h1>Results</h1>" in results and f"{attempt.score}%" in results


def test_advance_moves_to_the_next_scenario_when_there_is_one(world, start):
    simulation = world.simulation
    assert len(simulation.ordered_scenarios()) >= 2
    attempt = start(world.learner, world.home)
    result = journey.attempt_advance(actor=world.learner, attempt_id=attempt.pk, finish=False)
    attempt.refresh_from_db()
    assert not result.completed and attempt.current_chat_index == 1


def test_another_learners_attempt_answers_404_on_every_page(world, start, outsider):
    attempt = start(world.learner, world.home)
    pages = [
        f"/learn/attempts/{attempt.pk}/",
        f"/learn/attempts/{attempt.pk}/results/",
    ]
    for intruder in (world.learner2, outsider):
        client = signed_in(intruder)
        for url in pages:
            assert client.get(url).status_code == 404, (intruder, url)
        for url in ("send/", "advance/"):
            response = client.post(
                f"/learn/attempts/{attempt.pk}/{url}", {"message": "x", "confirm": "yes"}
            )
            assert response.status_code == 404
    other_home = HomeFactory()  # another organization's entry
    response = signed_in(world.learner).post("/learn/start/", {"home_id": other_home.pk})
    assert response.status_code == 404


def test_staff_read_a_learners_chat_without_controls(world, start):
    attempt = start(world.learner, world.home)
    page = signed_in(world.instructor).get(f"/learn/attempts/{attempt.pk}/").content.decode()
    assert "read-only" in page and 'id="message"' not in page


def test_history_charts_graded_attempts_and_lists_practice_apart(world, start):
    for entry in (world.home, world.home, world.practice):
        attempt = start(world.learner, entry)
        chat = attempt.chats.get(position=0)
        messaging.attempt_message(
            actor=world.learner,
            attempt_id=attempt.pk,
            chat_id=chat.pk,
            message="I understand, that sounds frustrating. What have you tried?",
        )
        lifecycle.attempt_end(
            actor=world.learner, attempt_id=attempt.pk, chat_id=chat.pk, grade=True
        )
        lifecycle.attempt_complete(actor=world.learner, attempt_id=attempt.pk)
    page = signed_in(world.learner).get("/learn/history/").content.decode()
    assert page.count('<svg class="chart"') == 1
    assert "2 graded attempts" in page  # the practice attempt is not counted
    assert page.count('class="badge practice"') == 1


def test_a_person_without_profile_is_told_so(db):
    user = ProfileFactory().user
    user.profile.delete()
    client = Client()
    client.force_login(user)
    assert client.get("/learn/").status_code == 403


def test_pages_share_the_apis_rate_limit(world, start, settings):
    settings.GLOW_THROTTLE_RATES = {**settings.GLOW_THROTTLE_RATES, "ai": "2/min"}
    cache.clear()  # buckets are per user id, and ids repeat across rolled-back tests
    attempt = start(world.learner, world.home)
    chat = attempt.chats.get(position=0)
    client = signed_in(world.learner)
    url = f"/learn/attempts/{attempt.pk}/send/"
    for _ in range(2):
        assert client.post(url, {"chat_id": chat.pk, "message": "Hi"}).status_code == 302
    refused = client.post(url, {"chat_id": chat.pk, "message": "Hi"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    # The same bucket as the API's for this person: the API refuses the next message too.
    api = client.post(
        "/api/v5/artifacts/attempt/message",
        {"attempt_id": str(attempt.pk), "chat_id": str(chat.pk), "message": "Hi"},
        content_type="application/json",
    )
    assert api.status_code == 429


def test_the_staff_transcript_links_to_the_learners_pages(world, start):
    attempt = start(world.learner, world.home)
    page = signed_in(world.instructor).get(f"/staff/attempts/{attempt.pk}/").content.decode()
    assert f'href="/learn/attempts/{attempt.pk}/"' in page
    results = signed_in(world.instructor).get(f"/learn/attempts/{attempt.pk}/results/")
    assert results.status_code == 200 and world.learner.name in results.content.decode()


def test_chat_results_and_history_query_counts_do_not_grow_with_messages(
    world, start, django_assert_max_num_queries
):
    attempt = start(world.learner, world.home)
    chat = attempt.chats.get(position=0)
    client = signed_in(world.learner)
    urls = [
        f"/learn/attempts/{attempt.pk}/",
        f"/learn/attempts/{attempt.pk}/results/",
        "/learn/history/",
    ]

    def say(times: int) -> None:
        for number in range(times):
            messaging.attempt_message(
                actor=world.learner,
                attempt_id=attempt.pk,
                chat_id=chat.pk,
                message=f"Question {number}: how can I help?",
                assistant_content="I am not sure.",
            )

    say(1)
    counts = {}
    for url in urls:
        with django_assert_max_num_queries(40) as captured:
            assert client.get(url).status_code == 200
        counts[url] = len(captured.captured_queries)
    say(9)
    for url in urls:
        with django_assert_max_num_queries(counts[url]):
            assert client.get(url).status_code == 200


def test_results_withhold_what_the_calibration_gate_holds_and_show_learner_comments(world, start):
    """A gated simulation: the learner's Results, Home and History say "awaiting review" instead
    of the judge's numbers until staff review; a comment marked for the learner shows beside its
    turn, a staff-only one never does."""
    from attempts import reviews
    from attempts.tests.test_reviews import criteria, judged

    world.simulation.calibration_required = True
    world.simulation.save()
    attempt, chat = judged(world, start, [2, 1, 1, 1])
    lifecycle.attempt_complete(actor=world.learner, attempt_id=attempt.pk)
    turn = Message.objects.filter(chat=chat, role="user").first()
    reviews.attempt_annotate(
        actor=world.instructor, attempt_id=attempt.pk, message_id=turn.pk, body="Nice opener."
    )
    reviews.attempt_annotate(
        actor=world.instructor,
        attempt_id=attempt.pk,
        message_id=turn.pk,
        body="Staff eyes only.",
        visibility="staff",
    )
    learner = signed_in(world.learner)
    page = learner.get(f"/learn/attempts/{attempt.pk}/results/").content.decode()
    assert 'id="awaiting-review"' in page and "Awaiting review" in page
    attempt.refresh_from_db()
    assert f"<dd>{attempt.score}%</dd>" not in page
    assert "Nice opener." in page and "Staff eyes only." not in page
    assert "awaiting review" in learner.get("/learn/").content.decode()
    assert "Awaiting review" in learner.get("/learn/history/").content.decode()
    staff_page = signed_in(world.instructor).get(f"/learn/attempts/{attempt.pk}/results/")
    assert f"{attempt.score}%" in staff_page.content.decode()

    reviews.attempt_review(
        actor=world.instructor,
        attempt_id=attempt.pk,
        chat_id=chat.pk,
        criteria=[{"standard_id": item["id"], "score": 2} for item in criteria(world)],
    )
    attempt.refresh_from_db()
    page = learner.get(f"/learn/attempts/{attempt.pk}/results/").content.decode()
    assert 'id="awaiting-review"' not in page and f"<dd>{attempt.score}%</dd>" in page


def test_when_time_is_up_the_chat_says_so_and_offers_finish(world, start):
    from datetime import timedelta

    attempt = start(world.learner, world.home)
    Attempt.objects.filter(pk=attempt.pk).update(
        started_at=attempt.started_at - timedelta(minutes=world.simulation.time_limit_minutes + 1)
    )
    page = signed_in(world.learner).get(f"/learn/attempts/{attempt.pk}/").content.decode()
    assert 'id="time-up"' in page and 'id="message"' not in page
    assert ">Finish</button>" in page and ">Next scenario</button>" not in page
    response = signed_in(world.learner).post(
        f"/learn/attempts/{attempt.pk}/advance/", {"action": "finish", "confirm": "yes"}
    )
    assert response["Location"].endswith("/results/")
