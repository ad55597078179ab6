"""Structured-output negotiation through the real SDK against a fake server that refuses modes."""

import pytest

from glow.ai import CompletionRequest, StructuredOutputError, Usage, get_provider
from glow.ai import negotiation as n
from tests.support.fakeserver import FakeOpenAIServer, HTTPFailure, Reply

SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer"}, "verdict": {"type": "string"}},
    "required": ["score", "verdict"],
}
MESSAGES = [
    {"role": "system", "content": "You grade answers."},
    {"role": "user", "content": "Grade: 'recursion needs a base case'."},
]


@pytest.fixture(autouse=True)
def nothing_known():
    n.forget_all()
    yield
    n.forget_all()


def _provider(srv, **options):
    return get_provider("openai", base_url=srv.base_url, max_retries=2, timeout=2.0, **options)


def _ask(srv, model="small-model", **options):
    return _provider(srv, **options).complete(
        CompletionRequest(messages=MESSAGES, model=model, json_schema=SCHEMA)
    )


def _formats(srv):
    return [request.body.get("response_format") for request in srv.requests]


def test_a_server_refusing_json_schema_is_asked_with_json_object_and_a_schema_once_learned():
    with FakeOpenAIServer(refuse_formats=("json_schema",)) as srv:
        srv.enqueue(
            Reply('{"score": 3, "verdict": "good"}', usage=Usage(40, 9)),
            Reply('{"score": 1, "verdict": "weak"}', usage=Usage(41, 9)),
        )

        first = _ask(srv)
        # A new provider object (one is built per call) still knows what the server takes.
        second = _ask(srv)

        assert first.data == {"score": 3, "verdict": "good"}
        assert first.usage == Usage(40, 9)
        assert second.data == {"score": 1, "verdict": "weak"}
        # The refusal is not retried (it would fail the same way): one refused call in all.
        assert [f["type"] for f in _formats(srv)] == ["json_schema", "json_object", "json_object"]
        assert srv.requests[1].body["max_tokens"] == n.GRAMMAR_MAX_TOKENS
        assert _formats(srv)[1] == {
            "type": "json_object",
            "schema": {
                **SCHEMA,
                "properties": {
                    "score": {"type": "integer"},
                    "verdict": {"type": "string", "maxLength": n.GRAMMAR_MAX_STRING},
                },
                "additionalProperties": False,
            },
        }
        assert n.remembered(f"{srv.base_url}/", "small-model") is n.Mode.JSON_OBJECT_SCHEMA


def test_the_mode_is_remembered_per_model_on_a_server():
    with FakeOpenAIServer(refuse_formats=("json_schema",)) as srv:
        srv.enqueue(Reply('{"score": 3, "verdict": "a"}'), Reply('{"score": 2, "verdict": "b"}'))

        _ask(srv, model="one")
        _ask(srv, model="two")

        assert [f["type"] for f in _formats(srv)] == [
            "json_schema",
            "json_object",
            "json_schema",
            "json_object",
        ]


def test_a_server_with_no_json_mode_gets_the_schema_in_the_prompt_and_prose_is_tolerated():
    refused = ("json_schema", "json_object_schema", "json_object")
    with FakeOpenAIServer(refuse_formats=refused) as srv:
        srv.enqueue(Reply('Sure! Here it is: {"score": 2, "verdict": "fair"} Hope that helps.'))

        result = _ask(srv)

        assert result.data == {"score": 2, "verdict": "fair"}
        assert len(srv.requests) == 4
        last = srv.requests[-1].body
        assert "response_format" not in last
        system = last["messages"][0]
        assert system["role"] == "system"
        assert system["content"].startswith("You grade answers.")
        assert '"required":["score","verdict"]' in system["content"]
        assert [m["role"] for m in last["messages"]] == ["system", "user"]


def test_plain_json_mode_also_carries_the_schema_in_the_prompt():
    with FakeOpenAIServer(refuse_formats=("json_schema", "json_object_schema")) as srv:
        srv.enqueue(Reply('{"score": 5, "verdict": "fine"}'))

        assert _ask(srv).data == {"score": 5, "verdict": "fine"}

        last = srv.requests[-1].body
        assert last["response_format"] == {"type": "json_object"}
        assert "JSON schema" in last["messages"][0]["content"]


def test_a_pinned_mode_is_the_only_one_tried():
    with FakeOpenAIServer() as srv:
        srv.enqueue(Reply('{"score": 4, "verdict": "ok"}'))

        assert _ask(srv, structured_output="json_object").data == {"score": 4, "verdict": "ok"}

        assert _formats(srv) == [{"type": "json_object"}]


def test_a_pinned_mode_the_server_refuses_fails_with_the_servers_reason():
    with FakeOpenAIServer(refuse_formats=("json_schema",)) as srv:
        with pytest.raises(StructuredOutputError) as caught:
            _ask(srv, structured_output="json_schema")

        message = str(caught.value)
        assert "refused every structured-output mode" in message
        assert "json_schema: The model server answered HTTP 500" in message
        assert "Input should be 'text' or 'json_object'" in message
        assert len(srv.requests) == 1


def test_an_unrelated_server_error_is_retried_in_the_same_mode_not_taken_as_a_refusal():
    with FakeOpenAIServer() as srv:
        srv.enqueue(HTTPFailure(500, "out of memory"), Reply('{"score": 1, "verdict": "x"}'))

        assert _ask(srv).data == {"score": 1, "verdict": "x"}

        assert [f["type"] for f in _formats(srv)] == ["json_schema", "json_schema"]


def test_an_invalid_answer_in_the_negotiated_mode_is_repaired_and_both_calls_billed():
    with FakeOpenAIServer(refuse_formats=("json_schema",)) as srv:
        srv.enqueue(
            Reply('{"score": "three"}', usage=Usage(30, 5)),
            Reply('{"score": 3, "verdict": "ok"}', usage=Usage(50, 6)),
        )

        result = _ask(srv)

        assert result.data == {"score": 3, "verdict": "ok"}
        assert result.usage == Usage(80, 11)
        repair = srv.requests[-1].body
        assert repair["response_format"]["type"] == "json_object"
        assert "$.score: expected integer, got string" in repair["messages"][-1]["content"]


def test_an_answer_that_stays_invalid_fails_naming_the_mode_and_the_problem():
    with FakeOpenAIServer(refuse_formats=("json_schema",)) as srv:
        srv.enqueue(Reply('{"score": 1}'), Reply('{"score": 1}'))

        with pytest.raises(StructuredOutputError) as caught:
            _ask(srv)

        assert str(caught.value) == (
            "The model's answer did not match the requested JSON schema (json_object_schema "
            "mode), even after one repair attempt: $: missing required property 'verdict'"
        )


def test_an_answer_cut_off_at_the_token_limit_says_so():
    with FakeOpenAIServer() as srv:
        srv.enqueue(
            Reply('{"score": 1, "verd', finish_reason="length"),
            Reply('{"score": 1, "verdict": "lo', finish_reason="length"),
        )

        with pytest.raises(StructuredOutputError, match="cut off at the token limit"):
            _ask(srv)


def test_a_grammar_samples_only_the_required_properties_and_nothing_else():
    schema = {
        "type": "object",
        "required": ["score", "items"],
        "properties": {
            "score": {"type": "integer"},
            "notes": {"type": "array", "items": {"type": "string"}},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": {"type": "string"}, "why": {"type": "string"}},
                },
            },
        },
    }

    assert n.grammar_schema(schema) == {
        "type": "object",
        "required": ["score", "items"],
        "additionalProperties": False,
        "properties": {
            "score": {"type": "integer"},
            "items": {
                "type": "array",
                "maxItems": n.GRAMMAR_MAX_ITEMS,
                "items": {
                    "type": "object",
                    "required": ["id"],
                    "additionalProperties": False,
                    "properties": {"id": {"type": "string", "maxLength": n.GRAMMAR_MAX_STRING}},
                },
            },
        },
    }


def test_a_grammar_samples_a_small_integer_range_as_its_values():
    # llama-cpp-python's grammar ignores minimum and maximum: SmolLM2 drafted intensity 123.
    bounded = {"type": "integer", "minimum": 1, "maximum": 10}
    wide = {"type": "integer", "minimum": 0, "maximum": 100_000}

    assert n.grammar_schema(bounded) == {"type": "integer", "enum": list(range(1, 11))}
    assert n.grammar_schema(wide) == wide
    assert n.grammar_schema({"type": "integer", "minimum": 0}) == {"type": "integer", "minimum": 0}


@pytest.mark.parametrize(
    ("status", "message", "refused"),
    [
        (500, "response_format.type: Input should be 'text' or 'json_object'", True),
        (400, "Invalid parameter: 'response_format' of type 'json_schema' is not supported", True),
        (422, "json_schema is not supported", True),
        (500, "CUDA out of memory", False),
        (429, "response_format rate limited", False),
        (401, "bad key for json_schema", False),
        (400, "maximum context length exceeded", False),
    ],
)
def test_what_counts_as_a_refused_format(status, message, refused):
    assert n.refuses_format(status, message) is refused
