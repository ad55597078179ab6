"""Model providers for Glow: one chat-completion interface, a local simulator and OpenAI."""

from glow.ai.base import (
    CompletionRequest,
    CompletionResult,
    CompletionStream,
    Provider,
    ProviderError,
    ProviderTimeout,
    StructuredOutputError,
    Usage,
)
from glow.ai.costs import cost_for
from glow.ai.factory import PROVIDER_NAMES, get_provider
from glow.ai.local import ECHO_MODEL, LocalProvider
from glow.ai.schema import schema_errors
from glow.ai.tokens import count_tokens

__all__ = [
    "ECHO_MODEL",
    "PROVIDER_NAMES",
    "CompletionRequest",
    "CompletionResult",
    "CompletionStream",
    "LocalProvider",
    "OpenAIProvider",
    "Provider",
    "ProviderError",
    "ProviderTimeout",
    "StructuredOutputError",
    "Usage",
    "cost_for",
    "count_tokens",
    "get_provider",
    "schema_errors",
]


def __getattr__(name: str):
    # The openai SDK takes about a second to import: load it only when an OpenAI-compatible
    # provider is actually used (every process, the CLI included, starts faster).
    if name == "OpenAIProvider":
        from glow.ai.openai_provider import OpenAIProvider

        return OpenAIProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
