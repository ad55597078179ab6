"""DRF authentication by API key (X-Api-Key or Authorization: Bearer) and the profile permission."""

from __future__ import annotations

import hmac
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from glow.accounts.models import ApiKey
from glow.accounts.services import hash_key, split_key

# Writing last_used_at on every request would serialise all requests of one key on one row.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def presented_key(request) -> str | None:
    key = request.META.get("HTTP_X_API_KEY")
    if key:
        return key.strip()
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def is_mcp(request) -> bool:
    return request.META.get("HTTP_X_MCP", "").strip().lower() in {"1", "true", "yes"}


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        plaintext = presented_key(request)
        if plaintext is None:
            return None
        prefix = split_key(plaintext)
        api_key = None
        if prefix:
            api_key = (
                ApiKey.objects.select_related("profile__user", "profile__organization")
                .filter(prefix=prefix)
                .first()
            )
        if api_key is None or not hmac.compare_digest(api_key.hashed_key, hash_key(plaintext)):
            raise exceptions.AuthenticationFailed("Invalid API key.", code="invalid_api_key")
        now = timezone.now()
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed(
                "This API key was revoked.", code="revoked_api_key"
            )
        if api_key.expires_at is not None and api_key.expires_at <= now:
            raise exceptions.AuthenticationFailed(
                "This API key has expired.", code="expired_api_key"
            )
        user = api_key.profile.user
        if not user.is_active:
            raise exceptions.AuthenticationFailed("This account is disabled.", code="inactive")
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        request._request.glow_auth = "api_key"
        request._request.glow_mcp = is_mcp(request)
        return user, api_key

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'


class HasProfile(permissions.BasePermission):
    """Every API caller must be a signed-in user with a Glow profile."""

    message = "This account has no Glow profile."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if user is None or not user.is_authenticated:
            raise exceptions.NotAuthenticated("Authentication credentials were not provided.")
        return hasattr(user, "profile")


def actor_of(request):
    """The acting Profile of an authenticated DRF request."""
    return request.user.profile
