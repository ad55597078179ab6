"""The cache as an optimisation only: with its Redis unreachable, callers go on without it.

Throttles, the login lockout and the decrypt cache live in the cache; a Redis outage must not
turn a sign-in or a decrypt into a 500. Each failure is one warning line.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache import cache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)
# What the cache raises when its Redis cannot be reached.
CACHE_ERRORS = (RedisError, OSError)


def cache_call(method: str, *args, default: Any = None, **kwargs) -> Any:
    """cache.<method>(*args, **kwargs), or `default` when the cache cannot be reached."""
    try:
        return getattr(cache, method)(*args, **kwargs)
    except CACHE_ERRORS as exc:
        logger.warning("Cache unavailable (%s skipped): %s", method, exc)
        return default
