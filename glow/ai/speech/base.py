"""Provider-neutral speech types: transcriptions, synthesised speech, the provider protocol, cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

from glow.ai.base import ProviderError, Usage

_QUANTUM = Decimal("0.000001")
_SIXTY = Decimal(60)
# OpenAI's accepted range for `speed`; the local voice maps it onto words per minute.
MIN_SPEED, MAX_SPEED = 0.25, 4.0


@dataclass(frozen=True)
class Word:
    text: str
    start_seconds: float
    end_seconds: float


@dataclass(frozen=True)
class Transcription:
    text: str
    # Seconds of audio heard: what per-minute prices are charged on.
    usage_seconds: float
    words: list[Word] | None = None
    # Servers that bill transcription by tokens report them; others leave zeros.
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class Speech:
    audio: bytes  # always a complete mono 16-bit PCM WAV
    duration_seconds: float
    mime_type: str = "audio/wav"
    usage: Usage = field(default_factory=Usage)


class SpeechProvider(Protocol):
    name: str

    def transcribe(
        self, audio: bytes, *, mime_type: str = "audio/wav", language: str = "en", model: str = ""
    ) -> Transcription: ...

    def synthesize(
        self, text: str, *, voice: str = "", speed: float | None = None, model: str = ""
    ) -> Speech: ...


def check_synthesis(text: str, speed: float | None) -> str:
    """The text to speak, stripped; refuses empty text and speeds outside 0.25-4."""
    spoken = (text or "").replace("\0", "").strip()
    if not spoken:
        raise ProviderError("There is no text to speak.")
    if speed is not None and not MIN_SPEED <= speed <= MAX_SPEED:
        raise ProviderError(f"Speech speed must be between {MIN_SPEED} and {MAX_SPEED}.")
    return spoken


def speech_cost(
    seconds: float | Decimal | int, *, price_per_minute: Decimal | int | str
) -> Decimal:
    """Exact dollar cost of `seconds` of audio at a per-minute price, to the micro-dollar."""
    if isinstance(price_per_minute, float):
        # Floats would smuggle binary rounding errors into money.
        raise TypeError("prices must be Decimal, int or str, not float")
    duration = Decimal(str(seconds)) if isinstance(seconds, float) else Decimal(seconds)
    if duration < 0:
        raise ValueError("audio duration cannot be negative")
    return (duration * Decimal(price_per_minute) / _SIXTY).quantize(
        _QUANTUM, rounding=ROUND_HALF_UP
    )
