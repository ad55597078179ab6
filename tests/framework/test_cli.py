"""The `glow` command without a server: its commands read from a schema, parsing, op resolution,
output, errors, SSE, --wait, watch; and `glow --help` importing no Django.

The server is an httpx handler (its Request and Response are a handy way to describe HTTP);
`transport()` puts it behind the CLI's own stdlib transport interface."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from django.urls import get_resolver
from django.urls import resolve as url_resolve
from drf_spectacular.generators import SchemaGenerator

from glow import cli
from glow.cli import catalogue as commands
from glow.cli import http as cli_http
from glow.cli import output, schema_cache, watch
from glow.cli.args import help_text
from glow.cli.errors import Dropped, NoAnswerInTime, Unreachable
from glow.cli.sse import SSEEvent, SSEParser
from glow.core.registry import op_table, registry

BASE = "http://glow.test/api/v5/artifacts"
ENV = {"GLOW_INSTANCE_URL": BASE, "GLOW_TOKEN": "glow_test_token"}
RUN_ID = "11111111-1111-1111-1111-111111111111"
GROUP_ID = "22222222-2222-2222-2222-222222222222"

# A small catalogue in the registry's shape: these tests must not depend on which apps have landed.
CATALOGUE = commands.Catalogue(
    ops={
        "attempt": ["archive", "audio/start", "audio/stop", "get", "search", "start"],
        "persona": ["generate", "get", "search", "watch"],
        "scenario": ["generate", "search", "watch"],
        "system": ["session", "sessions"],
        "clash": ["watch", "watch/all"],
    },
    plurals={
        "attempt": "attempts",
        "persona": "personas",
        "scenario": "scenarios",
        "system": "system",
        "clash": "clashes",
    },
)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Invocation:
    def __init__(self, code: int, stdout: str, stderr: str, requests: list[httpx.Request]):
        self.code, self.stdout, self.stderr, self.requests = code, stdout, stderr, requests

    @property
    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line]


def transport(handler, requests: list[httpx.Request]) -> cli_http.Transport:
    """The CLI's transport answered by an httpx handler; httpx's errors become the CLI's."""

    def send(request: cli_http.Request) -> cli_http.Response:
        outgoing = httpx.Request(
            request.method, request.url, headers=request.headers, content=request.body
        )
        requests.append(outgoing)
        try:
            answer = handler(outgoing)
        except httpx.TimeoutException as exc:
            raise NoAnswerInTime(str(exc)) from exc
        except httpx.TransportError as exc:
            raise Unreachable(str(exc)) from exc

        def chunks():
            try:
                yield from answer.iter_bytes()
            except httpx.TransportError as exc:
                raise Dropped(str(exc)) from exc

        headers = {name.lower(): value for name, value in answer.headers.items()}
        return cli_http.Response(
            answer.status_code, answer.reason_phrase, headers, chunks(), url=request.url
        )

    return send


def glow(*argv, handler=None, env=ENV, stdin="", stdout=None, catalogue=CATALOGUE) -> Invocation:
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if handler is None:
            return httpx.Response(200, json={"ok": True})
        return handler(request)

    out, err = stdout or io.StringIO(), io.StringIO()
    code = cli.run(
        list(argv),
        env=env,
        stdin=io.StringIO(stdin),
        stdout=out,
        stderr=err,
        catalogue=catalogue,
        transport=transport(answer, requests),
    )
    return Invocation(code, out.getvalue(), err.getvalue(), requests)


def sse(*frames: str) -> str:
    return "".join(frames)


def frame(event: str, data: dict | str, event_id: str | None = None) -> str:
    text = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "")
    return head + "".join(f"data: {line}\n" for line in text.split("\n")) + "\n"


def stream_response(*chunks, status=200) -> httpx.Response:
    def body():
        for chunk in chunks:
            if isinstance(chunk, BaseException):
                raise chunk
            yield chunk.encode()

    return httpx.Response(status, headers={"content-type": "text/event-stream"}, content=body())


OPEN = ":" + " " * 64 + "\n\nevent: stream-open\ndata:\n\n"
KEEP_ALIVE = "event: keep-alive\ndata:\n\n"
PROGRESS = frame(
    "GenerationProgressEvent",
    {"run_id": RUN_ID, "completed_resources": 1, "total_resources": 2, "percentage": 50},
    f"run-{RUN_ID}:1",
)
SAVED = frame("GenerationSavedEvent", {"run_id": RUN_ID, "artifact_id": "p1"}, f"run-{RUN_ID}:2")
COMPLETE = frame(
    "GenerationCompleteEvent",
    {"run_id": RUN_ID, "success": True, "artifact_id": "p1"},
    f"run-{RUN_ID}:3",
)
ERROR = frame(
    "GenerationErrorEvent",
    {"run_id": RUN_ID, "message": "the model is unreachable"},
    f"run-{RUN_ID}:2",
)


def generation_server(*stream_chunks):
    """generate answers a run; watch answers the given SSE chunks."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/generate"):
            return httpx.Response(200, json={"group_id": GROUP_ID, "run_id": RUN_ID})
        return stream_response(*stream_chunks)

    return handler


# -- every op of the registry is reachable, and listed -------------------------------------


def artifact_routes() -> set[str]:
    """<family>/<op> of every URL pattern the router mounted under /api/v5/artifacts/."""
    for pattern in get_resolver().url_patterns:
        if getattr(pattern, "namespace", None) == "artifacts":
            return {
                f"{family.pattern}{route.pattern}"
                for family in pattern.url_patterns  # one include per family
                for route in family.url_patterns
            }
    raise AssertionError("no artifacts namespace in glow.urls")


@pytest.fixture(scope="module")
def served() -> commands.Catalogue:
    """The catalogue the CLI reads from this server's OpenAPI schema."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return commands.from_schema(json.loads(json.dumps(schema, default=str)))


def test_the_clis_op_list_read_from_the_schema_is_the_routers(served):
    cli_ops = {f"{family}/{op}" for family, ops in served.ops.items() for op in ops}
    assert cli_ops == artifact_routes()
    assert {family: sorted(ops) for family, ops in served.ops.items()} == {
        family: sorted(ops) for family, ops in op_table().items()
    }
    for name in served.ops:
        assert served.plurals[name] == registry.get(name).plural


def test_every_registered_op_resolves_from_plural_words_to_its_route(served):
    catalogue = served
    for name, ops in op_table().items():
        plural = registry.get(name).plural
        for op in ops:
            for words in ([plural, op], [name, *op.split("/")]):
                target = commands.resolve(words, catalogue)
                assert (target.family, target.op, target.args) == (name, op, ())
                match = url_resolve(f"/api/v5/artifacts/{target.path}")
                assert match.view_name == f"artifacts:{name}-{op}"


def test_help_lists_every_family_and_op(served):
    catalogue = served
    overview = help_text([], catalogue)
    for name, ops in op_table().items():
        family_help = help_text([registry.get(name).plural], catalogue)
        assert registry.get(name).plural in overview
        for op in ops:
            assert re.search(rf"(^|[\s|]){re.escape(op)}($|[\s|])", family_help, re.M), (name, op)
        for op in catalogue.canonical_ops(name):
            assert re.search(rf"\s{re.escape(op)}(\s|$)", overview), (name, op)


def test_family_help_shows_the_familys_description(served):
    persona = registry.get("persona")
    assert persona.description
    assert persona.description in help_text(["personas"], served)


def test_op_help_shows_the_request_fields(served):
    catalogue = served
    result = help_text(["personas", "search"], catalogue)
    assert "POST persona/search" in result
    assert "page_size" in result


def test_help_exits_0_on_stdout_and_bare_glow_is_a_usage_error():
    shown = glow("--help")
    assert shown.code == 0 and "attempts (attempt)" in shown.stdout and "clashes" in shown.stdout
    bare = glow()
    assert bare.code == 2 and "usage: glow" in bare.stderr and bare.stdout == ""


# -- resolution ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "family", "op", "args"),
    [
        (["attempts", "start"], "attempt", "start", ()),
        (["attempt", "start"], "attempt", "start", ()),
        (["attempts", "audio/start"], "attempt", "audio/start", ()),
        (["attempts", "audio", "start"], "attempt", "audio/start", ()),
        (["system", "sessions"], "system", "sessions", ()),
        (["personas", "watch", RUN_ID], "persona", "watch", (RUN_ID,)),
        (["scenarios", "generate", "image", "Office"], "scenario", "generate", ("image", "Office")),
    ],
)
def test_resolve(words, family, op, args):
    assert commands.resolve(words, CATALOGUE) == commands.Target(family=family, op=op, args=args)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["attemps", "start"], "unknown family 'attemps'. Did you mean 'attempts'"),
        (["attempts", "strat"], "unknown op 'strat' for attempts. Did you mean 'start'"),
        (["attempts"], "name an op of attempts"),
        (["attempts", "start", "now"], "unexpected argument 'now'"),
        (["clashes", "watch", "all"], "ambiguous: 'watch/all' or 'watch'"),
        (["attempts", "start", "--wait"], "--wait only applies to generate"),
        (["attempts", "start", "--group", GROUP_ID], "--group only applies to watch"),
        (["personas", "watch"], "watch needs a run_id or --group"),
        (["personas", "search", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_exit_2_without_calling_the_server(argv, message):
    result = glow(*argv)
    assert result.code == 2
    assert message in result.stderr
    assert result.requests == []


def test_missing_configuration_is_a_usage_error():
    assert "set GLOW_INSTANCE_URL" in glow("system", "sessions", env={"GLOW_TOKEN": "t"}).stderr
    no_token = glow("system", "sessions", env={"GLOW_INSTANCE_URL": BASE})
    assert no_token.code == 2 and "set GLOW_TOKEN" in no_token.stderr
    bad_url = glow("system", "sessions", "--url", "127.0.0.1:8000/api")
    assert bad_url.code == 2 and "http://" in bad_url.stderr


# -- requests ------------------------------------------------------------------------------


def test_an_op_posts_the_body_with_bearer_token_and_cli_user_agent():
    result = glow("attempts", "start", "--body", '{"home_id": "h1"}')
    assert result.code == 0
    (request,) = result.requests
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/attempt/start"
    assert json.loads(request.content) == {"home_id": "h1"}
    assert request.headers["authorization"] == "Bearer glow_test_token"
    assert request.headers["user-agent"] == f"glow-cli/{cli.version()}"


def test_options_go_anywhere_and_flags_override_the_environment():
    result = glow(
        "--url", "http://other:9/api/v5/artifacts/", "system", "--token", "k2", "sessions"
    )
    (request,) = result.requests
    assert str(request.url) == "http://other:9/api/v5/artifacts/system/sessions"
    assert request.headers["authorization"] == "Bearer k2"
    assert json.loads(request.content) == {}


def test_sub_op_words_post_to_the_slashed_route():
    (request,) = glow("attempts", "audio", "start").requests
    assert request.url.path == "/api/v5/artifacts/attempt/audio/start"


def test_body_from_a_file_and_from_stdin(tmp_path):
    body_file = tmp_path / "body.json"
    body_file.write_text('{"page_size": 10}')
    (from_file,) = glow("system", "sessions", "--body", f"@{body_file}").requests
    assert json.loads(from_file.content) == {"page_size": 10}
    (from_stdin,) = glow("system", "sessions", "--body", "-", stdin='{"page": 2}').requests
    assert json.loads(from_stdin.content) == {"page": 2}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{nope", "--body is not valid JSON: Expecting property name"),
        ("[1, 2]", "--body must be a JSON object, not list"),
        ("@/no/such/file.json", "cannot read --body file '/no/such/file.json'"),
    ],
)
def test_bad_bodies_are_usage_errors(body, message):
    result = glow("system", "sessions", "--body", body)
    assert result.code == 2 and message in result.stderr and result.requests == []


def test_scenario_generate_takes_modality_and_title_positionally():
    result = glow(
        "scenarios", "generate", "image", "University Office", "--instructions", "Wide-angle shot"
    )
    (request,) = result.requests
    assert request.url.path == "/api/v5/artifacts/scenario/generate"
    assert json.loads(request.content) == {
        "modality": "image",
        "title": "University Office",
        "instructions": ["Wide-angle shot"],
    }


def test_file_upload_is_multipart_with_body_fields(tmp_path):
    recording = tmp_path / "take.webm"
    recording.write_bytes(b"\x1aE\xdf\xa3 audio")
    (request,) = glow(
        "attempts", "start", "--file", str(recording), "--body", '{"chat_id": "c1"}'
    ).requests
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert b'name="file"; filename="take.webm"' in request.content
    assert b"\x1aE\xdf\xa3 audio" in request.content
    assert b'name="chat_id"\r\n\r\nc1' in request.content
    assert b"Content-Type: video/webm" in request.content  # by its name, on a non-audio op


def test_audio_uploads_send_webm_as_audio_and_file_type_overrides(tmp_path):
    recording = tmp_path / "take.webm"
    recording.write_bytes(b"\x1aE\xdf\xa3")
    (audio,) = glow("attempts", "audio/start", "--file", str(recording)).requests
    assert b"Content-Type: audio/webm" in audio.content
    (chosen,) = glow(
        "attempts", "start", "--file", str(recording), "--file-type", "audio/ogg"
    ).requests
    assert b"Content-Type: audio/ogg" in chosen.content


# -- output and errors ---------------------------------------------------------------------


def test_json_is_pretty_on_a_terminal_and_compact_when_piped():
    def handler(request):
        return httpx.Response(200, json={"total_count": 1, "sessions": [{"id": "s1"}]})

    piped = glow("system", "sessions", handler=handler)
    assert piped.stdout == '{"total_count":1,"sessions":[{"id":"s1"}]}\n'
    terminal = glow("system", "sessions", handler=handler, stdout=Tty())
    assert terminal.stdout.startswith('{\n  "total_count": 1,\n  "sessions": [')


def test_binary_answers_are_written_with_output(tmp_path):
    def handler(request):
        return httpx.Response(200, content=b"PK\x03\x04zip", headers={"content-type": "x/zip"})

    target = tmp_path / "export.zip"
    result = glow("attempts", "get", "-o", str(target), handler=handler)
    assert result.code == 0 and target.read_bytes() == b"PK\x03\x04zip"
    to_terminal = glow("attempts", "get", handler=handler, stdout=Tty())
    assert to_terminal.code == 2 and "pass -o FILE" in to_terminal.stderr


def test_api_errors_print_detail_code_and_fields_and_exit_1():
    def handler(request):
        body = {
            "detail": "home_id: This field is required.",
            "code": "invalid",
            "fields": {"home_id": ["This field is required."]},
        }
        return httpx.Response(400, json=body)

    result = glow("attempts", "start", handler=handler)
    assert result.code == 1 and result.stdout == ""
    assert "glow: home_id: This field is required. (invalid, HTTP 400)" in result.stderr
    assert "  home_id: This field is required." in result.stderr


def test_conflict_errors_show_their_extra_keys():
    def handler(request):
        body = {"detail": "Stale.", "code": "version_conflict", "fields": {}, "current_version": 4}
        return httpx.Response(409, json=body)

    result = glow("attempts", "get", handler=handler)
    assert result.code == 1 and "current_version: 4" in result.stderr


def test_unauthorised_hints_at_the_token_and_non_json_errors_show_the_status():
    unauthorised = glow(
        "system",
        "sessions",
        handler=lambda r: httpx.Response(
            401, json={"detail": "Invalid API key.", "code": "invalid_api_key"}
        ),
    )
    assert unauthorised.code == 1 and "check GLOW_TOKEN" in unauthorised.stderr
    gateway = glow(
        "system", "sessions", handler=lambda r: httpx.Response(502, text="<html>upstream</html>")
    )
    assert gateway.code == 1 and "HTTP 502 Bad Gateway: <html>upstream</html>" in gateway.stderr


def test_a_url_missing_the_api_base_is_explained():
    def handler(request):
        page = "<!DOCTYPE html><title>Page not found</title>"
        return httpx.Response(404, text=page, headers={"content-type": "text/html"})

    result = glow("system", "sessions", "--url", "http://glow.test", handler=handler)
    assert result.code == 1
    assert "HTTP 404 Not Found (a web page, not Glow's API)" in result.stderr
    assert "the /api/v5/artifacts base? (http://glow.test/system/sessions)" in result.stderr
    assert "DOCTYPE" not in result.stderr


def test_connection_errors_exit_1_with_the_url():
    def refuse(request):
        raise httpx.ConnectError("[Errno 111] Connection refused")

    result = glow("system", "sessions", handler=refuse)
    assert result.code == 1
    assert f"cannot reach {BASE}: [Errno 111] Connection refused" in result.stderr


# -- the SSE parser ------------------------------------------------------------------------


def parse_chunks(*chunks: str) -> list[SSEEvent]:
    parser = SSEParser()
    return [event for chunk in chunks for event in parser.feed(chunk)]


def test_sse_parser_follows_the_event_stream_format():
    events = parse_chunks(
        "\ufeff: a comment\n",
        'event: one\nid: 7\ndata: {"a"',
        ": 1}\n\n",
        "data: first line\r\ndata:second\r",
        "\n\r\n",
        "event: no-data\n\n",
        "id: 9\nevent: three\ndata\n\n",
        "event: unterminated\ndata: lost\n",
    )
    assert events == [
        SSEEvent(event="one", data='{"a": 1}', id="7"),
        SSEEvent(event="message", data="first line\nsecond", id="7"),
        SSEEvent(event="three", data="", id="9"),
    ]


def test_sse_parser_handles_a_crlf_split_across_chunks_and_lone_cr():
    events = parse_chunks("data: a\r", "\n\r", "\ndata: b\r\r")
    assert [event.data for event in events] == ["a", "b"]


@pytest.mark.parametrize(
    ("event", "payload", "verdict"),
    [
        ("GenerationCompleteEvent", {"success": True}, "complete"),
        ("GenerationCompleteEvent", {"success": False}, "failed"),
        ("run.complete", {}, "complete"),
        ("GenerationErrorEvent", {}, "failed"),
        ("run.failed", {}, "failed"),
        ("stream-error", {"condition": "forbidden"}, "failed"),
        ("GenerationMediaCompleteEvent", {}, None),
        ("GenerationProgressEvent", {"percentage": 50}, None),
        ("GenerationSavedEvent", {}, None),
    ],
)
def test_terminal_events(event, payload, verdict):
    assert watch.outcome(event, payload) == verdict


# -- generate --wait and watch -------------------------------------------------------------


def test_generate_wait_prints_each_event_and_exits_0_on_complete():
    handler = generation_server(OPEN, PROGRESS, KEEP_ALIVE, SAVED, COMPLETE, "never read")
    result = glow(
        "personas", "generate", "--wait", "--body", '{"instructions": ["x"]}', handler=handler
    )
    assert result.code == 0
    trigger, watch = result.requests
    assert trigger.url.path == "/api/v5/artifacts/persona/generate"
    assert json.loads(trigger.content) == {"instructions": ["x"]}
    assert (watch.method, watch.url.path) == ("GET", "/api/v5/artifacts/persona/watch")
    assert watch.url.params["run_id"] == RUN_ID
    assert watch.headers["accept"] == "text/event-stream"
    events = result.lines[1:]
    assert result.lines[0] == {"group_id": GROUP_ID, "run_id": RUN_ID}
    assert [event["event"] for event in events] == [
        "GenerationProgressEvent",
        "GenerationSavedEvent",
        "GenerationCompleteEvent",
    ]
    assert events[1] == {
        "event": "GenerationSavedEvent",
        "id": f"run-{RUN_ID}:2",
        "data": {"run_id": RUN_ID, "artifact_id": "p1"},
    }
    assert "glow: 50% (1/2)" in result.stderr


def test_generate_wait_exits_1_on_an_error_event():
    result = glow(
        "personas", "generate", "--wait", handler=generation_server(OPEN, PROGRESS, ERROR)
    )
    assert result.code == 1
    assert result.lines[-1]["event"] == "GenerationErrorEvent"
    assert "GenerationErrorEvent: the model is unreachable" in result.stderr


def test_a_stream_closed_without_a_terminal_event_exits_0():
    result = glow("personas", "generate", "--wait", handler=generation_server(OPEN, PROGRESS))
    assert result.code == 0
    assert "stream closed" in result.stderr


def test_a_media_complete_does_not_end_the_wait():
    media = frame("GenerationMediaCompleteEvent", {"modality": "image", "upload_id": "u1"}, "m:1")
    result = glow("scenarios", "generate", "image", "Office", "--wait",
                  handler=generation_server(media, COMPLETE))  # fmt: skip
    assert [line["event"] for line in result.lines[1:]] == [
        "GenerationMediaCompleteEvent",
        "GenerationCompleteEvent",
    ]


def test_a_dropped_stream_resumes_once_with_last_event_id():
    watches = []

    def handler(request):
        if request.url.path.endswith("/generate"):
            return httpx.Response(200, json={"group_id": GROUP_ID, "run_id": RUN_ID})
        watches.append(request)
        if len(watches) == 1:
            return stream_response(OPEN, PROGRESS, httpx.RemoteProtocolError("peer closed"))
        return stream_response(OPEN, SAVED, COMPLETE)

    result = glow("personas", "generate", "--wait", handler=handler)
    assert result.code == 0
    assert "last-event-id" not in watches[0].headers
    assert watches[1].headers["last-event-id"] == f"run-{RUN_ID}:1"
    assert [line["event"] for line in result.lines[1:]] == [
        "GenerationProgressEvent",
        "GenerationSavedEvent",
        "GenerationCompleteEvent",
    ]
    assert f"connection dropped; resuming after event run-{RUN_ID}:1" in result.stderr


def test_a_resume_waits_for_a_restarting_server(monkeypatch):
    monkeypatch.setattr(watch, "RESUME_DELAY", 0)
    calls = []

    def handler(request):
        calls.append(request)
        if len(calls) == 1:
            return stream_response(OPEN, PROGRESS, httpx.ReadError("reset by peer"))
        if len(calls) < 4:
            raise httpx.ConnectError("[Errno 111] Connection refused")
        return stream_response(OPEN, COMPLETE)

    result = glow("personas", "watch", RUN_ID, handler=handler)
    assert result.code == 0
    assert [line["event"] for line in result.lines] == [
        "GenerationProgressEvent",
        "GenerationCompleteEvent",
    ]
    assert result.requests[-1].headers["last-event-id"] == f"run-{RUN_ID}:1"


def test_a_resume_gives_up_when_the_server_stays_away(monkeypatch):
    monkeypatch.setattr(watch, "RESUME_DELAY", 0)
    monkeypatch.setattr(watch, "RESUME_WINDOW", 0)

    def handler(request):
        if "last-event-id" in request.headers:
            raise httpx.ConnectError("[Errno 111] Connection refused")
        return stream_response(OPEN, PROGRESS, httpx.ReadError("reset by peer"))

    result = glow("personas", "watch", RUN_ID, handler=handler)
    assert result.code == 1 and "cannot reach" in result.stderr


def test_a_stream_that_drops_again_without_news_fails():
    def handler(request):
        return stream_response(OPEN, httpx.ReadError("reset by peer"))

    result = glow("personas", "watch", RUN_ID, handler=handler)
    assert result.code == 1
    assert len(result.requests) == 2
    assert "dropped again" in result.stderr


def test_watch_a_run_stops_at_its_terminal_event():
    result = glow("personas", "watch", RUN_ID, handler=lambda r: stream_response(PROGRESS, ERROR))
    assert result.code == 1
    (request,) = result.requests
    assert request.url.params["run_id"] == RUN_ID


def test_watch_a_group_runs_past_terminal_events_until_the_stream_closes():
    other_run = frame("GenerationProgressEvent", {"run_id": "r2", "percentage": 10}, "g:4")
    result = glow(
        "personas",
        "watch",
        "--group",
        GROUP_ID,
        handler=lambda r: stream_response(OPEN, COMPLETE, ERROR, other_run),
    )
    assert result.code == 0
    assert result.requests[0].url.params["group_id"] == GROUP_ID
    assert len(result.lines) == 3


def test_watch_forbidden_by_the_stream_exits_1():
    denied = frame("stream-error", {"condition": "forbidden", "text": "Permission denied"}, "error")
    result = glow(
        "personas", "watch", "--group", GROUP_ID, handler=lambda r: stream_response(denied)
    )
    assert result.code == 1 and "stream error: Permission denied" in result.stderr


def test_watch_of_another_organizations_run_prints_the_404():
    def handler(request):
        return httpx.Response(404, json={"detail": "Not found.", "code": "not_found"})

    result = glow("personas", "watch", RUN_ID, handler=handler)
    assert result.code == 1 and "Not found. (not_found, HTTP 404)" in result.stderr


def test_a_silent_wait_shows_dots_on_a_terminal(monkeypatch):
    monkeypatch.setattr(output, "DOT_SECONDS", 0.01)

    def slow_stream(request):
        def body():
            yield OPEN.encode()
            time.sleep(0.2)
            yield COMPLETE.encode()

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    err = Tty()
    code = cli.run(
        ["personas", "watch", RUN_ID],
        env=ENV,
        stdin=io.StringIO(),
        stdout=io.StringIO(),
        stderr=err,
        catalogue=CATALOGUE,
        transport=transport(slow_stream, []),
    )
    assert code == 0
    assert err.getvalue().startswith("..")


def test_ctrl_c_exits_130():
    def handler(request):
        return stream_response(OPEN, PROGRESS, KeyboardInterrupt())

    result = glow("personas", "watch", "--group", GROUP_ID, handler=handler)
    assert result.code == 130 and "interrupted" in result.stderr


def test_generate_without_wait_returns_at_once():
    result = glow("personas", "generate", handler=generation_server(COMPLETE))
    assert result.code == 0 and len(result.requests) == 1
    assert result.lines == [{"group_id": GROUP_ID, "run_id": RUN_ID}]


# -- the installed console script ----------------------------------------------------------


def test_the_console_script_is_installed_with_its_exit_codes():
    script = Path(sys.executable).parent / "glow"
    shown = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert (shown.returncode, shown.stdout) == (0, f"glow {cli.version()}\n")
    wrong = subprocess.run(
        [str(script), "--no-such-flag"], capture_output=True, text=True, timeout=60
    )
    assert wrong.returncode == 2
    assert "glow: unrecognized arguments: --no-such-flag" in wrong.stderr


# -- commands from the server's OpenAPI schema, cached per server --------------------------


def operation(family, plural, op, *, alias_of=None, summary="", body=None, **extra) -> dict:
    item = {"operationId": f"{family}_{op}", "x-glow-family": family, "x-glow-plural": plural}
    item["x-glow-op"] = op
    if alias_of:
        item["x-glow-alias-of"] = alias_of
    if summary:
        item["description"] = summary
    if body is not None:
        item["requestBody"] = {"content": {"application/json": {"schema": body}}}
    return {**item, **extra}


# A schema in the server's shape, small enough to read: two families, an alias, a GET op.
SCHEMA = {
    "openapi": "3.0.3",
    "tags": [{"name": "persona", "description": "Simulated people learners talk to."}],
    "paths": {
        "/api/v5/artifacts/persona/search": {
            "post": operation(
                "persona",
                "personas",
                "search",
                summary="Search rows.",
                body={"$ref": "#/components/schemas/SearchRequest"},
            )
        },
        "/api/v5/artifacts/persona/watch": {
            "get": operation(
                "persona",
                "personas",
                "watch",
                summary="Follow a run.",
                parameters=[
                    {"in": "query", "name": "run_id", "schema": {"type": "string", "format": "uuid"}}
                ],
            ),
            "post": operation("persona", "personas", "watch", summary="Follow a run."),
        },
        "/api/v5/artifacts/persona/file/upload": {
            "post": {
                **operation("persona", "personas", "file/upload", summary="Upload a file."),
                "requestBody": {
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {"file": {"type": "string", "format": "binary"}},
                                "required": ["file"],
                            }
                        }
                    }
                },
            }
        },
        "/api/v5/artifacts/persona/upload": {
            "post": operation("persona", "personas", "upload", alias_of="file/upload")
        },
        "/api/v5/artifacts/attempt/start": {
            "post": operation(
                "attempt",
                "attempts",
                "start",
                summary="Start an attempt.\nLonger text.",
                body={
                    "oneOf": [
                        {"type": "object", "properties": {"home_id": {"type": "string"}},
                         "required": ["home_id", "mode"]},
                        {"type": "object", "properties": {"practice_id": {"type": "string"}},
                         "required": ["practice_id", "mode"]},
                    ],
                    "properties": {"mode": {"$ref": "#/components/schemas/ModeEnum"}},
                },
            )
        },
        "/api/v5/media/{upload_id}": {"get": {"operationId": "media_get"}},
    },
    "components": {
        "schemas": {
            "SearchRequest": {
                "type": "object",
                "properties": {
                    "search": {"type": "string", "description": "Words in the  title."},
                    "page_size": {"type": "integer"},
                    "ids": {"type": "array", "items": {"type": "string"}},
                    "id": {"type": "string", "readOnly": True},
                },
                "required": ["page_size"],
            },
            "ModeEnum": {"enum": ["text", "audio"], "type": "string"},
        }
    },
}  # fmt: skip


def test_the_schema_becomes_families_ops_aliases_and_fields():
    catalogue = commands.from_schema(SCHEMA)
    assert catalogue.ops == {
        "attempt": ["start"],
        "persona": ["search", "watch", "file/upload", "upload"],
    }
    assert catalogue.plurals == {"persona": "personas", "attempt": "attempts"}
    assert catalogue.aliases == {"persona": {"upload": "file/upload"}}
    assert catalogue.canonical_ops("persona") == ["search", "watch", "file/upload"]
    assert catalogue.summaries["attempt"]["start"] == "Start an attempt."
    assert catalogue.descriptions == {"persona": "Simulated people learners talk to."}
    search = catalogue.info("persona", "search")
    assert search.fields == (
        commands.Field("search", "string", False, "Words in the title."),
        commands.Field("page_size", "integer", True),
        commands.Field("ids", "list", False),
    )
    assert catalogue.info("persona", "watch").methods == ("get", "post")
    assert catalogue.info("persona", "watch").fields == (commands.Field("run_id", "uuid"),)
    assert catalogue.info("persona", "upload").upload  # the alias reads as its op
    start = {item.name: item for item in catalogue.info("attempt", "start").fields}
    # Each form requires mode; home_id and practice_id are each required in one form only.
    assert start["mode"] == commands.Field("mode", "one of text, audio", True)
    assert not start["home_id"].required and not start["practice_id"].required


def test_the_help_texts_read_the_parsed_schema():
    catalogue = commands.from_schema(SCHEMA)
    overview = help_text([], catalogue)
    assert "  personas (persona)\n    search watch file/upload\n" in overview
    family = help_text(["personas"], catalogue)
    assert "Simulated people learners talk to." in family
    assert "  file/upload | upload  Upload a file." in family
    upload = help_text(["persona", "upload"], catalogue)
    assert "usage: glow personas upload --file PATH [--body JSON]" in upload
    assert "  file: file (--file) (required)" in upload
    search = help_text(["personas", "search"], catalogue)
    assert "POST persona/search" in search
    assert "  page_size: integer (required)" in search
    assert "GET/POST persona/watch" in help_text(["personas", "watch"], catalogue)


def test_the_catalogue_survives_its_cache_format():
    catalogue = commands.from_schema(SCHEMA)
    again = commands.Catalogue.from_json(json.loads(json.dumps(catalogue.to_json())))
    assert again == catalogue


# -- the per-server cache and its ETag -----------------------------------------------------


class SchemaServer:
    """An httpx handler serving SCHEMA with an ETag, answering 304 to a matching If-None-Match."""

    def __init__(self, schema=SCHEMA, etag='"v1"') -> None:
        self.schema, self.etag, self.requests = schema, etag, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v5/schema":
            if request.headers.get("if-none-match") == self.etag:
                return httpx.Response(304, headers={"etag": self.etag})
            return httpx.Response(200, json=self.schema, headers={"etag": self.etag})
        return httpx.Response(200, json={"ok": True})


def glow_against(*argv, server, env):
    """The CLI with no catalogue given: it reads the server's schema (through its cache)."""
    out, err, requests = io.StringIO(), io.StringIO(), []
    code = cli.run(
        list(argv),
        env=env,
        stdin=io.StringIO(),
        stdout=out,
        stderr=err,
        transport=transport(server, requests),
    )
    return code, out.getvalue(), err.getvalue(), requests


@pytest.fixture
def cache_env(tmp_path):
    return {"GLOW_INSTANCE_URL": BASE, "GLOW_TOKEN": "k", "XDG_CACHE_HOME": str(tmp_path)}


def test_the_schema_is_fetched_once_then_revalidated_with_its_etag(cache_env, tmp_path):
    server = SchemaServer()
    code, out, _, first = glow_against("--help", server=server, env=cache_env)
    assert code == 0 and "personas (persona)" in out
    (fetch,) = first
    assert str(fetch.url) == "http://glow.test/api/v5/schema?format=json"
    assert "if-none-match" not in fetch.headers
    (cached,) = (tmp_path / "glow").iterdir()
    assert json.loads(cached.read_text())["etag"] == '"v1"'

    server.schema = {"paths": {}}  # were the body read again, no op would be left
    code, out, _, second = glow_against("personas", "search", server=server, env=cache_env)
    assert code == 0
    revalidate, call = second
    assert revalidate.headers["if-none-match"] == '"v1"'
    assert call.url.path == "/api/v5/artifacts/persona/search"


def test_a_new_etag_replaces_the_cached_commands(cache_env):
    glow_against("--help", server=SchemaServer(), env=cache_env)
    renamed = json.loads(json.dumps(SCHEMA).replace('"personas"', '"people"'))
    code, out, _, _ = glow_against(
        "--help", server=SchemaServer(renamed, etag='"v2"'), env=cache_env
    )
    assert code == 0 and "people (persona)" in out and "personas" not in out


def test_the_cache_is_per_server(cache_env, tmp_path):
    other = {**cache_env, "GLOW_INSTANCE_URL": "http://other.test:8001/api/v5/artifacts"}
    glow_against("--help", server=SchemaServer(), env=cache_env)
    renamed = json.loads(json.dumps(SCHEMA).replace('"personas"', '"people"'))
    glow_against("--help", server=SchemaServer(renamed, etag='"v1"'), env=other)
    assert len(list((tmp_path / "glow").iterdir())) == 2
    assert schema_cache.cache_path(BASE, cache_env) != schema_cache.cache_path(
        other["GLOW_INSTANCE_URL"], cache_env
    )
    # Each server's 304 answers with its own commands.
    _, first, _, _ = glow_against("--help", server=SchemaServer(), env=cache_env)
    _, second, _, _ = glow_against("--help", server=SchemaServer(), env=other)
    assert "personas (persona)" in first and "people (persona)" in second


def test_an_unreachable_server_falls_back_to_the_cache(cache_env):
    glow_against("--help", server=SchemaServer(), env=cache_env)

    def down(request):
        raise httpx.ConnectError("[Errno 111] Connection refused")

    code, out, err, _ = glow_against("--help", server=down, env=cache_env)
    assert code == 0 and "personas (persona)" in out
    assert "did not answer ([Errno 111] Connection refused); using the ops cached" in err


def test_help_without_a_server_says_how_to_set_one(tmp_path):
    code, out, err, requests = glow_against(
        "--help", server=SchemaServer(), env={"XDG_CACHE_HOME": str(tmp_path)}
    )
    assert code == 2 and requests == []
    assert out.startswith("usage: glow <family> <op>")
    assert "glow: no server: set GLOW_INSTANCE_URL (or pass --url)" in err


def test_help_with_an_unreachable_server_and_no_cache_names_the_error(cache_env):
    def down(request):
        raise httpx.ConnectError("[Errno 111] Connection refused")

    code, out, err, _ = glow_against("--help", server=down, env=cache_env)
    assert code == 1 and out.startswith("usage: glow")
    assert (
        "glow: cannot read the ops from http://glow.test/api/v5/schema?format=json: "
        "[Errno 111] Connection refused" in err
    )


def test_a_server_without_glow_ops_is_explained(cache_env):
    code, _, err, _ = glow_against("--help", server=SchemaServer({"paths": {}}), env=cache_env)
    assert code == 1 and "lists no Glow ops" in err


# -- the installed command, on a real socket -------------------------------------------------


@pytest.fixture
def schema_http_server():
    """SCHEMA over real HTTP, with ETag and 304, on a free loopback port."""
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("If-None-Match"))
            if self.headers.get("If-None-Match") == '"v1"':
                self.send_response(304)
                self.send_header("ETag", '"v1"')
                self.end_headers()
                return
            body = json.dumps(SCHEMA).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("ETag", '"v1"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v5/artifacts", seen
    server.shutdown()
    server.server_close()


def test_glow_help_imports_neither_django_nor_drf_nor_celery(schema_http_server, tmp_path):
    url, seen = schema_http_server
    script = Path(sys.executable).parent / "glow"
    env = {**os.environ, "GLOW_INSTANCE_URL": url, "XDG_CACHE_HOME": str(tmp_path)}
    env["PYTHONPROFILEIMPORTTIME"] = "1"
    for _ in range(2):  # the first fetches the schema, the second revalidates it
        shown = subprocess.run([str(script), "--help"], env=env, capture_output=True, text=True)
        assert shown.returncode == 0 and "personas (persona)" in shown.stdout
        imported = {
            line.rsplit("|", 1)[-1].strip()
            for line in shown.stderr.splitlines()
            if line.startswith("import time:")
        }
        assert "glow.cli" in imported
        heavy = {name for name in imported if name.split(".")[0] in HEAVY}
        assert heavy == set()
    assert seen == [None, '"v1"']


HEAVY = {"django", "rest_framework", "drf_spectacular", "celery", "httpx", "kombu"}


def test_the_version_the_cli_sends_is_the_installed_packages():
    from importlib.metadata import version

    assert cli.version() == version("glow")


def test_a_refused_schema_shows_the_servers_error(cache_env):
    def refuse(request):
        return httpx.Response(401, json={"detail": "Invalid API key.", "code": "invalid_api_key"})

    code, _, err, _ = glow_against("--help", server=refuse, env=cache_env)
    assert code == 1
    assert "cannot read the ops from http://glow.test/api/v5/schema?format=json" in err
    assert "Invalid API key. (invalid_api_key, HTTP 401)" in err and "check GLOW_TOKEN" in err
