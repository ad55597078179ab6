"""The `openai` provider: any OpenAI-compatible chat completions server, via the openai SDK."""

from __future__ import annotations

import asyncio
import email.utils
import os
import time
import weakref
from collections.abc import Awaitable, Callable
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
from glow.ai.calls import provider_limit
from glow.ai.negotiation import refuses_format, response_format
from glow.ai.tokens import count_tokens

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
# A Retry-After longer than this is not waited out: the call fails (bounded retries).
MAX_RETRY_AFTER_SECONDS = 30.0

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
        max_in_flight: int | None = None,
    ) -> None:
        self.structured_output = structured_output or None
        self.max_retries = DEFAULT_MAX_RETRIES if max_retries is None else max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_in_flight = max_in_flight
        # Retries are ours (bounded, logged as one Run), so the SDK must not add its own.
        self._options = {
            "base_url": base_url or DEFAULT_BASE_URL,
            # Self-hosted servers (vLLM, Ollama) need no key, but the SDK refuses to start
            # without one.
            "api_key": api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
            "timeout": DEFAULT_TIMEOUT if timeout is None else timeout,
            "max_retries": 0,
        }
        self._client = openai.OpenAI(**self._options)
        # The SDK imports its resource modules on first use (a second or two of CPU): now, in
        # the provider's construction (once per process), never inside a timed call.
        self._client.chat.completions  # noqa: B018
        # One pooled async client per event loop (its connections belong to the loop).
        self._async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def limit(self) -> Any:
        key = (self._options["base_url"], self._options["api_key"], self.max_in_flight)
        return provider_limit(key, self.max_in_flight)

    def _async_client(self) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = self._async_clients[loop] = _Untransformed(
                openai.AsyncOpenAI(**self._options, **_aiohttp())
            )
        return client

    async def acomplete(self, request: CompletionRequest) -> CompletionResult:
        self._async_client()  # built before the clock starts: its first build is not latency
        return await super().acomplete(request)

    async def _acomplete(self, request: CompletionRequest) -> CompletionResult:
        response = await self._awith_retries(
            lambda: self._create(request, stream=False, client=self._async_client())
        )
        return _result(response, request)

    def _structured_server(self) -> str:
        return str(self._client.base_url)

    def _structured_pin(self) -> str | None:
        return self.structured_output

    def _complete(self, request: CompletionRequest) -> CompletionResult:
        response = self._with_retries(lambda: self._create(request, stream=False))
        return _result(response, request)

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

    def _create(self, request: CompletionRequest, *, stream: bool, client: Any = None) -> Any:
        options: dict[str, Any] = {"model": request.model, "messages": request.messages}
        for name in ("temperature", "top_p", "seed"):
            if getattr(request, name) is not None:
                options[name] = getattr(request, name)
        if request.max_tokens is not None:
            # `max_tokens` rather than `max_completion_tokens`: compatible servers know it.
            options["max_tokens"] = request.max_tokens
        if request.json_schema is not None:
            shape = response_format(request.json_mode, request.json_schema)
            if shape is not None:
                options["response_format"] = shape
        if stream:
            options.update(stream=True, stream_options={"include_usage": True})
        return (client or self._client).chat.completions.create(**options)

    def _with_retries(self, call: Callable[[], T]) -> T:
        for attempt in range(self.max_retries + 1):
            try:
                return call()
            except _RETRYABLE as exc:
                # A refused format fails the same way every time: the negotiation steps down.
                wait = self._wait(exc, attempt)
                if attempt == self.max_retries or wait is None or _refused(exc):
                    raise _translate(exc, attempts=attempt + 1) from exc
                time.sleep(wait)
            except openai.OpenAIError as exc:
                raise _translate(exc, attempts=attempt + 1) from exc
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _awith_retries(self, call: Callable[[], Awaitable[T]]) -> T:
        """_with_retries on the loop: a 429's Retry-After also holds back every new call to
        this provider (ProviderLimit.pause), not only this one."""
        for attempt in range(self.max_retries + 1):
            try:
                return await call()
            except _RETRYABLE as exc:
                wait = self._wait(exc, attempt)
                if attempt == self.max_retries or wait is None or _refused(exc):
                    raise _translate(exc, attempts=attempt + 1) from exc
                if isinstance(exc, openai.RateLimitError):
                    self.limit().pause(wait)
                await asyncio.sleep(wait)
            except openai.OpenAIError as exc:
                raise _translate(exc, attempts=attempt + 1) from exc
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _wait(self, exc: Exception, attempt: int) -> float | None:
        """Seconds before the next attempt: the server's Retry-After when it sent one (None when
        longer than MAX_RETRY_AFTER_SECONDS: not worth holding a cell for), else backoff."""
        asked = _retry_after(exc)
        if asked is not None:
            return asked if asked <= MAX_RETRY_AFTER_SECONDS else None
        return min(self.backoff_cap, self.backoff_base * 2**attempt)


def _aiohttp() -> dict:
    """aiohttp as the async client's transport when installed (openai[aiohttp]): a quarter of
    httpx's CPU per call with many in flight (httpcore's pool scans every connection for each
    request)."""
    try:
        return {"http_client": openai.DefaultAioHttpClient()}
    except (AttributeError, RuntimeError):
        return {}


class _Untransformed:
    """An async client whose chat.completions.create posts the options as they are: _create
    builds plain JSON already, and the SDK's per-call transform of them (TypedDict
    introspection of every message) was a third of its CPU per call."""

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self.client = client
        self.chat = self
        self.completions = self

    def create(self, **options: Any) -> Any:
        from openai.types.chat import ChatCompletion

        return self.client.post("/chat/completions", body=options, cast_to=ChatCompletion)


def _retry_after(exc: Exception) -> float | None:
    """Retry-After (seconds or an HTTP date) or retry-after-ms of an error response, if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return None if when is None else max(0.0, when.timestamp() - time.time())


def _result(response: Any, request: CompletionRequest) -> CompletionResult:
    choice = response.choices[0] if response.choices else None
    text = (choice.message.content if choice else None) or ""
    return CompletionResult(
        text=text,
        usage=_usage(response.usage, request, text),
        finish_reason=_finish_reason(choice.finish_reason if choice else None),
    )


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
