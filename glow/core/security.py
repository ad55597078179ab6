"""Browser-facing security: a Content-Security-Policy for staff and admin pages, and login lockout."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver

from glow.core.caching import cache_call

CSP = (
    "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
CSP_PATHS = ("/staff/", "/admin/", "/learn/", "/accounts/")


class ContentSecurityPolicyMiddleware:
    """Learner, staff and admin pages load nothing from elsewhere and run no inline script."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(CSP_PATHS):
            response.headers.setdefault("Content-Security-Policy", CSP)
            response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


def _lock_key(username: str) -> str:
    return f"login-failures:{(username or '').strip().lower()}"


def login_locked(username: str) -> bool:
    # Without the cache (Redis down) nobody is locked out: sign-in stays possible, unthrottled.
    failures = cache_call("get", _lock_key(username), 0, default=0)
    return failures >= settings.GLOW_LOGIN_MAX_FAILURES


class LockoutModelBackend(ModelBackend):
    """After GLOW_LOGIN_MAX_FAILURES failed logins a username is locked for GLOW_LOGIN_LOCKOUT_SECONDS,
    even with the right password: guessing stops paying off."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username and login_locked(username):
            raise PermissionDenied("Too many failed logins; try again later.")
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed)
def _count_failure(sender, credentials, request=None, **kwargs):
    key = _lock_key(credentials.get("username", ""))
    timeout = settings.GLOW_LOGIN_LOCKOUT_SECONDS
    if cache_call("add", key, 1, timeout=timeout, default=True):
        return
    try:
        cache_call("incr", key)
    except ValueError:  # expired between add and incr
        cache_call("set", key, 1, timeout=timeout)


@receiver(user_logged_in)
def _reset_failures(sender, request, user, **kwargs):
    cache_call("delete", _lock_key(user.get_username()))
