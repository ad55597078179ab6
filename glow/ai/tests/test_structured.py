"""Tests of the schema validator and the shared structured-output wrapper with its repair."""

import json

import pytest

from glow.ai import (
    ECHO_MODEL,
    CompletionRequest,
    CompletionResult,
    StructuredOutputError,
    Usage,
    get_provider,
    schema_errors,
)
from glow.ai.abstract import BaseProvider
from glow.ai.schema import conform

SCORE_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 0, "maximum": 10},
        "verdict": {"type": "string", "enum": ["pass", "fail"]},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["score", "verdict"],
}


class ScriptedProvider(BaseProvider):
    """Answers with the given texts in turn and records what it was asked."""

    name = "scripted"

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.requests: list[CompletionRequest] = []

    def _complete(self, request):
        self.requests.append(request)
        return CompletionResult(text=self.answers.pop(0), usage=Usage(10, 5))

    def _stream(self, request, should_cancel):
        result = self._complete(request)
        yield result.text
        return result


def _ask(provider):
    return provider.complete(
        CompletionRequest(
            messages=[{"role": "user", "content": "Grade it"}], json_schema=SCORE_SCHEMA
        )
    )


def test_valid_answer_is_parsed_without_repair():
    provider = ScriptedProvider('{"score": 7, "verdict": "pass", "notes": ["clear"]}')

    result = _ask(provider)

    assert result.data == {"score": 7, "verdict": "pass", "notes": ["clear"]}
    assert len(provider.requests) == 1
    assert result.usage == Usage(10, 5)


def test_invalid_answer_is_repaired_once_with_the_error_appended():
    provider = ScriptedProvider(
        '{"score": "seven", "verdict": "pass"}', '{"score": 7, "verdict": "pass"}'
    )

    result = _ask(provider)

    assert result.data == {"score": 7, "verdict": "pass"}
    repair = provider.requests[1].messages
    assert repair[-2] == {"role": "assistant", "content": '{"score": "seven", "verdict": "pass"}'}
    assert repair[-1]["role"] == "user"
    assert "$.score: expected integer, got string" in repair[-1]["content"]
    assert result.usage == Usage(20, 10), "both calls are billed"


def test_second_invalid_answer_raises_a_clear_error():
    provider = ScriptedProvider("not json at all", '{"score": 11, "verdict": "maybe"}')

    with pytest.raises(StructuredOutputError) as caught:
        _ask(provider)

    message = str(caught.value)
    assert "after one repair attempt" in message
    assert "$.score: 11 is above the maximum 10" in message
    assert "$.verdict: 'maybe' is not one of ['pass', 'fail']" in message
    assert len(provider.requests) == 2


def test_a_raw_line_break_inside_a_string_is_read_not_repaired():
    # SmolLM2 on llama.cpp writes multi-line feedback with real line breaks inside the string.
    provider = ScriptedProvider('{"score": 4, "verdict": "pass", "notes": ["line one\nline\ttwo"]}')

    result = _ask(provider)

    assert result.data["notes"] == ["line one\nline\ttwo"]
    assert len(provider.requests) == 1


def test_code_fenced_json_is_accepted():
    provider = ScriptedProvider('```json\n{"score": 1, "verdict": "fail"}\n```')

    assert _ask(provider).data == {"score": 1, "verdict": "fail"}


def test_structured_stream_delivers_the_validated_answer_once():
    provider = ScriptedProvider("{oops", '{"score": 2, "verdict": "fail"}')
    stream = provider.stream(
        CompletionRequest(messages=[{"role": "user", "content": "x"}], json_schema=SCORE_SCHEMA)
    )

    assert list(stream) == ['{"score": 2, "verdict": "fail"}']
    assert stream.result.data == {"score": 2, "verdict": "fail"}


def test_the_wrapper_applies_to_the_local_provider_too():
    local = get_provider("local")
    good = json.dumps({"score": 3, "verdict": "pass"})

    ok = local.complete(
        CompletionRequest(
            messages=[{"role": "user", "content": good}], model=ECHO_MODEL, json_schema=SCORE_SCHEMA
        )
    )
    assert ok.data == {"score": 3, "verdict": "pass"}

    with pytest.raises(StructuredOutputError):
        local.complete(
            CompletionRequest(
                messages=[{"role": "user", "content": "plain words"}],
                model=ECHO_MODEL,
                json_schema=SCORE_SCHEMA,
            )
        )


@pytest.mark.parametrize(
    ("value", "schema", "errors"),
    [
        (
            {"a": 1},
            {"type": "object", "required": ["a", "b"]},
            ["$: missing required property 'b'"],
        ),
        (
            [1, "x"],
            {"type": "array", "items": {"type": "integer"}},
            ["$[1]: expected integer, got string"],
        ),
        (True, {"type": "integer"}, ["$: expected integer, got boolean"]),
        (2.0, {"type": "integer"}, []),
        (2.5, {"type": "number", "minimum": 3}, ["$: 2.5 is below the minimum 3"]),
        ("b", {"type": "string", "enum": ["a"]}, ["$: 'b' is not one of ['a']"]),
        (None, {"type": ["string", "null"]}, []),
        ("yes", {"type": "boolean"}, ["$: expected boolean, got string"]),
        (
            {"x": {"y": []}},
            {"properties": {"x": {"properties": {"y": {"type": "object"}}}}},
            ["$.x.y: expected object, got array"],
        ),
        ([], {"type": "array", "minItems": 1}, ["$: expected at least 1 items, got 0"]),
    ],
)
def test_schema_errors(value, schema, errors):
    assert schema_errors(value, schema) == errors


def test_a_string_over_its_max_length_is_an_error_and_conform_shortens_it():
    schema = {"type": "object", "properties": {"voice": {"type": "string", "maxLength": 5}}}

    assert schema_errors({"voice": "calm and slow"}, schema) == [
        "$.voice: 13 characters, more than the maximum 5"
    ]
    assert schema_errors({"voice": "calm"}, schema) == []
    assert conform({"voice": "calm and slow"}, schema) == {"voice": "calm "}


def test_conform_keeps_valid_parts_and_fills_the_rest():
    fixed = conform({"score": 99, "notes": ["kept"], "extra": 1}, SCORE_SCHEMA, "filler")

    assert fixed == {"score": 0, "verdict": "pass", "notes": ["kept"], "extra": 1}
    assert schema_errors(fixed, SCORE_SCHEMA) == []
