"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in test_schema_fuzz: a file of each type the
upload ops accept, starting with the bytes the server checks (glow.core.media.SIGNATURES), so a
schema-valid upload is one the server stores."""

from hypothesis import strategies as st
from schemathesis import openapi

from glow.core.media import SIGNATURES

WAV_HEAD = b"RIFF\x24\x00\x00\x00WAVEfmt "

for mime, signatures in SIGNATURES.items():
    head = WAV_HEAD if mime == "audio/wav" else (signatures[0] if signatures else b"")
    openapi.media_type(mime, st.binary(min_size=1, max_size=64).map(lambda tail, h=head: h + tail))
