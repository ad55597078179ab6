"""get_provider: build a provider by name from per-model settings."""

from __future__ import annotations

from glow.ai.base import Provider, ProviderError
from glow.ai.local import LocalProvider

PROVIDER_NAMES = ("local", "openai")


def get_provider(
    name: str = "local",
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    structured_output: str | None = None,
    stream_delay: float = 0.0,
) -> Provider:
    """The provider called `name`; connection settings only apply to `openai`, the stream's
    pace only to `local`.

    `structured_output` pins a glow.ai.negotiation.Mode instead of negotiating one.
    """
    if name == "local":
        return LocalProvider(stream_delay=stream_delay)
    if name == "openai":
        from glow.ai.openai_provider import OpenAIProvider

        return OpenAIProvider(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            structured_output=structured_output,
        )
    raise ProviderError(f"Unknown model provider {name!r}; expected one of {PROVIDER_NAMES}.")
