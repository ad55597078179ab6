"""system.gateway.speech_call: every speech call is a Run with its audio seconds, cost and status."""

from decimal import Decimal

import pytest

from glow.ai import ProviderError, Usage
from glow.ai.speech import AudioFormatError
from glow.catalog.tests.factories import AIModelFactory
from system import gateway, ledger
from system.models import Group, Run, RunStatus, Session
from tests.support.fakeserver import FakeOpenAIServer, HTTPFailure, SpeechAudio, Transcript

pytestmark = pytest.mark.django_db

SENTENCE = "please explain how recursion works"


def _run(profile, *, model=None, params=None) -> Run:
    session = ledger.session_touch(actor=profile, client_kind="api", auth="api_key")
    group = ledger.group_create(actor=profile, session=session, family="attempt", name="Talk")
    return ledger.run_create(group=group, kind="speech", model=model, params=params)


@pytest.fixture(scope="module")
def fake_openai():
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def openai_model(fake_openai, learner, monkeypatch, settings):
    settings.GLOW_OPENAI_TIMEOUT = 5.0
    settings.GLOW_OPENAI_MAX_RETRIES = 1
    settings.GLOW_SPEECH_PRICE_PER_MINUTE = Decimal("0.006")
    monkeypatch.setenv("GLOW_TEST_SPEECH_KEY", "sk-test-speech")
    return AIModelFactory(
        organization=learner.organization,
        provider="openai",
        provider_model="gpt-books",
        base_url=fake_openai.base_url,
        api_key_env="GLOW_TEST_SPEECH_KEY",
    )


def test_local_speech_round_trip_is_two_free_succeeded_runs(learner):
    speak = _run(learner)

    spoken = gateway.speech_call(run=speak, text=SENTENCE)

    speak.refresh_from_db()
    assert speak.status == RunStatus.SUCCEEDED
    assert speak.provider == "local"
    assert speak.cost == Decimal("0")
    assert speak.params["audio_seconds"] == pytest.approx(spoken.duration_seconds, abs=0.001)
    assert speak.messages == [{"role": "user", "content": SENTENCE}]

    hear = _run(learner)
    heard = gateway.speech_call(run=hear, audio=spoken.audio)

    hear.refresh_from_db()
    assert hear.status == RunStatus.SUCCEEDED
    assert hear.output == heard.text
    assert set(heard.text.split()) & set(SENTENCE.split())
    assert hear.params["audio_seconds"] == pytest.approx(spoken.duration_seconds, abs=0.001)
    assert hear.latency_ms is not None
    assert Group.objects.get(pk=hear.group_id).run_count == 1


def test_openai_transcription_is_charged_per_minute(fake_openai, openai_model, learner):
    fake_openai.enqueue(Transcript("Explain recursion.", seconds=90.0, usage=None))
    run = _run(learner, model=openai_model)

    gateway.speech_call(run=run, audio=b"RIFF-not-checked-by-the-server")

    run.refresh_from_db()
    # 90 s at $0.006 a minute.
    assert run.cost == Decimal("0.009000")
    assert run.params["audio_seconds"] == 90.0
    assert (run.input_tokens, run.output_tokens) == (0, 0)
    assert run.output == "Explain recursion."
    sent = fake_openai.requests[-1]
    assert sent.path == "/v1/audio/transcriptions"
    assert sent.body["model"] == "whisper-1"
    assert sent.headers["Authorization"] == "Bearer sk-test-speech"
    session = Session.objects.get(pk=run.session_id)
    assert (session.total_cost, session.run_count) == (Decimal("0.009000"), 1)


def test_openai_tokens_reported_by_the_server_are_booked(fake_openai, openai_model, learner):
    fake_openai.enqueue(Transcript("Hi.", usage=Usage(300, 5)))
    run = _run(learner, model=openai_model)

    gateway.speech_call(run=run, audio=b"\x1aE\xdf\xa3", mime_type="audio/webm")

    run.refresh_from_db()
    assert (run.input_tokens, run.output_tokens, run.total_tokens) == (300, 5, 305)


def test_openai_speech_is_charged_on_the_seconds_spoken(
    fake_openai, openai_model, learner, settings
):
    settings.GLOW_SPEECH_PRICE_PER_MINUTE = Decimal("0.015")
    fake_openai.enqueue(SpeechAudio(seconds=4.0))
    run = _run(learner, model=openai_model, params={"speech_model": "gpt-4o-mini-tts"})

    spoken = gateway.speech_call(
        run=run, text="Recursion is a function calling itself.", voice="nova"
    )

    run.refresh_from_db()
    assert spoken.duration_seconds == pytest.approx(4.0)
    assert run.cost == Decimal("0.001000")
    assert run.params == {"speech_model": "gpt-4o-mini-tts", "audio_seconds": 4.0}
    assert fake_openai.requests[-1].body["model"] == "gpt-4o-mini-tts"
    assert fake_openai.requests[-1].body["voice"] == "nova"


def test_calls_on_one_open_run_add_up(fake_openai, openai_model, learner):
    fake_openai.enqueue(Transcript("One.", seconds=30.0), Transcript("Two.", seconds=30.0))
    run = _run(learner, model=openai_model)

    gateway.speech_call(run=run, audio=b"first", finish=False)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    gateway.speech_call(run=run, audio=b"second")

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.params["audio_seconds"] == 60.0
    assert run.cost == Decimal("0.006000")
    assert run.output == "Two."


def test_a_provider_error_fails_the_run_and_keeps_the_error(fake_openai, openai_model, learner):
    fake_openai.enqueue(HTTPFailure(500, "overloaded"), HTTPFailure(500, "overloaded"))
    run = _run(learner, model=openai_model)

    with pytest.raises(ProviderError):
        gateway.speech_call(run=run, audio=b"audio")

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "HTTP 500" in run.error and "overloaded" in run.error
    assert run.cost == Decimal("0")
    assert "audio_seconds" not in run.params


def test_unreadable_local_audio_fails_the_run(learner):
    run = _run(learner)

    with pytest.raises(AudioFormatError):
        gateway.speech_call(run=run, audio=b"not a wav")

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "not a WAV" in run.error


def test_speech_call_takes_audio_or_text_not_both(learner):
    run = _run(learner)

    with pytest.raises(ValueError, match="either audio"):
        gateway.speech_call(run=run, audio=b"x", text="y")
    with pytest.raises(ValueError, match="either audio"):
        gateway.speech_call(run=run)
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
