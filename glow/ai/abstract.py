"""BaseProvider: what every provider shares (timing, structured outputs, schema streams)."""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from glow.ai.base import (
    CompletionRequest,
    CompletionResult,
    CompletionStream,
    DeltaGenerator,
    Usage,
)
from glow.ai.structured import acomplete_structured, complete_structured


def _never() -> bool:
    return False


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


class BaseProvider(ABC):
    """Subclasses implement `_complete` and `_stream`; callers use `complete` and `stream`."""

    name: str

    def complete(self, request: CompletionRequest) -> CompletionResult:
        started = time.perf_counter()
        if request.json_schema is None:
            result = self._complete(request)
        else:
            result = complete_structured(
                self._complete,
                request,
                server=self._structured_server(),
                pinned=self._structured_pin(),
            )
        return replace(result, latency_ms=_elapsed_ms(started))

    def stream(
        self, request: CompletionRequest, *, should_cancel: Callable[[], bool] = _never
    ) -> CompletionStream:
        if request.json_schema is not None:
            return CompletionStream(self._stream_structured(request, should_cancel))
        return CompletionStream(self._timed(self._stream(request, should_cancel)))

    def _structured_server(self) -> str | None:
        """Where structured-output modes are negotiated and remembered; None: no negotiation."""
        return None

    def _structured_pin(self) -> str | None:
        """A structured-output mode configured for this provider, tried alone."""
        return None

    async def acomplete(self, request: CompletionRequest) -> CompletionResult:
        """`complete` on the process's model-call loop (glow.ai.calls): many in flight, no thread
        each. Its latency_ms runs from the request sent (a slot of the provider's limit taken)
        to the answer's last byte, retries and a structured repair included."""
        async with self.limit():
            started = time.perf_counter()
            if request.json_schema is None:
                result = await self._acomplete(request)
            else:
                result = await acomplete_structured(
                    self._acomplete,
                    request,
                    server=self._structured_server(),
                    pinned=self._structured_pin(),
                )
            return replace(result, latency_ms=_elapsed_ms(started))

    def limit(self) -> Any:
        """What caps this provider's calls in flight (nothing for one that answers at once)."""
        return contextlib.nullcontext()

    async def _acomplete(self, request: CompletionRequest) -> CompletionResult:
        # A provider without an async client answers on the loop itself: the local simulator
        # is CPU work of a millisecond, so it is a fast provider, not a different engine.
        return self._complete(request)

    @abstractmethod
    def _complete(self, request: CompletionRequest) -> CompletionResult: ...

    @abstractmethod
    def _stream(
        self, request: CompletionRequest, should_cancel: Callable[[], bool]
    ) -> DeltaGenerator: ...

    def _timed(self, deltas: DeltaGenerator) -> DeltaGenerator:
        started = time.perf_counter()
        result = yield from deltas
        return replace(result, latency_ms=_elapsed_ms(started))

    def _stream_structured(
        self, request: CompletionRequest, should_cancel: Callable[[], bool]
    ) -> DeltaGenerator:
        # Partial JSON is useless to a caller and may need a repair retry, so a
        # structured stream delivers the validated answer as a single delta.
        if should_cancel():
            return CompletionResult(text="", usage=Usage(), finish_reason="cancelled")
        result = self.complete(request)
        yield result.text
        return result
