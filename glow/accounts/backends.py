"""Sign-in by username or e-mail address, behind the same lockout as every login."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied

from glow.core.security import LockoutModelBackend, login_locked


class UsernameOrEmailBackend(LockoutModelBackend):
    """A learner may type their e-mail address where the form asks for a username.

    The lockout counts what was typed, so guessing by e-mail is throttled like guessing by name.
    An address shared by several accounts signs none of them in: it names no one person.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username and "@" in username:
            if login_locked(username):
                raise PermissionDenied("Too many failed logins; try again later.")
            matches = list(
                get_user_model()
                .objects.filter(email__iexact=username.strip())
                .values_list("username", flat=True)[:2]
            )
            if len(matches) == 1:
                user = super().authenticate(
                    request, username=matches[0], password=password, **kwargs
                )
                if user is not None:
                    return user
        return super().authenticate(request, username=username, password=password, **kwargs)
