"""Writes on accounts: API key creation, rotation and revocation, role changes; each is audited."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from glow.accounts.models import ApiKey, Profile, Role
from glow.core.registry import registry

KEY_PREFIX = "glow_"


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def split_key(plaintext: str) -> str | None:
    """The lookup prefix of a well-formed key, or None."""
    if not plaintext.startswith(KEY_PREFIX):
        return None
    body = plaintext[len(KEY_PREFIX) :]
    prefix, _, secret = body.partition("_")
    if len(prefix) != 8 or not secret:
        return None
    return prefix


@dataclass(frozen=True)
class CreatedKey:
    api_key: ApiKey
    plaintext: str


def _audit_key(*, event_type: str, api_key: ApiKey, actor, request, extra_1: str = "") -> None:
    """Actor: who acted (None from the command line); target: the key, named by prefix and owner."""
    registry.run_hooks(
        "audit",
        actor=actor,
        organization_id=api_key.profile.organization_id,
        event_type=event_type,
        entity_id=api_key.pk,
        entity_name=f"API key {api_key.prefix} of {api_key.profile.name}",
        extra_1=extra_1,
        extra_2=api_key.name,
        request=request,
    )


@transaction.atomic
def api_key_create(
    *,
    profile: Profile,
    name: str = "",
    expires_at: datetime | None = None,
    actor: Profile | None = None,
    request=None,
    note: str = "",
) -> CreatedKey:
    """A new key for `profile`; the plaintext exists only in the answer."""
    prefix = secrets.token_hex(4)
    while ApiKey.objects.filter(prefix=prefix).exists():
        prefix = secrets.token_hex(4)
    plaintext = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        profile=profile,
        name=name,
        prefix=prefix,
        hashed_key=hash_key(plaintext),
        expires_at=expires_at,
    )
    _audit_key(
        event_type="api_key.created", api_key=key, actor=actor, request=request, extra_1=note
    )
    return CreatedKey(api_key=key, plaintext=plaintext)


@transaction.atomic
def api_key_revoke(
    *, api_key: ApiKey, actor: Profile | None = None, request=None, note: str = ""
) -> ApiKey:
    """Revoked keys answer 401 from then on; revoking twice changes (and audits) nothing."""
    revoked = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    api_key.refresh_from_db(fields=["revoked_at"])
    if revoked:
        _audit_key(
            event_type="api_key.revoked",
            api_key=api_key,
            actor=actor,
            request=request,
            extra_1=note,
        )
    return api_key


@transaction.atomic
def api_key_rotate(
    *,
    api_key: ApiKey,
    expires_at: datetime | None = None,
    actor: Profile | None = None,
    request=None,
) -> CreatedKey:
    """A new key for the same profile and name, the old one revoked, in one transaction.

    The new key lives as long as the old one was meant to (same lifetime from now) unless
    `expires_at` says otherwise. A revoked key cannot be rotated (422): create a new one.
    """
    from glow.core.errors import StateError  # DRF's settings import this module: no DRF at load

    old = ApiKey.objects.select_for_update().select_related("profile__user").get(pk=api_key.pk)
    if old.revoked_at is not None:
        raise StateError(
            f"API key {old.prefix} is revoked; create a new key instead.", code="revoked_api_key"
        )
    if expires_at is None and old.expires_at is not None:
        expires_at = timezone.now() + (old.expires_at - old.created_at)
    created = api_key_create(
        profile=old.profile,
        name=old.name,
        expires_at=expires_at,
        actor=actor,
        request=request,
        note=f"rotates {old.prefix}",
    )
    api_key_revoke(
        api_key=old, actor=actor, request=request, note=f"rotated to {created.api_key.prefix}"
    )
    return created


@transaction.atomic
def profile_role_set(
    *, profile: Profile, role: str, actor: Profile | None = None, request=None
) -> Profile:
    """Change a profile's role (audited with the old and new role); the same role is a no-op."""
    from glow.core.errors import ApplicationError

    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}.", fields={"role": ["Unknown role."]})
    old = Profile.objects.select_for_update().filter(pk=profile.pk).values_list("role", flat=True)
    old = old.get()
    if old == role:
        return profile
    Profile.objects.filter(pk=profile.pk).update(role=role)
    profile.role = role
    registry.run_hooks(
        "audit",
        actor=actor,
        organization_id=profile.organization_id,
        event_type="profile.role_changed",
        entity_id=profile.pk,
        entity_name=profile.name,
        extra_1=old,
        extra_2=role,
        request=request,
    )
    return profile
