"""Provider-neutral request, result, error and streaming types of the AI layer."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

FinishReason = Literal["stop", "cancelled", "length"]


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


@dataclass
class CompletionRequest:
    """One chat completion call.

    `context` carries structured inputs for the local simulator only; remote providers
    read `messages`, which must carry everything a real model needs.
    """

    messages: list[dict]
    model: str = "glow-local"
    task: str | None = None
    context: dict = field(default_factory=dict)
    json_schema: dict | None = None
    # How a remote server is asked for `json_schema` (a glow.ai.negotiation.Mode); None: its
    # strongest mode. Set by the structured-output negotiation, not by callers.
    json_mode: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    # Same seed, same sample where the server supports it; the local simulator hashes it in.
    seed: int | None = None


@dataclass
class CompletionResult:
    text: str
    usage: Usage
    data: Any = None
    finish_reason: FinishReason = "stop"
    latency_ms: int = 0


class ProviderError(Exception):
    """A model call failed; the message is human-readable and safe to store on a Run."""


class ProviderTimeout(ProviderError):
    """The model did not answer within the timeout, retries included."""


class FormatRefused(ProviderError):
    """The server refused the request's response format (a structured-output mode it lacks)."""


class StructuredOutputError(ProviderError):
    """The model's output did not match the requested JSON schema, even after a repair."""


DeltaGenerator = Generator[str, None, CompletionResult]


class CompletionStream:
    """Iterate to receive text deltas; once exhausted, `result` holds the CompletionResult.

    A consumer that stops early should call `close()` so the provider releases its
    connection.
    """

    def __init__(self, deltas: DeltaGenerator) -> None:
        self._deltas = deltas
        self.result: CompletionResult | None = None

    def __iter__(self) -> Iterator[str]:
        if self.result is None:
            self.result = yield from self._deltas

    def collect(self) -> CompletionResult:
        """Consume the remaining deltas and return the final result."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result

    def close(self) -> None:
        self._deltas.close()


class Provider(Protocol):
    name: str

    def complete(self, request: CompletionRequest) -> CompletionResult: ...

    def stream(
        self, request: CompletionRequest, *, should_cancel: Callable[[], bool] = ...
    ) -> CompletionStream: ...
