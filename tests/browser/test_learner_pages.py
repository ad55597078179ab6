"""A learner's whole journey in headless Chromium, against a real ASGI server (uvicorn) on
PostgreSQL and Redis: sign in from `/`, start the demo simulation from Home, see replies stream in,
stop one mid-stream, ask a hint, keep a draft over a reload, move on, finish and read Results;
another learner's attempt answers 404; a spoken turn through a fake microphone becomes a message.

Screenshots of Home, Chat mid-stream and Results at 375 and 1440 px land in docs/screenshots/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core.management import call_command

from attempts.models import Attempt, Message
from glow.accounts.models import Profile
from glow.catalog.models import Home
from tests.integration.conftest import static_uvicorn_server
from tests.support.browser import launch, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
SIMULATION = "Office hours: CS-180"
# Slow enough that a person (and this test) sees the reply grow and can stop it mid-way.
STREAM_DELAY = "0.12"


@pytest.fixture
def learner_server(services_env, tmp_path):
    """uvicorn serving Glow with the offline simulator streaming at a visible pace."""
    env = {**services_env, "GLOW_LOCAL_STREAM_DELAY": STREAM_DELAY}
    with static_uvicorn_server(env, tmp_path) as url:
        yield url


@pytest.fixture
def demo_world(db):
    call_command("glow_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    # learner3 (a Mathematics TA in the demo) joins the CS-180 cohort: a learner who has never
    # started the demo simulation.
    home = Home.objects.get(simulation__title=SIMULATION)
    home.cohort.members.add(Profile.objects.get(user__username="learner3"))
    # Tests hash with MD5 for speed; the server checks passwords with the real default hasher.
    for user in get_user_model().objects.filter(username__in=["learner2", "learner3"]):
        user.password = PBKDF2PasswordHasher().encode(f"{user.username}-glow-demo", "glowtestsalt")
        user.save(update_fields=["password"])


def _sign_in(page, url: str, username: str) -> None:
    sign_in(
        page,
        f"{url}/",
        username=username,
        password=f"{username}-glow-demo",
        landing=f"{url}/learn/",
    )


def _reply_lengths(page) -> list[int]:
    """The streaming reply's length, sampled every 40 ms until Send is enabled again."""
    return page.evaluate(
        """() => new Promise(done => {
            const lengths = [];
            const timer = setInterval(() => {
                const turns = document.querySelectorAll('.turn.assistant .text');
                lengths.push(turns.length ? turns[turns.length - 1].textContent.length : 0);
                if (!document.getElementById('send').disabled && lengths.length > 2) {
                    clearInterval(timer); done(lengths);
                }
            }, 40);
        })"""
    )


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def _advance(page, name: str) -> None:
    page.get_by_role("button", name=name).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name=name).click()
    page.wait_for_load_state()


def test_a_learner_practises_the_demo_simulation_from_sign_in_to_results(
    learner_server, demo_world, playwright
):
    browser = launch(playwright)
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    _sign_in(page, learner_server, "learner3")
    _shot(page, "home-1440.png")

    page.get_by_role("button", name=f"Start {SIMULATION}").click()
    page.wait_for_url("**/learn/attempts/**")
    attempt = Attempt.objects.get(profile__user__username="learner3")
    box = page.get_by_label("Your message")

    # 1: Enter sends; the reply streams in over several frames, then settles as stored.
    box.fill("Hi, thanks for coming in. What would you like to work on today?")
    box.press("Enter")
    lengths = _reply_lengths(page)
    growing = sorted({n for n in lengths if 0 < n < lengths[-1]})
    assert len(growing) >= 2, f"the reply did not stream: {lengths}"
    stored = Message.objects.filter(chat__attempt=attempt, role="assistant").latest("seq")
    assert page.locator(".turn.assistant .text").last.inner_text().strip() == stored.content.strip()

    # 2: stopped mid-stream, the partial text stays, on the page and in the database.
    box.fill("I hear that this has been frustrating. Can you walk me through where you got stuck?")
    page.get_by_role("button", name="Send").click()
    page.wait_for_function(
        "() => { const t = document.querySelectorAll('.turn.assistant .text');"
        " return t.length === 2 && t[1].textContent.length > 0; }"
    )
    _shot(page, "chat-mid-stream-1440.png")
    page.get_by_role("button", name="Stop").click()
    page.wait_for_function("() => !document.getElementById('send').disabled")
    assert page.locator(".turn.assistant").last.get_by_text("Stopped before the end.").is_visible()
    partial = Message.objects.filter(chat__attempt=attempt, role="assistant").latest("seq")
    assert partial.stopped and partial.content
    assert (
        page.locator(".turn.assistant .text").last.inner_text().strip() == partial.content.strip()
    )

    # 3: a third message, then a hint for this turn.
    box.fill("Let's agree on a next step: try the base case first and come back on Thursday.")
    page.get_by_role("button", name="Send").click()
    _reply_lengths(page)
    page.get_by_role("button", name="Hint").click()
    hints = page.locator("#hints")
    assert hints.is_visible() and hints.locator("li").count() >= 1

    # Nothing lives only in the browser: a reload shows the same conversation, and typed but
    # unsent text comes back.
    turns = page.locator(".conversation .turn").count()
    assert turns == 6
    box.fill("This is a draft I have not sent yet.")
    page.wait_for_timeout(1200)
    page.reload()
    assert page.locator(".conversation .turn").count() == turns
    assert page.get_by_label("Your message").input_value() == "This is a draft I have not sent yet."

    # Next scenario asks first, then opens the second chat.
    _advance(page, "Next scenario")
    assert page.locator('[aria-current="step"]').inner_text().startswith("2.")
    box = page.get_by_label("Your message")
    box.fill("Hello, how can I help you with your midterm today?")
    page.get_by_role("button", name="Send").click()
    _reply_lengths(page)
    _advance(page, "Next scenario")
    box = page.get_by_label("Your message")
    box.fill("Thank you for telling me. I understand this feels unfair; let's look at it together.")
    page.get_by_role("button", name="Send").click()
    _reply_lengths(page)
    _advance(page, "Finish")

    page.wait_for_url("**/results/")
    assert page.get_by_role("heading", name="Results").is_visible()
    attempt.refresh_from_db()
    assert attempt.status == "completed"
    score = page.locator(".score dd").first.inner_text()
    assert score == f"{attempt.score}%"
    _shot(page, "results-1440.png")
    quote = page.locator(".quote a").first
    assert quote.count() == 1, "the grader quoted no turn"
    target = quote.get_attribute("href")
    quote.click()
    page.wait_for_function(f"() => location.hash === '{target}'")
    turn = page.locator(target)
    assert turn.is_visible() and turn.evaluate("node => node === document.activeElement")

    # Another learner's attempt is not there at all for this one.
    other = Attempt.objects.filter(profile__user__username="learner2").first()
    response = page.goto(f"{learner_server}/learn/attempts/{other.pk}/")
    assert response.status == 404
    response = page.goto(f"{learner_server}/learn/attempts/{other.pk}/results/")
    assert response.status == 404
    assert not errors, errors
    browser.close()


def test_learner_pages_at_phone_width(learner_server, demo_world, playwright):
    """375 px: Home, a reply mid-stream and Results, nothing wider than the screen."""
    browser = launch(playwright)
    page = browser.new_page(viewport={"width": 375, "height": 812}, is_mobile=True)
    _sign_in(page, learner_server, "learner2")
    _shot(page, "home-375.png")
    page.get_by_role("link", name=f"Continue {SIMULATION}").click()
    # Keyboard only: Tab reaches the message box, typing and Enter send.
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "message":
            break
    else:
        pytest.fail("Tab never reached the message box")
    page.keyboard.type("Hi Morgan, what happened with question 4?")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('.turn.pending .text')?.textContent.length > 20"
    )
    _shot(page, "chat-mid-stream-375.png")
    page.wait_for_function("() => !document.getElementById('send').disabled")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    completed = Attempt.objects.get(
        profile__user__username="learner2", status="completed", practice=False
    )
    page.goto(f"{learner_server}/learn/attempts/{completed.pk}/results/")
    assert page.get_by_role("heading", name="Results").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    _shot(page, "results-375.png")
    page.goto(f"{learner_server}/learn/")
    page.set_viewport_size({"width": 1440, "height": 1000})
    page.goto(f"{learner_server}/learn/history/")
    assert page.get_by_role("heading", name="My progress").is_visible()
    assert page.locator("svg.chart").count() >= 1
    browser.close()


def test_a_second_tab_follows_the_conversation(learner_server, demo_world, playwright):
    """Nothing lives only in one tab: a message sent in one shows up, with its reply, in the other."""
    browser = launch(playwright)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    first = context.new_page()
    _sign_in(first, learner_server, "learner2")
    first.get_by_role("link", name=f"Continue {SIMULATION}").click()
    second = context.new_page()
    second.goto(first.url)
    before = second.locator(".conversation .turn").count()
    second.wait_for_timeout(500)  # its stream is open
    first.get_by_label("Your message").fill("Could you show me the part of question 4 you mean?")
    first.get_by_role("button", name="Send").click()
    first.wait_for_function("() => !document.getElementById('send').disabled")
    second.wait_for_function(
        f"() => document.querySelectorAll('.conversation .turn').length === {before + 2}"
    )
    assert second.locator(".turn.user .text").last.inner_text() == (
        "Could you show me the part of question 4 you mean?"
    )
    assert second.locator(".turn.assistant .text").last.inner_text().strip() == (
        first.locator(".turn.assistant .text").last.inner_text().strip()
    )
    browser.close()


def test_a_spoken_turn_through_the_microphone_becomes_a_message(
    learner_server, demo_world, playwright, celery_worker_factory, tmp_path
):
    """Chromium's fake microphone plays a WAV; the page records it with MediaRecorder, uploads it
    as WAV, and the worker's transcript shows as the learner's message with the spoken reply."""
    from glow.ai.speech import LocalSpeechProvider
    from glow.catalog.models import Modality, Scenario
    from glow.catalog.tests.factories import PracticeFactory, SimulationFactory

    celery_worker_factory()
    home = Home.objects.get(simulation__title=SIMULATION)
    spoken = Scenario.objects.filter(organization=home.organization).first()
    spoken.pk = None
    spoken.title = "Office hours, out loud"
    spoken.modality = Modality.AUDIO
    spoken.save()
    simulation = SimulationFactory(
        organization=home.organization,
        department=home.department,
        rubric=home.simulation.rubric,
        title="Spoken office hours",
        scenarios=[spoken],
    )
    PracticeFactory(
        organization=home.organization,
        department=home.department,
        simulation=simulation,
        cohort=home.cohort,
    )
    wav = tmp_path / "question.wav"
    wav.write_bytes(
        LocalSpeechProvider().synthesize("Can you explain how recursion works please").audio
    )
    browser = launch(
        playwright,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    )
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["microphone"])
    page = context.new_page()
    _sign_in(page, learner_server, "learner2")
    page.get_by_role("link", name="Practice").click()
    page.get_by_role("button", name="Start Spoken office hours").click()
    record = page.get_by_role("button", name="Record a spoken message")
    record.click()
    page.wait_for_timeout(3500)
    page.get_by_role("button", name="Stop recording and send").click()
    page.wait_for_function(
        "() => document.querySelectorAll('.turn.user').length === 1", timeout=60_000
    )
    heard = page.locator(".turn.user .text").inner_text()
    assert heard.strip()
    page.wait_for_function(
        "() => document.querySelector('.turn.assistant audio') !== null", timeout=60_000
    )
    attempt = Attempt.objects.get(profile__user__username="learner2", simulation=simulation)
    said = list(Message.objects.filter(chat__attempt=attempt).order_by("seq"))
    assert [m.role for m in said].count("user") == 1, [(m.role, m.content) for m in said]
    message = next(m for m in said if m.role == "user")
    assert message.content.strip() == heard.strip() and message.audio_upload_id is not None
    # The reply to it is spoken (the persona may also have opened the chat, in writing).
    assert said[-1].role == "assistant" and said[-1].audio_upload_id
    browser.close()
