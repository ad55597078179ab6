"""Structured outputs for every provider: parse, validate, one repair retry, then fail."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from glow.ai.base import CompletionRequest, CompletionResult, StructuredOutputError
from glow.ai.schema import schema_errors

CompleteFn = Callable[[CompletionRequest], CompletionResult]

_MAX_REPORTED_ERRORS = 5


def complete_structured(complete: CompleteFn, request: CompletionRequest) -> CompletionResult:
    """Call `complete`, parse its text as JSON and validate it against `request.json_schema`.

    An invalid answer is re-asked once with the validation problem appended; the usage
    of both calls is reported because both are billed.
    """
    schema = request.json_schema or {}
    first = complete(request)
    data, problem = _parse(first.text, schema)
    if problem is None:
        return replace(first, data=data)
    repaired = complete(_repair_request(request, first.text, problem))
    data, second_problem = _parse(repaired.text, schema)
    usage = first.usage + repaired.usage
    if second_problem is None:
        return replace(repaired, data=data, usage=usage)
    raise StructuredOutputError(
        f"The model's answer did not match the requested JSON schema, even after one repair "
        f"attempt: {second_problem}"
    )


def _parse(text: str, schema: dict) -> tuple[Any, str | None]:
    try:
        data = json.loads(_strip_code_fence(text))
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    errors = schema_errors(data, schema)
    if errors:
        return None, "; ".join(errors[:_MAX_REPORTED_ERRORS])
    return data, None


def _strip_code_fence(text: str) -> str:
    # Many chat models wrap JSON in a ```json fence even when asked not to.
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        stripped = stripped.removeprefix("```json").removeprefix("```").removesuffix("```")
    return stripped


def _repair_request(request: CompletionRequest, answer: str, problem: str) -> CompletionRequest:
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
