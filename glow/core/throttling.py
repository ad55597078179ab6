"""Rate limits per API key (or per user for browser sessions): generation is the scarcest, reads the most generous."""

from __future__ import annotations

import logging
from functools import wraps

from django.conf import settings
from django.shortcuts import render
from rest_framework.throttling import SimpleRateThrottle

from glow.core.caching import CACHE_ERRORS

logger = logging.getLogger(__name__)

# Ops that make model calls on the caller's behalf; everything else counts as a read or a cheap write.
AI_OPS = frozenset(
    {"message", "grade", "end", "end-all", "audio/frame", "start", "run", "use-previous"}
)


def scope_of(view) -> str:
    action = getattr(view, "action", "") or ""
    spec = view.spec(action) if hasattr(view, "spec") and action else None
    name = spec.name if spec else action
    if name == "generate":
        return "generate"
    if name in AI_OPS:
        return "ai"
    return "read"


class GlowRateThrottle(SimpleRateThrottle):
    """One bucket per (scope, API key or user); rates from GLOW_THROTTLE_RATES."""

    def allow_request(self, request, view):
        self.scope = scope_of(view)
        self.rate = settings.GLOW_THROTTLE_RATES.get(self.scope)
        if not self.rate:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request, view)
        except CACHE_ERRORS as exc:
            # The limits live in Redis; with Redis down the API keeps answering, unlimited.
            logger.warning("Throttle cache unavailable, request allowed: %s", exc)
            return True

    def get_rate(self):
        # The scope is only known per request (allow_request sets the rate).
        return None

    def get_cache_key(self, request, view):
        auth = getattr(request, "auth", None)
        if auth is not None and getattr(auth, "pk", None) is not None:
            ident = f"key-{auth.pk}"
        elif request.user is not None and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"ip-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class _PageOp:
    """What the throttle reads of a view: the name of the op a page performs."""

    def __init__(self, name: str) -> None:
        self.action = name


def page_throttle(op_name: str):
    """The API's rate limit for a page that performs `op_name`, in the same bucket as the API's
    (per user for browser sessions): a page is never a way around a limit."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            throttle = GlowRateThrottle()
            if not throttle.allow_request(request, _PageOp(op_name)):
                wait = throttle.wait()
                seconds = max(1, int(wait or 1))
                response = render(request, "throttled.html", {"seconds": seconds}, status=429)
                response["Retry-After"] = str(seconds)
                return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
