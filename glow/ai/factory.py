"""get_provider: build a provider by name from per-model settings."""

from __future__ import annotations

import threading

from glow.ai.base import Provider, ProviderError
from glow.ai.local import LocalProvider

PROVIDER_NAMES = ("local", "openai")

_lock = threading.Lock()
_providers: dict[tuple, Provider] = {}


def get_provider(
    name: str = "local",
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    max_in_flight: int | None = None,
    structured_output: str | None = None,
    stream_delay: float = 0.0,
) -> Provider:
    """The provider called `name`; connection settings only apply to `openai`, the stream's
    pace only to `local`; `structured_output` pins a glow.ai.negotiation.Mode instead of
    negotiating one.

    One instance per configuration for the life of the process: an OpenAI client takes tens of
    milliseconds of CPU to build, and its connection pool is what keeps calls cheap.
    """
    key = (name, base_url, api_key, timeout, max_retries, max_in_flight, structured_output)
    key += (stream_delay,)
    with _lock:
        provider = _providers.get(key)
        if provider is None:
            provider = _providers[key] = _build(
                name,
                base_url=base_url,
                api_key=api_key,
                timeout=timeout,
                max_retries=max_retries,
                max_in_flight=max_in_flight,
                structured_output=structured_output,
                stream_delay=stream_delay,
            )
        return provider


def _build(name: str, *, stream_delay: float = 0.0, **options) -> Provider:
    if name == "local":
        return LocalProvider(stream_delay=stream_delay)
    if name == "openai":
        from glow.ai.openai_provider import OpenAIProvider

        return OpenAIProvider(**options)
    raise ProviderError(f"Unknown model provider {name!r}; expected one of {PROVIDER_NAMES}.")
