"""The openai speech provider through the real SDK against the loopback FakeOpenAIServer."""

import io
import wave
from decimal import Decimal

import pytest

from glow.ai import ProviderError, ProviderTimeout, Usage, get_provider
from glow.ai.speech import OpenAISpeechProvider, speech_cost, write_wav
from glow.ai.speech.wav import Pcm
from tests.support.fakeserver import (
    Delay,
    FakeOpenAIServer,
    HTTPFailure,
    Reply,
    SpeechAudio,
    Transcript,
    UploadedFile,
)


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer() as srv:
        yield srv


def _provider(srv, **options):
    options = {"timeout": 2.0, "max_retries": 2, "backoff_base": 0.01, **options}
    return OpenAISpeechProvider(base_url=srv.base_url, api_key="test-key", **options)


def _clip(seconds=1.5, rate=16000) -> bytes:
    from array import array

    return write_wav(Pcm(array("h", bytes(2 * round(seconds * rate))), rate))


def test_transcription_uploads_the_audio_and_returns_the_text(server):
    server.enqueue(Transcript(" Please explain recursion. ", seconds=2.5))
    audio = _clip()

    heard = _provider(server).transcribe(audio, mime_type="audio/wav", language="en-US")

    assert heard.text == "Please explain recursion."
    assert heard.usage_seconds == 2.5
    sent = server.requests[-1]
    assert sent.path == "/v1/audio/transcriptions"
    assert sent.headers["Authorization"] == "Bearer test-key"
    assert sent.body["model"] == "whisper-1"
    assert sent.body["language"] == "en"
    assert sent.body["file"] == UploadedFile("audio.wav", "audio/wav", audio)


def test_without_reported_usage_the_wav_header_gives_the_seconds(server):
    server.enqueue(Transcript("hello"))

    heard = _provider(server).transcribe(_clip(seconds=1.5), model="my-whisper")

    assert heard.usage_seconds == pytest.approx(1.5)
    assert server.requests[-1].body["model"] == "my-whisper"


def test_token_billed_transcription_reports_its_tokens(server):
    server.enqueue(Transcript("hello", usage=Usage(120, 4)))

    heard = _provider(server).transcribe(b"\x1aE\xdf\xa3webm", mime_type="audio/webm")

    assert heard.usage == Usage(120, 4)
    # Not a WAV and no duration reported: the seconds are unknown, not guessed.
    assert heard.usage_seconds == 0.0
    assert server.requests[-1].body["file"].filename == "audio.webm"


def test_a_server_error_then_success_is_retried(server):
    server.enqueue(HTTPFailure(500), Transcript("second time lucky", seconds=1.0))
    before = len(server.requests)

    heard = _provider(server).transcribe(_clip())

    assert heard.text == "second time lucky"
    assert len(server.requests) - before == 2


def test_errors_past_the_retries_are_provider_errors(server):
    server.enqueue(HTTPFailure(500, "overloaded"), HTTPFailure(500, "overloaded"))

    with pytest.raises(ProviderError, match=r"HTTP 500 after 2 attempts: overloaded"):
        _provider(server, max_retries=1).transcribe(_clip())


def test_a_client_error_is_not_retried(server):
    server.enqueue(HTTPFailure(400, "unsupported file"))
    before = len(server.requests)

    with pytest.raises(ProviderError, match="HTTP 400"):
        _provider(server).transcribe(_clip())
    assert len(server.requests) - before == 1


def test_a_slow_server_times_out(server):
    server.enqueue(Delay(2.0, Transcript("too late")))

    with pytest.raises(ProviderTimeout):
        _provider(server, timeout=0.3, max_retries=0).transcribe(_clip())


def test_speech_is_a_valid_wav_even_when_the_server_streams_it(server):
    server.enqueue(SpeechAudio(seconds=0.75, streamed=True))

    spoken = _provider(server).synthesize("Recursion calls itself.", voice="nova", speed=1.25)

    assert spoken.duration_seconds == pytest.approx(0.75)
    with wave.open(io.BytesIO(spoken.audio)) as wav:
        assert wav.getnframes() == 0.75 * 24000
    sent = server.requests[-1]
    assert sent.path == "/v1/audio/speech"
    assert sent.body == {
        "model": "tts-1",
        "input": "Recursion calls itself.",
        "voice": "nova",
        "response_format": "wav",
        "speed": 1.25,
    }


def test_speech_retries_a_server_error_and_defaults_the_voice(server):
    server.enqueue(HTTPFailure(503), SpeechAudio(seconds=0.5))

    spoken = _provider(server).synthesize("Hello.", model="gpt-4o-mini-tts")

    assert spoken.duration_seconds == pytest.approx(0.5)
    assert server.requests[-1].body["voice"] == "alloy"
    assert server.requests[-1].body["model"] == "gpt-4o-mini-tts"


def test_speech_that_is_not_wav_is_a_provider_error(server):
    server.enqueue(SpeechAudio(audio=b"ID3\x03mp3 bytes"))

    with pytest.raises(ProviderError, match="did not answer with usable WAV"):
        _provider(server).synthesize("Hello.")


def test_a_mis_scripted_behaviour_fails_loudly(server):
    server.enqueue(Reply("a chat answer"))

    with pytest.raises(ProviderError, match="queued a Reply"):
        _provider(server).synthesize("Hello.")


def test_get_provider_builds_a_configured_openai_speech_provider(server):
    server.enqueue(Transcript("hi"))
    provider = get_provider(
        "openai",
        kind="speech",
        base_url=server.base_url,
        api_key="k",
        timeout=2,
        max_retries=0,
        transcription_model="whisper-large",
    )

    assert provider.name == "openai"
    assert provider.transcribe(_clip()).text == "hi"
    assert server.requests[-1].body["model"] == "whisper-large"


def test_speech_cost_is_exact_per_minute():
    assert speech_cost(90, price_per_minute=Decimal("0.006")) == Decimal("0.009000")
    assert speech_cost(2.5, price_per_minute=Decimal("0.006")) == Decimal("0.000250")
    assert speech_cost(0.1, price_per_minute="0.006") == Decimal("0.000010")
    assert speech_cost(0, price_per_minute=Decimal("0.006")) == Decimal("0")
    with pytest.raises(TypeError):
        speech_cost(60, price_per_minute=0.006)
    with pytest.raises(ValueError):
        speech_cost(-1, price_per_minute=Decimal("0.006"))
