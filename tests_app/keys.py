"""Secret keys tests run with, and decrypting what a cell's calls sent with them."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from glow.core.caching import cache_call
from glow.core.errors import NotFound, PermissionDenied, StateError
from system.ledger import timeline_record
from tests_app import crypto
from tests_app.guards import require_staff
from tests_app.models import (
    SecretKey,
)
from tests_app.selectors import (
    invocation_access,
)

DECRYPT_CACHE_SECONDS = 300


def _key_ids(*, actor, key_ids, secrets) -> list[str]:
    """Existing keys of the organization plus new secrets, encrypted before they are stored."""
    unique = list(dict.fromkeys(key_ids or []))
    found = set(
        SecretKey.objects.filter(organization_id=actor.organization_id, pk__in=unique).values_list(
            "pk", flat=True
        )
    )
    missing = [str(pk) for pk in unique if pk not in found]
    if missing:
        raise NotFound(
            f"Unknown key_ids: {', '.join(missing)}.",
            code="unknown_ids",
            fields={"key_ids": missing},
        )
    created = [
        secret_key_build(actor=actor, label=secret["label"], value=secret["value"])
        for secret in secrets or []
    ]
    SecretKey.objects.bulk_create(created)
    return [str(pk) for pk in unique] + [str(key.pk) for key in created]


def secret_key_build(*, actor, label: str, value: str) -> SecretKey:
    key = SecretKey(organization_id=actor.organization_id, label=label[:200], created_by=actor)
    key.ciphertext = crypto.encrypt(value, aad=key.aad)
    return key


@transaction.atomic
def secret_key_create(*, actor, label: str, value: str) -> SecretKey:
    require_staff(actor)
    key = secret_key_build(actor=actor, label=label, value=value)
    key.save()
    return key


def decrypt_cache_key(invocation_id: Any, key_id: Any) -> str:
    return f"tests_app:decrypt:{invocation_id}:{key_id}"


@transaction.atomic
def test_decrypt(
    *, actor, session=None, invocation_id: Any, key_id: Any, bypass_cache: bool = False
) -> dict:
    """Plaintext of a key the invocation holds (else 403); cached briefly, every call audited."""
    require_staff(actor)
    invocation = invocation_access(actor=actor, pk=invocation_id)
    if str(key_id) not in {str(pk) for pk in invocation.key_ids or []}:
        raise PermissionDenied(
            "That key does not belong to this invocation.", code="key_not_in_invocation"
        )
    cache_key = decrypt_cache_key(invocation.pk, key_id)
    found = None if bypass_cache else cache_call("get", cache_key)
    if found is None:
        key = SecretKey.objects.filter(pk=key_id, organization_id=actor.organization_id).first()
        if key is None:
            raise NotFound("No key with that id.")
        try:
            plaintext = crypto.decrypt(key.ciphertext, aad=key.aad)
        except crypto.DecryptionError:
            raise StateError(
                "This key cannot be decrypted with the server's current secrets key.",
                code="undecryptable",
            )
        found = {"label": key.label, "plaintext": plaintext}
        cache_call("set", cache_key, found, DECRYPT_CACHE_SECONDS)
        cached = False
    else:
        cached = True
    timeline_record(
        actor=actor,
        session=session,
        event_type="test.decrypt",
        entity_id=invocation.pk,
        entity_name=found["label"],
        extra_1=key_id,
        extra_2="cache" if cached else "fresh",
    )
    return {
        "invocation_id": invocation.pk,
        "key_id": key_id,
        "label": found["label"],
        "plaintext": found["plaintext"],
        "cached": cached,
    }
