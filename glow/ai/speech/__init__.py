"""Speech for Glow: speech-to-text and text-to-speech behind one interface, local or OpenAI."""

from __future__ import annotations

from glow.ai.speech.base import (
    Speech,
    SpeechProvider,
    Transcription,
    Word,
    speech_cost,
)
from glow.ai.speech.local import LocalSpeechProvider
from glow.ai.speech.wav import AudioFormatError, Pcm, probe_wav, read_wav, resample, write_wav

__all__ = [
    "AudioFormatError",
    "LocalSpeechProvider",
    "OpenAISpeechProvider",
    "Pcm",
    "Speech",
    "SpeechProvider",
    "Transcription",
    "Word",
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
