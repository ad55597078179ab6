"""Writes on accounts: API key creation and revocation."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from glow.accounts.models import ApiKey, Profile

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


@transaction.atomic
def api_key_create(
    *, profile: Profile, name: str = "", expires_at: datetime | None = None
) -> CreatedKey:
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
    return CreatedKey(api_key=key, plaintext=plaintext)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key
