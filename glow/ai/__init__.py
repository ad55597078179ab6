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
from glow.ai.openai_provider import OpenAIProvider
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
