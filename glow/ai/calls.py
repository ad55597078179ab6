"""Model calls in flight without a thread each: one event loop per process, and a cap per provider.

Model calls are I/O: a worker keeps many in flight on one asyncio loop (its own daemon thread,
started on first use and again in a forked child), while its database work stays on the
calling thread. `submit(coroutine)` answers a concurrent.futures.Future.

`ProviderLimit` caps the calls one process has in flight to one provider configuration and
holds every new call back while the provider has asked to wait (HTTP 429 with Retry-After).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any

DEFAULT_PROVIDER_LIMIT = 64

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0
# Per event loop (asyncio primitives belong to one), per provider configuration.
_limits: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def loop() -> asyncio.AbstractEventLoop:
    """This process's model-call loop, running in its own daemon thread."""
    global _loop, _loop_pid
    with _lock:
        if _loop is None or _loop_pid != os.getpid() or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            _loop_pid = os.getpid()
            ready = threading.Event()
            thread = threading.Thread(
                target=_serve, args=(_loop, ready), name="glow-model-calls", daemon=True
            )
            thread.start()
            ready.wait()
        return _loop


def _serve(event_loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(event_loop)
    event_loop.call_soon(ready.set)
    event_loop.run_forever()


def submit(coroutine: Coroutine) -> Future:
    return asyncio.run_coroutine_threadsafe(coroutine, loop())


def in_loop_thread() -> bool:
    try:
        return asyncio.get_running_loop() is _loop
    except RuntimeError:
        return False


class ProviderLimit:
    """At most `size` calls in flight to one provider configuration, none before `resume_at`."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.semaphore = asyncio.Semaphore(size)
        self.resume_at = 0.0  # time.monotonic() before which no new call starts
        self.in_flight = 0
        self.max_in_flight = 0

    def pause(self, seconds: float) -> None:
        """The provider asked every caller to wait (429 Retry-After)."""
        self.resume_at = max(self.resume_at, time.monotonic() + seconds)

    async def __aenter__(self) -> ProviderLimit:
        await self.semaphore.acquire()
        while (wait := self.resume_at - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.in_flight -= 1
        self.semaphore.release()


def provider_limit(key: Any, size: int | None = None) -> ProviderLimit:
    """The limit of one provider configuration in this process, on the running loop."""
    limits = _limits.setdefault(asyncio.get_running_loop(), {})
    limit = limits.get(key)
    if limit is None:
        limit = limits[key] = ProviderLimit(size or DEFAULT_PROVIDER_LIMIT)
    return limit
