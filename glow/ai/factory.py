"""get_provider: the one factory of chat and speech providers, by name, from per-model settings."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from glow.ai.base import Provider, ProviderError
from glow.ai.local import LocalProvider

if TYPE_CHECKING:
    from glow.ai.speech.base import SpeechProvider

PROVIDER_NAMES = ("local", "openai")
KINDS = ("chat", "speech")

_lock = threading.Lock()
_providers: dict[tuple, Provider | SpeechProvider] = {}


def get_provider(
    name: str = "local",
    *,
    kind: str = "chat",
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    max_in_flight: int | None = None,
    structured_output: str | None = None,
    stream_delay: float = 0.0,
    transcription_model: str = "",
    speech_model: str = "",
) -> Provider | SpeechProvider:
    """The `kind` ("chat" or "speech") provider called `name`; connection settings only apply to
    `openai`, the stream's pace only to local chat, the models only to speech;
    `structured_output` pins a glow.ai.negotiation.Mode instead of negotiating one.

    One instance per configuration for the life of the process: an OpenAI client takes tens of
    milliseconds of CPU to build, and its connection pool is what keeps calls cheap (the local
    speech engines load their libraries once).
    """
    key = (kind, name, base_url, api_key, timeout, max_retries, max_in_flight, structured_output)
    key += (stream_delay, transcription_model, speech_model)
    with _lock:
        provider = _providers.get(key)
        if provider is None:
            provider = _providers[key] = _build(
                kind,
                name,
                base_url=base_url,
                api_key=api_key,
                timeout=timeout,
                max_retries=max_retries,
                max_in_flight=max_in_flight,
                structured_output=structured_output,
                stream_delay=stream_delay,
                transcription_model=transcription_model,
                speech_model=speech_model,
            )
        return provider


def _build(
    kind: str,
    name: str,
    *,
    stream_delay: float,
    transcription_model: str,
    speech_model: str,
    max_in_flight: int | None,
    structured_output: str | None,
    **connection,
) -> Provider | SpeechProvider:
    if kind not in KINDS:
        raise ProviderError(f"Unknown provider kind {kind!r}; expected one of {KINDS}.")
    label = "speech" if kind == "speech" else "model"
    if name not in PROVIDER_NAMES:
        raise ProviderError(f"Unknown {label} provider {name!r}; expected one of {PROVIDER_NAMES}.")
    if kind == "speech":
        if name == "local":
            from glow.ai.speech.local import LocalSpeechProvider

            return LocalSpeechProvider()
        from glow.ai.speech.openai_speech import OpenAISpeechProvider

        models = {"transcription_model": transcription_model, "speech_model": speech_model}
        return OpenAISpeechProvider(
            **connection, **{key: value for key, value in models.items() if value}
        )
    if name == "local":
        return LocalProvider(stream_delay=stream_delay)
    from glow.ai.openai_provider import OpenAIProvider

    return OpenAIProvider(
        **connection, max_in_flight=max_in_flight, structured_output=structured_output
    )
