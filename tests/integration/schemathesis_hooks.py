"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in test_schema_fuzz: a file of each type the
upload ops accept, starting with the bytes the server checks (glow.core.media.SIGNATURES), so a
schema-valid upload is one the server stores; and the rules the schema states as extensions
where OpenAPI 3.0 has no keyword, read as JSON Schema."""

import json
import os

import django
import schemathesis
from hypothesis import strategies as st
from schemathesis import openapi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glow.settings")
django.setup()

from glow.core.media import SIGNATURES, is_json  # noqa: E402 - needs the apps loaded

WAV_HEAD = b"RIFF\x24\x00\x00\x00WAVEfmt "


def head_of(mime: str) -> bytes:
    """The first bytes of a file of this type, as the server checks them."""
    signatures = SIGNATURES.get(mime, ())
    return WAV_HEAD if mime == "audio/wav" else (signatures[0] if signatures else b"")


def is_of(data: bytes, mime: str) -> bool:
    if mime == "application/json":
        return is_json(data)
    signatures = SIGNATURES.get(mime, ())
    if signatures and not any(data.startswith(sig) for sig in signatures):
        return False
    return mime != "audio/wav" or data[8:12] == b"WAVE"


for mime in SIGNATURES:
    if mime == "application/json":
        continue  # registering it would replace schemathesis's JSON serializer for every body
    head = head_of(mime)
    openapi.media_type(mime, st.binary(min_size=1, max_size=64).map(lambda tail, h=head: h + tail))


def _state_key_rules(node) -> None:
    """`x-propertyNames` is the schema's rule on a free-form object's keys, spelled as an extension
    because OpenAPI 3.0 has no `propertyNames` (glow.core.schema.JSON_KEYS): read it as the keyword."""
    if isinstance(node, dict):
        if "x-propertyNames" in node:
            node["propertyNames"] = node.pop("x-propertyNames")
        for value in node.values():
            _state_key_rules(value)
    elif isinstance(node, list):
        for value in node:
            _state_key_rules(value)


@schemathesis.hook
def before_load_schema(context, raw_schema):
    _state_key_rules(raw_schema)


@schemathesis.hook
def map_case(context, case):
    """A file part holds the type its part is sent as (the schema's `encoding.contentType`).
    Schemathesis draws the part from the registered types above, except where it generates the
    part as plain `format: binary` (a negative case that turned out valid), and for JSON, whose
    strategy is not registered: then it may send any bytes, a JPEG say, labelled with the first
    listed type (audio/mpeg). Such bytes are put behind that type's head (in a JSON file, inside a
    string), so the part is what its label says."""
    body = case.body
    if not isinstance(body, dict) or "file" not in body or case.media_type != "multipart/form-data":
        return case
    value = body["file"]
    data = getattr(value, "data", value)
    if not isinstance(data, bytes):
        return case
    sent_as = (case.multipart_content_types or {}).get("file")
    if sent_as is None:
        parameter = case.operation.get_body_for_media_type(case.media_type)
        sent_as = next(iter(parameter.get_property_content_types("file")), None)
    if sent_as in SIGNATURES and not is_of(data, sent_as):
        # A JSON file is JSON throughout: the bytes go in as the text of a JSON string.
        fitted = json.dumps(data.hex()).encode() if sent_as == "application/json" else None
        body["file"] = fitted or head_of(sent_as) + data
    return case
