"""Who is acting on a request: core asks, the accounts app answers (it registers at ready())."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from glow.core.registry import registry

# registry.capabilities[CAPABILITY]: request -> the acting profile (glow.accounts.auth.actor_of).
CAPABILITY = "actor"


def actor_of(request):
    """The acting profile of an authenticated request, as the identity app resolves it."""
    try:
        resolve = registry.capabilities[CAPABILITY]
    except KeyError:
        raise ImproperlyConfigured(
            f'No app registered registry.capabilities["{CAPABILITY}"] (glow.accounts does).'
        )
    return resolve(request)
