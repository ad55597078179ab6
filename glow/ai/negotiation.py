"""Which structured-output mode an OpenAI-compatible server accepts: asked for, then remembered.

Servers differ. OpenAI, vLLM and recent Ollama take `response_format: json_schema`;
llama-cpp-python's server refuses it (its request model knows only `text` and `json_object`)
but turns `json_object` with a `schema` into a grammar; some servers have only plain JSON
mode; some have nothing, and the prompt must ask. A structured call tries the modes in that
order, starting at the one remembered for the server and model, steps down when the server
refuses the request's format, and remembers the mode whose answer validated.
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import replace
from enum import StrEnum

from glow.ai.base import CompletionRequest


class Mode(StrEnum):
    JSON_SCHEMA = "json_schema"
    JSON_OBJECT_SCHEMA = "json_object_schema"
    JSON_OBJECT = "json_object"
    PROMPT = "prompt"


# Strongest guarantee first: a refused mode costs one quick request, a weaker one costs repairs.
MODES = tuple(Mode)

# A refusal names the field it refused. llama-cpp-python answers HTTP 500 for a request its
# pydantic model rejects ("response_format.type: Input should be 'text' or 'json_object'").
_REFUSAL_STATUSES = frozenset({400, 415, 422, 500, 501})
_FORMAT_WORDS = re.compile(r"response_format|json_schema|json_object|schema|grammar", re.I)

# Bounds a grammar puts where the schema has none, and the answer's length when the caller
# sets none: a runaway answer ends with a clear "cut off" instead of filling the context.
GRAMMAR_MAX_STRING = 300
GRAMMAR_MAX_ITEMS = 12
GRAMMAR_MAX_TOKENS = 1024
# An integer range this small is sampled as an enum: llama-cpp-python's grammar ignores
# minimum and maximum.
GRAMMAR_MAX_RANGE = 256

_known: dict[tuple[str, str], Mode] = {}
_lock = threading.Lock()


def remembered(server: str, model: str) -> Mode | None:
    with _lock:
        return _known.get((server, model))


def remember(server: str, model: str, mode: Mode) -> None:
    with _lock:
        _known[(server, model)] = mode


def forget_all() -> None:
    """Tests start from nothing known."""
    with _lock:
        _known.clear()


def candidates(server: str, model: str, pinned: str | None = None) -> list[Mode]:
    """The modes to try, in order: only the pinned one, or from the remembered one down."""
    if pinned:
        return [Mode(pinned)]
    start = remembered(server, model)
    return list(MODES[MODES.index(start) :]) if start else list(MODES)


def refuses_format(status: int | None, message: str) -> bool:
    """Whether an error answer says the server does not take the request's response format."""
    return status in _REFUSAL_STATUSES and bool(_FORMAT_WORDS.search(message or ""))


def response_format(mode: str | None, schema: dict) -> dict | None:
    """The `response_format` body field for a mode (None: send none)."""
    mode = Mode(mode or Mode.JSON_SCHEMA)
    if mode is Mode.JSON_SCHEMA:
        return {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": False},
        }
    if mode is Mode.JSON_OBJECT_SCHEMA:
        return {"type": "json_object", "schema": grammar_schema(schema)}
    if mode is Mode.JSON_OBJECT:
        return {"type": "json_object"}
    return None


def grammar_schema(schema: dict) -> dict:
    """The schema a grammar-constrained server samples from: required properties only, no
    others, and bounded strings and lists. Servers that take `json_object` with a schema
    (llama-cpp-python) serve small local models, which fill optional lists with noise and can
    loop in a string or a list until the context is full; the answer is still validated
    against the full schema."""
    if not isinstance(schema, dict):
        return schema
    lean = dict(schema)
    if _small_range(schema):
        low, high = math.ceil(schema["minimum"]), math.floor(schema["maximum"])
        return {"type": "integer", "enum": list(range(low, high + 1))}
    if schema.get("type") == "string" and "enum" not in schema:
        lean.setdefault("maxLength", GRAMMAR_MAX_STRING)
    if schema.get("type") == "array":
        lean.setdefault("maxItems", GRAMMAR_MAX_ITEMS)
    if isinstance(schema.get("properties"), dict):
        required = [name for name in schema.get("required", []) if name in schema["properties"]]
        lean["properties"] = {name: grammar_schema(schema["properties"][name]) for name in required}
        lean["required"] = required
        lean["additionalProperties"] = False
    if isinstance(schema.get("items"), dict):
        lean["items"] = grammar_schema(schema["items"])
    return lean


def _small_range(schema: dict) -> bool:
    if schema.get("type") != "integer" or "enum" in schema:
        return False
    low, high = schema.get("minimum"), schema.get("maximum")
    return low is not None and high is not None and 0 <= high - low <= GRAMMAR_MAX_RANGE


def shaped(request: CompletionRequest, mode: Mode) -> CompletionRequest:
    """The request for one mode: where the server does not enforce the schema, the prompt
    carries it (plain JSON mode also needs the word JSON in the messages)."""
    if mode is Mode.JSON_SCHEMA:
        return replace(request, json_mode=mode.value)
    if mode is Mode.JSON_OBJECT_SCHEMA:
        return replace(
            request, json_mode=mode.value, max_tokens=request.max_tokens or GRAMMAR_MAX_TOKENS
        )
    instruction = (
        "Reply with only a JSON value, no prose and no code fence, that matches this JSON "
        f"schema: {json.dumps(request.json_schema, separators=(',', ':'))}"
    )
    messages = [dict(message) for message in request.messages]
    # Some chat templates refuse a system message anywhere but first: extend that one.
    if messages and messages[0].get("role") == "system":
        messages[0]["content"] = f"{messages[0].get('content') or ''}\n\n{instruction}"
    else:
        messages.insert(0, {"role": "system", "content": instruction})
    return replace(request, messages=messages, json_mode=mode.value)
