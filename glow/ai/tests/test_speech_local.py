"""The offline speech pair: eSpeak NG speaks a sentence and pocketsphinx hears it back."""

import io
import threading
import wave

import pytest

from glow.ai import ProviderError, get_provider
from glow.ai.speech import AudioFormatError, LocalSpeechProvider

SENTENCE = "please explain how recursion works"


@pytest.fixture(scope="module")
def provider():
    return get_provider("local", kind="speech")


@pytest.fixture(scope="module")
def spoken(provider):
    return provider.synthesize(SENTENCE)


def test_speech_is_a_valid_wav_of_the_sentence(spoken):
    with wave.open(io.BytesIO(spoken.audio)) as wav:
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        assert wav.getnframes() > 0
        seconds = wav.getnframes() / wav.getframerate()
    assert spoken.mime_type == "audio/wav"
    assert spoken.duration_seconds == pytest.approx(seconds)
    # Five words at a conversational pace.
    assert 1.0 < seconds < 5.0


def test_a_synthesised_sentence_is_transcribed_back(provider, spoken):
    heard = provider.transcribe(spoken.audio, mime_type="audio/wav", language="en-US")

    words = set(heard.text.split())
    assert len(words & set(SENTENCE.split())) >= 2, heard.text
    assert heard.usage_seconds == pytest.approx(spoken.duration_seconds)
    assert [word.text for word in heard.words] == heard.text.split()
    starts = [word.start_seconds for word in heard.words]
    assert starts == sorted(starts)
    assert heard.words[-1].end_seconds <= heard.usage_seconds


def test_speed_changes_the_pace(provider, spoken):
    fast = provider.synthesize(SENTENCE, speed=2.0)

    assert fast.duration_seconds < spoken.duration_seconds * 0.75


def test_silence_is_heard_as_nothing(provider):
    silence = io.BytesIO()
    with wave.open(silence, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(bytes(2 * 16000))

    heard = provider.transcribe(silence.getvalue())

    assert heard.text == ""
    assert heard.usage_seconds == pytest.approx(1.0)


def test_concurrent_calls_do_not_mix_their_audio(provider, spoken):
    # libespeak keeps global state; its lock must keep two requests' samples apart. (Its
    # output varies by a few samples from call to call, so lengths are compared, not bytes.)
    durations = []

    def speak():
        durations.append(provider.synthesize(SENTENCE).duration_seconds)

    threads = [threading.Thread(target=speak) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert durations == pytest.approx([spoken.duration_seconds] * 4, rel=0.01)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda p: p.synthesize("   "), ProviderError, "no text"),
        (lambda p: p.synthesize("hello", speed=9), ProviderError, "between 0.25 and 4"),
        (lambda p: p.synthesize("hello", voice="alloy"), ProviderError, "no local voice"),
        (lambda p: p.transcribe(b"\x1aE\xdf\xa3", mime_type="audio/webm"), AudioFormatError, "WAV"),
        (lambda p: p.transcribe(b"not audio"), AudioFormatError, "not a WAV"),
        (lambda p: p.transcribe(b"", language="fr"), ProviderError, "English only"),
    ],
)
def test_bad_requests_answer_a_provider_error(provider, call, error, message):
    with pytest.raises(error, match=message):
        call(provider)


def test_the_local_provider_is_the_default():
    assert isinstance(get_provider(kind="speech"), LocalSpeechProvider)
    with pytest.raises(ProviderError, match="Unknown speech provider"):
        get_provider("nope", kind="speech")
