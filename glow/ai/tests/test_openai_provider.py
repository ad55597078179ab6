"""Tests of the openai provider through the real SDK against the loopback FakeOpenAIServer."""

import time

import pytest

from glow.ai import (
    CompletionRequest,
    OpenAIProvider,
    ProviderError,
    ProviderTimeout,
    StructuredOutputError,
    Usage,
    count_tokens,
    get_provider,
)
from tests.support.fakeserver import Delay, FakeOpenAIServer, HTTPFailure, Reply

MESSAGES = [
    {"role": "system", "content": "You are a student."},
    {"role": "user", "content": "Why was the midterm hard?"},
]
SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer"}},
    "required": ["score"],
}


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


def _provider(srv, **options):
    options = {"timeout": 2.0, "max_retries": 2, "backoff_base": 0.01, **options}
    return OpenAIProvider(base_url=srv.base_url, api_key="test-key", **options)


def _request(**fields):
    return CompletionRequest(messages=MESSAGES, model="gpt-test", **fields)


def test_complete_returns_text_and_exact_usage(server):
    server.enqueue(Reply("It covered three chapters.", usage=Usage(42, 7)))

    result = _provider(server).complete(_request(temperature=0.2, max_tokens=50))

    assert result.text == "It covered three chapters."
    assert result.usage == Usage(42, 7)
    assert result.finish_reason == "stop"
    assert result.latency_ms >= 0
    sent = server.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer test-key"
    assert sent.body["model"] == "gpt-test"
    assert sent.body["messages"] == MESSAGES
    assert sent.body["temperature"] == 0.2
    assert sent.body["max_tokens"] == 50


def test_get_provider_builds_a_working_openai_provider(server):
    server.enqueue(Reply("hi", usage=Usage(1, 1)))

    provider = get_provider(
        "openai", base_url=server.base_url, api_key="k", timeout=2, max_retries=0
    )

    assert provider.name == "openai"
    assert provider.complete(_request()).text == "hi"


def test_unknown_provider_name_is_refused():
    with pytest.raises(ProviderError, match="Unknown model provider 'nope'"):
        get_provider("nope")


def test_stream_yields_deltas_and_exact_usage(server):
    server.enqueue(Reply("Because the exam was long and tricky.", usage=Usage(30, 9)))

    stream = _provider(server).stream(_request())
    deltas = list(stream)

    assert len(deltas) > 1
    assert "".join(deltas) == "Because the exam was long and tricky."
    assert stream.result.text == "Because the exam was long and tricky."
    assert stream.result.usage == Usage(30, 9)
    assert stream.result.finish_reason == "stop"
    assert server.requests[0].body["stream"] is True
    assert server.requests[0].body["stream_options"] == {"include_usage": True}


def test_usage_falls_back_to_counting_when_the_server_sends_none(server):
    server.enqueue(Reply("No usage here.", send_usage=False), Reply("Nor here.", send_usage=False))
    provider = _provider(server)
    prompt_tokens = sum(count_tokens(message["content"]) for message in MESSAGES)

    whole = provider.complete(_request())
    streamed = provider.stream(_request()).collect()

    assert whole.usage == Usage(prompt_tokens, count_tokens("No usage here."))
    assert streamed.usage == Usage(prompt_tokens, count_tokens("Nor here."))


def test_length_finish_reason_is_reported(server):
    server.enqueue(Reply("Cut sho", finish_reason="length", usage=Usage(5, 2)))

    assert _provider(server).complete(_request()).finish_reason == "length"


@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_failure_is_retried(server, status):
    server.enqueue(HTTPFailure(status), Reply("Recovered.", usage=Usage(3, 2)))

    result = _provider(server).complete(_request())

    assert result.text == "Recovered."
    assert result.usage == Usage(3, 2)
    assert len(server.requests) == 2


def test_stream_opening_is_retried(server):
    server.enqueue(HTTPFailure(500), Reply("Streamed after retry.", usage=Usage(3, 4)))

    result = _provider(server).stream(_request()).collect()

    assert result.text == "Streamed after retry."
    assert len(server.requests) == 2


def test_retries_are_bounded_and_the_error_is_readable(server):
    server.enqueue(HTTPFailure(500), HTTPFailure(502), HTTPFailure(503, "overloaded"))

    with pytest.raises(ProviderError) as caught:
        _provider(server, max_retries=2).complete(_request())

    assert str(caught.value) == "The model server answered HTTP 503 after 3 attempts: overloaded"
    assert len(server.requests) == 3


def test_client_errors_are_not_retried(server):
    server.enqueue(HTTPFailure(400, "model not found"))

    with pytest.raises(ProviderError, match="HTTP 400 after 1 attempt: model not found"):
        _provider(server).complete(_request())
    assert len(server.requests) == 1


def test_timeout_raises_provider_timeout_after_retries(server):
    server.enqueue(Delay(2.0), Delay(2.0))
    started = time.perf_counter()

    with pytest.raises(ProviderTimeout, match="did not answer in time after 2 attempts"):
        _provider(server, timeout=0.2, max_retries=1).complete(_request())

    assert time.perf_counter() - started < 1.5
    assert len(server.requests) == 2


def test_cancelled_stream_keeps_the_partial_text(server):
    server.enqueue(Reply("one two three four five six seven", chunk_delay=0.02))
    seen: list[str] = []
    stream = _provider(server).stream(_request(), should_cancel=lambda: len(seen) >= 2)

    for delta in stream:
        seen.append(delta)

    assert seen == ["one ", "two "]
    assert stream.result.text == "one two "
    assert stream.result.finish_reason == "cancelled"


def test_malformed_structured_answer_is_repaired(server):
    server.enqueue(
        Reply('{"score": ', usage=Usage(20, 3)), Reply('{"score": 4}', usage=Usage(30, 4))
    )

    result = _provider(server).complete(_request(json_schema=SCHEMA))

    assert result.data == {"score": 4}
    assert result.usage == Usage(50, 7)
    first, repair = server.requests
    assert first.body["response_format"]["type"] == "json_schema"
    assert first.body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert repair.body["messages"][-2] == {"role": "assistant", "content": '{"score": '}
    assert "not valid JSON" in repair.body["messages"][-1]["content"]


def test_malformed_structured_answer_twice_raises(server):
    server.enqueue(Reply('{"score": '), Reply('{"score": "high"}'))

    with pytest.raises(StructuredOutputError, match=r"\$\.score: expected integer, got string"):
        _provider(server).complete(_request(json_schema=SCHEMA))

    assert len(server.requests) == 2


def test_fake_server_echoes_when_nothing_is_queued(server):
    result = _provider(server).complete(_request())

    assert result.text == "Why was the midterm hard?"
    assert result.usage == Usage(
        sum(count_tokens(message["content"]) for message in MESSAGES),
        count_tokens("Why was the midterm hard?"),
    )
