"""In headless Chromium: the staff transcript's <audio> players load the recordings under the CSP."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from attempts import messaging
from attempts.models import Message
from glow.ai.speech import LocalSpeechProvider
from glow.core import media

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LOADED = """audio => new Promise(done => {
    audio.addEventListener("loadedmetadata", () => done(audio.duration), {once: true});
    audio.addEventListener("error", () => done(-1), {once: true});
    audio.load();
})"""


def test_staff_hear_the_spoken_reply_on_the_transcript_page(live_server, browser, world, start):
    attempt = start(world.learner, world.home)
    result = messaging.attempt_message(
        actor=world.learner,
        attempt_id=attempt.pk,
        chat_id=attempt.chats.get(position=0).pk,
        message="Please explain how recursion works.",
        assistant_content="A function that calls itself, until the base case.",
    )
    speech = LocalSpeechProvider().synthesize(result.assistant_message.content)
    stored = media.upload_save_bytes(
        organization_id=world.organization.pk,
        owner=world.learner,
        data=speech.audio,
        file_name="reply.wav",
        mime_type="audio/wav",
        family="attempt",
        artifact_id=attempt.pk,
    )
    Message.objects.filter(pk=result.assistant_message.pk).update(audio_upload=stored)
    staff = Client()
    staff.force_login(type(world.instructor.user).objects.get(pk=world.instructor.user_id))
    cookie = staff.cookies[settings.SESSION_COOKIE_NAME].value

    context = browser.new_context()
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
    )
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"{live_server.url}/staff/attempts/{attempt.pk}/")

    player = page.locator(f'audio[src="/api/v5/media/{stored.pk}"]')
    assert player.count() == 1
    duration = player.evaluate(LOADED)
    assert duration == pytest.approx(speech.duration_seconds, abs=0.05)
    assert not [line for line in console if "Content Security Policy" in line]
    screenshots = Path(settings.BASE_DIR) / "screenshots"
    if screenshots.is_dir():
        page.screenshot(path=str(screenshots / "attempt-audio-transcript.png"), full_page=True)
    context.close()
