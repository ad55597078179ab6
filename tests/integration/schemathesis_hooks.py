"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in test_schema_fuzz: a file of each type the
upload ops accept, starting with the bytes the server checks (glow.core.media.SIGNATURES), so a
schema-valid upload is one the server stores."""

import os

import django
from hypothesis import strategies as st
from schemathesis import openapi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glow.settings")
django.setup()

from glow.core.media import SIGNATURES  # noqa: E402 - needs the apps loaded

WAV_HEAD = b"RIFF\x24\x00\x00\x00WAVEfmt "

for mime, signatures in SIGNATURES.items():
    if mime == "application/json":
        continue  # registering it would replace schemathesis's JSON serializer for every body
    head = WAV_HEAD if mime == "audio/wav" else (signatures[0] if signatures else b"")
    openapi.media_type(mime, st.binary(min_size=1, max_size=64).map(lambda tail, h=head: h + tail))
