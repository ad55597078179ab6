"""Structured outputs for every provider: negotiate the mode, parse, validate, repair, then fail."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from glow.ai import negotiation
from glow.ai.base import (
    CompletionRequest,
    CompletionResult,
    FormatRefused,
    StructuredOutputError,
    Usage,
)
from glow.ai.schema import schema_errors

CompleteFn = Callable[[CompletionRequest], CompletionResult]

# Repairs per call: each re-asks with the validation problem appended, and each is billed.
MAX_REPAIRS = 1
_MAX_REPORTED_ERRORS = 5
_MAX_QUOTED_ANSWER = 2000
_COUNTS = {1: "one", 2: "two", 3: "three"}


def complete_structured(
    complete: CompleteFn,
    request: CompletionRequest,
    *,
    server: str | None = None,
    pinned: str | None = None,
    max_repairs: int = MAX_REPAIRS,
) -> CompletionResult:
    """Call `complete`, parse its text as JSON and validate it against `request.json_schema`.

    With `server` (a remote provider's base URL) the structured-output mode is negotiated
    per server and model (see glow.ai.negotiation); `pinned` names the one mode to use. An
    invalid answer is re-asked up to `max_repairs` times with the problem appended; the usage
    of every call is reported because every call is billed.
    """
    modes: list[negotiation.Mode | None] = (
        list(negotiation.candidates(server, request.model, pinned)) if server else [None]
    )
    refusals: list[str] = []
    for mode in modes:
        asked = negotiation.shaped(request, mode) if mode else request
        try:
            result = complete(asked)
        except FormatRefused as exc:
            refusals.append(f"{mode}: {exc}")
            continue
        result = _validated(complete, asked, result, max_repairs=max_repairs, mode=mode)
        if server and mode:
            negotiation.remember(server, request.model, mode)
        return result
    raise StructuredOutputError(
        "The model server refused every structured-output mode Glow knows: " + "; ".join(refusals)
    )


async def acomplete_structured(
    complete,
    request: CompletionRequest,
    *,
    server: str | None = None,
    pinned: str | None = None,
    max_repairs: int = MAX_REPAIRS,
) -> CompletionResult:
    """complete_structured for an async `complete` (the test engine's model-call loop): the same
    negotiation, parse, validation and bounded repair."""
    modes: list[negotiation.Mode | None] = (
        list(negotiation.candidates(server, request.model, pinned)) if server else [None]
    )
    refusals: list[str] = []
    for mode in modes:
        asked = negotiation.shaped(request, mode) if mode else request
        try:
            result = await complete(asked)
        except FormatRefused as exc:
            refusals.append(f"{mode}: {exc}")
            continue
        usage = Usage() + result.usage
        data, problem = _parse(result, asked.json_schema or {})
        repairs = 0
        while problem is not None and repairs < max_repairs:
            result = await complete(_repair_request(asked, result.text, problem))
            usage = usage + result.usage
            repairs += 1
            data, problem = _parse(result, asked.json_schema or {})
        if problem is not None:
            raise _invalid(problem, repairs, mode)
        if server and mode:
            negotiation.remember(server, request.model, mode)
        return replace(result, data=data, usage=usage)
    raise StructuredOutputError(
        "The model server refused every structured-output mode Glow knows: " + "; ".join(refusals)
    )


def _invalid(problem: str, repairs: int, mode) -> StructuredOutputError:
    tried = f" ({mode} mode)" if mode else ""
    return StructuredOutputError(
        f"The model's answer did not match the requested JSON schema{tried}, even after "
        f"{_COUNTS.get(repairs, str(repairs))} repair attempt{'s' if repairs != 1 else ''}: "
        f"{problem}"
    )


def _validated(
    complete: CompleteFn,
    request: CompletionRequest,
    result: CompletionResult,
    *,
    max_repairs: int,
    mode: negotiation.Mode | None,
) -> CompletionResult:
    schema = request.json_schema or {}
    usage = Usage() + result.usage
    data, problem = _parse(result, schema)
    repairs = 0
    while problem is not None and repairs < max_repairs:
        result = complete(_repair_request(request, result.text, problem))
        usage = usage + result.usage
        repairs += 1
        data, problem = _parse(result, schema)
    if problem is None:
        return replace(result, data=data, usage=usage)
    raise _invalid(problem, repairs, mode)


def _parse(result: CompletionResult, schema: dict) -> tuple[Any, str | None]:
    text = result.text
    try:
        # strict=False: a raw newline or tab inside a string (small models write them, and
        # llama.cpp's JSON grammar lets them through) is read as that character.
        data = json.loads(_json_part(text), strict=False)
    except json.JSONDecodeError as exc:
        if result.finish_reason == "length":
            return None, "the answer was cut off at the token limit before its JSON ended"
        if not text.strip():
            return None, "the answer was empty"
        return None, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    errors = schema_errors(data, schema)
    if errors:
        return None, "; ".join(errors[:_MAX_REPORTED_ERRORS])
    return data, None


def _json_part(text: str) -> str:
    """The JSON in an answer: chat models wrap it in a ```json fence or a sentence, even when
    asked not to."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        stripped = stripped.removeprefix("```json").removeprefix("```").removesuffix("```")
        return stripped
    if stripped[:1] in "{[":
        return stripped
    starts = [index for index in (stripped.find("{"), stripped.find("[")) if index >= 0]
    if not starts:
        return stripped
    start = min(starts)
    end = stripped.rfind("}" if stripped[start] == "{" else "]")
    return stripped[start : end + 1] if end > start else stripped


def _repair_request(request: CompletionRequest, answer: str, problem: str) -> CompletionRequest:
    if len(answer) > _MAX_QUOTED_ANSWER:
        # A runaway answer quoted whole could overflow the model's context.
        answer = answer[:_MAX_QUOTED_ANSWER] + " ..."
    messages = [
        *request.messages,
        {"role": "assistant", "content": answer},
        {
            "role": "user",
            "content": (
                f"Your previous answer was invalid: {problem}. Reply again with only a JSON "
                f"value matching this schema: {json.dumps(request.json_schema)}"
            ),
        },
    ]
    return replace(request, messages=messages)
