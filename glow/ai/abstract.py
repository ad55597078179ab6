"""BaseProvider: what every provider shares (timing, structured outputs, schema streams)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import replace

from glow.ai.base import (
    CompletionRequest,
    CompletionResult,
    CompletionStream,
    DeltaGenerator,
    Usage,
)
from glow.ai.structured import complete_structured


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
