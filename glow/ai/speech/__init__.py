"""Speech for Glow: speech-to-text and text-to-speech behind one interface, local or OpenAI."""

from __future__ import annotations

from glow.ai.base import ProviderError
from glow.ai.speech.base import (
    Speech,
    SpeechProvider,
    Transcription,
    Word,
    speech_cost,
)
from glow.ai.speech.local import LocalSpeechProvider
from glow.ai.speech.wav import AudioFormatError, Pcm, probe_wav, read_wav, resample, write_wav

SPEECH_PROVIDER_NAMES = ("local", "openai")


def get_speech_provider(
    name: str = "local",
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    transcription_model: str = "",
    speech_model: str = "",
) -> SpeechProvider:
    """The speech provider called `name`; connection settings and models only apply to `openai`."""
    if name == "local":
        return LocalSpeechProvider()
    if name == "openai":
        models = {"transcription_model": transcription_model, "speech_model": speech_model}
        from glow.ai.speech.openai_speech import OpenAISpeechProvider

        return OpenAISpeechProvider(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            **{key: value for key, value in models.items() if value},
        )
    raise ProviderError(
        f"Unknown speech provider {name!r}; expected one of {SPEECH_PROVIDER_NAMES}."
    )


__all__ = [
    "SPEECH_PROVIDER_NAMES",
    "AudioFormatError",
    "LocalSpeechProvider",
    "OpenAISpeechProvider",
    "Pcm",
    "Speech",
    "SpeechProvider",
    "Transcription",
    "Word",
    "get_speech_provider",
    "probe_wav",
    "read_wav",
    "resample",
    "speech_cost",
    "write_wav",
]


def __getattr__(name: str):
    # The openai SDK takes about a second to import: load it only when an OpenAI-compatible
    # provider is actually used (every process, the CLI included, starts faster).
    if name == "OpenAISpeechProvider":
        from glow.ai.speech.openai_speech import OpenAISpeechProvider

        return OpenAISpeechProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
