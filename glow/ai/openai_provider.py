"""The `openai` provider: any OpenAI-compatible chat completions server, via the openai SDK."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import openai

from glow.ai.abstract import BaseProvider
from glow.ai.base import (
    CompletionRequest,
    CompletionResult,
    DeltaGenerator,
    FormatRefused,
    ProviderError,
    ProviderTimeout,
    Usage,
)
from glow.ai.negotiation import refuses_format, response_format
from glow.ai.tokens import count_tokens

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2

T = TypeVar("T")

_RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)
_FINISH_REASONS = {"stop": "stop", "length": "length"}


class OpenAIProvider(BaseProvider):
    name = "openai"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        backoff_base: float = 0.2,
        backoff_cap: float = 2.0,
        structured_output: str | None = None,
    ) -> None:
        self.structured_output = structured_output or None
        self.max_retries = DEFAULT_MAX_RETRIES if max_retries is None else max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        # Retries are ours (bounded, logged as one Run), so the SDK must not add its own.
        self._client = openai.OpenAI(
            base_url=base_url or DEFAULT_BASE_URL,
            # Self-hosted servers (vLLM, Ollama) need no key, but the SDK refuses to start
            # without one.
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
            max_retries=0,
        )

    def _structured_server(self) -> str:
        return str(self._client.base_url)

    def _structured_pin(self) -> str | None:
        return self.structured_output

    def _complete(self, request: CompletionRequest) -> CompletionResult:
        response = self._with_retries(lambda: self._create(request, stream=False))
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content if choice else None) or ""
        return CompletionResult(
            text=text,
            usage=_usage(response.usage, request, text),
            finish_reason=_finish_reason(choice.finish_reason if choice else None),
        )

    def _stream(
        self, request: CompletionRequest, should_cancel: Callable[[], bool]
    ) -> DeltaGenerator:
        # Only opening the stream is retried: deltas already handed out cannot be taken back.
        stream = self._with_retries(lambda: self._create(request, stream=True))
        parts: list[str] = []
        finish, reported = "stop", None
        try:
            for chunk in _guarded(stream):
                if should_cancel():
                    return _partial(parts, request, "cancelled")
                reported = chunk.usage or reported
                for choice in chunk.choices:
                    finish = (
                        _finish_reason(choice.finish_reason) if choice.finish_reason else finish
                    )
                    if choice.delta and choice.delta.content:
                        parts.append(choice.delta.content)
                        yield choice.delta.content
        finally:
            stream.close()
        text = "".join(parts)
        return CompletionResult(
            text=text, usage=_usage(reported, request, text), finish_reason=finish
        )

    def _create(self, request: CompletionRequest, *, stream: bool) -> Any:
        options: dict[str, Any] = {"model": request.model, "messages": request.messages}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.max_tokens is not None:
            # `max_tokens` rather than `max_completion_tokens`: compatible servers know it.
            options["max_tokens"] = request.max_tokens
        if request.json_schema is not None:
            shape = response_format(request.json_mode, request.json_schema)
            if shape is not None:
                options["response_format"] = shape
        if stream:
            options.update(stream=True, stream_options={"include_usage": True})
        return self._client.chat.completions.create(**options)

    def _with_retries(self, call: Callable[[], T]) -> T:
        for attempt in range(self.max_retries + 1):
            try:
                return call()
            except _RETRYABLE as exc:
                # A refused format fails the same way every time: the negotiation steps down.
                if attempt == self.max_retries or _refused(exc):
                    raise _translate(exc, attempts=attempt + 1) from exc
                time.sleep(min(self.backoff_cap, self.backoff_base * 2**attempt))
            except openai.OpenAIError as exc:
                raise _translate(exc, attempts=attempt + 1) from exc
        raise AssertionError("unreachable: the last attempt returns or raises")


def _guarded(stream: Any) -> Any:
    """Iterate an SDK stream, turning mid-stream failures into provider errors."""
    try:
        yield from stream
    except openai.OpenAIError as exc:
        raise _translate(exc, attempts=1) from exc
    # The SDK leaves errors raised while reading the body as raw httpx exceptions.
    except httpx.TimeoutException as exc:
        raise ProviderTimeout("The model server stopped sending mid-answer.") from exc
    except httpx.HTTPError as exc:
        raise ProviderError(f"The connection to the model server broke mid-answer: {exc}") from exc


def _translate(exc: Exception, *, attempts: int) -> ProviderError:
    tries = f" after {attempts} attempt{'s' if attempts > 1 else ''}"
    if isinstance(exc, openai.APITimeoutError):
        return ProviderTimeout(f"The model server did not answer in time{tries}.")
    if isinstance(exc, openai.APIStatusError):
        error = FormatRefused if _refused(exc) else ProviderError
        return error(f"The model server answered HTTP {exc.status_code}{tries}: {_detail(exc)}")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(f"Could not connect to the model server{tries}.")
    return ProviderError(f"The model call failed: {exc}")


def _refused(exc: Exception) -> bool:
    return isinstance(exc, openai.APIStatusError) and refuses_format(exc.status_code, _detail(exc))


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return exc.message


def _finish_reason(reported: str | None) -> str:
    return _FINISH_REASONS.get(reported or "stop", "stop")


def _usage(reported: Any, request: CompletionRequest, text: str) -> Usage:
    if reported is not None:
        return Usage(reported.prompt_tokens or 0, reported.completion_tokens or 0)
    prompt = sum(count_tokens(str(message.get("content") or "")) for message in request.messages)
    return Usage(input_tokens=prompt, output_tokens=count_tokens(text))


def _partial(parts: list[str], request: CompletionRequest, finish: str) -> CompletionResult:
    text = "".join(parts)
    return CompletionResult(text=text, usage=_usage(None, request, text), finish_reason=finish)
