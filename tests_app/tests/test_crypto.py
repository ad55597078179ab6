"""Secrets at rest: authenticated encryption bound to its row, with the server's key."""

import pytest

from tests_app import crypto


def test_round_trip_of_any_text():
    for plaintext in ("", "sk-live-123", "ünïcødé ✓ " * 50):
        token = crypto.encrypt(plaintext, aad="org:key")
        assert plaintext not in token or not plaintext
        assert crypto.decrypt(token, aad="org:key") == plaintext


def test_the_same_secret_encrypts_differently_each_time():
    assert crypto.encrypt("same", aad="a") != crypto.encrypt("same", aad="a")


def test_tampering_another_row_or_another_key_is_refused():
    token = crypto.encrypt("sk-live-123", aad="org:key-1")
    version, body = token.split(":", 1)
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    attempts = [
        (f"{version}:{flipped}", "org:key-1", None),
        (token, "org:key-2", None),
        (token, "org:key-1", b"k" * 32),
        ("g1:not base64!", "org:key-1", None),
        ("v0:" + body, "org:key-1", None),
    ]
    for candidate, aad, key in attempts:
        with pytest.raises(crypto.DecryptionError):
            crypto.decrypt(candidate, aad=aad, key=key)


def test_the_master_key_comes_from_settings_or_the_secret_key(settings):
    settings.GLOW_SECRETS_KEY = ""
    derived = crypto.master_key()
    settings.GLOW_SECRETS_KEY = "a-dedicated-secrets-key"
    assert crypto.master_key() != derived
    token = crypto.encrypt("value", aad="x")
    settings.GLOW_SECRETS_KEY = "rotated"
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token, aad="x")
