"""Authenticated encryption of secrets at rest with the standard library only (HMAC-SHA256).

`cryptography` is not installed here, so the cipher is built from one primitive, HMAC-SHA256
used as a PRF: the key stream is HMAC(enc_key, nonce || counter) (counter mode), and the
token is authenticated encrypt-then-MAC with HMAC(mac_key, version || nonce || aad ||
ciphertext). Encryption and MAC keys are derived separately from the master key, nonces are
random (128 bits), and `aad` binds a ciphertext to its row so tokens cannot be swapped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from django.conf import settings

VERSION = b"g1"
NONCE_BYTES = 16
TAG_BYTES = 32
BLOCK_BYTES = 32


class DecryptionError(Exception):
    """The token was tampered with, belongs to another row, or was made with another key."""


def master_key() -> bytes:
    """GLOW_SECRETS_KEY when set; otherwise derived from SECRET_KEY (rotating it loses secrets)."""
    configured = getattr(settings, "GLOW_SECRETS_KEY", "") or ""
    source = configured or f"glow-secret-keys:{settings.SECRET_KEY}"
    return hashlib.sha256(source.encode()).digest()


def _subkeys(key: bytes) -> tuple[bytes, bytes]:
    return (
        hmac.new(key, b"glow-secrets encryption", hashlib.sha256).digest(),
        hmac.new(key, b"glow-secrets authentication", hashlib.sha256).digest(),
    )


def _keystream(enc_key: bytes, nonce: bytes, length: int) -> bytes:
    blocks = []
    for counter in range((length + BLOCK_BYTES - 1) // BLOCK_BYTES):
        blocks.append(
            hmac.new(enc_key, nonce + counter.to_bytes(8, "big"), hashlib.sha256).digest()
        )
    return b"".join(blocks)[:length]


def _tag(mac_key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes:
    # Length-prefixing aad keeps (aad, ciphertext) pairs unambiguous.
    message = VERSION + nonce + len(aad).to_bytes(4, "big") + aad + ciphertext
    return hmac.new(mac_key, message, hashlib.sha256).digest()


def encrypt(plaintext: str, *, aad: str, key: bytes | None = None) -> str:
    enc_key, mac_key = _subkeys(key or master_key())
    nonce = secrets.token_bytes(NONCE_BYTES)
    data = plaintext.encode()
    ciphertext = bytes(
        a ^ b for a, b in zip(data, _keystream(enc_key, nonce, len(data)), strict=True)
    )
    tag = _tag(mac_key, nonce, aad.encode(), ciphertext)
    return (VERSION + b":" + base64.urlsafe_b64encode(nonce + ciphertext + tag)).decode()


def decrypt(token: str, *, aad: str, key: bytes | None = None) -> str:
    enc_key, mac_key = _subkeys(key or master_key())
    version, _, body = token.encode().partition(b":")
    try:
        raw = base64.urlsafe_b64decode(body)
    except ValueError:
        raise DecryptionError("The secret is not a valid token.")
    if version != VERSION or len(raw) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("The secret is not a valid token.")
    nonce, ciphertext, tag = raw[:NONCE_BYTES], raw[NONCE_BYTES:-TAG_BYTES], raw[-TAG_BYTES:]
    if not hmac.compare_digest(tag, _tag(mac_key, nonce, aad.encode(), ciphertext)):
        raise DecryptionError("The secret failed authentication.")
    stream = _keystream(enc_key, nonce, len(ciphertext))
    return bytes(a ^ b for a, b in zip(ciphertext, stream, strict=True)).decode()
